/* parley-sim: the supernode directory (Kademlia overlay) at scale, in the discrete-event
 * simulator (docs/SIMULATOR.md, "Overlay at scale").
 *
 * A run builds a network of N real supernodes (src/node/supernode.c, unmodified) with
 * certificates from a root key made here, so no login server is needed. Each supernode
 * starts with a network file listing up to 16 supernodes that are already running, in
 * the order they start. Then lightweight clients attach. Each is a raw link with its own
 * device certificate (as in tests/sim/test_security.c), publishes a signed record and
 * republishes it every 30 minutes of virtual time. During the measured hours, clients
 * look up random users through their supernodes while a share of the supernodes is
 * replaced every hour (churn). At the end, a sample of users is looked up once more
 * (record survival).
 *
 * Everything is driven by a controller node inside the simulator. Its deadline is the
 * next scheduled action, so the whole run is one pn_sim_run_until. The run is
 * deterministic from the seed.
 *
 * Built twice: as the parley-sim program, and included by tests/sim/test_overlay_scale.c
 * with PARLEY_SIM_NO_MAIN defined, which then calls osim_run() directly. */
#include <errno.h>
#include <inttypes.h>
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
#include "parley/network.h"
#include "parley/supernode.h"
#include "session/link.h"
#include "sim/sim.h"
#include "wire/wire.h"

enum osim_limits {
	OS_T0 = 1800000000,         /* virtual wall clock at t = 0 (unix s) */
	OS_SN_MAX_CLIENTS = 1024,   /* link table of a supernode: clients + inbound overlay */
	OS_PING_MS = 25000,         /* client keepalive (the supernode drops a session idle 75 s) */
	OS_PONG_WAIT_MS = 5000,     /* no PONG by then: the supernode is gone, attach elsewhere */
	OS_HS_RETRY_MS = 1000,
	OS_HS_TRIES = 3,            /* handshake attempts before trying another supernode */
	OS_REPUBLISH_MS = 1800000,  /* as the real client (CL_REPUBLISH_MS) */
	OS_RECORD_TTL_S = 3600,     /* as the real client (CL_RECORD_TTL_S) */
	OS_LOOKUP_TIMEOUT_MS = 5000,/* the supernode gives up after 4 s and answers NOT_FOUND */
	OS_SN_STAGGER_MAX_MS = 50,  /* supernodes start one after another... */
	OS_SN_START_WINDOW_MS = 60000, /* ...within at most one minute */
	OS_WARMUP_MS = 120000,      /* routing tables fill (refresh every 30 s) before clients */
	OS_ATTACH_WINDOW_MS = 60000,
	OS_SETTLE_MS = 60000,       /* publishes finish before measuring */
	OS_SURVIVAL_GAP_MS = 20,
	OS_HOOK_Q = 16,
	OS_HOPS_MAX = 16,
	OS_REGIONS = 6,
};

/* ---- configuration and results ----------------------------------------------------------- */

struct osim_config {
	unsigned n_sn;
	unsigned clients_per_sn;
	unsigned k;           /* k-bucket size; 0 = the supernode default (256) */
	unsigned per_prefix;  /* 0 = the supernode default (2) */
	unsigned paths;       /* disjoint lookup paths; 0 = the supernode default (1) */
	double churn_per_hour; /* percent of supernodes replaced per hour */
	double hours;          /* measured virtual hours */
	double malicious;      /* fraction of supernodes that misbehave, 0..1 */
	int misbehave;         /* PN_SN_DROP or PN_SN_LIE */
	uint64_t seed;
	unsigned lookups;          /* during the measured hours */
	unsigned survival_lookups; /* at the end; 0 = min(users, 1000) */
	bool flat_latency;     /* every link 20 ms one-way instead of the location model */
	double loss;
	bool progress;         /* progress lines on stderr */
};

struct osim_result {
	uint64_t lookups, found, found_first, not_found, timeouts, retried;
	double success, success_first;
	uint64_t hop_hist[OS_HOPS_MAX + 1]; /* found lookups by overlay hops (0 = answered
					     * from the supernode's own store) */
	double hops_mean;
	unsigned hops_p50, hops_p90, hops_p99;
	double *lat; /* client-observed latency (ms) of every found lookup, sorted */
	size_t nlat;
	double lat_p50, lat_p90, lat_p99;
	uint64_t survival_n, survival_found;
	double survival;
	uint64_t sn_started, sn_killed, reattaches, publishes, publish_ok;
	double one_way_p50, one_way_p90, one_way_p99; /* supernode pairs, ms */
	uint64_t events, virtual_ms;
	double wall_s, events_per_s;
	/* summed over the supernodes alive at the end (pn_supernode_stats) */
	uint64_t sn_bad_packets, sn_overlay_lookups, sn_lookups_done, sn_peers;
	uint64_t sn_contacts; /* routing-table contacts (k-buckets), summed */
	double contacts_mean; /* per supernode alive at the end */
};

/* ---- the simulated world ----------------------------------------------------------------- */

struct osim;

struct osn {
	struct osim *o;
	unsigned idx;
	struct pn_sim_host *h;
	struct pn_supernode *sn; /* NULL once killed */
	struct pn_addr addr;
	uint8_t dh_pk[32];
	int region;
	bool malicious;
	size_t alive_pos;
	unsigned lk_inflight; /* our clients' lookups it is working on */
	/* What its lookup hook reported, oldest first, until the client's answer arrives. */
	struct {
		bool found;
		unsigned hops;
	} hq[OS_HOOK_Q];
	unsigned hq_head, hq_n;
};

struct ocl {
	struct osim *o;
	unsigned idx;
	struct pn_sim_host *h;
	const struct pn_env *env;
	struct pn_keys keys;
	struct pn_cert certd;
	uint8_t cert[PN_CERT_MAX];
	size_t cert_len;
	int region;
	struct osn *sn;
	struct pn_link link;
	bool attached;
	unsigned tries;
	uint64_t hs_ts, seq;
	uint64_t retry_at, ping_at, pong_by, republish_at;
	uint32_t next_req, publish_req;
	/* one lookup at a time */
	bool lk_busy, lk_survival, lk_retried, lk_wait_attach;
	unsigned lk_target;
	uint32_t lk_req;
	uint64_t lk_start, lk_deadline;
	struct osn *lk_sn;
};

struct osim_rng {
	uint64_t s;
};

struct osim {
	struct osim_config cfg;
	struct pn_sim *sim;
	struct pn_keys root;
	struct pn_network net; /* template: name and root key */
	struct osim_rng rng;

	struct osn **sns;
	size_t nsn, sn_cap;
	struct osn **alive;
	size_t nalive;

	struct ocl *cl;
	size_t ncl;

	struct pn_sim_host *ctl;
	/* schedule (virtual ms) */
	uint64_t sn_stagger, t_attach0, attach_gap, t_meas0, meas_ms, t_surv0, t_end;
	size_t next_sn, next_attach;
	uint64_t n_churn, next_churn, next_lookup, n_surv, next_surv;
	unsigned n_mal_initial;

