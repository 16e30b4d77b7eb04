/* Kademlia routing table of a supernode (sans-I/O, no allocation after creation).
 *
 * Node ids are 256-bit (BLAKE2b-256 of the supernode's X25519 key); distance is XOR.
 * Bucket i holds contacts whose id shares exactly i leading bits with ours (i = 0..255).
 * Each bucket holds up to k contacts ordered least-recently-seen first, plus a small
 * replacement cache. Supernodes are few and stable, so k is large (default here 32; the
 * supernode uses 256, configurable):
 * with N supernodes the table then knows most of the network and lookups take 1-2 hops.
 *
 * Anti-poisoning: at most `per_prefix` contacts of one bucket may come from the same IPv4
 * /24 or IPv6 /48. */
#ifndef PARLEY_OVERLAY_KAD_H
#define PARLEY_OVERLAY_KAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/env.h"

enum { PN_KAD_ID = 32, PN_KAD_BUCKETS = 256 };
/* Configuration caps: the whole table (256 * (k + replacements) contacts) is allocated at
 * pn_kad_new, so both are bounded. */
enum { PN_KAD_K_MAX = 256, PN_KAD_REPLACEMENTS_MAX = 64 };

struct pn_kad_contact {
	uint8_t id[PN_KAD_ID];
	uint8_t key[32];         /* X25519 static key (id = BLAKE2b-256(key)) */
	struct pn_addr addr;
	uint64_t last_seen;      /* ms, env clock; 0 = never answered */
	uint32_t rtt_ms;
	uint8_t fails;           /* consecutive unanswered requests */
};

struct pn_kad;

struct pn_kad_config {
	uint8_t self_id[PN_KAD_ID];
	unsigned k;          /* bucket size; 0 = 32 */
	unsigned per_prefix; /* per /24 or /48 in one bucket; 0 = 2 */
	unsigned replacements; /* replacement cache per bucket; 0 = 8 */
};

/* 0 or -ENOMEM / -EINVAL (cfg NULL, k > PN_KAD_K_MAX, replacements >
 * PN_KAD_REPLACEMENTS_MAX). *out is set only on success. */
int pn_kad_new(struct pn_kad **out, const struct pn_kad_config *cfg);
void pn_kad_free(struct pn_kad *t);

/* id = BLAKE2b-256(key). */
void pn_kad_id_of(uint8_t id[PN_KAD_ID], const uint8_t key[32]);
/* Index of the bucket for id (number of leading bits shared with self), or -1 for self. */
int pn_kad_bucket_of(const struct pn_kad *t, const uint8_t id[PN_KAD_ID]);
/* -1, 0, 1: which of a and b is closer to target (XOR metric). */
int pn_kad_cmp_dist(const uint8_t target[PN_KAD_ID], const uint8_t a[PN_KAD_ID],
		    const uint8_t b[PN_KAD_ID]);

/* We heard from (or about, seen=false) a contact. A contact already present is refreshed
 * (moved to most-recently-seen when seen). A new one goes into its bucket if there is room,
 * else into the replacement cache. Returns 1 if added to the bucket, 0 if refreshed or
 * cached, -EPERM if refused (self, per-prefix limit), -EINVAL (NULL, or an address that
 * is neither IPv4 nor IPv6). Only a contact we heard from (seen) may change its stored
 * address; a third party's report never redirects a known contact. The id is trusted as
 * given: the caller derives it from the key (pn_kad_id_of). */
int pn_kad_seen(struct pn_kad *t, const struct pn_kad_contact *c, bool seen, uint64_t now);
/* A request to the contact went unanswered. After `max_fails` in a row it is removed and
 * the most recent replacement takes its place. Returns true when it was removed. */
bool pn_kad_failed(struct pn_kad *t, const uint8_t id[PN_KAD_ID], unsigned max_fails);
bool pn_kad_remove(struct pn_kad *t, const uint8_t id[PN_KAD_ID]);
/* Bucket contacts only (not the replacement cache); valid until the table is next changed. */
const struct pn_kad_contact *pn_kad_find(const struct pn_kad *t, const uint8_t id[PN_KAD_ID]);
/* The n contacts closest to target (sorted closest first); returns how many were written. */
size_t pn_kad_closest(const struct pn_kad *t, const uint8_t target[PN_KAD_ID],
		      struct pn_kad_contact *out, size_t n);
/* Contacts in buckets (the replacement caches are not counted). */
size_t pn_kad_count(const struct pn_kad *t);
/* Calls cb for every bucket contact (for refresh and persistence), bucket 0 first, each
 * bucket least-recently-seen first. cb must not change the table. */
void pn_kad_each(const struct pn_kad *t, void (*cb)(void *arg, const struct pn_kad_contact *c),
		 void *arg);
/* Index of the least recently refreshed non-empty-range bucket that is older than
 * refresh_ms (bucket refresh), or -1; a bucket never touched is stale at once, however
 * young the clock. `touched` marks a bucket refreshed now.
 * "Non-empty range" = buckets 0 .. the deepest bucket holding a contact: deeper ones are
 * empty and covered by the lookup of our own id. Ties go to the lowest index. */
