/* Discrete-event network simulator.
 *
 * Model: a virtual clock in milliseconds starting at 0, a set of hosts (one pn_addr each,
 * optionally driving one sans-I/O node), and directional links between every pair of
 * addresses with a base delay, a uniform jitter and a loss probability. The only events are
 * datagram deliveries, kept in a binary min-heap ordered by (time, sequence number) so that
 * events at the same millisecond run in the order they were sent. Node timers are
 * pull-based: the sim caches every node's next_deadline() and ticks the node when the clock
 * reaches it.
 *
 * Determinism: everything is derived from the seed. Two PRNG stream families, both
 * xoshiro256** seeded through splitmix64:
 *   - one "net" stream per sim for jitter and loss, drawn exactly twice per accepted send,
 *     so the loss pattern does not depend on how much randomness nodes consume;
 *   - one "env" stream per host (derived from the seed and the host's index in add order)
 *     behind env->random, so one node drawing more bytes does not change what others see.
 * Ties are broken deterministically: deliveries before ticks at the same millisecond,
 * deliveries by send order, ticks by host add order. */
#include "sim/sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"

enum sim_limits {
	SIM_MAX_DATAGRAM = 65535,
	/* A node whose next_deadline() stays <= now after tick() would spin forever. */
	SIM_MAX_SAME_TIME_TICKS = 10000,
	/* Zero-delay links can ping-pong forever without the clock moving. */
	SIM_MAX_SAME_TIME_EVENTS = 50000000,
	SIM_HASH_MIN = 64,
};

/* Stream domains, mixed into the seed so the streams are independent. */
#define SIM_DOMAIN_NET 0x6e65742d6c6f7373ull /* "net-loss" */
#define SIM_DOMAIN_ENV 0x656e762d72616e64ull /* "env-rand" */

struct sim_rng {
	uint64_t s[4];
};

struct pn_sim_host {
	struct pn_sim *sim;
	struct pn_addr addr;
	uint64_t index; /* add order; seeds the env stream and breaks deadline ties */
	struct pn_env env;
	struct sim_rng rng;
	void *node;
	const struct pn_node_ops *ops;
	bool up;
	bool located;   /* has a position for the location latency model */
	int64_t x_us, y_us;    /* position on the plane, in microseconds of one-way delay */
	uint64_t access_us;    /* last-mile delay added to every datagram to or from it */
	uint64_t deadline; /* cached ops->next_deadline(); UINT64_MAX when none or down */
	size_t dl_pos;     /* index in the deadline heap; SIZE_MAX when not in it */
	uint64_t tick_at;  /* time of the last tick, for the same-time tick guard */
	uint32_t ticks_same_time;
	struct pn_sim_host *hnext; /* hash chain */
	/* behind a simulated NAT (pn_sim_host_set_nat): kind 0 = none */
	uint8_t nat_kind;
	struct pn_addr nat_pub;
};

/* One NAT mapping: inner host <-> public address; for a symmetric NAT one per
 * destination. perms: the destinations the inner host sent to (address-and-port
 * dependent filtering lets only their answers in). */
enum { SIM_NAT_PERMS = 16 };
struct sim_nat_map {
	struct pn_sim_host *inner;
	struct pn_addr pub, dst;
	struct pn_addr perms[SIM_NAT_PERMS];
	unsigned nperm, perm_i;
};

struct sim_link_entry {
	struct pn_addr from, to;
	struct pn_sim_link link;
	struct sim_link_entry *hnext;
};

struct sim_event {
	uint64_t time;
	uint64_t seq;
	struct pn_sim_host *to;
	struct pn_addr from;
	uint8_t *buf;
	size_t len;
};

struct pn_sim {
	uint64_t seed;
	uint64_t start_wall_s;
	uint64_t now;
	uint64_t seq;
	struct sim_rng net_rng;

	struct pn_sim_host **hosts; /* add order */
	size_t nhosts, hosts_cap;
	struct pn_sim_host **host_tab; /* chained hash on address, power-of-two size */
	size_t host_tab_size;

	struct pn_sim_link default_link;
	struct sim_link_entry **link_tab;
	size_t link_tab_size, nlinks;

	struct sim_event *heap;
	size_t nev, ev_cap;

	/* Hosts with a deadline, in a binary min-heap on (deadline, index). Each host knows
	 * its position, so re-reading one host's deadline is O(log hosts). */
	struct pn_sim_host **dl_heap;
	size_t ndl, dl_cap;
	bool no_refresh_all; /* the caller touches hosts it drives from outside */