	struct osim_result *res;
	size_t lat_cap;
};

static uint64_t rng_next(struct osim_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct osim_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static double rng_unit(struct osim_rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal by Box-Muller; only ever used to place hosts. */
static double rng_normal(struct osim_rng *r)
{
	double u1 = rng_unit(r), u2 = rng_unit(r);
	double rad, ang;

	if (u1 < 1e-300)
		u1 = 1e-300;
	rad = __builtin_sqrt(-2.0 * __builtin_log(u1));
	ang = 6.283185307179586 * u2;
	return rad * __builtin_cos(ang);
}

static uint64_t osim_now(const struct osim *o)
{
	return pn_sim_now(o->sim);
}

/* ---- latency model: six regions on a plane, one-way milliseconds ---------------------------
 *
 * Region centres are placed so that centre-to-centre one-way delays are close to
 * measured internet figures (US east-west ~35 ms, US east-Europe ~40 ms, Europe-Asia
 * ~135 ms, US west-Asia ~60 ms, ...). A host sits at its region centre plus a normal
 * offset (sigma 6 ms per axis) and has a log-normal access delay (median 3 ms,
 * sigma 0.7, capped at 60 ms). Supernode pairs then see a one-way median of about
 * 40-50 ms with a long tail; the run prints the measured distribution. */
static const struct {
	double x, y, weight;
} regions[OS_REGIONS] = {
	{0, 0, 0.25},     /* North America east */
	{-35, 0, 0.15},   /* North America west */
	{40, 5, 0.30},    /* Europe */
	{-95, 10, 0.20},  /* East Asia */
	{5, -60, 0.05},   /* South America */
	{-90, -50, 0.05}, /* Oceania */
};

static int pick_region(struct osim *o)
{
	double u = rng_unit(&o->rng), acc = 0;

	for (int i = 0; i < OS_REGIONS; i++) {
		acc += regions[i].weight;
		if (u < acc)
			return i;
	}
	return OS_REGIONS - 1;
}

static void place(struct osim *o, struct pn_sim_host *h, int region)
{
	double x = regions[region].x + 6.0 * rng_normal(&o->rng);
	double y = regions[region].y + 6.0 * rng_normal(&o->rng);
	double access = 3.0 * __builtin_exp(0.7 * rng_normal(&o->rng));

	if (o->cfg.flat_latency)
		return;
	if (access > 60.0)
		access = 60.0;
	pn_sim_host_set_location(h, x, y, access);
}

/* ---- supernodes ---------------------------------------------------------------------------- */

static void alive_add(struct osim *o, struct osn *s)
{
	s->alive_pos = o->nalive;
	o->alive[o->nalive++] = s;
}

static void alive_remove(struct osim *o, struct osn *s)
{
	struct osn *last = o->alive[--o->nalive];

	o->alive[s->alive_pos] = last;
	last->alive_pos = s->alive_pos;
	s->alive_pos = SIZE_MAX;
}

static void on_lookup_done(void *arg, bool found, unsigned hops, uint64_t ms)
{
	struct osn *s = arg;
	unsigned slot;

	(void)ms; /* latency is measured where the client sees it */
	if (s->hq_n == OS_HOOK_Q) { /* forget the oldest: an answer that never reached us */
		s->hq_head = (s->hq_head + 1) % OS_HOOK_Q;
		s->hq_n--;
	}
	slot = (s->hq_head + s->hq_n++) % OS_HOOK_Q;
	s->hq[slot].found = found;
	s->hq[slot].hops = hops;
}

static void seed_from(struct osim *o, uint8_t seed[32])
{
	for (int i = 0; i < 4; i++) {
		uint64_t v = rng_next(&o->rng);
		memcpy(seed + 8 * i, &v, 8);
	}
}

static int make_cert(struct osim *o, const struct pn_keys *k, uint8_t flags, const char *name,
		     struct pn_cert *c, uint8_t *out, size_t *out_len)
{
	int n;

	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->flags = flags;
	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->sign_pk, k->sign_pk, 32);
	memcpy(c->dh_pk, k->dh_pk, 32);
	c->not_before = OS_T0 - 10;
	c->not_after = OS_T0 + 30 * 86400;
	if (pn_cert_sign(c, o->root.sign_sk))
		return -EINVAL;
	n = pn_cert_encode(c, out, PN_CERT_MAX);
	if (n < 0)
		return n;
	*out_len = (size_t)n;
	return 0;
}

/* Starts a supernode on a fresh address with fresh keys. Its network file lists up to 16
 * supernodes that are running now, drawn at random (as an operator would publish). */
static struct osn *sn_start(struct osim *o, bool malicious)
{
	struct pn_supernode_config sc;
	struct pn_network net = o->net;
	struct pn_keys k;
	struct pn_cert c;
	uint8_t seed[32], cert[PN_CERT_MAX];
	size_t cert_len;
	char a[32], name[24];
	struct osn *s;
	unsigned idx = (unsigned)o->nsn;
	int rc;

	if (o->nsn == o->sn_cap) {
		size_t cap = o->sn_cap ? o->sn_cap * 2 : 64;
		struct osn **v = realloc(o->sns, cap * sizeof(*v));
		struct osn **al = realloc(o->alive, cap * sizeof(*al));

		if (v)
			o->sns = v;
		if (al)
			o->alive = al;
		if (!v || !al)
			return NULL;
		o->sn_cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->o = o;
	s->idx = idx;
	s->malicious = malicious;
	s->region = pick_region(o);
	/* one /24 per supernode, as on the internet (the per-prefix rule applies per /24) */
	snprintf(a, sizeof(a), "%u.%u.%u.1:7701", 10 + (idx >> 16), (idx >> 8) & 255, idx & 255);
	pn_addr_parse(&s->addr, a);
	seed_from(o, seed);
	pn_keys_from_seed(&k, seed);
	memcpy(s->dh_pk, k.dh_pk, 32);
	snprintf(name, sizeof(name), "sn%u", idx);
	rc = make_cert(o, &k, PN_CERT_SUPERNODE, name, &c, cert, &cert_len);
	pn_keys_wipe(&k);
	if (rc || pn_sim_host_add(o->sim, &s->addr, &s->h)) {
		free(s);
		return NULL;
	}
	place(o, s->h, s->region);
	net.n_supernodes = 0;
	for (unsigned tries = 0; net.n_supernodes < PN_NET_MAX_SUPERNODES &&
				 net.n_supernodes < o->nalive && tries < 64; tries++) {
		struct osn *b = o->alive[rng_below(&o->rng, o->nalive)];
		bool dup = false;

		for (unsigned i = 0; i < net.n_supernodes; i++)
			dup |= pn_addr_eq(&net.supernodes[i].addr, &b->addr);
		if (dup)
			continue;
		net.supernodes[net.n_supernodes].addr = b->addr;
		memcpy(net.supernodes[net.n_supernodes].key, b->dh_pk, 32);
		net.supernodes[net.n_supernodes].has_key = true;
		net.n_supernodes++;
	}
	memset(&sc, 0, sizeof(sc));
	sc.env = pn_sim_host_env(s->h);
	sc.net = &net;
	memcpy(sc.seed, seed, 32);
	sc.cert = cert;
	sc.cert_len = cert_len;
	sc.public_addr = s->addr;
	sc.max_clients = OS_SN_MAX_CLIENTS;
	sc.kad_k = o->cfg.k;
	sc.kad_per_prefix = o->cfg.per_prefix;
	sc.lookup_paths = o->cfg.paths;
	sc.misbehave = malicious ? o->cfg.misbehave : PN_SN_HONEST;
	sodium_memzero(seed, sizeof(seed));
	rc = pn_supernode_new(&s->sn, &sc);
	sodium_memzero(sc.seed, sizeof(sc.seed));
	if (rc) {
		fprintf(stderr, "parley-sim: cannot start supernode %u (%d)\n", idx, rc);
		free(s);
		return NULL;
	}
	pn_supernode_set_lookup_hook(s->sn, on_lookup_done, s);
	pn_sim_host_set_node(s->h, s->sn, &pn_supernode_ops);
	o->sns[o->nsn++] = s;
	alive_add(o, s);
	o->res->sn_started++;
	return s;
}

static void sn_kill(struct osim *o, struct osn *s)
{
	pn_sim_host_set_up(s->h, false);
	pn_sim_host_set_node(s->h, NULL, NULL);
	pn_supernode_free(s->sn);
	s->sn = NULL;
	alive_remove(o, s);
	o->res->sn_killed++;
}

/* A live supernode for a client in region: one in the same region when a few random
 * draws find one, else any. NULL when none is alive. */
static struct osn *pick_sn(struct osim *o, int region, const struct osn *avoid)
{
	struct osn *any = NULL;

	if (!o->nalive)
		return NULL;
	for (int tries = 0; tries < 32; tries++) {
		struct osn *s = o->alive[rng_below(&o->rng, o->nalive)];

		if (s == avoid && o->nalive > 1)
			continue;
		if (!any)
			any = s;
		if (s->region == region)
			return s;
	}
	return any;
}

/* ---- lightweight clients ------------------------------------------------------------------- */

static uint64_t cl_now(const struct ocl *c)
{
	return c->env->now_ms(c->env->ctx);
}

static uint32_t cl_req(struct ocl *c)
{
	if (++c->next_req == 0)
		c->next_req = 1;
	return c->next_req;
}

static void cl_send_frame(struct ocl *c, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	if (pn_link_seal(&c->link, f, n, cl_now(c), pkt, sizeof(pkt), &len) == 0)
		c->env->send(c->env->ctx, &c->sn->addr, pkt, len);
}

static void cl_connect(struct ocl *c, struct osn *s)
{
	struct pn_link_params p;
	uint8_t e_sk[32];
	uint32_t idx;
	uint64_t now = cl_now(c);

	pn_link_wipe(&c->link);
	memset(&c->link, 0, sizeof(c->link));
	c->sn = s;
	c->attached = false;
	c->tries = 1;
	/* The supernode refuses a handshake timestamp that does not grow per device. */
	c->hs_ts = c->hs_ts + 1 > now ? c->hs_ts + 1 : now;
	c->env->random(c->env->ctx, e_sk, sizeof(e_sk));
	do
		c->env->random(c->env->ctx, &idx, sizeof(idx));
	while (idx == 0);
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_ATTACH;
	p.s_sk = c->keys.dh_sk;
	p.rs = s->dh_pk;
	p.e_sk = e_sk;
	p.local_idx = idx;
	p.timestamp_ms = c->hs_ts;
	p.cert = c->cert;
	p.cert_len = c->cert_len;
	p.now = now;
	if (pn_link_connect(&c->link, &p) == 0)
		c->env->send(c->env->ctx, &s->addr, c->link.hs_pkt, c->link.hs_pkt_len);
	sodium_memzero(e_sk, sizeof(e_sk));
	c->retry_at = now + OS_HS_RETRY_MS;
}

/* Leaves the current supernode (gone or unresponsive) for another live one. */
static void cl_reattach(struct ocl *c)
{
	struct osn *s = pick_sn(c->o, c->region, c->sn);

	c->o->res->reattaches++;
	if (s)
		cl_connect(c, s);
	else
		c->retry_at = cl_now(c) + OS_HS_RETRY_MS;
}

static void cl_publish(struct ocl *c)
{
	struct pn_record r;
	uint8_t rec[PN_REC_MAX], f[PN_REC_MAX + 16];
	struct pn_wr w;
	int n;

	memset(&r, 0, sizeof(r));
	r.cert = c->certd;
	r.seq = ++c->seq;
	r.expires = c->env->wall_s(c->env->ctx) + OS_RECORD_TTL_S;
	r.caps = 1;
	r.n_sn = 1;
	r.sn_addr[0] = c->sn->addr;
	memcpy(r.sn_key[0], c->sn->dh_pk, 32);
	n = pn_record_sign_encode(&r, c->keys.sign_sk, rec, sizeof(rec));
	if (n < 0)
		return;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PUBLISH);
	c->publish_req = cl_req(c);
	pn_wr_u32(&w, c->publish_req);
	pn_wr_vec16(&w, rec, (size_t)n);
	if (w.err)
		return;
	cl_send_frame(c, f, w.len);
	c->o->res->publishes++;
	c->republish_at = cl_now(c) + OS_REPUBLISH_MS;
}

static void cl_send_lookup(struct ocl *c)
{
	struct ocl *t = &c->o->cl[c->lk_target];
	uint8_t f[64];
	struct pn_wr w;
	struct osn *s = c->sn;

	/* No lookup of ours in flight at this supernode: whatever its hook queue still holds
	 * belongs to answers that never came back to us. */
	if (s->lk_inflight == 0)
		s->hq_n = 0;
	s->lk_inflight++;
	c->lk_sn = s;
	c->lk_req = cl_req(c);
	c->lk_deadline = cl_now(c) + OS_LOOKUP_TIMEOUT_MS;
	c->lk_wait_attach = false;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOOKUP);
	pn_wr_u32(&w, c->lk_req);
	pn_wr_str8(&w, t->certd.name);
	cl_send_frame(c, f, w.len);
}

