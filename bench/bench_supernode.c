/* Supernode capacity benchmark: memory and CPU of one real pn_supernode that holds N
 * directory records (default 100,000) and answers client LOOKUPs (default paced at 1,000/s
 * for 10 s, then as fast as possible).
 *
 * No sockets and no simulator: the supernode is driven in-process through pn_supernode_ops
 * with a minimal environment of our own (now_ms from CLOCK_MONOTONIC, wall_s from time(),
 * random from randombytes_buf, send = append to a queue that this loop hands to two fake
 * parties after each call):
 *
 *   - a fake peer supernode (supernode certificate from the same root) opens an overlay
 *     session (Noise IK, purpose OVERLAY) and STOREs N distinct records, each a fresh
 *     device certificate + a record signed with pn_record_sign_encode (all pre-generated
 *     before the supernode exists, and timed separately);
 *   - a fake client device attaches (IK, purpose ATTACH) and sends LOOKUPs for random
 *     stored users; every answer is checked (status OK, the exact stored record bytes).
 *
 * CPU figures come in two flavours: the whole process (getrusage user+sys: supernode plus
 * both fake parties' sealing/opening plus pacing syscalls, but no socket syscalls), and the
 * supernode alone (CLOCK_THREAD_CPUTIME_ID around every ops.recv/ops.tick call).
 *
 * Output: a human-readable summary, then JSON lines
 *   {"bench":"supernode","figure":"...","value":...,"unit":"..."}
 * Usage: bench-supernode [records [rate [seconds]]]   (defaults 100000 1000 10) */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sodium.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "parley/supernode.h"
#include "session/link.h"
#include "wire/wire.h"

/* ---- figures ----------------------------------------------------------------------------- */

struct figure {
	char name[48];
	double value;
	const char *unit;
};

static struct figure figures[64];
static int n_figures;

static void fig(const char *name, double value, const char *unit)
{
	if (n_figures < (int)(sizeof(figures) / sizeof(figures[0]))) {
		snprintf(figures[n_figures].name, sizeof(figures[n_figures].name), "%s", name);
		figures[n_figures].value = value;
		figures[n_figures].unit = unit;
		n_figures++;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "bench-supernode: %s\n", what);
	exit(1);
}

/* ---- clocks and memory ------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* user + sys of the whole process, in ns */
static uint64_t rusage_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* bytes the allocator has handed out (arena in use + mmapped chunks) */
static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* ---- the environment --------------------------------------------------------------------- */

enum { QMAX = 64 };

struct qpkt {
	struct pn_addr to;
	size_t len;
	uint8_t buf[PN_PKT_RX_MAX];
};

struct party {
	const char *label;
	struct pn_keys keys;
	uint8_t cert[PN_CERT_MAX];
	size_t cert_len;
	struct pn_addr addr;
	struct pn_link link;
	bool up, attached;
	/* peer: STORED answers */
	uint64_t stored_ok, stored_bad;
	/* client: LOOKUP_RESULT answers */
	uint32_t want_req;
	int want_user;
	uint64_t results_ok, results_bad, results_late;
	uint64_t dropped; /* packets for this address it could not use */
};

struct bench {
	struct pn_env env;
	struct pn_supernode *sn;
	struct pn_addr sn_addr;
	uint8_t sn_key[32];
	struct qpkt q[QMAX];
	unsigned qn;
	uint64_t q_overflow, stray;
	struct party peer, client;
	/* supernode CPU (thread CPU time inside ops calls) */
	uint64_t sn_cpu;
	uint64_t ticks, tick_cpu, tick_max_cpu;
	/* the records */
	unsigned n;
	uint8_t *recbuf;
	size_t *rec_off;
	uint16_t *rec_len;
	char (*names)[16];
};

static uint64_t env_now_ms(void *ctx)
{
	return mono_ns() / 1000000u;
}

static uint64_t env_wall_s(void *ctx)
{
	return (uint64_t)time(NULL);
}