	uint64_t events_at; /* guard against zero-delay loops */
	uint64_t events_same_time;

	void (*tap)(void *arg, const struct pn_addr *from, const struct pn_addr *to,
		    const uint8_t *buf, size_t len);
	void *tap_arg;

	struct pn_sim_stats stats;

	struct sim_nat_map *nat_maps;
	size_t nnat, nat_cap;
	uint16_t nat_next_port;
};

/* ---- PRNG: splitmix64 for seeding, xoshiro256** for the streams ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static void rng_seed(struct sim_rng *r, uint64_t seed, uint64_t domain, uint64_t index)
{
	uint64_t x = seed;
	uint64_t d = domain, i = index;

	/* Fold domain and index through the mixer so nearby indices give unrelated states. */
	x ^= splitmix64(&d);
	x ^= rotl64(splitmix64(&i), 17);
	for (int k = 0; k < 4; k++)
		r->s[k] = splitmix64(&x);
	if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
		r->s[0] = 1; /* xoshiro's only bad state */
}

static uint64_t rng_next(struct sim_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

static void rng_fill(struct sim_rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t v = rng_next(r);
		size_t n = len < 8 ? len : 8;

		/* Little-endian byte order regardless of the host, for byte-identical runs. */
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(v >> (8 * i));
		p += n;
		len -= n;
	}
}

/* Uniform in [0, n] (n + 1 values) by multiply-shift; the bias is below 2^-32. */
static uint64_t rng_upto(struct sim_rng *r, uint32_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * ((uint64_t)n + 1)) >> 64);
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_unit(struct sim_rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- address hashing ---- */

static size_t addr_iplen(const struct pn_addr *a)
{
	return a->family == PN_AF_INET ? 4 : a->family == PN_AF_INET6 ? 16 : 0;
}

static uint64_t addr_hash(const struct pn_addr *a, uint64_t h)
{
	size_t n = addr_iplen(a);

	/* FNV-1a over the bytes pn_addr_eq compares, so equal addresses hash equally. */
	h ^= a->family;
	h *= 0x100000001b3ull;
	for (size_t i = 0; i < n; i++) {
		h ^= a->ip[i];
		h *= 0x100000001b3ull;
	}
	h ^= a->port & 0xff;
	h *= 0x100000001b3ull;
	h ^= a->port >> 8;
	h *= 0x100000001b3ull;
	return h ^ (h >> 29);
}

#define FNV_OFFSET 0xcbf29ce484222325ull

static size_t host_slot(const struct pn_sim *s, const struct pn_addr *a)
{
	return (size_t)addr_hash(a, FNV_OFFSET) & (s->host_tab_size - 1);
}

static size_t link_slot(const struct pn_sim *s, const struct pn_addr *from,
			const struct pn_addr *to)
{
	return (size_t)addr_hash(to, addr_hash(from, FNV_OFFSET)) & (s->link_tab_size - 1);
}

static struct pn_sim_host *host_find(const struct pn_sim *s, const struct pn_addr *a)
{
	struct pn_sim_host *h;

	if (!s->host_tab_size)
		return NULL;
	for (h = s->host_tab[host_slot(s, a)]; h; h = h->hnext)
		if (pn_addr_eq(&h->addr, a))
			return h;
	return NULL;
}

static int host_tab_grow(struct pn_sim *s)
{
	size_t size = s->host_tab_size ? s->host_tab_size * 2 : SIM_HASH_MIN;
	struct pn_sim_host **tab = calloc(size, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	free(s->host_tab);
	s->host_tab = tab;
	s->host_tab_size = size;
	/* Rehash in add order so chains are built the same way on every run. */
	for (size_t i = 0; i < s->nhosts; i++) {
		struct pn_sim_host *h = s->hosts[i];
		size_t k = host_slot(s, &h->addr);

		h->hnext = tab[k];
		tab[k] = h;
	}
	return 0;
}

static const struct pn_sim_link *link_find(const struct pn_sim *s, const struct pn_addr *from,
					   const struct pn_addr *to)
{
	struct sim_link_entry *e;

	if (!s->nlinks)
		return &s->default_link;
	for (e = s->link_tab[link_slot(s, from, to)]; e; e = e->hnext)
		if (pn_addr_eq(&e->from, from) && pn_addr_eq(&e->to, to))
			return &e->link;
	return &s->default_link;
}

static int link_tab_grow(struct pn_sim *s)
{
	size_t size = s->link_tab_size ? s->link_tab_size * 2 : SIM_HASH_MIN;
	struct sim_link_entry **tab = calloc(size, sizeof(*tab));
	struct sim_link_entry **old = s->link_tab;
	size_t old_size = s->link_tab_size;

	if (!tab)
		return -ENOMEM;
	s->link_tab = tab;
	s->link_tab_size = size;
	for (size_t i = 0; i < old_size; i++) {
		struct sim_link_entry *e = old[i], *next;

		for (; e; e = next) {
			size_t k = link_slot(s, &e->from, &e->to);

			next = e->hnext;
			e->hnext = tab[k];
			tab[k] = e;
		}
	}
	free(old);
	return 0;
}

/* ---- event heap, ordered by (time, seq) ---- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static int heap_push(struct pn_sim *s, const struct sim_event *ev)
{
	size_t i;

	if (s->nev == s->ev_cap) {
		size_t cap = s->ev_cap ? s->ev_cap * 2 : 256;
		struct sim_event *heap = realloc(s->heap, cap * sizeof(*heap));

		if (!heap)
			return -ENOMEM;
		s->heap = heap;
		s->ev_cap = cap;
	}
	i = s->nev++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!ev_before(ev, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
		i = parent;
	}
	s->heap[i] = *ev;
	return 0;
}

static void heap_pop(struct pn_sim *s, struct sim_event *out)
{
	struct sim_event last;
	size_t i = 0;

	*out = s->heap[0];
	last = s->heap[--s->nev];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nev)
			break;
		if (c + 1 < s->nev && ev_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nev)
		s->heap[i] = last;
}

/* ---- deadline heap, ordered by (deadline, add order) ----
 *
 * The same order the former linear scan used (earliest deadline, ties to the host added
 * first), so runs are event-for-event identical to it. A deadline in the past still sorts
 * by its raw value, which is also what the scan compared. */

static bool dl_before(const struct pn_sim_host *a, const struct pn_sim_host *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->index < b->index);
}

static void dl_set(struct pn_sim *s, size_t i, struct pn_sim_host *h)
{
	s->dl_heap[i] = h;
	h->dl_pos = i;
}

static void dl_sift_up(struct pn_sim *s, size_t i)
{
	struct pn_sim_host *h = s->dl_heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!dl_before(h, s->dl_heap[parent]))
			break;
		dl_set(s, i, s->dl_heap[parent]);
		i = parent;
	}
	dl_set(s, i, h);
}