int pn_kad_stale_bucket(const struct pn_kad *t, uint64_t now, uint64_t refresh_ms);
void pn_kad_touch_bucket(struct pn_kad *t, int bucket, uint64_t now);
/* Contacts in bucket i (0 outside 0..255), and the table's k. */
unsigned pn_kad_bucket_size(const struct pn_kad *t, int bucket);
unsigned pn_kad_k(const struct pn_kad *t);
/* A random id that falls in bucket i (for refresh lookups), drawn with env->random.
 * A bucket outside 0..255 gives a uniformly random id. */
void pn_kad_random_id_in(const struct pn_kad *t, int bucket, const struct pn_env *env,
			 uint8_t out[PN_KAD_ID]);

/* ---- iterative lookup state (one per lookup; the caller does the I/O) ------------------ */
enum { PN_KAD_LOOKUP_MAX = 64 };

struct pn_kad_lookup {
	uint8_t target[PN_KAD_ID];
	unsigned alpha, k;
	struct {
		struct pn_kad_contact c;
		uint8_t state; /* 0 new, 1 in flight, 2 answered, 3 failed */
		uint64_t sent_at;
	} cand[PN_KAD_LOOKUP_MAX];
	size_t n;
	unsigned in_flight;
	unsigned hops; /* highest hop count reached: 1 for contacts from our own table */
	uint8_t hop_of[PN_KAD_LOOKUP_MAX];
	uint8_t self[PN_KAD_ID]; /* our own id: never a candidate, even when others list us */
};

/* Hop counting: a contact from our own table is hop 1 (one round trip reaches it); a
 * contact first listed by a hop-h candidate's answer is hop h+1; when several answers
 * list it, the smallest h+1 is kept (not propagated to contacts it already listed).
 * `hops` = the largest hop among the (up to) k closest answered candidates, i.e. the
 * round trips on the critical path to the final result; 0 before any answer. It is kept
 * current after every answer or failure, so it is final once the lookup is done.
 *
 * Candidate set: at most PN_KAD_LOOKUP_MAX, sorted by distance, deduplicated by id. When
 * full, a closer newcomer evicts the farthest candidate (if that one was in flight it
 * stops counting toward alpha, and its late answer is ignored). Answers and failures for
 * an id that is not in flight are ignored (unsolicited, duplicate or evicted).
 *
 * The window is the k closest candidates that have not failed: next() only queries
 * inside it and done() holds when all of it has answered, so a failed node is replaced
 * by the next closest instead of shrinking the result. */

/* Seeds a lookup with our own PN_KAD_LOOKUP_MAX closest contacts. alpha 0 = 3;
 * k 0 = the table's k; k is capped at PN_KAD_LOOKUP_MAX. */
void pn_kad_lookup_init(struct pn_kad_lookup *l, const struct pn_kad *t,
			const uint8_t target[PN_KAD_ID], unsigned alpha, unsigned k);
/* Next contact to query (marks it in flight), or NULL when alpha are in flight or nothing
 * is left. The pointer is valid until the next answer or fail call (they reorder). */
const struct pn_kad_contact *pn_kad_lookup_next(struct pn_kad_lookup *l, uint64_t now);
/* An answer from `from` listing closer contacts (merged, deduplicated, kept sorted, capped). */
void pn_kad_lookup_answer(struct pn_kad_lookup *l, const uint8_t from[PN_KAD_ID],
			  const struct pn_kad_contact *found, size_t n);
void pn_kad_lookup_fail(struct pn_kad_lookup *l, const uint8_t from[PN_KAD_ID]);
/* Done when the k closest known candidates that have not failed have all answered (or
 * none is left to ask). */
bool pn_kad_lookup_done(const struct pn_kad_lookup *l);
/* The closest answered contacts (up to n), closest first. */
size_t pn_kad_lookup_result(const struct pn_kad_lookup *l, struct pn_kad_contact *out, size_t n);
/* The hop at which candidate id was reached (1 = from our own table, h + 1 = named by an
 * answer from a hop-h candidate), or 0 when id is not a candidate. A FIND_VALUE answered
 * by id took this many overlay hops, whatever other answers came in before it. */
unsigned pn_kad_lookup_hop(const struct pn_kad_lookup *l, const uint8_t id[PN_KAD_ID]);

/* ---- disjoint paths (S/Kademlia): d lookups for one target that never share a node ----
 *
 * The seeds (our own closest contacts, closest first) are dealt round-robin to the d
 * paths; an answer on path p only adds contacts that no other path has as a candidate, so
 * a node is asked by at most one path. A node that lies or drops requests can then spoil
 * only the path it is on: the lookup succeeds if any path reaches an honest holder. d = 1
 * is the plain lookup. */
enum { PN_KAD_PATHS_MAX = 4 };

/* l[0..d) (d 1..PN_KAD_PATHS_MAX, larger is capped); alpha and k are per path. */
void pn_kad_lookup_init_paths(struct pn_kad_lookup *l, unsigned d, const struct pn_kad *t,
			      const uint8_t target[PN_KAD_ID], unsigned alpha, unsigned k);
/* The answer from `from` on path p, merging only contacts no other path has. */
void pn_kad_lookup_answer_path(struct pn_kad_lookup *l, unsigned d, unsigned p,
			       const uint8_t from[PN_KAD_ID], const struct pn_kad_contact *found,
			       size_t n);
/* The n closest answered contacts over all paths (deduplicated, closest first). */
size_t pn_kad_lookup_result_paths(const struct pn_kad_lookup *l, unsigned d,
				  struct pn_kad_contact *out, size_t n);

#endif