static void env_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static int env_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	struct bench *b = ctx;

	if (b->qn == QMAX || len > PN_PKT_RX_MAX) {
		b->q_overflow++;
		return -ENOBUFS;
	}
	b->q[b->qn].to = *to;
	b->q[b->qn].len = len;
	memcpy(b->q[b->qn].buf, buf, len);
	b->qn++;
	return 0;
}

/* ---- the fake parties -------------------------------------------------------------------- */

static void party_send_frame(struct bench *b, struct party *p, const uint8_t *f, size_t n);

static void peer_frame(struct bench *b, struct party *p, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, st;
	uint32_t req;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &req);
	pn_rd_u8(&r, &st);
	if (r.err || type != PN_F_STORED) {
		p->dropped++;
		return;
	}
	if (st == PN_ST_OK)
		p->stored_ok++;
	else
		p->stored_bad++;
}

static void client_frame(struct bench *b, struct party *p, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, st, cnt;
	uint32_t req;
	const uint8_t *rec;
	size_t rl;
	int u;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	if (type == PN_F_ATTACHED) {
		p->attached = true;
		return;
	}
	if (type == PN_F_PONG)
		return;
	if (type != PN_F_LOOKUP_RESULT) {
		p->dropped++;
		return;
	}
	pn_rd_u32(&r, &req);
	pn_rd_u8(&r, &st);
	pn_rd_u8(&r, &cnt);
	pn_rd_vec16(&r, &rec, &rl, PN_REC_MAX);
	if (r.err || req != p->want_req) {
		p->results_late++;
		return;
	}
	u = p->want_user;
	p->want_req = 0;
	if (st == PN_ST_OK && cnt == 1 && pn_rd_end(&r) == 0 && rl == b->rec_len[u] &&
	    memcmp(rec, b->recbuf + b->rec_off[u], rl) == 0)
		p->results_ok++;
	else
		p->results_bad++;
}

static void party_input(struct bench *b, struct party *p, const uint8_t *buf, size_t len)
{
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	/* The supernode's own outbound overlay handshakes (its 30 s join/refresh) arrive at the
	 * peer's address too; the fake peer does not answer them (counted in dropped). */
	if (pn_pkt_parse(&h, buf, len) || h.type == PN_PKT_HS1 ||
	    p->link.state == PN_LINK_IDLE || h.receiver_idx != p->link.local_idx ||
	    pn_link_input(&p->link, &h, env_now_ms(NULL), f, sizeof(f), &n, &ev)) {
		p->dropped++;
		return;
	}
	if (ev == PN_LINK_EV_UP)
		p->up = true;
	else if (ev == PN_LINK_EV_DATA)
		(p == &b->peer ? peer_frame : client_frame)(b, p, f, n);
}

/* Hands every queued packet to its addressee (which never sends synchronously). */
static void drain(struct bench *b)
{
	for (unsigned i = 0; i < b->qn; i++) {
		struct qpkt *q = &b->q[i];
		if (pn_addr_eq(&q->to, &b->peer.addr))
			party_input(b, &b->peer, q->buf, q->len);
		else if (pn_addr_eq(&q->to, &b->client.addr))
			party_input(b, &b->client, q->buf, q->len);
		else
			b->stray++;
	}
	b->qn = 0;
}

/* ---- driving the supernode --------------------------------------------------------------- */

static void sn_recv(struct bench *b, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	uint64_t c0 = cpu_ns();

	pn_supernode_ops.recv(b->sn, from, buf, len);
	b->sn_cpu += cpu_ns() - c0;
	drain(b);
}

/* Runs tick() when the supernode's deadline has come. */
static void sn_poll(struct bench *b)
{
	uint64_t now = mono_ns(), c0, w;

	if (now / 1000000u < pn_supernode_ops.next_deadline(b->sn))
		return;
	c0 = cpu_ns();
	pn_supernode_ops.tick(b->sn);
	w = cpu_ns() - c0;
	b->sn_cpu += w;
	b->tick_cpu += w;
	b->ticks++;
	if (w > b->tick_max_cpu)
		b->tick_max_cpu = w;
	drain(b);
}