static void dl_sift_down(struct pn_sim *s, size_t i)
{
	struct pn_sim_host *h = s->dl_heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->ndl)
			break;
		if (c + 1 < s->ndl && dl_before(s->dl_heap[c + 1], s->dl_heap[c]))
			c++;
		if (!dl_before(s->dl_heap[c], h))
			break;
		dl_set(s, i, s->dl_heap[c]);
		i = c;
	}
	dl_set(s, i, h);
}

static void dl_remove(struct pn_sim *s, struct pn_sim_host *h)
{
	size_t i = h->dl_pos;
	struct pn_sim_host *last;

	if (i == SIZE_MAX)
		return;
	h->dl_pos = SIZE_MAX;
	last = s->dl_heap[--s->ndl];
	if (last == h)
		return;
	dl_set(s, i, last);
	dl_sift_up(s, i);
	dl_sift_down(s, last->dl_pos);
}

/* Puts h at its place for its (new) deadline. The heap has room for every host: its
 * capacity grows in pn_sim_host_add, so this cannot fail. */
static void dl_update(struct pn_sim *s, struct pn_sim_host *h)
{
	if (h->deadline == UINT64_MAX) {
		dl_remove(s, h);
		return;
	}
	if (h->dl_pos == SIZE_MAX) {
		h->dl_pos = s->ndl++;
		s->dl_heap[h->dl_pos] = h;
	}
	dl_sift_up(s, h->dl_pos);
	dl_sift_down(s, h->dl_pos);
}

/* ---- env callbacks ---- */

static uint64_t env_now_ms(void *ctx)
{
	struct pn_sim_host *h = ctx;

	return h->sim->now;
}

static uint64_t env_wall_s(void *ctx)
{
	struct pn_sim_host *h = ctx;

	return h->sim->start_wall_s + h->sim->now / 1000;
}

