#include "overlay/kad.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/addr.h"

enum limits {
	DEFAULT_K = 32,
	DEFAULT_PER_PREFIX = 2,
	DEFAULT_REPLACEMENTS = 8,
	DEFAULT_ALPHA = 3,
};

/* One bucket: c[0..n) least recently seen first, r[0..nr) the replacement cache with the
 * most recently heard-of entry last. Both point into the table's single slab. */
struct bucket {
	struct pn_kad_contact *c, *r;
	unsigned n, nr;
	uint64_t touched;
};

struct pn_kad {
	uint8_t self[PN_KAD_ID];
	unsigned k, per_prefix, nrepl;
	size_t count;
	struct bucket b[PN_KAD_BUCKETS];
	/* Bucket-major (bucket i's k contacts, then its replacements), so a table only
	 * touches the pages of the shallow buckets that real networks fill. */
	struct pn_kad_contact slab[];
};

int pn_kad_new(struct pn_kad **out, const struct pn_kad_config *cfg)
{
	struct pn_kad *t;
	unsigned k, pp, nr, per;

	if (!out || !cfg)
		return -EINVAL;
	k = cfg->k ? cfg->k : DEFAULT_K;
	pp = cfg->per_prefix ? cfg->per_prefix : DEFAULT_PER_PREFIX;
	nr = cfg->replacements ? cfg->replacements : DEFAULT_REPLACEMENTS;
	if (k > PN_KAD_K_MAX || nr > PN_KAD_REPLACEMENTS_MAX)
		return -EINVAL;
	per = k + nr;
	t = calloc(1, sizeof(*t) + (size_t)PN_KAD_BUCKETS * per * sizeof(t->slab[0]));
	if (!t)
		return -ENOMEM;
	memcpy(t->self, cfg->self_id, PN_KAD_ID);
	t->k = k;
	t->per_prefix = pp;
	t->nrepl = nr;
	for (unsigned i = 0; i < PN_KAD_BUCKETS; i++) {
		t->b[i].c = &t->slab[(size_t)i * per];
		t->b[i].r = t->b[i].c + k;
	}
	*out = t;
	return 0;
}

void pn_kad_free(struct pn_kad *t)
{
	free(t);
}

void pn_kad_id_of(uint8_t id[PN_KAD_ID], const uint8_t key[32])
{
	crypto_generichash(id, PN_KAD_ID, key, 32, NULL, 0);
}

static int shared_bits(const uint8_t a[PN_KAD_ID], const uint8_t b[PN_KAD_ID])
{
	for (int i = 0; i < PN_KAD_ID; i++) {
		unsigned x = (unsigned)(a[i] ^ b[i]);
		if (x)
			return i * 8 + (__builtin_clz(x) - (int)(8 * (sizeof(unsigned) - 1)));
	}
	return -1;
}

int pn_kad_bucket_of(const struct pn_kad *t, const uint8_t id[PN_KAD_ID])
{
	return shared_bits(t->self, id);
}