static void party_send_frame(struct bench *b, struct party *p, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	if (pn_link_seal(&p->link, f, n, env_now_ms(NULL), pkt, sizeof(pkt), &len))
		die("seal failed");
	sn_recv(b, &p->addr, pkt, len);
}

static void party_connect(struct bench *b, struct party *p, uint8_t purpose)
{
	struct pn_link_params lp;
	uint8_t e_sk[32];
	uint32_t idx;

	randombytes_buf(e_sk, sizeof(e_sk));
	do
		randombytes_buf(&idx, sizeof(idx));
	while (idx == 0);
	memset(&lp, 0, sizeof(lp));
	lp.pattern = PN_PATTERN_IK;
	lp.purpose = purpose;
	lp.s_sk = p->keys.dh_sk;
	lp.rs = b->sn_key;
	lp.e_sk = e_sk;
	lp.local_idx = idx;
	lp.timestamp_ms = (uint64_t)time(NULL) * 1000u;
	lp.cert = p->cert;
	lp.cert_len = p->cert_len;
	lp.now = env_now_ms(NULL);
	if (pn_link_connect(&p->link, &lp))
		die("pn_link_connect failed");
	sn_recv(b, &p->addr, p->link.hs_pkt, p->link.hs_pkt_len);
}

static void client_ping(struct bench *b)
{
	uint8_t f[9];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PING);
	pn_wr_u64(&w, 42);
	party_send_frame(b, &b->client, f, w.len);
}

static uint32_t next_req = 1;

static void peer_store(struct bench *b, unsigned u)
{
	uint8_t f[PN_REC_MAX + 16];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_STORE);
	pn_wr_u32(&w, next_req++);
	pn_wr_vec16(&w, b->recbuf + b->rec_off[u], b->rec_len[u]);
	if (w.err)
		die("STORE frame");
	party_send_frame(b, &b->peer, f, w.len);
}

static void client_lookup(struct bench *b, unsigned u)
{
	uint8_t f[64];
	struct pn_wr w;
	uint32_t req = next_req++;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOOKUP);
	pn_wr_u32(&w, req);
	pn_wr_str8(&w, b->names[u]);
	b->client.want_req = req;
	b->client.want_user = (int)u;
	party_send_frame(b, &b->client, f, w.len);
	if (b->client.want_req) /* not answered synchronously */
		b->client.results_bad++;
}

/* ---- setup ------------------------------------------------------------------------------- */

static size_t make_cert(const struct pn_keys *root, const struct pn_keys *k, uint8_t flags,
			const char *name, uint64_t t0, uint8_t *out, struct pn_cert *cout)
{
	struct pn_cert c;
	int cl;

	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.flags = flags;
	snprintf(c.name, sizeof(c.name), "%s", name);
	memcpy(c.sign_pk, k->sign_pk, 32);
	memcpy(c.dh_pk, k->dh_pk, 32);
	c.not_before = t0 - 100;
	c.not_after = t0 + 86400;
	if (pn_cert_sign(&c, root->sign_sk))
		die("pn_cert_sign");
	cl = pn_cert_encode(&c, out, PN_CERT_MAX);
	if (cl <= 0)
		die("pn_cert_encode");
	if (cout)
		*cout = c;
	return (size_t)cl;
}

static void party_init(struct party *p, const char *label, const char *addr,
		       const struct pn_keys *root, uint8_t flags, uint64_t t0)
{
	uint8_t seed[32];

	memset(p, 0, sizeof(*p));
	p->label = label;
	randombytes_buf(seed, sizeof(seed));
	if (pn_keys_from_seed(&p->keys, seed) || pn_addr_parse(&p->addr, addr))
		die("party keys/addr");
	p->cert_len = make_cert(root, &p->keys, flags, label, t0, p->cert, NULL);
}

/* N device identities, certificates and signed records (2 supernodes named: the one under
 * test as primary, the fake peer as standby). */