static void env_random(void *ctx, void *buf, size_t len)
{
	struct pn_sim_host *h = ctx;

	rng_fill(&h->rng, buf, len);
}

/* floor(sqrt(v)), in integers so every machine gets the same delays. */
static uint64_t isqrt64(uint64_t v)
{
	uint64_t r = 0, bit = 1ull << 62;

	while (bit > v)
		bit >>= 2;
	while (bit) {
		if (v >= r + bit) {
			v -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

/* The location model's part of a delay: the distance on the plane plus both hosts' access
 * delays, rounded to the nearest ms. Only between two hosts that both have a location.
 * Coordinates are bounded (|x|, |y| < 1e6 ms), so the squares cannot overflow. */
static uint64_t location_delay(const struct pn_sim_host *a, const struct pn_sim_host *b)
{
	uint64_t dx, dy, d;

	if (!a->located || !b->located)
		return 0;
	dx = (uint64_t)(a->x_us > b->x_us ? a->x_us - b->x_us : b->x_us - a->x_us);
	dy = (uint64_t)(a->y_us > b->y_us ? a->y_us - b->y_us : b->y_us - a->y_us);
	d = isqrt64(dx * dx + dy * dy) + a->access_us + b->access_us;
	return (d + 500) / 1000;
}

/* The mapping a datagram from inner host h to `to` leaves through (made on first use). */
static struct sim_nat_map *nat_out(struct pn_sim *s, struct pn_sim_host *h, const struct pn_addr *to)
{
	struct sim_nat_map *m = NULL;

	for (size_t i = 0; i < s->nnat && !m; i++)
		if (s->nat_maps[i].inner == h &&
		    (h->nat_kind != PN_SIM_NAT_SYMMETRIC || pn_addr_eq(&s->nat_maps[i].dst, to)))
			m = &s->nat_maps[i];
	if (!m) {
		if (s->nnat == s->nat_cap) {
			size_t cap = s->nat_cap ? s->nat_cap * 2 : 16;
			struct sim_nat_map *nm = realloc(s->nat_maps, cap * sizeof(*nm));
			if (!nm)
				return NULL;
			s->nat_maps = nm;
			s->nat_cap = cap;
		}
		m = &s->nat_maps[s->nnat++];
		memset(m, 0, sizeof(*m));
		m->inner = h;
		m->pub = h->nat_pub;
		if (!s->nat_next_port)
			s->nat_next_port = 40000;
		m->pub.port = s->nat_next_port++;
		m->dst = *to;
	}
	for (unsigned i = 0; i < m->nperm; i++)
		if (pn_addr_eq(&m->perms[i], to))
			return m;
	m->perms[m->perm_i] = *to;
	m->perm_i = (m->perm_i + 1) % SIM_NAT_PERMS;
	if (m->nperm < SIM_NAT_PERMS)
		m->nperm++;
	return m;
}

/* The inner host a datagram from `from` to a NAT's public address `to` reaches, if the
 * NAT's filtering lets it in. */
static struct pn_sim_host *nat_in(struct pn_sim *s, const struct pn_addr *from, const struct pn_addr *to)
{
	for (size_t i = 0; i < s->nnat; i++) {
		struct sim_nat_map *m = &s->nat_maps[i];
		if (!pn_addr_eq(&m->pub, to))
			continue;
		if (m->inner->nat_kind == PN_SIM_NAT_FULLCONE)
			return m->inner;
		for (unsigned k = 0; k < m->nperm; k++)
			if (pn_addr_eq(&m->perms[k], from))
				return m->inner;
		return NULL;
	}
	return NULL;
}

int pn_sim_host_set_nat(struct pn_sim_host *h, const struct pn_addr *pub, enum pn_sim_nat_kind kind)
{
	if (!h || !pub || !pub->family || kind < PN_SIM_NAT_FULLCONE || kind > PN_SIM_NAT_SYMMETRIC)
		return -EINVAL;
	h->nat_kind = (uint8_t)kind;
	h->nat_pub = *pub;
	return 0;
}

static int env_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	struct pn_sim_host *h = ctx;
	struct pn_sim *s = h->sim;
	const struct pn_sim_link *l;
	struct pn_sim_host *dst;
	struct sim_event ev;
	struct pn_addr src;
	uint64_t jitter;
	double u;
	int ret;

	if (!to || (!buf && len))
		return -EINVAL;
	if (len > SIM_MAX_DATAGRAM)
		return -EMSGSIZE;
	s->stats.sent++;
	src = h->addr;
	if (h->nat_kind) {
		struct sim_nat_map *m = nat_out(s, h, to);
		if (!m)
			return -ENOMEM;
		src = m->pub;
	}
	/* A host that is down neither sends nor receives. */
	dst = host_find(s, to);
	/* a private address is reachable only from behind the same NAT (its LAN) */
	if (dst && dst->nat_kind && dst != h &&
	    !(h->nat_kind && pn_addr_same_host(&h->nat_pub, &dst->nat_pub)))
		dst = NULL;
	else if (!dst)
		dst = nat_in(s, &src, to);
	if (!h->up || !dst) {
		s->stats.dropped_nohost++;
		return 0;
	}
	l = link_find(s, &h->addr, to);
	/* Always draw both numbers so the stream position depends only on the number of
	 * accepted sends, not on the link parameters. */
	jitter = rng_upto(&s->net_rng, l->jitter_ms);
	u = rng_unit(&s->net_rng);
	if (u < l->loss) {
		s->stats.dropped_loss++;
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.time = s->now + l->delay_ms + jitter;
	if (l == &s->default_link)
		ev.time += location_delay(h, dst);
	ev.seq = s->seq++;
	ev.to = dst;
	ev.from = src;
	ev.len = len;
	ev.buf = malloc(len ? len : 1);
	if (!ev.buf)
		return -ENOMEM;
	if (len)
		memcpy(ev.buf, buf, len);
	ret = heap_push(s, &ev);
	if (ret)
		free(ev.buf);
	return ret;
}

/* A simulated host has one address: its own (behind a simulated NAT, the private one). */
static unsigned env_local_addrs(void *ctx, struct pn_addr *out, unsigned max)
{
	struct pn_sim_host *h = ctx;

	if (max == 0)
		return 0;
	out[0] = h->addr;
	return 1;
}

/* ---- lifecycle ---- */

int pn_sim_new(struct pn_sim **out, uint64_t seed, uint64_t start_wall_s)
{
	struct pn_sim *s;

	if (!out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->seed = seed;
	s->start_wall_s = start_wall_s;
	rng_seed(&s->net_rng, seed, SIM_DOMAIN_NET, 0);
	*out = s;
	return 0;
}

void pn_sim_free(struct pn_sim *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nev; i++)
		free(s->heap[i].buf);
	free(s->heap);
	free(s->dl_heap);
	for (size_t i = 0; i < s->link_tab_size; i++) {
		struct sim_link_entry *e = s->link_tab[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(s->link_tab);
	for (size_t i = 0; i < s->nhosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
	free(s->host_tab);
	free(s->nat_maps);
	free(s);
}

int pn_sim_host_add(struct pn_sim *s, const struct pn_addr *addr, struct pn_sim_host **out)
{
	struct pn_sim_host *h = NULL;
	size_t k;
	int ret;

	if (!s || !addr || !addr_iplen(addr))
		return -EINVAL;
	if (host_find(s, addr))
		return -EEXIST;
	if (s->nhosts == s->hosts_cap) {
		size_t cap = s->hosts_cap ? s->hosts_cap * 2 : 16;
		struct pn_sim_host **hosts = realloc(s->hosts, cap * sizeof(*hosts));

		if (!hosts)
			return -ENOMEM;
		s->hosts = hosts;
		s->hosts_cap = cap;
	}
	if (s->nhosts == s->dl_cap) {
		size_t cap = s->dl_cap ? s->dl_cap * 2 : 16;
		struct pn_sim_host **dl = realloc(s->dl_heap, cap * sizeof(*dl));

		if (!dl)
			return -ENOMEM;
		s->dl_heap = dl;
		s->dl_cap = cap;
	}
	if (s->nhosts + 1 > s->host_tab_size) {
		ret = host_tab_grow(s);
		if (ret)
			return ret;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->sim = s;
	h->addr = *addr;
	h->index = s->nhosts;
	h->up = true;
	h->deadline = UINT64_MAX;
	h->dl_pos = SIZE_MAX;
	h->env.ctx = h;
	h->env.now_ms = env_now_ms;
	h->env.wall_s = env_wall_s;
	h->env.random = env_random;
	h->env.send = env_send;
	h->env.local_addrs = env_local_addrs;
	rng_seed(&h->rng, s->seed, SIM_DOMAIN_ENV, h->index);
	s->hosts[s->nhosts++] = h;
	k = host_slot(s, addr);
	h->hnext = s->host_tab[k];
	s->host_tab[k] = h;
	if (out)
		*out = h;
	return 0;
}

const struct pn_env *pn_sim_host_env(struct pn_sim_host *h)
{
	return &h->env;
}

static void host_refresh_deadline(struct pn_sim_host *h)
{
	uint64_t old = h->deadline;

	if (h->up && h->node && h->ops && h->ops->next_deadline && h->ops->tick)
		h->deadline = h->ops->next_deadline(h->node);
	else
		h->deadline = UINT64_MAX;
	if (h->deadline != old || (h->deadline != UINT64_MAX && h->dl_pos == SIZE_MAX))
		dl_update(h->sim, h);
}

void pn_sim_host_touch(struct pn_sim_host *h)
{
	host_refresh_deadline(h);
}

void pn_sim_set_refresh_all(struct pn_sim *s, bool on)
{
	s->no_refresh_all = !on;
}

int pn_sim_host_set_location(struct pn_sim_host *h, double x_ms, double y_ms, double access_ms)
{
	/* The comparisons also reject NaN; the bound keeps the squared distance in 64 bits. */
	if (!(x_ms > -1e6 && x_ms < 1e6 && y_ms > -1e6 && y_ms < 1e6 && access_ms >= 0.0 &&
	      access_ms < 1e6))
		return -EINVAL;
	/* Rounded once here, so the delays themselves are computed in integers. */
	h->x_us = (int64_t)(x_ms * 1000.0 + (x_ms < 0 ? -0.5 : 0.5));
	h->y_us = (int64_t)(y_ms * 1000.0 + (y_ms < 0 ? -0.5 : 0.5));
	h->access_us = (uint64_t)(access_ms * 1000.0 + 0.5);
	h->located = true;
	return 0;
}

uint64_t pn_sim_path_delay(const struct pn_sim *s, const struct pn_sim_host *from,
			   const struct pn_sim_host *to)
{
	const struct pn_sim_link *l = link_find(s, &from->addr, &to->addr);

	return l->delay_ms + (l == &s->default_link ? location_delay(from, to) : 0);
}

struct pn_sim_host *pn_sim_host_find(struct pn_sim *s, const struct pn_addr *addr)
{
	return s && addr ? host_find(s, addr) : NULL;
}

void pn_sim_host_set_node(struct pn_sim_host *h, void *node, const struct pn_node_ops *ops)
{
	h->node = node;
	h->ops = ops;
	host_refresh_deadline(h);
}

void pn_sim_host_set_up(struct pn_sim_host *h, bool up)
{
	h->up = up;
	host_refresh_deadline(h);
}

void pn_sim_set_default_link(struct pn_sim *s, const struct pn_sim_link *l)
{
	s->default_link = *l;
}

int pn_sim_set_link(struct pn_sim *s, const struct pn_addr *from, const struct pn_addr *to,
		    const struct pn_sim_link *l)
{
	struct sim_link_entry *e;
	size_t k;
	int ret;

	if (!s || !from || !to || !l || !addr_iplen(from) || !addr_iplen(to))
		return -EINVAL;
	if (!(l->loss >= 0.0 && l->loss <= 1.0)) /* also rejects NaN */
		return -EINVAL;
	if (s->nlinks) {
		for (e = s->link_tab[link_slot(s, from, to)]; e; e = e->hnext) {
			if (pn_addr_eq(&e->from, from) && pn_addr_eq(&e->to, to)) {
				e->link = *l;
				return 0;
			}
		}
	}
	if (s->nlinks + 1 > s->link_tab_size) {
		ret = link_tab_grow(s);
		if (ret)
			return ret;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->from = *from;
	e->to = *to;
	e->link = *l;
	k = link_slot(s, from, to);
	e->hnext = s->link_tab[k];
	s->link_tab[k] = e;
	s->nlinks++;
	return 0;
}

void pn_sim_set_tap(struct pn_sim *s,
		    void (*tap)(void *arg, const struct pn_addr *from, const struct pn_addr *to,
				const uint8_t *buf, size_t len),
		    void *arg)
{
	s->tap = tap;
	s->tap_arg = arg;
}

uint64_t pn_sim_now(const struct pn_sim *s)
{
	return s->now;
}

void pn_sim_get_stats(const struct pn_sim *s, struct pn_sim_stats *st)
{
	*st = s->stats;
}

/* ---- run loop ---- */

/* Nodes may have been driven from outside (a test calling a node's API) between runs, so
 * every run starts from fresh deadlines; during a run only the host that just handled an
 * event can have changed its own. */
static void refresh_all_deadlines(struct pn_sim *s)
{
	if (s->no_refresh_all)
		return;
	for (size_t i = 0; i < s->nhosts; i++)
		host_refresh_deadline(s->hosts[i]);
}

/* Earliest deadline among up hosts; ties go to the host added first. O(1): the top of
 * the deadline heap. */
static struct pn_sim_host *earliest_deadline(const struct pn_sim *s)
{
	return s->ndl ? s->dl_heap[0] : NULL;
}

static void count_event(struct pn_sim *s)
{
	s->stats.events++;
	if (s->events_at != s->now) {
		s->events_at = s->now;
		s->events_same_time = 0;
	}
	if (++s->events_same_time > SIM_MAX_SAME_TIME_EVENTS) {
		fprintf(stderr,
			"pn_sim: more than %d events at t=%" PRIu64
			" ms without the clock moving; zero-delay send loop between nodes?\n",
			SIM_MAX_SAME_TIME_EVENTS, s->now);
		abort();
	}
}

static void deliver(struct pn_sim *s, struct sim_event *ev)
{
	struct pn_sim_host *h = ev->to;

	/* The host may have gone down, or lost its node, while the datagram was in flight. */
	if (!h->up || !h->ops || !h->ops->recv) {
		s->stats.dropped_nohost++;
		return;
	}
	s->stats.delivered++;
	if (s->tap)
		s->tap(s->tap_arg, &ev->from, &h->addr, ev->buf, ev->len);
	h->ops->recv(h->node, &ev->from, ev->buf, ev->len);
	host_refresh_deadline(h);
}

static void tick(struct pn_sim *s, struct pn_sim_host *h)
{
	char a[PN_ADDR_STRLEN];

	if (h->tick_at != s->now) {
		h->tick_at = s->now;
		h->ticks_same_time = 0;
	}
	if (++h->ticks_same_time > SIM_MAX_SAME_TIME_TICKS) {
		fprintf(stderr,
			"pn_sim: host %s ticked %d times at t=%" PRIu64
			" ms; its next_deadline() (%" PRIu64
			") stays <= now after tick(); bug in the node\n",
			pn_addr_str(&h->addr, a), SIM_MAX_SAME_TIME_TICKS, s->now, h->deadline);
		abort();
	}
	h->ops->tick(h->node);
	host_refresh_deadline(h);
}

/* Processes the next event if it is due at or before limit. Returns false when there is
 * none (the clock is then left where it is). */
static bool step(struct pn_sim *s, uint64_t limit)
{
	struct pn_sim_host *h = earliest_deadline(s);
	uint64_t ev_t = s->nev ? s->heap[0].time : UINT64_MAX;
	/* A deadline in the past means "tick now": the clock never goes backwards. */
	uint64_t dl_t = h ? (h->deadline < s->now ? s->now : h->deadline) : UINT64_MAX;
	struct sim_event ev;

	if (ev_t <= dl_t) {
		if (ev_t == UINT64_MAX || ev_t > limit)
			return false;
		heap_pop(s, &ev);
		s->now = ev.time;
		count_event(s);
		deliver(s, &ev);
		free(ev.buf);
		return true;
	}
	if (dl_t > limit)
		return false;
	s->now = dl_t;
	count_event(s);
	tick(s, h);
	return true;
}

uint64_t pn_sim_run_until(struct pn_sim *s, uint64_t t_ms)
{
	uint64_t n = 0;

	if (t_ms < s->now)
		return 0;
	refresh_all_deadlines(s);
	while (step(s, t_ms))
		n++;
	s->now = t_ms;
	return n;
}

bool pn_sim_run_while_not(struct pn_sim *s, bool (*pred)(void *arg), void *arg,
			  uint64_t limit_ms)
{
	if (pred(arg))
		return true;
	if (limit_ms < s->now)
		return false;
	refresh_all_deadlines(s);
	while (step(s, limit_ms)) {
		if (pred(arg))
			return true;
	}
	s->now = limit_ms;
	return false;
}