int pn_kad_cmp_dist(const uint8_t target[PN_KAD_ID], const uint8_t a[PN_KAD_ID],
		    const uint8_t b[PN_KAD_ID])
{
	for (int i = 0; i < PN_KAD_ID; i++) {
		uint8_t da = a[i] ^ target[i], db = b[i] ^ target[i];
		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- anti-poisoning */

/* The network an address counts against: its IPv4 /24 (also when written as an
 * IPv4-mapped IPv6 address, so one host cannot count once per spelling) or its IPv6 /48. */
struct net {
	uint8_t family;
	uint8_t b[6];
};

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static struct net net_of(const struct pn_addr *a)
{
	struct net n;

	memset(&n, 0, sizeof(n));
	if (a->family == PN_AF_INET6 && memcmp(a->ip, v4_mapped, sizeof(v4_mapped)) != 0) {
		n.family = PN_AF_INET6;
		memcpy(n.b, a->ip, 6);
	} else {
		n.family = PN_AF_INET;
		memcpy(n.b, a->family == PN_AF_INET ? a->ip : a->ip + 12, 3);
	}
	return n;
}

static bool same_net(const struct pn_addr *a, const struct pn_addr *b)
{
	struct net x = net_of(a), y = net_of(b);
	return memcmp(&x, &y, sizeof(x)) == 0;
}

static unsigned net_count(const struct pn_kad_contact *c, unsigned n, const struct pn_addr *a)
{
	unsigned cnt = 0;

	for (unsigned i = 0; i < n; i++)
		cnt += same_net(&c[i].addr, a);
	return cnt;
}

/* ---------------------------------------------------------------- table */

static int find_in(const struct pn_kad_contact *c, unsigned n, const uint8_t id[PN_KAD_ID])
{
	for (unsigned i = 0; i < n; i++)
		if (memcmp(c[i].id, id, PN_KAD_ID) == 0)
			return (int)i;
	return -1;
}

/* Moves c[i] to the end of c[0..n) (most recently seen). */
static void move_last(struct pn_kad_contact *c, unsigned n, unsigned i)
{
	struct pn_kad_contact tmp = c[i];

	memmove(&c[i], &c[i + 1], (n - i - 1) * sizeof(c[0]));
	c[n - 1] = tmp;
}

static void drop_at(struct pn_kad_contact *c, unsigned *n, unsigned i)
{
	memmove(&c[i], &c[i + 1], (*n - i - 1) * sizeof(c[0]));
	(*n)--;
}

/* Fills a freed bucket slot with the most recent replacement that the per-prefix limit
 * allows (an older one may fit where the newest would not). */
static void promote(struct pn_kad *t, struct bucket *b)
{
	for (unsigned i = b->nr; i-- > 0;) {
		if (net_count(b->c, b->n, &b->r[i].addr) >= t->per_prefix)
			continue;
		b->c[b->n++] = b->r[i];
		drop_at(b->r, &b->nr, i);
		t->count++;
		return;
	}
}

/* A new address for a known contact, if the prefix limit of this list allows it. */
static int readdress(const struct pn_kad *t, struct pn_kad_contact *list, unsigned n,
		     struct pn_kad_contact *e, const struct pn_addr *a)
{
	if (pn_addr_eq(&e->addr, a))
		return 0;
	if (!same_net(&e->addr, a) && net_count(list, n, a) >= t->per_prefix)
		return -EPERM;
	e->addr = *a;
	return 0;
}

static void mark_seen(struct pn_kad_contact *e, const struct pn_kad_contact *c, uint64_t now)
{
	e->last_seen = now;
	e->fails = 0;
	if (c->rtt_ms)
		e->rtt_ms = c->rtt_ms;
}

int pn_kad_seen(struct pn_kad *t, const struct pn_kad_contact *c, bool seen, uint64_t now)
{
	struct pn_kad_contact fresh;
	struct bucket *b;
	int i, j, r;

	if (!t || !c || (c->addr.family != PN_AF_INET && c->addr.family != PN_AF_INET6))
		return -EINVAL;
	i = pn_kad_bucket_of(t, c->id);
	if (i < 0)
		return -EPERM;
	b = &t->b[i];

	j = find_in(b->c, b->n, c->id);
	if (j >= 0) {
		/* Heard about from a third party: nothing we can trust changes. */
		if (!seen)
			return 0;
		r = readdress(t, b->c, b->n, &b->c[j], &c->addr);
		if (r < 0)
			return r;
		mark_seen(&b->c[j], c, now);
		move_last(b->c, b->n, (unsigned)j);
		return 0;
	}

	j = find_in(b->r, b->nr, c->id);
	if (j >= 0) {
		if (!seen)
			return 0;
		r = readdress(t, b->r, b->nr, &b->r[j], &c->addr);
		if (r < 0)
			return r;
		mark_seen(&b->r[j], c, now);
		/* A cached entry sits beside a bucket with room only when the prefix limit kept
		 * it out; its new address may now fit. */
		if (b->n < t->k && net_count(b->c, b->n, &b->r[j].addr) < t->per_prefix) {
			b->c[b->n++] = b->r[j];
			drop_at(b->r, &b->nr, (unsigned)j);
			t->count++;
			return 1;
		}
		move_last(b->r, b->nr, (unsigned)j);
		return 0;
	}

	/* The limit counts the bucket, room or not: a /24 that already holds per_prefix
	 * slots must not queue more behind them either. */
	if (net_count(b->c, b->n, &c->addr) >= t->per_prefix)
		return -EPERM;
	memset(&fresh, 0, sizeof(fresh));
	memcpy(fresh.id, c->id, PN_KAD_ID);
	memcpy(fresh.key, c->key, sizeof(fresh.key));
	fresh.addr = c->addr;
	if (seen)
		mark_seen(&fresh, c, now);
	if (b->n < t->k) {
		b->c[b->n++] = fresh;
		t->count++;
		return 1;
	}
	if (net_count(b->r, b->nr, &c->addr) >= t->per_prefix)
		return -EPERM;
	if (b->nr == t->nrepl)
		drop_at(b->r, &b->nr, 0);
	b->r[b->nr++] = fresh;
	return 0;
}

bool pn_kad_failed(struct pn_kad *t, const uint8_t id[PN_KAD_ID], unsigned max_fails)
{
	struct bucket *b;
	int i = t ? pn_kad_bucket_of(t, id) : -1, j;

	if (i < 0)
		return false;
	b = &t->b[i];
	/* fails is a u8 that saturates, so a larger max would never be reached. */
	if (max_fails == 0)
		max_fails = 1;
	if (max_fails > UINT8_MAX)
		max_fails = UINT8_MAX;
	j = find_in(b->c, b->n, id);
	if (j >= 0) {
		if (b->c[j].fails < UINT8_MAX)
			b->c[j].fails++;
		if (b->c[j].fails < max_fails)
			return false;
		drop_at(b->c, &b->n, (unsigned)j);
		t->count--;
		promote(t, b);
		return true;
	}
	j = find_in(b->r, b->nr, id);
	if (j >= 0) {
		if (b->r[j].fails < UINT8_MAX)
			b->r[j].fails++;
		if (b->r[j].fails < max_fails)
			return false;
		drop_at(b->r, &b->nr, (unsigned)j);
		return true;
	}
	return false;
}

bool pn_kad_remove(struct pn_kad *t, const uint8_t id[PN_KAD_ID])
{
	struct bucket *b;
	int i = t ? pn_kad_bucket_of(t, id) : -1, j;

	if (i < 0)
		return false;
	b = &t->b[i];
	j = find_in(b->c, b->n, id);
	if (j >= 0) {
		drop_at(b->c, &b->n, (unsigned)j);
		t->count--;
		promote(t, b);
		return true;
	}
	j = find_in(b->r, b->nr, id);
	if (j >= 0) {
		drop_at(b->r, &b->nr, (unsigned)j);
		return true;
	}
	return false;
}

const struct pn_kad_contact *pn_kad_find(const struct pn_kad *t, const uint8_t id[PN_KAD_ID])
{
	const struct bucket *b;
	int i = t ? pn_kad_bucket_of(t, id) : -1, j;

	if (i < 0)
		return NULL;
	b = &t->b[i];
	j = find_in(b->c, b->n, id);
	return j >= 0 ? &b->c[j] : NULL;
}

size_t pn_kad_count(const struct pn_kad *t)
{
	return t ? t->count : 0;
}

void pn_kad_each(const struct pn_kad *t, void (*cb)(void *arg, const struct pn_kad_contact *c),
		 void *arg)
{
	if (!t || !cb)
		return;
	for (unsigned i = 0; i < PN_KAD_BUCKETS; i++)
		for (unsigned j = 0; j < t->b[i].n; j++)
			cb(arg, &t->b[i].c[j]);
}

/* ---------------------------------------------------------------- closest */

/* A max-heap by distance to target (farthest at the root). It keeps the r closest of a
 * bucket that does not fit whole, and heap_sort turns any segment into closest-first. */
static void sift_down(struct pn_kad_contact *h, size_t n, size_t i, const uint8_t *target)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct pn_kad_contact tmp;

		if (l < n && pn_kad_cmp_dist(target, h[l].id, h[m].id) > 0)
			m = l;
		if (l + 1 < n && pn_kad_cmp_dist(target, h[l + 1].id, h[m].id) > 0)
			m = l + 1;
		if (m == i)
			return;
		tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

static void heapify(struct pn_kad_contact *h, size_t n, const uint8_t *target)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(h, n, i, target);
}

static void heap_sort(struct pn_kad_contact *h, size_t n, const uint8_t *target)
{
	heapify(h, n, target);
	for (size_t e = n; e > 1; e--) {
		struct pn_kad_contact tmp = h[0];
		h[0] = h[e - 1];
		h[e - 1] = tmp;
		sift_down(h, e - 1, 0, target);
	}
}

/* Appends the closest min(n, r) contacts of bucket b to out, sorted; returns how many. */
static size_t take_bucket(const struct bucket *b, const uint8_t *target,
			  struct pn_kad_contact *out, size_t r)
{
	if (b->n <= r) {
		memcpy(out, b->c, b->n * sizeof(out[0]));
		heap_sort(out, b->n, target);
		return b->n;
	}
	memcpy(out, b->c, r * sizeof(out[0]));
	heapify(out, r, target);
	for (unsigned j = (unsigned)r; j < b->n; j++) {
		if (pn_kad_cmp_dist(target, b->c[j].id, out[0].id) < 0) {
			out[0] = b->c[j];
			sift_down(out, r, 0, target);
		}
	}
	heap_sort(out, r, target);
	return r;
}

/* Buckets never interleave in distance to any target, so the answer is read bucket by
 * bucket in distance order and only the last bucket visited needs a selection.
 *
 * Why: let x = self ^ target. A contact of bucket j equals self on bits 0..j-1 and differs
 * at bit j, so its distance to target has bits 0..j-1 equal to x's and bit j equal to
 * !x[j]. For buckets i < j the distances agree on bits 0..i-1 and at bit i bucket i has
 * !x[i], bucket j has x[i]: bucket j is wholly closer iff x[i] == 0. Hence the order:
 * buckets with x[i] == 1 in increasing i, then buckets with x[i] == 0 in decreasing i.
 *
 * Cost: O(256 + V log k) for the V <= n + k contacts visited, never a scan of the whole
 * table (the plain way - every contact through a bounded heap - is O(N log n) for N
 * contacts). What is left: the 256-bit walk could jump between set bits of x with
 * count-leading-zeros, and within a bucket no precomputed order helps, since it
 * depends on target. */
size_t pn_kad_closest(const struct pn_kad *t, const uint8_t target[PN_KAD_ID],
		      struct pn_kad_contact *out, size_t n)
{
	size_t filled = 0;

	if (!t || !out)
		return 0;
	for (int pass = 1; pass >= 0; pass--) {
		for (int s = 0; s < PN_KAD_BUCKETS && filled < n; s++) {
			int i = pass ? s : PN_KAD_BUCKETS - 1 - s;
			int bit = ((t->self[i / 8] ^ target[i / 8]) >> (7 - i % 8)) & 1;

			if (bit == pass && t->b[i].n)
				filled += take_bucket(&t->b[i], target, out + filled, n - filled);
		}
	}
	return filled;
}

/* ---------------------------------------------------------------- refresh */

int pn_kad_stale_bucket(const struct pn_kad *t, uint64_t now, uint64_t refresh_ms)
{
	int deepest = -1, best = -1;

	if (!t)
		return -1;
	for (int i = 0; i < PN_KAD_BUCKETS; i++)
		if (t->b[i].n)
			deepest = i;
	for (int i = 0; i <= deepest; i++) {
		uint64_t at = t->b[i].touched;

		/* A touch stamped after now (clock handed in out of order) counts as fresh; a
		 * bucket never refreshed is stale however young the clock (a simulation starts
		 * at 0). */
		if (at > now || (at != 0 && now - at < refresh_ms))
			continue;
		if (best < 0 || at < t->b[best].touched)
			best = i;
	}
	return best;
}

void pn_kad_touch_bucket(struct pn_kad *t, int bucket, uint64_t now)
{
	if (t && bucket >= 0 && bucket < PN_KAD_BUCKETS)
		t->b[bucket].touched = now;
}

unsigned pn_kad_bucket_size(const struct pn_kad *t, int bucket)
{
	return t && bucket >= 0 && bucket < PN_KAD_BUCKETS ? t->b[bucket].n : 0;
}

unsigned pn_kad_k(const struct pn_kad *t)
{
	return t ? t->k : 0;
}

void pn_kad_random_id_in(const struct pn_kad *t, int bucket, const struct pn_env *env,
			 uint8_t out[PN_KAD_ID])
{
	unsigned q, flip, hi, lo;

	env->random(env->ctx, out, PN_KAD_ID);
	if (bucket < 0 || bucket >= PN_KAD_BUCKETS)
		return;
	/* Bits 0..bucket-1 from self, bit `bucket` inverted, the rest stay random. */
	q = (unsigned)bucket / 8;
	flip = 0x80u >> (bucket % 8);
	hi = ~((flip << 1) - 1) & 0xffu;
	lo = flip - 1;
	memcpy(out, t->self, q);
	out[q] = (uint8_t)((t->self[q] & hi) | (~t->self[q] & flip) | (out[q] & lo));
}

/* ---------------------------------------------------------------- iterative lookup */

static int cand_find(const struct pn_kad_lookup *l, const uint8_t id[PN_KAD_ID])
{
	for (size_t i = 0; i < l->n; i++)
		if (memcmp(l->cand[i].c.id, id, PN_KAD_ID) == 0)
			return (int)i;
	return -1;
}

unsigned pn_kad_lookup_hop(const struct pn_kad_lookup *l, const uint8_t id[PN_KAD_ID])
{
	int i = l ? cand_find(l, id) : -1;

	return i < 0 ? 0 : l->hop_of[i];
}

/* The largest hop among the k closest answered candidates (see kad.h). */
static void update_hops(struct pn_kad_lookup *l)
{
	unsigned got = 0, hops = 0;

	for (size_t i = 0; i < l->n && got < l->k; i++) {
		if (l->cand[i].state != 2)
			continue;
		got++;
		if (l->hop_of[i] > hops)
			hops = l->hop_of[i];
	}
	l->hops = hops;
}

static void cand_merge(struct pn_kad_lookup *l, const struct pn_kad_contact *c, unsigned hop)
{
	size_t pos;
	int j;

	if (c->addr.family != PN_AF_INET && c->addr.family != PN_AF_INET6)
		return;
	if (memcmp(c->id, l->self, PN_KAD_ID) == 0)
		return;
	j = cand_find(l, c->id);
	if (j >= 0) {
		if (hop < l->hop_of[j])
			l->hop_of[j] = (uint8_t)hop;
		return;
	}
	for (pos = 0; pos < l->n; pos++)
		if (pn_kad_cmp_dist(l->target, c->id, l->cand[pos].c.id) < 0)
			break;
	if (l->n == PN_KAD_LOOKUP_MAX) {
		if (pos == PN_KAD_LOOKUP_MAX)
			return;
		if (l->cand[l->n - 1].state == 1)
			l->in_flight--;
		l->n--;
	}
	memmove(&l->cand[pos + 1], &l->cand[pos], (l->n - pos) * sizeof(l->cand[0]));
	memmove(&l->hop_of[pos + 1], &l->hop_of[pos], l->n - pos);
	memset(&l->cand[pos], 0, sizeof(l->cand[pos]));
	/* Only what identifies and reaches the node; the answerer's timings are its own. */
	memcpy(l->cand[pos].c.id, c->id, PN_KAD_ID);
	memcpy(l->cand[pos].c.key, c->key, sizeof(c->key));
	l->cand[pos].c.addr = c->addr;
	l->hop_of[pos] = (uint8_t)hop;
	l->n++;
}

void pn_kad_lookup_init(struct pn_kad_lookup *l, const struct pn_kad *t,
			const uint8_t target[PN_KAD_ID], unsigned alpha, unsigned k)
{
	struct pn_kad_contact seed[PN_KAD_LOOKUP_MAX];
	size_t n;

	memset(l, 0, sizeof(*l));
	memcpy(l->target, target, PN_KAD_ID);
	memcpy(l->self, t->self, PN_KAD_ID);
	l->alpha = alpha ? alpha : DEFAULT_ALPHA;
	l->k = k ? k : t->k;
	if (l->k > PN_KAD_LOOKUP_MAX)
		l->k = PN_KAD_LOOKUP_MAX;
	/* More seeds than k: the spares stand in for seeds that fail. */
	n = pn_kad_closest(t, target, seed, PN_KAD_LOOKUP_MAX);
	for (size_t i = 0; i < n; i++) {
		l->cand[i].c = seed[i];
		l->hop_of[i] = 1;
	}
	l->n = n;
}

const struct pn_kad_contact *pn_kad_lookup_next(struct pn_kad_lookup *l, uint64_t now)
{
	unsigned live = 0;

	if (l->in_flight >= l->alpha)
		return NULL;
	for (size_t i = 0; i < l->n && live < l->k; i++) {
		if (l->cand[i].state == 3)
			continue;
		live++;
		if (l->cand[i].state == 0) {
			l->cand[i].state = 1;
			l->cand[i].sent_at = now;
			l->in_flight++;
			return &l->cand[i].c;
		}
	}
	return NULL;
}

void pn_kad_lookup_answer(struct pn_kad_lookup *l, const uint8_t from[PN_KAD_ID],
			  const struct pn_kad_contact *found, size_t n)
{
	int i = cand_find(l, from);
	unsigned hop;

	if (i < 0 || l->cand[i].state != 1)
		return;
	l->cand[i].state = 2;
	l->in_flight--;
	hop = l->hop_of[i] < UINT8_MAX ? l->hop_of[i] + 1u : UINT8_MAX;
	for (size_t j = 0; found && j < n; j++)
		cand_merge(l, &found[j], hop);
	update_hops(l);
}

void pn_kad_lookup_fail(struct pn_kad_lookup *l, const uint8_t from[PN_KAD_ID])
{
	int i = cand_find(l, from);

	if (i < 0 || l->cand[i].state != 1)
		return;
	l->cand[i].state = 3;
	l->in_flight--;
	update_hops(l);
}

bool pn_kad_lookup_done(const struct pn_kad_lookup *l)
{
	unsigned live = 0;

	for (size_t i = 0; i < l->n && live < l->k; i++) {
		if (l->cand[i].state == 3)
			continue;
		if (l->cand[i].state != 2)
			return false;
		live++;
	}
	return true;
}

size_t pn_kad_lookup_result(const struct pn_kad_lookup *l, struct pn_kad_contact *out, size_t n)
{
	size_t got = 0;

	for (size_t i = 0; i < l->n && got < n; i++)
		if (l->cand[i].state == 2)
			out[got++] = l->cand[i].c;
	return got;
}

/* ---------------------------------------------------------------- disjoint paths */

void pn_kad_lookup_init_paths(struct pn_kad_lookup *l, unsigned d, const struct pn_kad *t,
			      const uint8_t target[PN_KAD_ID], unsigned alpha, unsigned k)
{
	size_t n;

	if (d < 1)
		d = 1;
	if (d > PN_KAD_PATHS_MAX)
		d = PN_KAD_PATHS_MAX;
	pn_kad_lookup_init(&l[0], t, target, alpha, k);
	if (d == 1)
		return;
	for (unsigned p = 1; p < d; p++) {
		memset(&l[p], 0, sizeof(l[p]));
		memcpy(l[p].target, l[0].target, PN_KAD_ID);
		memcpy(l[p].self, l[0].self, PN_KAD_ID);
		l[p].alpha = l[0].alpha;
		l[p].k = l[0].k;
	}
	/* Deal path 0's seeds out in place: seed i goes to path i mod d, slot i / d. For path
	 * 0 that slot is at or before i, so nothing is overwritten before it is read. */
	n = l[0].n;
	l[0].n = 0;
	for (size_t i = 0; i < n; i++) {
		struct pn_kad_lookup *x = &l[i % d];
		x->cand[x->n] = l[0].cand[i];
		x->hop_of[x->n] = l[0].hop_of[i];
		x->n++;
	}
}

void pn_kad_lookup_answer_path(struct pn_kad_lookup *l, unsigned d, unsigned p,
			       const uint8_t from[PN_KAD_ID], const struct pn_kad_contact *found,
			       size_t n)
{
	struct pn_kad_contact keep[PN_KAD_LOOKUP_MAX];
	size_t m = 0;

	for (size_t j = 0; found && j < n && m < PN_KAD_LOOKUP_MAX; j++) {
		bool taken = false;
		for (unsigned q = 0; q < d && !taken; q++)
			taken = q != p && cand_find(&l[q], found[j].id) >= 0;
		if (!taken)
			keep[m++] = found[j];
	}
	pn_kad_lookup_answer(&l[p], from, keep, m);
}

size_t pn_kad_lookup_result_paths(const struct pn_kad_lookup *l, unsigned d,
				  struct pn_kad_contact *out, size_t n)
{
	size_t got = 0;

	/* Paths are disjoint, so no id appears twice: an insertion merge is enough. */
	for (unsigned p = 0; p < d; p++) {
		for (size_t i = 0; i < l[p].n; i++) {
			size_t pos;
			if (l[p].cand[i].state != 2)
				continue;
			for (pos = 0; pos < got; pos++)
				if (pn_kad_cmp_dist(l[p].target, l[p].cand[i].c.id, out[pos].id) < 0)
					break;
			if (pos >= n)
				continue;
			if (got == n)
				got--;
			memmove(&out[pos + 1], &out[pos], (got - pos) * sizeof(out[0]));
			out[pos] = l[p].cand[i].c;
			got++;
		}
	}
	return got;
}
