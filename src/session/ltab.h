/* A table of links keyed by our local index, for servers that accept many sessions
 * (login server, supernode). Fixed capacity chosen at creation; when full, the least
 * recently active entry is evicted (unconfirmed handshakes first), so a flood of
 * handshakes cannot grow memory. Lookup by index is O(1) (open addressing). */
#ifndef PARLEY_SESSION_LTAB_H
#define PARLEY_SESSION_LTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "parley/env.h"
#include "session/link.h"

struct pn_lent {
	bool used;      /* always true for a live entry (kept for readability of callers) */
	struct pn_link link;
	struct pn_addr addr;  /* where the peer is (updated on authenticated DATA only) */
	uint64_t last_active;
	void *user;           /* owner data (e.g. the supernode's attached-client record) */
};

struct pn_ltab {
	/* Slots point at entries allocated on demand: an idle table of 10,000 sessions
	 * costs 256 KiB of slots, not 10,000 links. */
	struct pn_lent **ents;
	uint32_t cap;   /* power of two */
	uint32_t count;
	void (*evict_cb)(void *arg, struct pn_lent *e); /* called before an entry is dropped */
	void *evict_arg;
};

/* cap is rounded up to a power of two. 0 or -ENOMEM. */
int pn_ltab_init(struct pn_ltab *t, uint32_t cap);
void pn_ltab_fini(struct pn_ltab *t);
struct pn_lent *pn_ltab_find(struct pn_ltab *t, uint32_t idx);
/* A free entry for a new link with a fresh random non-zero index written to *idx
 * (evicting if full). The entry is marked used; the caller fills link/addr. */
struct pn_lent *pn_ltab_alloc(struct pn_ltab *t, const struct pn_env *env, uint32_t *idx);
/* Finds a pending (not yet confirmed) entry from the same address with this remote
 * sender index: a retransmitted first handshake message. */
struct pn_lent *pn_ltab_find_pending(struct pn_ltab *t, const struct pn_addr *from,
				     uint32_t sender_idx);
void pn_ltab_remove(struct pn_ltab *t, struct pn_lent *e);
/* Removes entries idle longer than idle_ms (unconfirmed ones after pending_ms). */
void pn_ltab_expire(struct pn_ltab *t, uint64_t now, uint64_t idle_ms, uint64_t pending_ms);
/* Earliest time an entry would expire (UINT64_MAX when empty). */
uint64_t pn_ltab_next_expiry(const struct pn_ltab *t, uint64_t idle_ms, uint64_t pending_ms);

#endif