static void cl_lookup_release(struct ocl *c)
{
	if (c->lk_sn && c->lk_sn->lk_inflight)
		c->lk_sn->lk_inflight--;
	c->lk_sn = NULL;
}

static void record_latency(struct osim *o, double ms)
{
	struct osim_result *r = o->res;

	if (r->nlat == o->lat_cap) {
		size_t cap = o->lat_cap ? o->lat_cap * 2 : 1024;
		double *v = realloc(r->lat, cap * sizeof(*v));

		if (!v)
			return;
		r->lat = v;
		o->lat_cap = cap;
	}
	r->lat[r->nlat++] = ms;
}

/* The end of a lookup: found (with the overlay hops its supernode's hook reported) or not. */
static void cl_lookup_end(struct ocl *c, bool found, bool timeout)
{
	struct osim *o = c->o;
	struct osim_result *r = o->res;
	unsigned hops = 0;
	struct osn *s = c->lk_sn;

	if (s && s->hq_n && !timeout) {
		hops = s->hq[s->hq_head].hops;
		s->hq_head = (s->hq_head + 1) % OS_HOOK_Q;
		s->hq_n--;
	}
	cl_lookup_release(c);
	if (!found && timeout && !c->lk_retried) {
		/* A client whose supernode does not answer tries once more through another. */
		c->lk_retried = true;
		c->lk_wait_attach = true;
		c->lk_deadline = cl_now(c) + OS_LOOKUP_TIMEOUT_MS;
		r->retried += !c->lk_survival;
		cl_reattach(c);
		return;
	}
	c->lk_busy = false;
	c->lk_wait_attach = false;
	if (c->lk_survival) {
		r->survival_found += found;
		return;
	}
	if (found) {
		r->found++;
		r->found_first += !c->lk_retried;
		r->hop_hist[hops > OS_HOPS_MAX ? OS_HOPS_MAX : hops]++;
		record_latency(o, (double)(cl_now(c) - c->lk_start));
	} else if (timeout) {
		r->timeouts++;
	} else {
		r->not_found++;
	}
}

