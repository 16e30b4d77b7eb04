/* Sliding replay window for transport counters (RFC 6479 style bitmap, 2048 wide). A
 * counter is accepted once; counters older than the window are rejected. Check before
 * decrypting (cheap reject), commit only after the AEAD verified. */
#ifndef PARLEY_CRYPTO_REPLAY_H
#define PARLEY_CRYPTO_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

enum { PN_REPLAY_WINDOW = 2048 };

struct pn_replay {
	uint64_t top; /* highest accepted counter + 1; 0 = none yet */
	uint64_t bits[PN_REPLAY_WINDOW / 64];
};

void pn_replay_init(struct pn_replay *r);
/* True when counter is new and within the window (does not record it). */
bool pn_replay_check(const struct pn_replay *r, uint64_t counter);
/* Records counter; returns false (and records nothing) when it would be a replay. */
bool pn_replay_commit(struct pn_replay *r, uint64_t counter);

#endif