static void pregen(struct bench *b, const struct pn_keys *root, uint64_t t0)
{
	size_t cap = (size_t)b->n * 400, used = 0;

	b->recbuf = malloc(cap);
	b->rec_off = calloc(b->n, sizeof(*b->rec_off));
	b->rec_len = calloc(b->n, sizeof(*b->rec_len));
	b->names = calloc(b->n, sizeof(*b->names));
	if (!b->recbuf || !b->rec_off || !b->rec_len || !b->names)
		die("out of memory");
	for (unsigned i = 0; i < b->n; i++) {
		struct pn_keys k;
		struct pn_record r;
		uint8_t seed[32], cb[PN_CERT_MAX];
		int len;

		randombytes_buf(seed, sizeof(seed));
		if (pn_keys_from_seed(&k, seed))
			die("pn_keys_from_seed");
		snprintf(b->names[i], sizeof(b->names[i]), "user%07u", i);
		memset(&r, 0, sizeof(r));
		make_cert(root, &k, PN_CERT_DEVICE, b->names[i], t0, cb, &r.cert);
		r.seq = t0 * 1000u + i;
		r.expires = t0 + 3600;
		r.caps = 1;
		r.n_sn = 2;
		r.sn_addr[0] = b->sn_addr;
		memcpy(r.sn_key[0], b->sn_key, 32);
		r.sn_addr[1] = b->peer.addr;
		memcpy(r.sn_key[1], b->peer.keys.dh_pk, 32);
		if (used + PN_REC_MAX > cap)
			die("record buffer");
		len = pn_record_sign_encode(&r, k.sign_sk, b->recbuf + used, PN_REC_MAX);
		if (len <= 0)
			die("pn_record_sign_encode");
		b->rec_off[i] = used;
		b->rec_len[i] = (uint16_t)len;
		used += (size_t)len;
		pn_keys_wipe(&k);
	}
}

/* The recstore's bucket function (FNV-1a % 4096, a copy of the static hash_name() in
 * src/overlay/recstore.c), to report the chain lengths our usernames produce. */
static void chain_stats(const struct bench *b, unsigned buckets, double *avg_probe, unsigned *max)
{
	unsigned *cnt = calloc(buckets, sizeof(*cnt));
	double probes = 0;

	if (!cnt)
		die("out of memory");
	for (unsigned i = 0; i < b->n; i++) {
		uint32_t h = 2166136261u;
		for (const char *s = b->names[i]; *s; s++)
			h = (h ^ (uint8_t)*s) * 16777619u;
		cnt[h % buckets]++;
	}
	*max = 0;
	for (unsigned i = 0; i < buckets; i++) {
		/* new entries go to the head: the k-th of a chain of c is found after c-k+1
		 * compares, on average (c+1)/2 per stored user */
		probes += (double)cnt[i] * (cnt[i] + 1) / 2.0;
		if (cnt[i] > *max)
			*max = cnt[i];
	}
	*avg_probe = probes / b->n;
	free(cnt);
}

/* ---- phases ------------------------------------------------------------------------------ */

static uint64_t rng_state;

static unsigned pick(unsigned n)
{
	/* xorshift64*: the fake client's choice must not cost a getrandom() per lookup */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (unsigned)((rng_state * 2685821657736338717ull) >> 33) % n;
}

struct run {
	uint64_t lookups, wall, proc_cpu, sn_cpu, ticks, tick_cpu;
};

static void run_begin(struct bench *b, struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->wall = mono_ns();
	r->proc_cpu = rusage_ns();
	r->sn_cpu = b->sn_cpu;
	r->ticks = b->ticks;
	r->tick_cpu = b->tick_cpu;
	b->tick_max_cpu = 0;
}

static void run_end(struct bench *b, struct run *r)
{
	r->wall = mono_ns() - r->wall;
	r->proc_cpu = rusage_ns() - r->proc_cpu;
	r->sn_cpu = b->sn_cpu - r->sn_cpu;
	r->ticks = b->ticks - r->ticks;
	r->tick_cpu = b->tick_cpu - r->tick_cpu;
}