static void cl_on_lookup_result(struct ocl *c, struct pn_rd *rd)
{
	struct ocl *t = &c->o->cl[c->lk_target];
	uint32_t req;
	uint8_t st, cnt;
	bool found = false;

	pn_rd_u32(rd, &req);
	pn_rd_u8(rd, &st);
	pn_rd_u8(rd, &cnt);
	if (rd->err || !c->lk_busy || c->lk_wait_attach || req != c->lk_req)
		return;
	/* Found = a record that verifies under the root and is the target's. */
	for (unsigned i = 0; st == PN_ST_OK && i < cnt && !found; i++) {
		const uint8_t *rec;
		size_t rl;
		struct pn_record pr;

		if (pn_rd_vec16(rd, &rec, &rl, PN_REC_MAX))
			break;
		if (pn_record_decode_verify(&pr, rec, rl, c->o->net.root_pk,
					    c->env->wall_s(c->env->ctx)) == 0 &&
		    strcmp(pr.cert.name, t->certd.name) == 0)
			found = true;
	}
	cl_lookup_end(c, found, false);
}

/* HS2 arrived. The supernode sends HS2 only after it accepted our certificate, so this
 * is the attachment. (Its ATTACHED frame goes out at the same moment as HS2 and can
 * overtake it on a jittery link; a client waiting for that frame would wait forever.) */
static void cl_on_up(struct ocl *c)
{
	if (c->attached)
		return;
	c->attached = true;
	c->ping_at = cl_now(c) + OS_PING_MS;
	c->pong_by = UINT64_MAX;
	cl_publish(c);
	if (c->lk_busy && c->lk_wait_attach)
		cl_send_lookup(c);
}

static void cl_on_frame(struct ocl *c, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, st;
	uint32_t req;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	switch (type) {
	case PN_F_ATTACHED: /* cl_on_up already took HS2 as the attachment */
		return;
	case PN_F_PONG:
		c->pong_by = UINT64_MAX;
		return;
	case PN_F_RESULT:
		if (pn_rd_u32(&r, &req) == 0 && pn_rd_u8(&r, &st) == 0 && req == c->publish_req &&
		    st == PN_ST_OK)
			c->o->res->publish_ok++;
		return;
	case PN_F_LOOKUP_RESULT:
		cl_on_lookup_result(c, &r);
		return;
	default:
		return;
	}
}

static void cl_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct ocl *c = node;
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (!c->sn || !pn_addr_eq(from, &c->sn->addr) || pn_pkt_parse(&h, buf, len) ||
	    h.receiver_idx != c->link.local_idx)
		return;
	if (pn_link_input(&c->link, &h, cl_now(c), f, sizeof(f), &n, &ev))
		return;
	if (ev == PN_LINK_EV_UP)
		cl_on_up(c);
	else if (ev == PN_LINK_EV_DATA)
		cl_on_frame(c, f, n);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t cl_deadline(void *node)
{
	struct ocl *c = node;
	uint64_t t = UINT64_MAX;

	if (!c->sn && !c->lk_busy)
		return UINT64_MAX;
	if (!c->attached)
		t = c->retry_at;
	else
		t = min64(min64(c->ping_at, c->pong_by), c->republish_at);
	if (c->lk_busy)
		t = min64(t, c->lk_deadline);
	return t;
}

static void cl_tick(void *node)
{
	struct ocl *c = node;
	uint64_t now = cl_now(c);

	if (c->lk_busy && now >= c->lk_deadline)
		cl_lookup_end(c, false, true);
	if (!c->attached) {
		if (now < c->retry_at)
			return;
		if (!c->sn || c->tries >= OS_HS_TRIES) {
			cl_reattach(c);
			return;
		}
		/* HS1 again: the supernode answers a repeated HS1 with its HS2 again. */
		c->tries++;
		c->env->send(c->env->ctx, &c->sn->addr, c->link.hs_pkt, c->link.hs_pkt_len);
		c->retry_at = now + OS_HS_RETRY_MS;
		return;
	}
	if (now >= c->pong_by) {
		cl_reattach(c);
		return;
	}
	if (now >= c->ping_at) {
		uint8_t f[9];
		struct pn_wr w;
		uint64_t tok = now;

		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_PING);
		pn_wr_u64(&w, tok);
		cl_send_frame(c, f, w.len);
		c->ping_at = now + OS_PING_MS;
		if (c->pong_by == UINT64_MAX)
			c->pong_by = now + OS_PONG_WAIT_MS;
	}
	if (now >= c->republish_at)
		cl_publish(c);
}

static const struct pn_node_ops cl_ops = {cl_recv, cl_deadline, cl_tick};

static int cl_init(struct osim *o, struct ocl *c, unsigned idx, int region)
{
	uint8_t seed[32];
	char a[40], name[24];
	struct pn_addr addr;
	int rc;

	c->o = o;
	c->idx = idx;
	c->region = region;
	c->seq = (uint64_t)OS_T0 * 1000;
	snprintf(a, sizeof(a), "100.%u.%u.%u:5000", 64 + (idx >> 16), (idx >> 8) & 255, idx & 255);
	pn_addr_parse(&addr, a);
	rc = pn_sim_host_add(o->sim, &addr, &c->h);
	if (rc)
		return rc;
	place(o, c->h, region);
	c->env = pn_sim_host_env(c->h);
	seed_from(o, seed);
	rc = pn_keys_from_seed(&c->keys, seed);
	sodium_memzero(seed, sizeof(seed));
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "u%u", idx);
	rc = make_cert(o, &c->keys, PN_CERT_DEVICE, name, &c->certd, c->cert, &c->cert_len);
	if (rc)
		return rc;
	pn_sim_host_set_node(c->h, c, &cl_ops);
	return 0;
}

