/* Replay window: a ring of PN_REPLAY_WINDOW bits, bit (c mod WINDOW) standing for counter c
 * while c lies within WINDOW of the highest counter seen. Unlike RFC 6479, which clears whole
 * words and so loses up to 63 positions of its window, bits are cleared individually at the
 * edges, so the window is exactly PN_REPLAY_WINDOW counters wide: with top = highest + 1,
 * counters in [top - WINDOW, top) are tracked and anything below is too old. */
#include "crypto/replay.h"

#include <string.h>

enum { WORD_BITS = 64, N_WORDS = PN_REPLAY_WINDOW / WORD_BITS };

void pn_replay_init(struct pn_replay *r)
{
	memset(r, 0, sizeof(*r));
}

static bool bit_get(const struct pn_replay *r, uint64_t c)
{
	unsigned idx = (unsigned)(c % PN_REPLAY_WINDOW);
	return (r->bits[idx / WORD_BITS] >> (idx % WORD_BITS)) & 1;
}

static void bit_set(struct pn_replay *r, uint64_t c)
{
	unsigned idx = (unsigned)(c % PN_REPLAY_WINDOW);
	r->bits[idx / WORD_BITS] |= (uint64_t)1 << (idx % WORD_BITS);
}

bool pn_replay_check(const struct pn_replay *r, uint64_t counter)
{
	/* UINT64_MAX is reserved by Noise and would wrap top to 0. */
	if (counter == UINT64_MAX)
		return false;
	if (counter >= r->top)
		return true;
	if (r->top - counter > PN_REPLAY_WINDOW)
		return false;
	return !bit_get(r, counter);
}

/* Forgets counters [from, to] — ring positions about to be reused by new counters. */
static void clear_range(struct pn_replay *r, uint64_t from, uint64_t to)
{
	uint64_t c = from;

	if (to - from + 1 >= PN_REPLAY_WINDOW) {
		memset(r->bits, 0, sizeof(r->bits));
		return;
	}
	while (c <= to) {
		/* Whole aligned words at once: a big jump costs at most N_WORDS stores. */
		if (c % WORD_BITS == 0 && to - c >= WORD_BITS - 1) {
			r->bits[(c % PN_REPLAY_WINDOW) / WORD_BITS] = 0;
			c += WORD_BITS;
			continue;
		}
		unsigned idx = (unsigned)(c % PN_REPLAY_WINDOW);
		r->bits[idx / WORD_BITS] &= ~((uint64_t)1 << (idx % WORD_BITS));
		c++;
	}
}

bool pn_replay_commit(struct pn_replay *r, uint64_t counter)
{
	if (!pn_replay_check(r, counter))
		return false;
	if (counter >= r->top) {
		clear_range(r, r->top, counter);
		r->top = counter + 1;
	}
	bit_set(r, counter);
	return true;
}