/* As many lookups as one core allows, over the first `users` records, for secs seconds. */
static void burst(struct bench *b, unsigned users, double secs, struct run *r)
{
	uint64_t end;

	run_begin(b, r);
	end = r->wall + (uint64_t)(secs * 1e9);
	for (;;) {
		for (int i = 0; i < 256; i++)
			client_lookup(b, pick(users));
		r->lookups += 256;
		sn_poll(b);
		if (mono_ns() >= end)
			break;
	}
	run_end(b, r);
}

static int cmp_u64(const void *a, const void *c)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)c;
	return x < y ? -1 : x > y;
}

/* rate lookups/s for secs seconds, sleeping in between (clock_nanosleep to the next due
 * lookup or the supernode's deadline, whichever is first). */
static void paced(struct bench *b, unsigned rate, unsigned secs, struct run *r, uint64_t *svc,
		  uint64_t *behind)
{
	uint64_t total = (uint64_t)rate * secs, t0, period = 1000000000u / rate;

	run_begin(b, r);
	t0 = r->wall;
	*behind = 0;
	for (uint64_t i = 0; i <= total; i++) {
		uint64_t due = t0 + i * period, now, c0;
		for (;;) {
			uint64_t dl, wake;
			struct timespec ts;
			sn_poll(b);
			now = mono_ns();
			if (now >= due)
				break;
			dl = pn_supernode_ops.next_deadline(b->sn);
			wake = dl < UINT64_MAX / 1000000u ? dl * 1000000u : UINT64_MAX;
			if (wake > due)
				wake = due;
			ts.tv_sec = (time_t)(wake / 1000000000u);
			ts.tv_nsec = (long)(wake % 1000000000u);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		if (i == total)
			break; /* the end of the last interval */
		if (now > due + period)
			(*behind)++;
		c0 = mono_ns();
		client_lookup(b, pick(b->n));
		svc[i] = mono_ns() - c0;
		r->lookups++;
	}
	run_end(b, r);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	struct pn_keys root, snk;
	struct pn_network net;
	struct pn_supernode_config sc;
	struct run r;
	uint8_t sn_seed[32], sn_cert[PN_CERT_MAX];
	size_t sn_cert_len;
	unsigned rate = 1000, secs = 10;
	uint64_t t0, w0, c0, store_wall = 0, store_proc = 0, store_sn = 0, behind;
	long rss_start, rss_pregen, rss_before, rss_after = 0;
	size_t heap_before, heap_after = 0, rec_total = 0;
	uint64_t *svc;
	double avg_probe;
	unsigned max_chain, checkpoints[4], n_cp = 0, stored = 0;

	b->n = 100000;
	if (argc > 1)
		b->n = (unsigned)strtoul(argv[1], NULL, 10);
	if (argc > 2)
		rate = (unsigned)strtoul(argv[2], NULL, 10);
	if (argc > 3)
		secs = (unsigned)strtoul(argv[3], NULL, 10);
	if (b->n < 1 || rate < 1 || rate > 1000000 || secs < 1)
		die("usage: bench-supernode [records [rate [seconds]]]");
	if (sodium_init() < 0)
		die("sodium_init");
	pn_log_set_level(PN_LOG_WARN);
	randombytes_buf(&rng_state, sizeof(rng_state));
	rng_state |= 1;
	rss_start = rss_kib();

	/* the network: a root, the supernode under test, a fake peer supernode, a client */
	t0 = (uint64_t)time(NULL);
	randombytes_buf(sn_seed, sizeof(sn_seed));
	{
		uint8_t rs[32];
		randombytes_buf(rs, sizeof(rs));
		if (pn_keys_from_seed(&root, rs) || pn_keys_from_seed(&snk, sn_seed))
			die("keys");
	}
	sn_cert_len = make_cert(&root, &snk, PN_CERT_SUPERNODE, "sn-under-test", t0, sn_cert, NULL);
	memcpy(b->sn_key, snk.dh_pk, 32);
	pn_addr_parse(&b->sn_addr, "198.18.0.1:7701");
	party_init(&b->peer, "peer-sn", "198.18.0.2:7701", &root, PN_CERT_SUPERNODE, t0);
	party_init(&b->client, "bench-client", "198.18.1.1:5000", &root, PN_CERT_DEVICE, t0);

	printf("bench-supernode: %u records, lookups at %u/s for %u s\n", b->n, rate, secs);
	w0 = mono_ns();
	c0 = rusage_ns();
	pregen(b, &root, t0);
	{
		double s = (double)(mono_ns() - w0) / 1e9;
		printf("pre-generated %u device keys + certificates + signed records in %.2f s "
		       "(%.0f/s, %.1f s CPU)\n",
		       b->n, s, b->n / s, (double)(rusage_ns() - c0) / 1e9);
		fig("pregen_s", s, "s");
		fig("pregen_records_per_s", b->n / s, "records/s");
	}
	for (unsigned i = 0; i < b->n; i++)
		rec_total += b->rec_len[i];
	rss_pregen = rss_kib();

	/* the supernode */
	memset(&net, 0, sizeof(net));
	strcpy(net.name, "bench");
	memcpy(net.root_pk, root.sign_pk, 32);
	pn_addr_parse(&net.login.addr, "198.18.0.9:7700");
	net.login.has_key = false;
	net.supernodes[0].addr = b->sn_addr;
	memcpy(net.supernodes[0].key, b->sn_key, 32);
	net.supernodes[0].has_key = true;
	net.n_supernodes = 1;
	b->env = (struct pn_env){b, env_now_ms, env_wall_s, env_random, env_send, NULL};
	memset(&sc, 0, sizeof(sc));
	sc.env = &b->env;
	sc.net = &net;
	memcpy(sc.seed, sn_seed, 32);
	sc.cert = sn_cert;
	sc.cert_len = sn_cert_len;
	sc.public_addr = b->sn_addr;
	if (pn_supernode_new(&b->sn, &sc))
		die("pn_supernode_new");
	pn_keys_wipe(&snk);

	/* the fake peer's overlay session and the client's attachment */
	party_connect(b, &b->peer, PN_PURPOSE_OVERLAY);
	if (!b->peer.up)
		die("overlay session did not come up");
	party_connect(b, &b->client, PN_PURPOSE_ATTACH);
	if (!b->client.up || !b->client.attached)
		die("client did not attach");
	client_ping(b); /* confirms the session (unconfirmed ones are dropped after 5 s) */
	svc = calloc((size_t)rate * secs + 1, sizeof(*svc));
	if (!svc)
		die("out of memory");
	sn_poll(b);
	rss_before = rss_kib();
	heap_before = heap_bytes();

	/* load, with a 2 s max-rate lookup burst at each checkpoint */
	if (b->n > 1000)
		checkpoints[n_cp++] = 1000;
	if (b->n > 10000)
		checkpoints[n_cp++] = 10000;
	checkpoints[n_cp++] = b->n;
	for (unsigned k = 0; k < n_cp; k++) {
		struct run sr;
		uint64_t ww = mono_ns(), pc = rusage_ns(), snc = b->sn_cpu;
		char name[48];
		for (; stored < checkpoints[k]; stored++) {
			peer_store(b, stored);
			if (stored % 256 == 0)
				sn_poll(b);
			if (stored % 20000 == 0)
				client_ping(b); /* the client stays attached (75 s idle limit) */
		}
		store_wall += mono_ns() - ww;
		store_proc += rusage_ns() - pc;
		store_sn += b->sn_cpu - snc;
		if (k == n_cp - 1) {
			rss_after = rss_kib();
			heap_after = heap_bytes();
		}
		burst(b, stored, 2.0, &sr);
		printf("  %7u records stored: max %.0f lookups/s (process); supernode recv %.2f us/lookup"
		       " (%.2f incl. ticks); %llu ticks, %.2f ms CPU each\n",
		       stored, sr.lookups / (sr.wall / 1e9),
		       (sr.sn_cpu - sr.tick_cpu) / 1e3 / sr.lookups, sr.sn_cpu / 1e3 / sr.lookups,
		       (unsigned long long)sr.ticks, sr.ticks ? sr.tick_cpu / 1e6 / sr.ticks : 0.0);
		snprintf(name, sizeof(name), "sn_recv_us_per_lookup_at_%u", stored);
		fig(name, (sr.sn_cpu - sr.tick_cpu) / 1e3 / sr.lookups, "us");
		snprintf(name, sizeof(name), "max_lookups_per_s_at_%u", stored);
		fig(name, sr.lookups / (sr.wall / 1e9), "lookups/s");
		snprintf(name, sizeof(name), "tick_ms_at_%u", stored);
		fig(name, sr.ticks ? sr.tick_cpu / 1e6 / sr.ticks : 0.0, "ms");
	}
	if (b->peer.stored_ok != b->n)
		die("not every STORE was answered OK");
	{
		struct pn_supernode_stats st;
		pn_supernode_stats(b->sn, &st);
		if (st.records != b->n)
			die("the supernode does not hold every record");
	}
	printf("STORE: %u records in %.2f s = %.0f records/s (process CPU %.1f us/record, "
	       "supernode %.1f us/record)\n",
	       b->n, store_wall / 1e9, b->n / (store_wall / 1e9), store_proc / 1e3 / b->n,
	       store_sn / 1e3 / b->n);
	fig("store_records_per_s", b->n / (store_wall / 1e9), "records/s");
	fig("store_sn_cpu_us_per_record", store_sn / 1e3 / b->n, "us");
	{
		/* what one STORE must pay at least: pn_record_decode_verify (certificate signature
		 * by the root + Ed25519ph record signature), alone */
		unsigned m = b->n < 2000 ? b->n : 2000;
		uint64_t vc = cpu_ns();
		struct pn_record pr;
		for (unsigned i = 0; i < m; i++)
			if (pn_record_decode_verify(&pr, b->recbuf + b->rec_off[i], b->rec_len[i],
						    root.sign_pk, (uint64_t)time(NULL)))
				die("a pre-generated record does not verify");
		printf("       of which pn_record_decode_verify alone: %.1f us/record\n",
		       (cpu_ns() - vc) / 1e3 / m);
		fig("record_verify_us", (cpu_ns() - vc) / 1e3 / m, "us");
	}
	printf("memory: VmRSS %ld KiB at start, %ld KiB after pre-generation, %ld KiB with the "
	       "supernode up (before loading), %ld KiB after loading\n",
	       rss_start, rss_pregen, rss_before, rss_after);
	printf("        %.0f bytes of VmRSS per record, %.0f bytes of heap per record "
	       "(the record itself: %.0f bytes on the wire)\n",
	       (double)(rss_after - rss_before) * 1024 / b->n,
	       ((double)heap_after - (double)heap_before) / b->n, (double)rec_total / b->n);
	fig("rss_before_kib", (double)rss_before, "KiB");
	fig("rss_after_kib", (double)rss_after, "KiB");
	fig("rss_bytes_per_record", (double)(rss_after - rss_before) * 1024 / b->n, "B");
	fig("heap_bytes_per_record", ((double)heap_after - (double)heap_before) / b->n, "B");
	fig("record_wire_bytes", (double)rec_total / b->n, "B");
	chain_stats(b, 4096, &avg_probe, &max_chain);
	printf("recstore: 4096 buckets, %.1f users per chain, a hit compares %.1f names on "
	       "average, longest chain %u\n",
	       (double)b->n / 4096, avg_probe, max_chain);
	fig("recstore_avg_compares_per_hit", avg_probe, "names");
	fig("recstore_max_chain", max_chain, "names");

	/* paced */
	b->client.results_ok = b->client.results_bad = 0;
	paced(b, rate, secs, &r, svc, &behind);
	{
		double wall = r.wall / 1e9;
		qsort(svc, r.lookups, sizeof(*svc), cmp_u64);
		printf("paced %u lookups/s for %u s: %llu lookups in %.2f s (%llu late by > 1 period),"
		       " %llu answered correctly\n",
		       rate, secs, (unsigned long long)r.lookups, wall, (unsigned long long)behind,
		       (unsigned long long)b->client.results_ok);
		printf("  process CPU (getrusage user+sys): %.2f us/lookup, %.2f %% of one core\n",
		       r.proc_cpu / 1e3 / r.lookups, 100.0 * r.proc_cpu / r.wall);
		printf("  supernode CPU (recv + tick):      %.2f us/lookup, %.2f %% of one core; "
		       "of which recv %.2f us/lookup\n",
		       r.sn_cpu / 1e3 / r.lookups, 100.0 * r.sn_cpu / r.wall,
		       (r.sn_cpu - r.tick_cpu) / 1e3 / r.lookups);
		printf("  ticks: %llu in %.1f s, %.2f ms CPU each (max %.2f ms) = %.2f %% of one core\n",
		       (unsigned long long)r.ticks, wall,
		       r.ticks ? r.tick_cpu / 1e6 / r.ticks : 0.0,
		       b->tick_max_cpu / 1e6, 100.0 * r.tick_cpu / r.wall);
		printf("  one lookup round trip in process (seal, supernode, open, check): "
		       "p50 %.2f us, p99 %.2f us, max %.2f us\n",
		       svc[r.lookups / 2] / 1e3, svc[r.lookups * 99 / 100] / 1e3,
		       svc[r.lookups - 1] / 1e3);
		fig("paced_lookups_per_s", r.lookups / wall, "lookups/s");
		fig("paced_cpu_us_per_lookup", r.proc_cpu / 1e3 / r.lookups, "us");
		fig("paced_cpu_percent", 100.0 * r.proc_cpu / r.wall, "%");
		fig("paced_sn_cpu_us_per_lookup", r.sn_cpu / 1e3 / r.lookups, "us");
		fig("paced_sn_cpu_percent", 100.0 * r.sn_cpu / r.wall, "%");
		fig("paced_sn_recv_us_per_lookup", (r.sn_cpu - r.tick_cpu) / 1e3 / r.lookups, "us");
		fig("paced_tick_cpu_percent", 100.0 * r.tick_cpu / r.wall, "%");
		fig("tick_max_ms", b->tick_max_cpu / 1e6, "ms");
		fig("tick_ms", r.ticks ? r.tick_cpu / 1e6 / r.ticks : 0.0, "ms");
		fig("lookup_rtt_p50_us", svc[r.lookups / 2] / 1e3, "us");
		fig("lookup_rtt_p99_us", svc[r.lookups * 99 / 100] / 1e3, "us");
		if (b->client.results_ok != r.lookups)
			die("a paced lookup was not answered with the stored record");
	}

	/* as fast as possible */
	b->client.results_ok = b->client.results_bad = 0;
	burst(b, b->n, secs / 2.0 < 2 ? 2 : secs / 2.0, &r);
	printf("max rate: %.0f lookups/s for %.1f s (one core, process: supernode + fake client);"
	       " supernode alone %.2f us/lookup = %.0f lookups/s of supernode CPU\n",
	       r.lookups / (r.wall / 1e9), r.wall / 1e9, r.sn_cpu / 1e3 / r.lookups,
	       r.lookups / (r.sn_cpu / 1e9));
	fig("max_lookups_per_s", r.lookups / (r.wall / 1e9), "lookups/s");
	fig("max_sn_only_lookups_per_s", r.lookups / (r.sn_cpu / 1e9), "lookups/s");
	if (b->client.results_ok != r.lookups)
		die("a max-rate lookup was not answered with the stored record");
	printf("bookkeeping: peer dropped %llu packets (the supernode's own overlay join "
	       "handshakes, unanswered), client dropped %llu, queue overflow %llu, stray %llu\n",
	       (unsigned long long)b->peer.dropped, (unsigned long long)b->client.dropped,
	       (unsigned long long)b->q_overflow, (unsigned long long)b->stray);

	for (int i = 0; i < n_figures; i++)
		printf("{\"bench\":\"supernode\",\"figure\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n",
		       figures[i].name, figures[i].value, figures[i].unit);
	pn_supernode_free(b->sn);
	pn_keys_wipe(&root);
	free(svc);
	return 0;
}