/* ---- the controller: starts, churn, lookups, survival check --------------------------------- */

static uint64_t at_index(uint64_t t0, uint64_t span, uint64_t i, uint64_t n)
{
	/* the i-th of n events spread evenly over [t0, t0 + span), each in the middle of
	 * its slot */
	return t0 + (uint64_t)(((double)i + 0.5) * (double)span / (double)n);
}

static uint64_t ctl_deadline(void *node)
{
	struct osim *o = node;
	uint64_t t = UINT64_MAX;

	if (o->next_sn < o->cfg.n_sn)
		t = min64(t, o->next_sn * o->sn_stagger);
	if (o->next_attach < o->ncl)
		t = min64(t, o->t_attach0 + o->next_attach * o->attach_gap);
	if (o->next_churn < o->n_churn)
		t = min64(t, at_index(o->t_meas0, o->meas_ms, o->next_churn, o->n_churn));
	if (o->next_lookup < o->cfg.lookups)
		t = min64(t, at_index(o->t_meas0, o->meas_ms, o->next_lookup, o->cfg.lookups));
	if (o->next_surv < o->n_surv)
		t = min64(t, o->t_surv0 + o->next_surv * OS_SURVIVAL_GAP_MS);
	return t;
}

/* A random client that can start a lookup now (attached, idle), or NULL. */
static struct ocl *pick_asker(struct osim *o)
{
	for (int tries = 0; tries < 64; tries++) {
		struct ocl *c = &o->cl[rng_below(&o->rng, o->ncl)];

		if (c->attached && !c->lk_busy)
			return c;
	}
	return NULL;
}

static void ctl_lookup(struct osim *o, bool survival, unsigned target)
{
	struct ocl *c = pick_asker(o);

	/* a user looking itself up would be answered from its own supernode's store */
	for (int tries = 0; survival && c && c->idx == target && tries < 8; tries++)
		c = pick_asker(o);
	if (survival)
		o->res->survival_n++;
	else
		o->res->lookups++;
	if (!c) { /* nobody could ask: a failure of the network, counted as one */
		if (!survival)
			o->res->timeouts++;
		return;
	}
	if (!survival) {
		do
			target = (unsigned)rng_below(&o->rng, o->ncl);
		while (o->ncl > 1 && target == c->idx);
	}
	c->lk_busy = true;
	c->lk_survival = survival;
	c->lk_retried = false;
	c->lk_target = target;
	c->lk_start = cl_now(c);
	cl_send_lookup(c);
	pn_sim_host_touch(c->h);
}

static void ctl_tick(void *node)
{
	struct osim *o = node;
	uint64_t now = osim_now(o);

	while (o->next_sn < o->cfg.n_sn && o->next_sn * o->sn_stagger <= now) {
		sn_start(o, o->next_sn < o->n_mal_initial);
		o->next_sn++;
	}
	while (o->next_attach < o->ncl && o->t_attach0 + o->next_attach * o->attach_gap <= now) {
		struct ocl *c = &o->cl[o->next_attach++];
		/* clients-per-sn clients per initial supernode, in its region */
		struct osn *s = o->sns[c->idx / o->cfg.clients_per_sn];

		if (!s->sn)
			s = pick_sn(o, c->region, NULL);
		if (s)
			cl_connect(c, s);
		pn_sim_host_touch(c->h);
	}
	while (o->next_churn < o->n_churn &&
	       at_index(o->t_meas0, o->meas_ms, o->next_churn, o->n_churn) <= now) {
		struct osn *victim = o->alive[rng_below(&o->rng, o->nalive)];
		bool mal = victim->malicious;

		/* The replacement keeps the victim's role, so the malicious share stays put. */
		sn_kill(o, victim);
		sn_start(o, mal);
		o->next_churn++;
	}
	while (o->next_lookup < o->cfg.lookups &&
	       at_index(o->t_meas0, o->meas_ms, o->next_lookup, o->cfg.lookups) <= now) {
		ctl_lookup(o, false, 0);
		o->next_lookup++;
	}
	while (o->next_surv < o->n_surv && o->t_surv0 + o->next_surv * OS_SURVIVAL_GAP_MS <= now) {
		/* a spread sample of users: every (ncl / n_surv)-th */
		ctl_lookup(o, true, (unsigned)(o->next_surv * o->ncl / o->n_surv));
		o->next_surv++;
	}
}

static void ctl_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
}

static const struct pn_node_ops ctl_ops = {ctl_recv, ctl_deadline, ctl_tick};

/* ---- figures ------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	return v[(i > n ? n : i) - 1];
}

static unsigned hist_pct(const uint64_t *h, double p)
{
	uint64_t total = 0, acc = 0;

	for (int i = 0; i <= OS_HOPS_MAX; i++)
		total += h[i];
	for (int i = 0; i <= OS_HOPS_MAX; i++) {
		acc += h[i];
		if (total && (double)acc >= p / 100.0 * (double)total - 1e-9)
			return (unsigned)i;
	}
	return 0;
}

static void measure_one_way(struct osim *o)
{
	enum { SAMPLES = 20000 };
	double *v = calloc(SAMPLES, sizeof(*v));
	size_t n = 0;

	if (!v || o->nsn < 2) {
		free(v);
		return;
	}
	for (int i = 0; i < SAMPLES; i++) {
		struct osn *a = o->sns[rng_below(&o->rng, o->nsn)];
		struct osn *b = o->sns[rng_below(&o->rng, o->nsn)];

		if (a != b)
			v[n++] = (double)pn_sim_path_delay(o->sim, a->h, b->h);
	}
	qsort(v, n, sizeof(*v), cmp_double);
	o->res->one_way_p50 = pct(v, n, 50);
	o->res->one_way_p90 = pct(v, n, 90);
	o->res->one_way_p99 = pct(v, n, 99);
	free(v);
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void osim_result_free(struct osim_result *r);
int osim_run(const struct osim_config *cfg, struct osim_result *res);

void osim_result_free(struct osim_result *r)
{
	if (!r)
		return;
	free(r->lat);
	r->lat = NULL;
	r->nlat = 0;
}

/* Runs one simulation. 0, -EINVAL (bad configuration) or -ENOMEM. res is filled in either
 * way; free it with osim_result_free. */
