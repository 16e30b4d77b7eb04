#include "session/ltab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/addr.h"

int pn_ltab_init(struct pn_ltab *t, uint32_t cap)
{
	uint32_t c = 16;

	memset(t, 0, sizeof(*t));
	while (c < cap * 2) /* keep the load factor at or below one half */
		c <<= 1;
	t->ents = calloc(c, sizeof(*t->ents));
	if (!t->ents)
		return -ENOMEM;
	t->cap = c;
	return 0;
}

void pn_ltab_fini(struct pn_ltab *t)
{
	if (!t->ents)
		return;
	for (uint32_t i = 0; i < t->cap; i++)
		while (t->ents[i])
			pn_ltab_remove(t, t->ents[i]);
	free(t->ents);
	t->ents = NULL;
}

static uint32_t slot_of(const struct pn_ltab *t, uint32_t idx)
{
	/* Indices are random, so their low bits already spread well. */
	return idx & (t->cap - 1);
}

struct pn_lent *pn_ltab_find(struct pn_ltab *t, uint32_t idx)
{
	uint32_t s = slot_of(t, idx);

	for (uint32_t n = 0; n < t->cap; n++, s = (s + 1) & (t->cap - 1)) {
		struct pn_lent *e = t->ents[s];
		if (!e)
			return NULL;
		if (e->link.local_idx == idx && idx != 0)
			return e;
	}
	return NULL;
}

struct pn_lent *pn_ltab_find_pending(struct pn_ltab *t, const struct pn_addr *from,
				     uint32_t sender_idx)
{
	for (uint32_t i = 0; i < t->cap; i++) {
		struct pn_lent *e = t->ents[i];
		if (e && !e->link.confirmed && e->link.remote_idx == sender_idx &&
		    pn_addr_eq(&e->addr, from))
			return e;
	}
	return NULL;
}

static uint32_t slot_index(const struct pn_ltab *t, const struct pn_lent *e)
{
	uint32_t s = slot_of(t, e->link.local_idx);

	while (t->ents[s] != e)
		s = (s + 1) & (t->cap - 1);
	return s;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void pn_ltab_remove(struct pn_ltab *t, struct pn_lent *e)
{
	uint32_t i = slot_index(t, e), j = i;

	if (t->evict_cb)
		t->evict_cb(t->evict_arg, e);
	pn_link_wipe(&e->link);
	sodium_memzero(e, sizeof(*e));
	free(e);
	t->ents[i] = NULL;
	t->count--;
	for (;;) {
		j = (j + 1) & (t->cap - 1);
		struct pn_lent *n = t->ents[j];
		if (!n)
			break;
		uint32_t home = slot_of(t, n->link.local_idx);
		/* Move n into the hole at i when its home is not in (i, j]. */
		bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!in_range) {
			t->ents[i] = n;
			t->ents[j] = NULL;
			i = j;
		}
	}
}

static struct pn_lent *victim(struct pn_ltab *t)
{
	struct pn_lent *best = NULL;

	for (uint32_t i = 0; i < t->cap; i++) {
		struct pn_lent *e = t->ents[i];
		if (!e)
			continue;
		if (!best || (!e->link.confirmed && best->link.confirmed) ||
		    (e->link.confirmed == best->link.confirmed && e->last_active < best->last_active))
			best = e;
	}
	return best;
}

struct pn_lent *pn_ltab_alloc(struct pn_ltab *t, const struct pn_env *env, uint32_t *idx)
{
	uint32_t v;

	if (t->count >= t->cap / 2) {
		struct pn_lent *e = victim(t);
		if (e)
			pn_ltab_remove(t, e);
	}
	do
		env->random(env->ctx, &v, sizeof(v));
	while (v == 0 || pn_ltab_find(t, v));
	for (uint32_t s = slot_of(t, v);; s = (s + 1) & (t->cap - 1)) {
		if (!t->ents[s]) {
			struct pn_lent *e = calloc(1, sizeof(*e));
			if (!e)
				return NULL;
			t->ents[s] = e;
			e->used = true;
			e->link.local_idx = v;
			t->count++;
			*idx = v;
			return e;
		}
	}
}

static uint64_t expiry_of(const struct pn_lent *e, uint64_t idle_ms, uint64_t pending_ms)
{
	return e->last_active + (e->link.confirmed ? idle_ms : pending_ms);
}

void pn_ltab_expire(struct pn_ltab *t, uint64_t now, uint64_t idle_ms, uint64_t pending_ms)
{
	bool again = true;

	/* Removal shifts entries, so rescan until a pass removes nothing. */
	while (again) {
		again = false;
		for (uint32_t i = 0; i < t->cap; i++) {
			struct pn_lent *e = t->ents[i];
			if (e && expiry_of(e, idle_ms, pending_ms) <= now) {
				pn_ltab_remove(t, e);
				again = true;
			}
		}
	}
}

uint64_t pn_ltab_next_expiry(const struct pn_ltab *t, uint64_t idle_ms, uint64_t pending_ms)
{
	uint64_t best = UINT64_MAX;

	for (uint32_t i = 0; i < t->cap; i++) {
		const struct pn_lent *e = t->ents[i];
		if (e && expiry_of(e, idle_ms, pending_ms) < best)
			best = expiry_of(e, idle_ms, pending_ms);
	}
	return best;
}