int osim_run(const struct osim_config *cfg, struct osim_result *res)
{
	struct osim *o;
	struct pn_sim_link link;
	struct pn_sim_stats st;
	struct pn_addr ctl_addr;
	uint8_t root_seed[32];
	uint64_t users, sn_phase, chunk, t;
	double w0;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!cfg->n_sn || !cfg->clients_per_sn || cfg->hours < 0 || cfg->churn_per_hour < 0 ||
	    cfg->malicious < 0 || cfg->malicious > 1 || cfg->k > 256)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->cfg = *cfg;
	o->res = res;
	o->rng.s = cfg->seed ^ 0x7061726c65792d73ull; /* "parley-s" */
	w0 = wall_now();
	rc = pn_sim_new(&o->sim, cfg->seed, OS_T0);
	if (rc)
		goto out;
	/* Many hosts and one long run: the controller touches what it drives. */
	pn_sim_set_refresh_all(o->sim, false);
	memset(&link, 0, sizeof(link));
	link.delay_ms = cfg->flat_latency ? 20 : 0;
	link.jitter_ms = 2;
	link.loss = cfg->loss;
	pn_sim_set_default_link(o->sim, &link);

	seed_from(o, root_seed);
	pn_keys_from_seed(&o->root, root_seed);
	sodium_memzero(root_seed, sizeof(root_seed));
	snprintf(o->net.name, sizeof(o->net.name), "sim");
	memcpy(o->net.root_pk, o->root.sign_pk, 32);

	users = (uint64_t)cfg->n_sn * cfg->clients_per_sn;
	o->cl = calloc(users, sizeof(*o->cl));
	if (!o->cl) {
		rc = -ENOMEM;
		goto out;
	}
	o->n_mal_initial = (unsigned)(cfg->malicious * cfg->n_sn + 0.5);
	/* Schedule. Malicious supernodes start first: they are then in the network files
	 * (bootstrap lists) as often as honest ones of the first minutes would be. They are
	 * spread at random in the id space because ids come from their keys. */
	o->sn_stagger = OS_SN_START_WINDOW_MS / cfg->n_sn;
	if (o->sn_stagger > OS_SN_STAGGER_MAX_MS)
		o->sn_stagger = OS_SN_STAGGER_MAX_MS;
	if (!o->sn_stagger)
		o->sn_stagger = 1;
	sn_phase = (uint64_t)cfg->n_sn * o->sn_stagger;
	o->t_attach0 = sn_phase + OS_WARMUP_MS;
	o->attach_gap = OS_ATTACH_WINDOW_MS / users ? OS_ATTACH_WINDOW_MS / users : 1;
	o->t_meas0 = o->t_attach0 + users * o->attach_gap + OS_SETTLE_MS;
	o->meas_ms = (uint64_t)(cfg->hours * 3600000.0 + 0.5);
	if (!o->meas_ms)
		o->meas_ms = 60000; /* no hours: one minute of lookups */
	o->n_churn = (uint64_t)(cfg->n_sn * cfg->churn_per_hour / 100.0 * cfg->hours + 0.5);
	o->t_surv0 = o->t_meas0 + o->meas_ms;
	o->n_surv = cfg->survival_lookups ? cfg->survival_lookups : (users < 1000 ? users : 1000);
	o->t_end = o->t_surv0 + o->n_surv * OS_SURVIVAL_GAP_MS + 2 * OS_LOOKUP_TIMEOUT_MS + 5000;

	/* Controller first (host 0), then the clients; supernodes join as scheduled. */
	pn_addr_parse(&ctl_addr, "192.0.2.1:1");
	rc = pn_sim_host_add(o->sim, &ctl_addr, &o->ctl);
	if (rc)
		goto out;
	for (uint64_t i = 0; i < users; i++) {
		/* a client lives in the region of the supernode it first attaches to; that
		 * supernode does not exist yet, so draw the region now and give it to it */
		rc = cl_init(o, &o->cl[i], (unsigned)i, 0);
		if (rc)
			goto out;
		o->ncl++;
	}
	pn_sim_host_set_node(o->ctl, o, &ctl_ops);

	/* Run in chunks of one virtual minute for progress lines. After the supernodes are
	 * up, place each client in its first supernode's region. */
	pn_sim_run_until(o->sim, sn_phase);
	for (size_t i = 0; i < o->ncl; i++) {
		struct ocl *c = &o->cl[i];

		c->region = o->sns[i / cfg->clients_per_sn]->region;
		place(o, c->h, c->region);
	}
	chunk = 60000;
	for (t = sn_phase; t < o->t_end;) {
		t = t + chunk < o->t_end ? t + chunk : o->t_end;
		pn_sim_run_until(o->sim, t);
		if (cfg->progress) {
			pn_sim_get_stats(o->sim, &st);
			fprintf(stderr,
				"parley-sim: t=%.1f min of %.1f, %" PRIu64 " events, %.0f s wall, "
				"%.0f s CPU, lookups %" PRIu64 " found %" PRIu64 "\n",
				(double)t / 60000.0, (double)o->t_end / 60000.0, st.events,
				wall_now() - w0, cpu_now(), res->lookups, res->found);
		}
	}
	measure_one_way(o);
	for (size_t i = 0; i < o->nalive; i++) {
		struct pn_supernode_stats ss;

		pn_supernode_stats(o->alive[i]->sn, &ss);
		res->sn_bad_packets += ss.bad_packets;
		res->sn_overlay_lookups += ss.overlay_lookups;
		res->sn_lookups_done += ss.lookups_done;
		res->sn_peers += ss.peers;
		res->sn_contacts += ss.contacts;
	}
	res->contacts_mean = o->nalive ? (double)res->sn_contacts / (double)o->nalive : 0;

	/* Figures. */
	pn_sim_get_stats(o->sim, &st);
	res->events = st.events;
	res->virtual_ms = o->t_end;
	res->wall_s = wall_now() - w0;
	res->events_per_s = res->wall_s > 0 ? (double)st.events / res->wall_s : 0;
	res->success = res->lookups ? (double)res->found / (double)res->lookups : 0;
	res->success_first = res->lookups ? (double)res->found_first / (double)res->lookups : 0;
	res->survival = res->survival_n ? (double)res->survival_found / (double)res->survival_n : 0;
	{
		uint64_t tot = 0, sum = 0;
		for (int i = 0; i <= OS_HOPS_MAX; i++) {
			tot += res->hop_hist[i];
			sum += res->hop_hist[i] * (uint64_t)i;
		}
		res->hops_mean = tot ? (double)sum / (double)tot : 0;
	}
	res->hops_p50 = hist_pct(res->hop_hist, 50);
	res->hops_p90 = hist_pct(res->hop_hist, 90);
	res->hops_p99 = hist_pct(res->hop_hist, 99);
	qsort(res->lat, res->nlat, sizeof(*res->lat), cmp_double);
	res->lat_p50 = pct(res->lat, res->nlat, 50);
	res->lat_p90 = pct(res->lat, res->nlat, 90);
	res->lat_p99 = pct(res->lat, res->nlat, 99);
out:
	for (size_t i = 0; i < o->nsn; i++) {
		pn_supernode_free(o->sns[i]->sn);
		free(o->sns[i]);
	}
	for (size_t i = 0; i < o->ncl; i++) {
		pn_link_wipe(&o->cl[i].link);
		pn_keys_wipe(&o->cl[i].keys);
	}
	free(o->sns);
	free(o->alive);
	free(o->cl);
	pn_keys_wipe(&o->root);
	pn_sim_free(o->sim);
	free(o);
	return rc;
}

/* ---- the program --------------------------------------------------------------------------- */

#ifndef PARLEY_SIM_NO_MAIN

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parley-sim [options]\n"
		"\n"
		"Simulates the supernode directory (Kademlia overlay) at scale in virtual time\n"
		"and reports lookup success, hops, latency and record survival.\n"
		"\n"
		"  --supernodes N        supernodes (default 100)\n"
		"  --clients-per-sn C    lightweight clients per supernode (default 10)\n"
		"  --k K                 k-bucket size, 1..256 (default 0 = the supernode's 256)\n"
		"  --alpha A             lookup parallelism; the supernode has it fixed at 3\n"
		"  --per-prefix P        contacts per /24 per bucket (default 0 = 2)\n"
		"  --paths D             disjoint paths per overlay lookup, 1..4 (default 1)\n"
		"  --churn-per-hour P    percent of supernodes replaced per hour (default 0)\n"
		"  --hours H             measured virtual hours (default 1)\n"
		"  --malicious F         fraction (0..1) or percent (1..100) of bad supernodes\n"
		"  --misbehave drop|lie  what the bad supernodes do (default drop)\n"
		"  --seed S              (default 1)\n"
		"  --lookups L           lookups during the measured hours (default 1000)\n"
		"  --survival-lookups S  users looked up at the end (default min(users, 1000))\n"
		"  --flat-latency        20 ms on every link instead of the location model\n"
		"  --loss P              datagram loss probability (default 0)\n"
		"  --hist PREFIX         write PREFIX.hops and PREFIX.lat (data for plots)\n"
		"  --json                also print JSON lines {\"bench\":\"overlay_sim\",...}\n"
		"  --quiet               no progress lines\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max) {
		fprintf(stderr, "parley-sim: %s must be an integer 0..%" PRIu64 ", not `%s'\n", opt,
			max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_double(const char *opt, const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= max)) {
		fprintf(stderr, "parley-sim: %s must be a number 0..%g, not `%s'\n", opt, max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static void write_hist(const char *prefix, const struct osim_result *r)
{
	char path[4096];
	FILE *f;
	uint64_t tot = 0;

	for (int i = 0; i <= OS_HOPS_MAX; i++)
		tot += r->hop_hist[i];
	snprintf(path, sizeof(path), "%s.hops", prefix);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "# hops count fraction\n");
		for (int i = 0; i <= OS_HOPS_MAX; i++)
			fprintf(f, "%d %" PRIu64 " %.6f\n", i, r->hop_hist[i],
				tot ? (double)r->hop_hist[i] / (double)tot : 0.0);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s.lat", prefix);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "# latency_ms cdf (found lookups, client-observed)\n");
		for (size_t i = 0; i < r->nlat; i++)
			fprintf(f, "%.0f %.6f\n", r->lat[i], (double)(i + 1) / (double)r->nlat);
		fclose(f);
	}
}

static void json_fig(const char *tag, const char *fig, double v, const char *unit)
{
	printf("{\"bench\":\"overlay_sim\",\"figure\":\"%s.%s\",\"value\":%.6g,\"unit\":\"%s\"}\n",
	       tag, fig, v, unit);
}

int main(int argc, char **argv)
{
	struct osim_config cfg;
	struct osim_result r;
	const char *hist = NULL;
	bool json = false;
	char tag[128];
	double cpu_s = 0, max_rss_mib = 0;
	uint64_t v;
	double d;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.n_sn = 100;
	cfg.clients_per_sn = 10;
	cfg.hours = 1;
	cfg.misbehave = PN_SN_DROP;
	cfg.seed = 1;
	cfg.lookups = 1000;
	cfg.progress = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (!strcmp(a, "--json")) {
			json = true;
			takes = false;
		} else if (!strcmp(a, "--quiet")) {
			cfg.progress = false;
			takes = false;
		} else if (!strcmp(a, "--flat-latency")) {
			cfg.flat_latency = true;
			takes = false;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!takes)
			continue;
		if (!val) {
			fprintf(stderr, "parley-sim: `%s' needs a value (or is unknown)\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		rc = 0;
		if (!strcmp(a, "--supernodes")) {
			rc = parse_u64(a, val, 1000000, &v);
			cfg.n_sn = (unsigned)v;
		} else if (!strcmp(a, "--clients-per-sn")) {
			rc = parse_u64(a, val, 1000, &v);
			cfg.clients_per_sn = (unsigned)v;
		} else if (!strcmp(a, "--k")) {
			rc = parse_u64(a, val, 256, &v);
			cfg.k = (unsigned)v;
		} else if (!strcmp(a, "--alpha")) {
			rc = parse_u64(a, val, 64, &v);
			if (!rc && v != 3) {
				fprintf(stderr, "parley-sim: --alpha `%s': the supernode's lookup "
						"parallelism is fixed at 3 (SN_ALPHA)\n", val);
				rc = -EINVAL;
			}
		} else if (!strcmp(a, "--paths")) {
			rc = parse_u64(a, val, 4, &v);
			cfg.paths = (unsigned)v;
		} else if (!strcmp(a, "--per-prefix")) {
			rc = parse_u64(a, val, 256, &v);
			cfg.per_prefix = (unsigned)v;
		} else if (!strcmp(a, "--churn-per-hour")) {
			rc = parse_double(a, val, 1000, &cfg.churn_per_hour);
		} else if (!strcmp(a, "--hours")) {
			rc = parse_double(a, val, 1000, &cfg.hours);
		} else if (!strcmp(a, "--malicious")) {
			rc = parse_double(a, val, 100, &d);
			cfg.malicious = d > 1 ? d / 100.0 : d;
		} else if (!strcmp(a, "--misbehave")) {
			if (!strcmp(val, "drop")) {
				cfg.misbehave = PN_SN_DROP;
			} else if (!strcmp(val, "lie")) {
				cfg.misbehave = PN_SN_LIE;
			} else {
				fprintf(stderr, "parley-sim: --misbehave is drop or lie, not `%s'\n", val);
				rc = -EINVAL;
			}
		} else if (!strcmp(a, "--seed")) {
			rc = parse_u64(a, val, UINT64_MAX, &cfg.seed);
		} else if (!strcmp(a, "--lookups")) {
			rc = parse_u64(a, val, 100000000, &v);
			cfg.lookups = (unsigned)v;
		} else if (!strcmp(a, "--survival-lookups")) {
			rc = parse_u64(a, val, 100000000, &v);
			cfg.survival_lookups = (unsigned)v;
		} else if (!strcmp(a, "--loss")) {
			rc = parse_double(a, val, 1, &cfg.loss);
		} else if (!strcmp(a, "--hist")) {
			hist = val;
		} else {
			fprintf(stderr, "parley-sim: unknown option `%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (rc)
			return 2;
	}
	if (!cfg.n_sn || !cfg.clients_per_sn) {
		fprintf(stderr, "parley-sim: --supernodes and --clients-per-sn must be at least 1\n");
		return 2;
	}
	pn_log_set_level(PN_LOG_ERROR); /* attach/detach lines would drown the output */
	rc = osim_run(&cfg, &r);
	if (rc) {
		fprintf(stderr, "parley-sim: run failed (%s)\n", strerror(-rc));
		osim_result_free(&r);
		return 1;
	}
	printf("parley-sim: %u supernodes x %u clients, k=%u, paths %u, churn %g%%/h over %g h, "
	       "malicious %g%% (%s), seed %" PRIu64 "\n",
	       cfg.n_sn, cfg.clients_per_sn, cfg.k ? cfg.k : 256, cfg.paths ? cfg.paths : 1,
	       cfg.churn_per_hour, cfg.hours,
	       cfg.malicious * 100, cfg.misbehave == PN_SN_LIE ? "lie" : "drop", cfg.seed);
	printf("  one-way delay between supernodes: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n",
	       r.one_way_p50, r.one_way_p90, r.one_way_p99);
	printf("  lookups %" PRIu64 ": found %" PRIu64 " (%.3f%%), first attempt %.3f%%, "
	       "not found %" PRIu64 ", timed out %" PRIu64 ", retried %" PRIu64 "\n",
	       r.lookups, r.found, 100 * r.success, 100 * r.success_first, r.not_found,
	       r.timeouts, r.retried);
	printf("  overlay hops (found): mean %.2f, p50 %u, p90 %u, p99 %u; histogram", r.hops_mean,
	       r.hops_p50, r.hops_p90, r.hops_p99);
	for (int i = 0; i <= OS_HOPS_MAX; i++)
		if (r.hop_hist[i])
			printf(" %d:%" PRIu64, i, r.hop_hist[i]);
	printf("\n  latency (client-observed, found): p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n",
	       r.lat_p50, r.lat_p90, r.lat_p99);
	printf("  record survival: %" PRIu64 "/%" PRIu64 " (%.3f%%)\n", r.survival_found,
	       r.survival_n, 100 * r.survival);
	printf("  supernodes started %" PRIu64 ", killed %" PRIu64 "; client re-attachments %" PRIu64
	       "; publishes %" PRIu64 " (%" PRIu64 " acknowledged)\n",
	       r.sn_started, r.sn_killed, r.reattaches, r.publishes, r.publish_ok);
	printf("  supernodes alive at the end: %" PRIu64 " bad packets, %" PRIu64
	       " overlay sessions opened, %" PRIu64 " overlay lookups done\n",
	       r.sn_bad_packets, r.sn_peers, r.sn_lookups_done);
	printf("  routing table: %.1f contacts per supernode on average (%.1f %% of the others)\n",
	       r.contacts_mean, cfg.n_sn > 1 ? 100.0 * r.contacts_mean / (cfg.n_sn - 1) : 0);
	printf("  %" PRIu64 " events in %.1f s wall (%.0f events/s), %.1f virtual minutes\n",
	       r.events, r.wall_s, r.events_per_s, (double)r.virtual_ms / 60000.0);
	{
		/* CPU rather than wall: the machine is shared, and CPU per virtual minute is
		 * what decides whether a size fits. */
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		max_rss_mib = (double)ru.ru_maxrss / 1024.0;
		printf("  %.1f s CPU (%.2f s per virtual minute), peak RSS %.0f MiB\n", cpu_s,
		       r.virtual_ms ? cpu_s * 60000.0 / (double)r.virtual_ms : 0, max_rss_mib);
	}
	if (hist)
		write_hist(hist, &r);
	if (json) {
		int tl = snprintf(tag, sizeof(tag), "n%u_k%u_churn%g_mal%g%s", cfg.n_sn,
				  cfg.k ? cfg.k : 256, cfg.churn_per_hour, cfg.malicious * 100,
				  cfg.malicious > 0 ? (cfg.misbehave == PN_SN_LIE ? "lie" : "drop")
						    : "");
		/* runs that differ only in these must not share a tag */
		if (cfg.per_prefix && tl > 0 && (size_t)tl < sizeof(tag))
			tl += snprintf(tag + tl, sizeof(tag) - (size_t)tl, "_pp%u", cfg.per_prefix);
		if (cfg.paths > 1 && tl > 0 && (size_t)tl < sizeof(tag))
			tl += snprintf(tag + tl, sizeof(tag) - (size_t)tl, "_d%u", cfg.paths);
		if (cfg.clients_per_sn != 10 && tl > 0 && (size_t)tl < sizeof(tag))
			snprintf(tag + tl, sizeof(tag) - (size_t)tl, "_c%u", cfg.clients_per_sn);
		json_fig(tag, "lookup_success", r.success, "fraction");
		json_fig(tag, "lookup_success_first_attempt", r.success_first, "fraction");
		json_fig(tag, "lookups", (double)r.lookups, "count");
		json_fig(tag, "hops_mean", r.hops_mean, "hops");
		json_fig(tag, "hops_p50", r.hops_p50, "hops");
		json_fig(tag, "hops_p90", r.hops_p90, "hops");
		json_fig(tag, "hops_p99", r.hops_p99, "hops");
		json_fig(tag, "latency_ms_p50", r.lat_p50, "ms");
		json_fig(tag, "latency_ms_p90", r.lat_p90, "ms");
		json_fig(tag, "latency_ms_p99", r.lat_p99, "ms");
		json_fig(tag, "record_survival", r.survival, "fraction");
		json_fig(tag, "table_contacts_mean", r.contacts_mean, "contacts");
		json_fig(tag, "first_round_share",
			 r.found ? (double)(r.hop_hist[0] + r.hop_hist[1]) / (double)r.found : 0,
			 "fraction");
		json_fig(tag, "one_way_ms_p50", r.one_way_p50, "ms");
		json_fig(tag, "events_per_s", r.events_per_s, "1/s");
		json_fig(tag, "wall_s", r.wall_s, "s");
		json_fig(tag, "cpu_s", cpu_s, "s");
		json_fig(tag, "cpu_s_per_virtual_min",
			 r.virtual_ms ? cpu_s * 60000.0 / (double)r.virtual_ms : 0, "s");
		json_fig(tag, "peak_rss", max_rss_mib, "MiB");
		json_fig(tag, "virtual_min", (double)r.virtual_ms / 60000.0, "min");
	}
	osim_result_free(&r);
	return 0;
}

#endif
