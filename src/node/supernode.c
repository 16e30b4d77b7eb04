/* The supernode node (docs/PROTOCOL.md "Attachment"): attaches devices over Noise, keeps
 * their signed records, answers lookups and forwards end-to-end envelopes it cannot read.
 *
 * Trust rules: a device attaches only with a certificate from the network root whose X25519
 * key is the one the Noise handshake proved; the first handshake message carries a
 * timestamp that must grow per device (a replayed message 1 is refused); a session's
 * address follows only authenticated DATA packets (WireGuard's roaming rule), so a forged
 * or replayed packet cannot redirect anyone's traffic. */
#include "parley/supernode.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/hex.h"
#include "base/log.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "nat/stun.h"
#include "overlay/kad.h"
#include "overlay/mbstore.h"
#include "overlay/recstore.h"
#include "session/link.h"
#include "session/ltab.h"
#include "wire/wire.h"
#include "wire/mbox.h"

enum {
	SN_IDLE_MS = 75000,  /* clients ping every 20 s; three missed pings detach them */
	SN_PENDING_MS = 5000,
	SN_HOUSEKEEP_MS = 1000,
	SN_DEV_BUCKETS = 4096,
	SN_FWD_PER_S = 2000, /* per attached device */
	/* overlay */
	SN_R = 3,             /* replicas of a record: survives r-1 = 2 simultaneous failures */
	SN_ALPHA = 3,
	SN_LOOKUP_K = 8,
	SN_NODES_MAX = 16,    /* contacts per NODES answer (fits one frame) */
	SN_RPC_TIMEOUT_MS = 1000,
	SN_OP_TIMEOUT_MS = 4000,
	SN_REFRESH_MS = 30000,
	SN_OUTQ = 8,          /* frames queued while an outbound session comes up */
	SN_MAX_FAILS = 3,
	SN_OUT_IDLE_MS = 60000, /* outbound overlay sessions idle this long are re-made */
	SN_REPLICATE_PER_REFRESH = 32, /* records re-stored on the current r closest per refresh */
	SN_OUT_BUCKETS = 512, /* hash chains for outbound sessions, by key and by local index */
	SN_RPC_BUCKETS = 64,  /* unanswered requests by request id */
	SN_SWEEP_MS = 10000,  /* how often idle outbound structs are freed */
	SN_CERT_CACHE = 4096, /* certificates whose root signature we checked (direct-mapped) */
	SN_BUCKET_STALE_MS = 600000, /* a k-bucket no lookup went through for this long... */
	SN_BUCKET_REFRESH_PER_ROUND = 3, /* ...gets a random-id lookup, a few per refresh round */
	/* k-bucket size. Supernodes are few and stable, so the table can hold a large share
	 * of the network: at 1,000 supernodes k = 256 keeps ~68 % of them and ends 78 % of
	 * lookups in the first round (k = 32: ~19 % and 30 %; docs/BENCHMARKS.md). The table
	 * costs ~100 bytes per contact. */
	SN_K = 256,
	SN_SELFTEST_TRIES = 5,      /* open policy: STUN probes before giving up... */
	SN_SELFTEST_RETRY_MS = 1000, /* ...one a second, to the network file's supernodes */
};

/* Our outbound session to another supernode: requests (and forwarded envelopes) go out
 * on it, answers come back on it. The peer answers on its inbound (ltab) session. */
struct sn_out {
	struct sn_out *next;
	struct sn_out *key_next, *idx_next, *hs_next; /* key chain, index chain, handshaking */
	uint32_t hashed_idx; /* the local index it is chained under (0: none) */
	bool in_hs;          /* on sn->hs_outs */
	uint8_t key[32], id[32];
	struct pn_addr addr;
	struct pn_link link;
	uint8_t *q[SN_OUTQ];
	size_t qlen[SN_OUTQ];
	unsigned qn;
};

enum op_kind { OP_CLIENT_LOOKUP = 1, OP_PUBLISH, OP_JOIN, OP_MBOX };
struct sn_mbjob;

/* An iterative overlay lookup and what to do with its result. */
struct sn_op {
	struct sn_op *next;
	enum op_kind kind;
	struct pn_kad_lookup *lk; /* lk[0..npaths): one lookup per disjoint path */
	unsigned npaths;
	char username[PN_CERT_NAME_MAX + 1];
	uint8_t *record; /* OP_PUBLISH: the record to store on the r closest */
	size_t record_len;
	uint32_t client_idx, client_req; /* OP_CLIENT_LOOKUP: whom to answer */
	int refresh_bucket;  /* OP_JOIN refreshing a k-bucket: its index (-1: none)... */
	unsigned bucket_n0;  /* ...and how many contacts it held when the lookup started */
	uint64_t deadline, started;
	struct sn_mbjob *mb; /* OP_MBOX: the mailbox job waiting for the r closest */
};

struct sn_rpc {
	struct sn_rpc *next, **pprev;   /* sn->rpcs, newest first */
	struct sn_rpc *hnext, **hpprev; /* sn->rpc_by_req chain */
	uint32_t req;
	uint8_t to[32], to_key[32];
	struct sn_op *op; /* NULL for fire-and-forget (STORE) */
	unsigned path;    /* which of op's disjoint paths asked */
	uint64_t deadline;
};

/* An attached device; owned by its ltab entry (user pointer). */
struct sn_dev {
	struct sn_dev *next; /* device-id hash chain */
	uint8_t device_id[16];
	char username[PN_CERT_NAME_MAX + 1];
	uint32_t idx;        /* its link's local index */
	double fwd_tokens;
	uint64_t fwd_last;
};

/* Last handshake timestamp per device, kept beyond the session so a replayed message 1
 * from an old session is refused too. Small direct-mapped cache; a collision only forgets
 * an older timestamp, and the address-follows-DATA rule keeps that harmless. */
struct ts_slot {
	uint8_t device_id[16];
	uint64_t ts;
};

struct pn_supernode {
	struct pn_env env;
	struct pn_network net;
	struct pn_keys me;
	uint8_t cert[PN_CERT_MAX];
	size_t cert_len;
	struct pn_addr public_addr;
	struct pn_ltab links;
	struct sn_dev *devs[SN_DEV_BUCKETS];
	struct ts_slot ts_cache[SN_DEV_BUCKETS];
	struct pn_recstore *recs;
	uint64_t next_housekeep;
	/* overlay */
	struct pn_kad *kad;
	uint8_t id[32];
	struct sn_out *outs; /* all of them; also chained by key and by local index */
	struct sn_out *out_by_key[SN_OUT_BUCKETS], *out_by_idx[SN_OUT_BUCKETS];
	struct sn_out *hs_outs; /* those that sent HS1 (pruned lazily when no longer waiting) */
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	/* keyed BLAKE2b-128 of certificate bytes: 64 KB, room for the peers of a large network */
	uint8_t cert_seen[SN_CERT_CACHE][16];
	struct sn_op *ops;
	struct sn_rpc *rpcs;
	struct sn_rpc *rpc_by_req[SN_RPC_BUCKETS];
	/* The earliest deadline of the rpcs, ops and handshaking outs, kept as events add
	 * them (a node's deadline is read after every event it handles). It may be too early
	 * after a removal, which costs one tick that finds nothing due; ov_dirty asks for a
	 * rescan when the removed one held the minimum. */
	uint64_t ov_deadline, next_sweep;
	bool ov_dirty;
	uint32_t next_req;
	uint64_t next_refresh, last_hs_ts;
	int misbehave;
	unsigned paths; /* disjoint paths per lookup */
	/* Open policy, no certificate: the capable-node self-test (PN_SN_SELFTEST_*). */
	int selftest;
	uint8_t selftest_tid[12];
	unsigned selftest_tries;
	uint64_t selftest_next;
	unsigned replicate_cursor;
	uint64_t reset_window;
	unsigned resets_in_window;
	void (*lookup_hook)(void *arg, bool found, unsigned hops, uint64_t ms);
	void *lookup_hook_arg;
	struct pn_supernode_stats st;
	void (*fwd_hook)(void *arg, const uint8_t *buf, size_t len);
	void *fwd_hook_arg;
	/* mailboxes: our share of them, and the jobs we run for attached devices */
	struct pn_mbstore *mbs;
	struct sn_mbjob *mbjobs;
	struct sn_mbcache *mb_cache; /* SN_MB_CACHE slots, allocated on first use */
	unsigned mb_cursor;
	uint64_t mb_next_expire;
};

static struct sn_op *op_new(struct pn_supernode *sn, enum op_kind kind, const uint8_t target[32]);
static void op_step(struct pn_supernode *sn, struct sn_op *op);
static void op_unlink(struct pn_supernode *sn, struct sn_op *op);
static void rpc_del(struct pn_supernode *sn, struct sn_rpc *r);
static void out_free(struct pn_supernode *sn, struct sn_out **pp);
static int sn_cert_verify(struct pn_supernode *sn, const struct pn_cert *c, const uint8_t *raw,
			  size_t len, uint8_t flags);
static void mb_on_client(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d, uint8_t type,
			 struct pn_rd *r);
static bool mb_on_request(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f, size_t n);
static void mb_on_answer(struct pn_supernode *sn, struct sn_out *o, const uint8_t *f, size_t n);
static void mb_targets(struct pn_supernode *sn, struct sn_mbjob *j, const struct pn_kad_contact *best,
		       size_t n);
static void mb_lookup_done(struct pn_supernode *sn, struct sn_mbjob *j,
			   const struct pn_kad_contact *best, size_t n);
static void mb_tick(struct pn_supernode *sn, uint64_t now);
static uint64_t mb_deadline(struct pn_supernode *sn);
static void mb_free_all(struct pn_supernode *sn);
static void mb_replicate(struct pn_supernode *sn);

static uint32_t dev_bucket(const uint8_t id[16])
{
	return ((uint32_t)id[0] | (uint32_t)id[1] << 8 | (uint32_t)id[2] << 16) % SN_DEV_BUCKETS;
}

static struct sn_dev *dev_find(struct pn_supernode *sn, const uint8_t id[16])
{
	struct sn_dev *d = sn->devs[dev_bucket(id)];
	for (; d; d = d->next)
		if (memcmp(d->device_id, id, 16) == 0)
			return d;
	return NULL;
}

static void dev_unlink(struct pn_supernode *sn, struct sn_dev *d)
{
	struct sn_dev **p = &sn->devs[dev_bucket(d->device_id)];
	for (; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			return;
		}
	}
}

/* ltab eviction: the session is gone, so is the attachment and its record here. */
static void on_evict(void *arg, struct pn_lent *e)
{
	struct pn_supernode *sn = arg;
	struct sn_dev *d = e->user;

	if (!d)
		return;
	pn_info("detached %s", d->username);
	dev_unlink(sn, d);
	pn_recstore_del(sn->recs, d->username, d->device_id);
	sn->st.clients--;
	free(d);
	e->user = NULL;
}

int pn_supernode_new(struct pn_supernode **out, const struct pn_supernode_config *cfg)
{
	struct pn_supernode *sn;
	struct pn_cert c;
	int rc;

	/* An open network (policy = open) lets a host serve without a certificate; an
	 * enrolled one never does. */
	if ((!cfg->cert || cfg->cert_len == 0) ? !cfg->net->open_policy : cfg->cert_len > PN_CERT_MAX)
		return -EINVAL;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->env = *cfg->env;
	sn->net = *cfg->net;
	sn->public_addr = cfg->public_addr;
	sn->cert_len = cfg->cert ? cfg->cert_len : 0;
	if (sn->cert_len)
		memcpy(sn->cert, cfg->cert, sn->cert_len);
	rc = pn_keys_from_seed(&sn->me, cfg->seed);
	if (rc)
		goto fail;
	/* Refuse to start with a certificate that is not ours or not from this network. */
	if (sn->cert_len) {
		rc = pn_cert_decode(&c, sn->cert, sn->cert_len);
		if (!rc)
			rc = pn_cert_verify(&c, sn->net.root_pk, sn->env.wall_s(sn->env.ctx),
					    PN_CERT_SUPERNODE);
		if (!rc && !pn_ct_eq(c.dh_pk, sn->me.dh_pk, 32))
			rc = -EKEYREJECTED;
		if (rc)
			goto fail;
	}
	rc = pn_ltab_init(&sn->links, cfg->max_clients ? cfg->max_clients : 10000);
	if (rc)
		goto fail;
	sn->links.evict_cb = on_evict;
	sn->links.evict_arg = sn;
	{
		uint8_t hk[16];
		sn->env.random(sn->env.ctx, hk, sizeof(hk));
		rc = pn_recstore_new(&sn->recs, hk);
	}
	if (!rc)
		rc = pn_mbstore_new(&sn->mbs);
	if (!rc && cfg->mailbox_db) {
		struct pn_mbs_stats ms;
		rc = pn_mbstore_open_db(sn->mbs, cfg->mailbox_db, sn->env.wall_s(sn->env.ctx));
		pn_mbstore_stats(sn->mbs, &ms);
		if (!rc)
			pn_info("mailboxes: %llu entries in %llu mailboxes loaded from %s",
				(unsigned long long)ms.entries, (unsigned long long)ms.mailboxes,
				cfg->mailbox_db);
	}
	if (rc)
		goto fail;
	{
		struct pn_kad_config kc;
		memset(&kc, 0, sizeof(kc));
		pn_kad_id_of(sn->id, sn->me.dh_pk);
		memcpy(kc.self_id, sn->id, 32);
		/* Loopback and test networks put every supernode in one /24. */
		kc.per_prefix = cfg->kad_per_prefix ? cfg->kad_per_prefix : 2;
		kc.k = cfg->kad_k ? cfg->kad_k : SN_K;
		sn->misbehave = cfg->misbehave;
		sn->paths = cfg->lookup_paths ? cfg->lookup_paths : 1;
		if (sn->paths > PN_KAD_PATHS_MAX)
			sn->paths = PN_KAD_PATHS_MAX;
		rc = pn_kad_new(&sn->kad, &kc);
		if (rc)
			goto fail;
		for (unsigned i = 0; i < sn->net.n_supernodes; i++) {
			struct pn_kad_contact kcn;
			if (!sn->net.supernodes[i].has_key ||
			    pn_ct_eq(sn->net.supernodes[i].key, sn->me.dh_pk, 32))
				continue;
			memset(&kcn, 0, sizeof(kcn));
			memcpy(kcn.key, sn->net.supernodes[i].key, 32);
			pn_kad_id_of(kcn.id, kcn.key);
			kcn.addr = sn->net.supernodes[i].addr;
			pn_kad_seen(sn->kad, &kcn, false, 0);
		}
	}
	/* An uncertified supernode of an open network must first show it is a capable node:
	 * the address it would announce is the one the network sees. With no other supernode
	 * to ask (the first of a network) there is nobody to test against. */
	if (sn->cert_len == 0) {
		sn->selftest = PN_SN_SELFTEST_PASSED;
		for (unsigned i = 0; i < sn->net.n_supernodes; i++)
			if (!sn->net.supernodes[i].has_key ||
			    !pn_ct_eq(sn->net.supernodes[i].key, sn->me.dh_pk, 32))
				sn->selftest = PN_SN_SELFTEST_PENDING;
	}
	/* Keyed from our secret, not from env->random, so the random stream (and every
	 * simulation) stays as it was; peers cannot aim keys at one chain. */
	crypto_generichash(sn->hash_key, sizeof(sn->hash_key), (const uint8_t *)"sn-out-hash",
			   11, sn->me.dh_sk, 32);
	sn->env.random(sn->env.ctx, &sn->next_req, sizeof(sn->next_req));
	sn->ov_deadline = UINT64_MAX;
	*out = sn;
	return 0;
fail:
	pn_supernode_free(sn);
	return rc;
}

void pn_supernode_free(struct pn_supernode *sn)
{
	if (!sn)
		return;
	pn_ltab_fini(&sn->links);
	pn_recstore_free(sn->recs);
	mb_free_all(sn);
	free(sn->mb_cache);
	pn_mbstore_free(sn->mbs);
	pn_kad_free(sn->kad);
	while (sn->outs)
		out_free(sn, &sn->outs);
	while (sn->ops) {
		struct sn_op *op = sn->ops;
		sn->ops = op->next;
		free(op->record);
		free(op->lk);
		free(op);
	}
	while (sn->rpcs) {
		struct sn_rpc *r = sn->rpcs;
		rpc_del(sn, r);
		free(r);
	}
	pn_keys_wipe(&sn->me);
	free(sn);
}

void pn_supernode_stats(const struct pn_supernode *sn, struct pn_supernode_stats *st)
{
	struct pn_mbs_stats ms;

	*st = sn->st;
	st->records = pn_recstore_count(sn->recs);
	st->contacts = pn_kad_count(sn->kad);
	st->self_test = (uint64_t)sn->selftest;
	pn_mbstore_stats(sn->mbs, &ms);
	st->mb_entries = ms.entries;
	st->mb_bytes = ms.bytes;
	st->mb_mailboxes = ms.mailboxes;
	st->mb_quota_refused = ms.quota_refused;
	st->mb_expired = ms.expired;
	st->mb_deleted = ms.deleted;
	st->mb_duplicates = ms.duplicates;
}

size_t pn_supernode_mailbox_entries(const struct pn_supernode *sn, const char *owner)
{
	return pn_mbstore_entries(sn->mbs, owner);
}

void pn_supernode_set_lookup_hook(struct pn_supernode *sn,
				  void (*hook)(void *arg, bool found, unsigned hops, uint64_t ms),
				  void *arg)
{
	sn->lookup_hook = hook;
	sn->lookup_hook_arg = arg;
}

void pn_supernode_set_forward_hook(struct pn_supernode *sn,
				   void (*hook)(void *arg, const uint8_t *buf, size_t len), void *arg)
{
	sn->fwd_hook = hook;
	sn->fwd_hook_arg = arg;
}

static uint64_t now_ms(struct pn_supernode *sn)
{
	return sn->env.now_ms(sn->env.ctx);
}

static void send_frame(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	if (pn_link_seal(&e->link, f, n, now_ms(sn), pkt, sizeof(pkt), &len) == 0)
		sn->env.send(sn->env.ctx, &e->addr, pkt, len);
}

/* The handshake finished: check the device certificate and attach. */
static int attach(struct pn_supernode *sn, struct pn_lent *e)
{
	struct pn_cert c;
	struct sn_dev *d, *old;
	struct ts_slot *ts;
	uint8_t f[64];
	struct pn_wr w;
	int rc;

	rc = pn_cert_decode(&c, e->link.peer_cert, e->link.peer_cert_len);
	if (!rc)
		rc = sn_cert_verify(sn, &c, e->link.peer_cert, e->link.peer_cert_len, PN_CERT_DEVICE);
	if (!rc && !pn_ct_eq(c.dh_pk, e->link.remote_static, 32))
		rc = -EKEYREJECTED;
	if (rc) {
		sn->st.rejected_certs++;
		pn_warn("refused attachment: bad device certificate (%d)", rc);
		return rc;
	}
	ts = &sn->ts_cache[dev_bucket(c.device_id)];
	if (memcmp(ts->device_id, c.device_id, 16) == 0 && e->link.peer_ts <= ts->ts) {
		sn->st.replays++;
		return -EALREADY;
	}
	memcpy(ts->device_id, c.device_id, 16);
	ts->ts = e->link.peer_ts;
	/* A device has one attachment here: a new session replaces the old one. */
	old = dev_find(sn, c.device_id);
	if (old) {
		struct pn_lent *oe = pn_ltab_find(&sn->links, old->idx);
		if (oe)
			pn_ltab_remove(&sn->links, oe);
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	memcpy(d->device_id, c.device_id, 16);
	strcpy(d->username, c.name);
	d->idx = e->link.local_idx;
	d->fwd_tokens = SN_FWD_PER_S;
	d->fwd_last = now_ms(sn);
	d->next = sn->devs[dev_bucket(d->device_id)];
	sn->devs[dev_bucket(d->device_id)] = d;
	e->user = d;
	sn->st.clients++;
	pn_info("attached %s", d->username);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_ATTACHED);
	pn_addr_write(&w, &e->addr);
	send_frame(sn, e, f, w.len);
	return 0;
}

static void send_result(struct pn_supernode *sn, struct pn_lent *e, uint32_t req, uint8_t st,
			const char *msg)
{
	uint8_t f[300];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_RESULT);
	pn_wr_u32(&w, req);
	pn_wr_u8(&w, st);
	pn_wr_str8(&w, msg);
	if (!w.err)
		send_frame(sn, e, f, w.len);
}

/* pn_record_decode_verify, without the two signature checks when our store already holds
 * these exact bytes for that device (they were verified when stored): re-replication sends
 * every record again to replicas that mostly have it, and verifying cost more than all the
 * rest of a supernode's work in the simulator. The time checks are always redone. */
static int record_verify(struct pn_supernode *sn, struct pn_record *pr, const uint8_t *rec,
			 size_t n)
{
	uint64_t now_s = sn->env.wall_s(sn->env.ctx);
	int rc = pn_record_decode_known(pr, rec, n, now_s);

	if (rc != -EBADMSG && pn_recstore_holds(sn->recs, pr->cert.name, pr->cert.device_id, rec, n))
		return rc;
	return pn_record_decode_verify(pr, rec, n, sn->net.root_pk, now_s);
}

static void on_publish(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d,
		       struct pn_rd *r)
{
	uint32_t req;
	const uint8_t *rec;
	size_t n;
	struct pn_record pr;
	int rc;

	pn_rd_u32(r, &req);
	pn_rd_vec16(r, &rec, &n, PN_REC_MAX);
	if (pn_rd_end(r)) {
		sn->st.bad_packets++;
		return;
	}
	rc = record_verify(sn, &pr, rec, n);
	/* Only the device itself publishes its record through its own attachment. */
	if (!rc && memcmp(pr.cert.device_id, d->device_id, 16) != 0)
		rc = -EPERM;
	if (rc) {
		sn->st.bad_packets++;
		send_result(sn, e, req, PN_ST_FORBIDDEN, "record rejected");
		return;
	}
	rc = pn_recstore_put(sn->recs, &pr, rec, n);
	if (rc == 0 && pn_kad_count(sn->kad) > 0) {
		/* Also onto the r supernodes closest to the user's key. */
		uint8_t key[32];
		struct sn_op *op;
		pn_user_key(key, pr.cert.name);
		op = op_new(sn, OP_PUBLISH, key);
		if (op && (op->record = malloc(n))) {
			memcpy(op->record, rec, n);
			op->record_len = n;
			op_step(sn, op);
		} else if (op) {
			op_unlink(sn, op);
		}
	}
	if (rc == -ESTALE)
		send_result(sn, e, req, PN_ST_STALE, "older than the stored record");
	else if (rc)
		send_result(sn, e, req, PN_ST_INTERNAL, "cannot store the record");
	else
		send_result(sn, e, req, PN_ST_OK, "published");
}

struct lookup_ctx {
	struct pn_wr *w;
	uint8_t n;
};

static void lookup_add(void *arg, const struct pn_stored_rec *r)
{
	struct lookup_ctx *lc = arg;
	struct pn_wr probe = *lc->w;

	/* Stop at the frame size: what fits is answered. */
	if (pn_wr_vec16(&probe, r->bytes, r->len))
		return;
	*lc->w = probe;
	lc->n++;
}

static void on_lookup(struct pn_supernode *sn, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char name[PN_CERT_NAME_MAX + 1];
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;
	struct lookup_ctx lc;
	size_t npos;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, name, sizeof(name));
	if (pn_rd_end(r)) {
		sn->st.bad_packets++;
		return;
	}
	sn->st.lookups++;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOOKUP_RESULT);
	pn_wr_u32(&w, req);
	pn_wr_u8(&w, PN_ST_OK);
	npos = w.len;
	pn_wr_u8(&w, 0);
	lc.w = &w;
	lc.n = 0;
	pn_recstore_get(sn->recs, name, sn->env.wall_s(sn->env.ctx), lookup_add, &lc);
	f[npos] = lc.n;
	if (lc.n == 0 && pn_kad_count(sn->kad) > 0) {
		/* Not here: ask the overlay (the r supernodes closest to the user's key). */
		uint8_t key[32];
		struct sn_op *op;
		pn_user_key(key, name);
		op = op_new(sn, OP_CLIENT_LOOKUP, key);
		if (op) {
			sn->st.overlay_lookups++;
			strcpy(op->username, name);
			op->client_idx = e->link.local_idx;
			op->client_req = req;
			op_step(sn, op);
			return;
		}
	}
	if (lc.n == 0)
		f[npos - 1] = PN_ST_NOT_FOUND;
	send_frame(sn, e, f, w.len);
}

/* Per-device token bucket: a client cannot turn us into a flood amplifier. */
static bool fwd_allow(struct pn_supernode *sn, struct sn_dev *d)
{
	uint64_t now = now_ms(sn);

	d->fwd_tokens += (double)(now - d->fwd_last) * SN_FWD_PER_S / 1000.0;
	if (d->fwd_tokens > SN_FWD_PER_S)
		d->fwd_tokens = SN_FWD_PER_S;
	d->fwd_last = now;
	if (d->fwd_tokens < 1.0) {
		sn->st.rate_limited++;
		return false;
	}
	d->fwd_tokens -= 1.0;
	return true;
}

static void on_forward(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d,
		       struct pn_rd *r)
{
	uint8_t dst[16], f[PN_PKT_RX_MAX];
	const uint8_t *pkt;
	size_t n;
	struct sn_dev *to;
	struct pn_lent *te;
	struct pn_wr w;

	pn_rd_bytes(r, dst, 16);
	pn_rd_vec16(r, &pkt, &n, PN_PKT_MAX);
	if (pn_rd_end(r)) {
		sn->st.bad_packets++;
		return;
	}
	if (!fwd_allow(sn, d))
		return;
	to = dev_find(sn, dst);
	te = to ? pn_ltab_find(&sn->links, to->idx) : NULL;
	pn_wr_init(&w, f, sizeof(f));
	if (!te) {
		pn_wr_u8(&w, PN_F_UNREACHABLE);
		pn_wr_bytes(&w, dst, 16);
		pn_wr_u8(&w, 1);
		send_frame(sn, e, f, w.len);
		return;
	}
	if (sn->fwd_hook)
		sn->fwd_hook(sn->fwd_hook_arg, pkt, n);
	pn_wr_u8(&w, PN_F_DELIVER);
	pn_wr_bytes(&w, d->device_id, 16);
	pn_wr_vec16(&w, pkt, n);
	if (w.err)
		return;
	sn->st.forwarded++;
	sn->st.forward_bytes += n;
	send_frame(sn, te, f, w.len);
}

/* ---- overlay: sessions to other supernodes --------------------------------------------- */

static uint32_t new_req(struct pn_supernode *sn)
{
	if (++sn->next_req == 0)
		sn->next_req = 1;
	return sn->next_req;
}

static void ov_deadline_add(struct pn_supernode *sn, uint64_t t)
{
	if (t < sn->ov_deadline)
		sn->ov_deadline = t;
}

static void ov_deadline_del(struct pn_supernode *sn, uint64_t t)
{
	if (t <= sn->ov_deadline)
		sn->ov_dirty = true;
}

static void rpc_add(struct pn_supernode *sn, struct sn_rpc *r)
{
	struct sn_rpc **b = &sn->rpc_by_req[r->req % SN_RPC_BUCKETS];

	r->next = sn->rpcs;
	if (r->next)
		r->next->pprev = &r->next;
	sn->rpcs = r;
	r->pprev = &sn->rpcs;
	r->hnext = *b;
	if (r->hnext)
		r->hnext->hpprev = &r->hnext;
	*b = r;
	r->hpprev = b;
	ov_deadline_add(sn, r->deadline);
}

/* Unlinks r from both lists; the caller frees it. */
static void rpc_del(struct pn_supernode *sn, struct sn_rpc *r)
{
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	*r->hpprev = r->hnext;
	if (r->hnext)
		r->hnext->hpprev = r->hpprev;
	ov_deadline_del(sn, r->deadline);
}

static struct sn_out **key_chain(struct pn_supernode *sn, const uint8_t key[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint32_t v;

	crypto_shorthash(h, key, 32, sn->hash_key);
	memcpy(&v, h, sizeof(v));
	return &sn->out_by_key[v % SN_OUT_BUCKETS];
}

static struct sn_out *out_find_idx(struct pn_supernode *sn, uint32_t idx)
{
	for (struct sn_out *o = sn->out_by_idx[idx % SN_OUT_BUCKETS]; o; o = o->idx_next)
		if (o->link.state != PN_LINK_IDLE && o->link.local_idx == idx)
			return o;
	return NULL;
}

static struct sn_out *out_find_key(struct pn_supernode *sn, const uint8_t key[32])
{
	for (struct sn_out *o = *key_chain(sn, key); o; o = o->key_next)
		if (memcmp(o->key, key, 32) == 0)
			return o;
	return NULL;
}

static void idx_unchain(struct pn_supernode *sn, struct sn_out *o)
{
	if (!o->hashed_idx)
		return;
	for (struct sn_out **pp = &sn->out_by_idx[o->hashed_idx % SN_OUT_BUCKETS]; *pp;
	     pp = &(*pp)->idx_next) {
		if (*pp == o) {
			*pp = o->idx_next;
			break;
		}
	}
	o->hashed_idx = 0;
}

static struct sn_out *out_get(struct pn_supernode *sn, const uint8_t key[32],
			      const struct pn_addr *addr)
{
	struct sn_out *o = out_find_key(sn, key), **kc;

	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	memcpy(o->key, key, 32);
	pn_kad_id_of(o->id, key);
	o->addr = *addr;
	o->next = sn->outs;
	sn->outs = o;
	kc = key_chain(sn, key);
	o->key_next = *kc;
	*kc = o;
	sn->st.peers++;
	return o;
}

/* Frees an outbound session that holds nothing: no session, nothing queued. At 10,000
 * supernodes a supernode talks to thousands of peers over an hour; keeping a ~1.8 KB
 * struct for every one it ever contacted was most of the simulator's memory. */
static void out_free(struct pn_supernode *sn, struct sn_out **pp)
{
	struct sn_out *o = *pp;

	*pp = o->next;
	idx_unchain(sn, o);
	for (struct sn_out **kp = key_chain(sn, o->key); *kp; kp = &(*kp)->key_next) {
		if (*kp == o) {
			*kp = o->key_next;
			break;
		}
	}
	if (o->in_hs) {
		for (struct sn_out **hp = &sn->hs_outs; *hp; hp = &(*hp)->hs_next) {
			if (*hp == o) {
				*hp = o->hs_next;
				break;
			}
		}
	}
	for (unsigned i = 0; i < o->qn; i++)
		free(o->q[i]);
	pn_link_wipe(&o->link);
	free(o);
}

/* The idle rule of an outbound session: the peer forgets sessions idle for SN_IDLE_MS, so
 * we forget ours a little sooner. */
static bool out_idle(const struct sn_out *o, uint64_t now)
{
	return o->link.state == PN_LINK_UP && now > o->link.last_rx + SN_OUT_IDLE_MS &&
	       now > o->link.last_tx + SN_OUT_IDLE_MS;
}

/* Once a second: wipe idle sessions and free the outbound structs that hold nothing. */
static void out_sweep(struct pn_supernode *sn, uint64_t now)
{
	for (struct sn_out **pp = &sn->outs; *pp;) {
		struct sn_out *o = *pp;
		if (out_idle(o, now))
			pn_link_wipe(&o->link);
		if (o->link.state == PN_LINK_IDLE && o->qn == 0)
			out_free(sn, pp);
		else
			pp = &o->next;
	}
}

static void out_connect(struct pn_supernode *sn, struct sn_out *o)
{
	struct pn_link_params p;
	uint8_t e_sk[32];
	uint32_t idx;
	uint64_t now = now_ms(sn), ts = sn->env.wall_s(sn->env.ctx) * 1000 + now % 1000;

	if (ts <= sn->last_hs_ts)
		ts = sn->last_hs_ts + 1;
	sn->last_hs_ts = ts;
	sn->env.random(sn->env.ctx, e_sk, sizeof(e_sk));
	do
		sn->env.random(sn->env.ctx, &idx, sizeof(idx));
	while (idx == 0);
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_OVERLAY;
	p.s_sk = sn->me.dh_sk;
	p.rs = o->key;
	p.e_sk = e_sk;
	p.local_idx = idx;
	p.timestamp_ms = ts;
	p.cert = sn->cert;
	p.cert_len = sn->cert_len;
	p.now = now;
	if (pn_link_connect(&o->link, &p) == 0) {
		sn->env.send(sn->env.ctx, &o->addr, o->link.hs_pkt, o->link.hs_pkt_len);
		idx_unchain(sn, o);
		o->hashed_idx = idx;
		o->idx_next = sn->out_by_idx[idx % SN_OUT_BUCKETS];
		sn->out_by_idx[idx % SN_OUT_BUCKETS] = o;
		if (!o->in_hs) {
			o->in_hs = true;
			o->hs_next = sn->hs_outs;
			sn->hs_outs = o;
		}
		ov_deadline_add(sn, o->link.hs_sent_at + ((uint64_t)300 << (o->link.hs_tries - 1)));
	}
	sodium_memzero(e_sk, sizeof(e_sk));
}

static void out_seal_send(struct pn_supernode *sn, struct sn_out *o, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	if (pn_link_seal(&o->link, f, n, now_ms(sn), pkt, sizeof(pkt), &len) == 0)
		sn->env.send(sn->env.ctx, &o->addr, pkt, len);
}

static void out_send(struct pn_supernode *sn, struct sn_out *o, const uint8_t *f, size_t n)
{
	if (out_idle(o, now_ms(sn))) /* the sweep runs once a second; never send on a stale one */
		pn_link_wipe(&o->link);
	if (o->link.state == PN_LINK_UP) {
		out_seal_send(sn, o, f, n);
		return;
	}
	if (o->qn == SN_OUTQ) { /* drop the oldest: requests are retried by their lookup */
		free(o->q[0]);
		memmove(o->q, o->q + 1, sizeof(o->q[0]) * (SN_OUTQ - 1));
		memmove(o->qlen, o->qlen + 1, sizeof(o->qlen[0]) * (SN_OUTQ - 1));
		o->qn--;
	}
	o->q[o->qn] = malloc(n);
	if (!o->q[o->qn])
		return;
	memcpy(o->q[o->qn], f, n);
	o->qlen[o->qn++] = n;
	if (o->link.state != PN_LINK_WAIT_HS2)
		out_connect(sn, o);
}

static void out_flush(struct pn_supernode *sn, struct sn_out *o)
{
	for (unsigned i = 0; i < o->qn; i++) {
		out_seal_send(sn, o, o->q[i], o->qlen[i]);
		free(o->q[i]);
	}
	o->qn = 0;
}

/* pn_cert_verify for the certificate in raw[len], skipping the root signature check when
 * these exact bytes passed it before: every overlay session (re-made after a minute of
 * idleness) and every attachment carries a certificate, and the Ed25519 check was a large
 * share of a supernode's work. Time and flags are always checked, in pn_cert_verify's order. */
static int sn_cert_verify(struct pn_supernode *sn, const struct pn_cert *c, const uint8_t *raw,
			  size_t len, uint8_t flags)
{
	uint64_t now_s = sn->env.wall_s(sn->env.ctx);
	uint8_t h[16], *slot;
	int rc;

	/* keyed with our secret: nobody can search for a colliding pair offline */
	crypto_generichash(h, sizeof(h), raw, len, sn->hash_key, sizeof(sn->hash_key));
	slot = sn->cert_seen[(h[0] | (unsigned)h[1] << 8) % SN_CERT_CACHE];
	if (memcmp(slot, h, sizeof(h)) == 0) {
		if (now_s < c->not_before || now_s > c->not_after)
			return -EKEYEXPIRED;
		return (c->flags & flags) == flags ? 0 : -EPERM;
	}
	rc = pn_cert_verify(c, sn->net.root_pk, now_s, flags);
	if (rc != -EBADMSG && rc != -EINVAL)
		memcpy(slot, h, sizeof(h)); /* the signature is good, whatever the time or flags */
	return rc;
}

/* Checks a supernode certificate from a handshake payload against the proved key. */
static int check_sn_cert(struct pn_supernode *sn, const struct pn_link *l)
{
	struct pn_cert c;
	int rc;

	/* Open network: a supernode without a certificate is who its key says; one that
	 * shows a certificate must still show a valid one. */
	if (l->peer_cert_len == 0)
		return sn->net.open_policy ? 0 : -EKEYREJECTED;
	rc = pn_cert_decode(&c, l->peer_cert, l->peer_cert_len);

	if (!rc)
		rc = sn_cert_verify(sn, &c, l->peer_cert, l->peer_cert_len, PN_CERT_SUPERNODE);
	if (!rc && !pn_ct_eq(c.dh_pk, l->remote_static, 32))
		rc = -EKEYREJECTED;
	return rc;
}

/* id: pn_kad_id_of(key) when the caller has it already (NULL: computed here). A NODES
 * answer carries 17 contacts, so hashing each key once instead of twice shows. */
static void learn(struct pn_supernode *sn, const uint8_t key[32], const uint8_t *id,
		  const struct pn_addr *addr, bool seen)
{
	struct pn_kad_contact c;

	if (pn_ct_eq(key, sn->me.dh_pk, 32))
		return;
	memset(&c, 0, sizeof(c));
	memcpy(c.key, key, 32);
	if (id)
		memcpy(c.id, id, 32);
	else
		pn_kad_id_of(c.id, key);
	c.addr = *addr;
	pn_kad_seen(sn->kad, &c, seen, now_ms(sn));
}

/* ---- overlay: iterative lookups ----------------------------------------------------------- */

static struct sn_op *op_new(struct pn_supernode *sn, enum op_kind kind, const uint8_t target[32])
{
	struct sn_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->npaths = sn->paths;
	op->lk = malloc(op->npaths * sizeof(op->lk[0]));
	if (!op->lk) {
		free(op);
		return NULL;
	}
	op->kind = kind;
	op->refresh_bucket = -1;
	op->started = now_ms(sn);
	op->deadline = op->started + SN_OP_TIMEOUT_MS;
	pn_kad_lookup_init_paths(op->lk, op->npaths, sn->kad, target, SN_ALPHA, SN_LOOKUP_K);
	op->next = sn->ops;
	sn->ops = op;
	ov_deadline_add(sn, op->deadline);
	return op;
}

static void op_unlink(struct pn_supernode *sn, struct sn_op *op)
{
	for (struct sn_op **pp = &sn->ops; *pp; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
	ov_deadline_del(sn, op->deadline);
	for (struct sn_rpc *r = sn->rpcs, *next; r; r = next) {
		next = r->next;
		if (r->op == op) {
			rpc_del(sn, r);
			free(r);
		}
	}
	free(op->record);
	free(op->lk);
	free(op);
}

static void send_lookup_result(struct pn_supernode *sn, uint32_t client_idx, uint32_t req,
			       const uint8_t *recs, size_t recs_len, uint8_t n)
{
	struct pn_lent *e = pn_ltab_find(&sn->links, client_idx);
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;

	if (!e || !e->user)
		return;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOOKUP_RESULT);
	pn_wr_u32(&w, req);
	pn_wr_u8(&w, n ? PN_ST_OK : PN_ST_NOT_FOUND);
	pn_wr_u8(&w, n);
	pn_wr_bytes(&w, recs, recs_len);
	if (!w.err)
		send_frame(sn, e, f, w.len);
}

static void op_finish(struct pn_supernode *sn, struct sn_op *op)
{
	struct pn_kad_contact best[SN_R];
	size_t n;

	sn->st.lookups_done++;
	sn->st.lookup_hops_total += op->lk[0].hops;
	switch (op->kind) {
	case OP_CLIENT_LOOKUP:
		/* no VALUE came back: nobody responsible holds a record */
		if (sn->lookup_hook)
			sn->lookup_hook(sn->lookup_hook_arg, false, op->lk[0].hops,
					now_ms(sn) - op->started);
		send_lookup_result(sn, op->client_idx, op->client_req, NULL, 0, 0);
		break;
	case OP_PUBLISH:
		n = pn_kad_lookup_result_paths(op->lk, op->npaths, best, SN_R);
		for (size_t i = 0; i < n; i++) {
			uint8_t f[PN_REC_MAX + 16];
			struct pn_wr w;
			struct sn_out *o = out_get(sn, best[i].key, &best[i].addr);
			if (!o)
				continue;
			pn_wr_init(&w, f, sizeof(f));
			pn_wr_u8(&w, PN_F_STORE);
			pn_wr_u32(&w, new_req(sn));
			pn_wr_vec16(&w, op->record, op->record_len);
			if (!w.err) {
				out_send(sn, o, f, w.len);
				sn->st.overlay_stores++;
			}
		}
		break;
	case OP_JOIN:
		/* Filling a large table: a bucket that grew and has room is refreshed again
		 * next round instead of in 10 minutes, until it is full or stops growing. */
		if (op->refresh_bucket >= 0) {
			unsigned n1 = pn_kad_bucket_size(sn->kad, op->refresh_bucket);
			if (n1 > op->bucket_n0 && n1 < pn_kad_k(sn->kad))
				pn_kad_touch_bucket(sn->kad, op->refresh_bucket, 0);
		}
		break;
	case OP_MBOX:
		n = pn_kad_lookup_result_paths(op->lk, op->npaths, best, SN_R);
		mb_lookup_done(sn, op->mb, best, n);
		break;
	}
	op_unlink(sn, op);
}

static void op_step(struct pn_supernode *sn, struct sn_op *op)
{
	const struct pn_kad_contact *c;
	uint64_t now = now_ms(sn);
	bool done = true;

	for (unsigned p = 0; p < op->npaths; p++) {
		while ((c = pn_kad_lookup_next(&op->lk[p], now))) {
			uint8_t f[64];
			struct pn_wr w;
			struct sn_rpc *r = calloc(1, sizeof(*r));
			struct sn_out *o = out_get(sn, c->key, &c->addr);

			if (!r || !o) {
				free(r);
				pn_kad_lookup_fail(&op->lk[p], c->id);
				continue;
			}
			r->req = new_req(sn);
			memcpy(r->to, c->id, 32);
			memcpy(r->to_key, c->key, 32);
			r->op = op;
			r->path = p;
			r->deadline = now + SN_RPC_TIMEOUT_MS;
			rpc_add(sn, r);
			pn_wr_init(&w, f, sizeof(f));
			if (op->kind == OP_CLIENT_LOOKUP) {
				pn_wr_u8(&w, PN_F_FIND_VALUE);
				pn_wr_u32(&w, r->req);
				pn_wr_str8(&w, op->username);
			} else {
				pn_wr_u8(&w, PN_F_FIND_NODE);
				pn_wr_u32(&w, r->req);
				pn_wr_bytes(&w, op->lk[p].target, 32);
			}
			out_send(sn, o, f, w.len);
		}
		done = done && pn_kad_lookup_done(&op->lk[p]);
	}
	if (done)
		op_finish(sn, op);
}

static struct sn_rpc *rpc_take(struct pn_supernode *sn, uint32_t req, const uint8_t from[32])
{
	for (struct sn_rpc *r = sn->rpc_by_req[req % SN_RPC_BUCKETS]; r; r = r->hnext) {
		if (r->req == req && memcmp(r->to, from, 32) == 0) {
			rpc_del(sn, r);
			return r;
		}
	}
	return NULL;
}

/* ---- overlay: requests from other supernodes (on our inbound session) ---------------------- */

static void write_nodes(struct pn_supernode *sn, struct pn_wr *w, uint32_t req,
			const uint8_t target[32])
{
	struct pn_kad_contact cs[SN_NODES_MAX];
	size_t n = pn_kad_closest(sn->kad, target, cs, SN_NODES_MAX);

	pn_wr_u8(w, PN_F_NODES);
	pn_wr_u32(w, req);
	/* ourselves first: the asker may not know we are responsible */
	pn_wr_u8(w, (uint8_t)(n + 1));
	pn_wr_bytes(w, sn->me.dh_pk, 32);
	pn_addr_write(w, &sn->public_addr);
	for (size_t i = 0; i < n; i++) {
		pn_wr_bytes(w, cs[i].key, 32);
		pn_addr_write(w, &cs[i].addr);
	}
}

static void on_overlay_request(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f,
			       size_t n)
{
	struct pn_rd r;
	uint8_t type, out[PN_FRAME_MAX], target[32];
	struct pn_wr w;
	uint32_t req;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_wr_init(&w, out, sizeof(out));
	if (sn->misbehave == PN_SN_DROP)
		return;
	if (mb_on_request(sn, e, f, n))
		return;
	if (sn->misbehave == PN_SN_LIE && (type == PN_F_FIND_VALUE || type == PN_F_STORE)) {
		/* a liar: "I have nothing; ask these" (nodes far from the key), and fake acks */
		pn_rd_u32(&r, &req);
		if (r.err)
			return;
		if (type == PN_F_STORE) {
			pn_wr_u8(&w, PN_F_STORED);
			pn_wr_u32(&w, req);
			pn_wr_u8(&w, PN_ST_OK);
		} else {
			uint8_t far[32];
			sn->env.random(sn->env.ctx, far, sizeof(far));
			write_nodes(sn, &w, req, far);
		}
		send_frame(sn, e, out, w.len);
		return;
	}
	switch (type) {
	case PN_F_FIND_NODE:
		pn_rd_u32(&r, &req);
		pn_rd_bytes(&r, target, 32);
		if (pn_rd_end(&r))
			break;
		write_nodes(sn, &w, req, target);
		send_frame(sn, e, out, w.len);
		return;
	case PN_F_FIND_VALUE: {
		char name[PN_CERT_NAME_MAX + 1];
		struct lookup_ctx vc;
		size_t npos;
		pn_rd_u32(&r, &req);
		pn_rd_str8(&r, name, sizeof(name));
		if (pn_rd_end(&r))
			break;
		sn->st.lookups++;
		pn_wr_u8(&w, PN_F_VALUE);
		pn_wr_u32(&w, req);
		npos = w.len;
		pn_wr_u8(&w, 0);
		vc.w = &w;
		vc.n = 0;
		pn_recstore_get(sn->recs, name, sn->env.wall_s(sn->env.ctx), lookup_add, &vc);
		if (vc.n) {
			out[npos] = vc.n;
		} else {
			pn_user_key(target, name);
			pn_wr_init(&w, out, sizeof(out));
			write_nodes(sn, &w, req, target);
		}
		send_frame(sn, e, out, w.len);
		return;
	}
	case PN_F_STORE: {
		const uint8_t *rec;
		size_t rl;
		struct pn_record pr;
		uint8_t st = PN_ST_OK;
		pn_rd_u32(&r, &req);
		pn_rd_vec16(&r, &rec, &rl, PN_REC_MAX);
		if (pn_rd_end(&r))
			break;
		/* Every replica verifies: a supernode can drop a record, never forge one. */
		if (record_verify(sn, &pr, rec, rl)) {
			sn->st.bad_packets++;
			st = PN_ST_FORBIDDEN;
		} else if (pn_recstore_put(sn->recs, &pr, rec, rl) == -ESTALE) {
			st = PN_ST_STALE;
		}
		pn_wr_u8(&w, PN_F_STORED);
		pn_wr_u32(&w, req);
		pn_wr_u8(&w, st);
		send_frame(sn, e, out, w.len);
		return;
	}
	case PN_F_SN_FORWARD: {
		uint8_t dst[16], src[16];
		const uint8_t *pkt;
		size_t pl;
		struct sn_dev *to;
		struct pn_lent *te;
		pn_rd_bytes(&r, dst, 16);
		pn_rd_bytes(&r, src, 16);
		pn_rd_vec16(&r, &pkt, &pl, PN_PKT_MAX);
		if (pn_rd_end(&r))
			break;
		to = dev_find(sn, dst);
		te = to ? pn_ltab_find(&sn->links, to->idx) : NULL;
		if (!te) {
			sn->st.bad_packets++;
			return;
		}
		if (sn->fwd_hook)
			sn->fwd_hook(sn->fwd_hook_arg, pkt, pl);
		pn_wr_u8(&w, PN_F_DELIVER_VIA);
		pn_wr_bytes(&w, src, 16);
		pn_wr_bytes(&w, e->link.remote_static, 32);
		pn_wr_vec16(&w, pkt, pl);
		if (!w.err) {
			sn->st.sn_forwarded++;
			send_frame(sn, te, out, w.len);
		}
		return;
	}
	default:
		break;
	}
	sn->st.bad_packets++;
}

/* ---- overlay: answers on our outbound sessions ------------------------------------------- */

static void on_overlay_answer(struct pn_supernode *sn, struct sn_out *o, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, cnt;
	uint32_t req;
	struct sn_rpc *rpc;
	struct sn_op *op;
	unsigned path;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &req);
	if (r.err)
		return;
	learn(sn, o->key, o->id, &o->addr, true);
	if (type == PN_F_STORED)
		return;
	if (type >= 0x50 && type <= 0x5f) {
		mb_on_answer(sn, o, f, n);
		return;
	}
	rpc = rpc_take(sn, req, o->id);
	if (!rpc)
		return; /* late or unsolicited */
	op = rpc->op;
	path = rpc->path;
	free(rpc);
	if (!op)
		return;
	if (type == PN_F_NODES) {
		struct pn_kad_contact cs[SN_NODES_MAX + 1];
		size_t k = 0;
		pn_rd_u8(&r, &cnt);
		for (unsigned i = 0; i < cnt && k < SN_NODES_MAX + 1; i++) {
			memset(&cs[k], 0, sizeof(cs[k]));
			if (pn_rd_bytes(&r, cs[k].key, 32) || pn_addr_read(&r, &cs[k].addr))
				break;
			pn_kad_id_of(cs[k].id, cs[k].key);
			if (!pn_ct_eq(cs[k].key, sn->me.dh_pk, 32))
				learn(sn, cs[k].key, cs[k].id, &cs[k].addr, false);
			k++;
		}
		pn_kad_lookup_answer_path(op->lk, op->npaths, path, o->id, cs, k);
		op_step(sn, op);
		return;
	}
	if (type == PN_F_VALUE && op->kind == OP_CLIENT_LOOKUP) {
		/* Pass the records on as they are; the client verifies every one. */
		pn_rd_u8(&r, &cnt);
		if (!r.err) {
			/* the hops to the contact that had the record (before, the deepest
			 * hop among all answers so far + 1, which read one high whenever a
			 * first-round NODES answer came in before a first-round VALUE) */
			unsigned hops = pn_kad_lookup_hop(&op->lk[path], o->id);
			if (!hops)
				hops = op->lk[path].hops + 1;
			sn->st.lookups_done++;
			sn->st.lookup_hops_total += hops;
			if (sn->lookup_hook)
				sn->lookup_hook(sn->lookup_hook_arg, true, hops,
						now_ms(sn) - op->started);
			send_lookup_result(sn, op->client_idx, op->client_req, f + r.pos, n - r.pos, cnt);
			/* finished: do not answer the client a second time */
			op_unlink(sn, op);
			return;
		}
	}
	pn_kad_lookup_fail(&op->lk[path], o->id);
	op_step(sn, op);
}

/* The outbound session's packets (HS2 and DATA). */
static void out_input(struct pn_supernode *sn, struct sn_out *o, const struct pn_pkt_hdr *h)
{
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (pn_link_input(&o->link, h, now_ms(sn), f, sizeof(f), &n, &ev)) {
		sn->st.bad_packets++;
		return;
	}
	if (ev == PN_LINK_EV_UP) {
		if (check_sn_cert(sn, &o->link)) {
			sn->st.rejected_certs++;
			pn_link_wipe(&o->link);
			pn_kad_remove(sn->kad, o->id);
			return;
		}
		out_flush(sn, o);
	} else if (ev == PN_LINK_EV_DATA) {
		on_overlay_answer(sn, o, f, n);
	}
}

/* Re-replication: a slice of the stored records goes again to the r supernodes now
 * closest to each user's key, so records follow churn (responsible nodes leave, closer
 * ones join) even between their owners' republications. */
static void replicate_one(void *arg, const struct pn_stored_rec *r)
{
	struct pn_supernode *sn = arg;
	struct pn_record pr;
	uint8_t key[32];
	struct sn_op *op;

	if (record_verify(sn, &pr, r->bytes, r->len))
		return;
	pn_user_key(key, pr.cert.name);
	op = op_new(sn, OP_PUBLISH, key);
	if (!op)
		return;
	op->record = malloc(r->len);
	if (!op->record) {
		op_unlink(sn, op);
		return;
	}
	memcpy(op->record, r->bytes, r->len);
	op->record_len = r->len;
	op_step(sn, op);
}

static void start_join(struct pn_supernode *sn)
{
	struct sn_op *op;

	if (pn_kad_count(sn->kad) == 0)
		return;
	op = op_new(sn, OP_JOIN, sn->id);
	if (op)
		op_step(sn, op);
}

/* ---- open policy: the capable-node self-test ----------------------------------------------
 *
 * A supernode that serves without a certificate asks the supernodes of the network file,
 * with plain STUN Binding requests (which every supernode answers), where its datagrams
 * come from. Only when that is the public address it was configured with (no NAT or
 * port mapping in between) does it take clients and join the overlay; otherwise it would
 * announce an address nobody can reach. What this does not prove: that a firewall lets
 * unsolicited datagrams in (an answer to our own request passes any stateful filter). */
static bool serving(const struct pn_supernode *sn)
{
	return sn->selftest == PN_SN_SELFTEST_NONE || sn->selftest == PN_SN_SELFTEST_PASSED;
}

static void selftest_tick(struct pn_supernode *sn, uint64_t now)
{
	struct pn_stun_req_opts o;
	const struct pn_net_peer *to = NULL;
	uint8_t req[64];
	size_t len;

	if (sn->selftest != PN_SN_SELFTEST_PENDING || now < sn->selftest_next)
		return;
	if (sn->selftest_tries >= SN_SELFTEST_TRIES) {
		sn->selftest = PN_SN_SELFTEST_FAILED;
		pn_err("self-test failed: no supernode answered; not serving");
		return;
	}
	/* the next supernode of the network file that is not us, round robin */
	for (unsigned k = 0; k < sn->net.n_supernodes && !to; k++) {
		const struct pn_net_peer *p =
			&sn->net.supernodes[(sn->selftest_tries + k) % sn->net.n_supernodes];
		if (!p->has_key || !pn_ct_eq(p->key, sn->me.dh_pk, 32))
			to = p;
	}
	sn->selftest_tries++;
	sn->selftest_next = now + SN_SELFTEST_RETRY_MS;
	if (!to)
		return;
	memset(&o, 0, sizeof(o));
	sn->env.random(sn->env.ctx, sn->selftest_tid, sizeof(sn->selftest_tid));
	memcpy(o.tid, sn->selftest_tid, sizeof(o.tid));
	o.pad_to = sizeof(req); /* servers answer only requests at least as large */
	if (pn_stun_build_request(req, sizeof(req), &len, &o) == 0)
		sn->env.send(sn->env.ctx, &to->addr, req, len);
}

/* A STUN response while the self-test runs: true when it was the answer (consumed). */
static bool selftest_input(struct pn_supernode *sn, const uint8_t *buf, size_t len)
{
	struct pn_stun_msg m;
	const struct pn_addr *mapped;
	char a[PN_ADDR_STRLEN], b[PN_ADDR_STRLEN];

	if (sn->selftest != PN_SN_SELFTEST_PENDING || !pn_stun_is_msg(buf, len) ||
	    pn_stun_parse_response(&m, buf, len, sn->selftest_tid) != 0)
		return false;
	mapped = pn_stun_mapped(&m);
	if (!mapped)
		return true; /* an error answer: the next probe asks another supernode */
	if (pn_addr_eq(mapped, &sn->public_addr)) {
		sn->selftest = PN_SN_SELFTEST_PASSED;
		pn_info("self-test passed: the network sees us at %s", pn_addr_str(mapped, a));
		sn->next_refresh = now_ms(sn); /* join now */
	} else {
		sn->selftest = PN_SN_SELFTEST_FAILED;
		pn_err("self-test failed: the network sees us at %s, not at %s; not serving",
			 pn_addr_str(mapped, a), pn_addr_str(&sn->public_addr, b));
	}
	return true;
}

/* Kademlia's bucket refresh: the lookup of our own id (start_join) fills the buckets near
 * us, but the far ones, which route the first hop of nearly every lookup, would fill only
 * from chance answers. A lookup of a random id in a stale bucket fills it from the nodes
 * that know that part of the id space best. A few per round spread the cost. */
static void refresh_buckets(struct pn_supernode *sn, uint64_t now)
{
	for (unsigned i = 0; i < SN_BUCKET_REFRESH_PER_ROUND; i++) {
		int b = pn_kad_stale_bucket(sn->kad, now, SN_BUCKET_STALE_MS);
		uint8_t target[32];
		struct sn_op *op;

		if (b < 0)
			return;
		pn_kad_touch_bucket(sn->kad, b, now);
		pn_kad_random_id_in(sn->kad, b, &sn->env, target);
		op = op_new(sn, OP_JOIN, target);
		if (!op)
			return;
		op->refresh_bucket = b;
		op->bucket_n0 = pn_kad_bucket_size(sn->kad, b);
		op_step(sn, op);
	}
}

static void overlay_tick(struct pn_supernode *sn, uint64_t now)
{
	/* unanswered requests */
	for (struct sn_rpc *r = sn->rpcs, *next; r; r = next) {
		next = r->next;
		if (now < r->deadline)
			continue;
		rpc_del(sn, r);
		pn_kad_failed(sn->kad, r->to, SN_MAX_FAILS);
		/* The peer may have dropped our session (it expires idle sessions, or it
		 * restarted): the next request starts a fresh handshake. */
		{
			struct sn_out *o = out_find_key(sn, r->to_key);
			if (o && o->link.state == PN_LINK_UP)
				pn_link_wipe(&o->link);
		}
		if (r->op) {
			struct sn_op *op = r->op;
			unsigned path = r->path;
			uint8_t to[32];
			memcpy(to, r->to, 32);
			free(r);
			pn_kad_lookup_fail(&op->lk[path], to);
			op_step(sn, op);
			/* op_step may have freed rpcs: restart the scan */
			next = sn->rpcs;
			continue;
		}
		free(r);
	}
	for (struct sn_op *op = sn->ops, *next; op; op = next) {
		next = op->next;
		if (now >= op->deadline)
			op_finish(sn, op);
	}
	for (struct sn_out **pp = &sn->hs_outs; *pp;) {
		struct sn_out *o = *pp;
		if (o->link.state != PN_LINK_WAIT_HS2) {
			*pp = o->hs_next;
			o->in_hs = false;
			continue;
		}
		pp = &o->hs_next;
		if (now >= o->link.hs_sent_at + ((uint64_t)300 << (o->link.hs_tries - 1))) {
			if (o->link.hs_tries >= 4) {
				pn_link_wipe(&o->link);
				for (unsigned i = 0; i < o->qn; i++)
					free(o->q[i]);
				o->qn = 0;
			} else {
				o->link.hs_tries++;
				sn->env.send(sn->env.ctx, &o->addr, o->link.hs_pkt, o->link.hs_pkt_len);
			}
		}
	}
	selftest_tick(sn, now);
	if (now >= sn->next_refresh && serving(sn)) {
		sn->next_refresh = now + SN_REFRESH_MS;
		start_join(sn);
		if (pn_kad_count(sn->kad) > 0)
			refresh_buckets(sn, now);
		if (pn_kad_count(sn->kad) > 0 && sn->misbehave == PN_SN_HONEST) {
			pn_recstore_scan(sn->recs, &sn->replicate_cursor, SN_REPLICATE_PER_REFRESH,
					 sn->env.wall_s(sn->env.ctx), replicate_one, sn);
			mb_replicate(sn);
		}
	}
	sn->ov_dirty = true; /* deadlines passed, retries moved: rescan once */
}

static uint64_t overlay_deadline(struct pn_supernode *sn)
{
	uint64_t t = pn_kad_count(sn->kad) && serving(sn) ? sn->next_refresh : UINT64_MAX;

	if (sn->selftest == PN_SN_SELFTEST_PENDING && sn->selftest_next < t)
		t = sn->selftest_next;

	if (sn->ov_dirty) {
		uint64_t m = UINT64_MAX;
		for (struct sn_rpc *r = sn->rpcs; r; r = r->next)
			if (r->deadline < m)
				m = r->deadline;
		for (struct sn_op *op = sn->ops; op; op = op->next)
			if (op->deadline < m)
				m = op->deadline;
		for (struct sn_out *o = sn->hs_outs; o; o = o->hs_next)
			if (o->link.state == PN_LINK_WAIT_HS2) {
				uint64_t rt = o->link.hs_sent_at +
					      ((uint64_t)300 << (o->link.hs_tries - 1));
				if (rt < m)
					m = rt;
			}
		sn->ov_deadline = m;
		sn->ov_dirty = false;
	}
	return sn->ov_deadline < t ? sn->ov_deadline : t;
}

static void on_forward(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d,
		       struct pn_rd *r);

/* To a device attached elsewhere: its record named the supernode (by key). We relay only
 * to supernodes we know from the overlay (never to an address a client names), so a client
 * cannot aim us at arbitrary hosts. */
static void on_forward_via(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d,
			   struct pn_rd *r)
{
	uint8_t dst[16], key[32], id[32], f[PN_PKT_RX_MAX];
	const uint8_t *pkt;
	size_t n;
	const struct pn_kad_contact *c;
	struct sn_out *o;
	struct pn_wr w;

	pn_rd_bytes(r, dst, 16);
	pn_rd_bytes(r, key, 32);
	if (r->err) {
		sn->st.bad_packets++;
		return;
	}
	if (pn_ct_eq(key, sn->me.dh_pk, 32)) {
		struct pn_rd rr;
		uint8_t tmp[PN_PKT_RX_MAX];
		/* it is us: the same as a plain FORWARD */
		pn_wr_init(&w, tmp, sizeof(tmp));
		pn_wr_bytes(&w, dst, 16);
		pn_wr_bytes(&w, r->p + r->pos, pn_rd_left(r));
		if (w.err)
			return;
		pn_rd_init(&rr, tmp, w.len);
		on_forward(sn, e, d, &rr);
		return;
	}
	pn_rd_vec16(r, &pkt, &n, PN_PKT_MAX);
	if (pn_rd_end(r)) {
		sn->st.bad_packets++;
		return;
	}
	if (!fwd_allow(sn, d))
		return;
	pn_kad_id_of(id, key);
	c = pn_kad_find(sn->kad, id);
	o = c ? out_get(sn, c->key, &c->addr) : NULL;
	if (!o) {
		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_UNREACHABLE);
		pn_wr_bytes(&w, dst, 16);
		pn_wr_u8(&w, 2); /* unknown supernode */
		send_frame(sn, e, f, w.len);
		return;
	}
	if (sn->fwd_hook)
		sn->fwd_hook(sn->fwd_hook_arg, pkt, n);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_SN_FORWARD);
	pn_wr_bytes(&w, dst, 16);
	pn_wr_bytes(&w, d->device_id, 16);
	pn_wr_vec16(&w, pkt, n);
	if (w.err)
		return;
	sn->st.forwarded++;
	sn->st.forward_bytes += n;
	out_send(sn, o, f, w.len);
}

/* ---- mailboxes (docs/PROTOCOL.md "Mailboxes") --------------------------------------------
 * A device hands its supernode (the origin) a deposit, a fetch or an acknowledgement; the
 * origin finds the r supernodes closest to the mailbox key (itself included when it is one
 * of them), sends each the request and relays their answers: every store receipt as it
 * comes (the sender counts them), fetched envelopes deduplicated across replicas, and a
 * final MB_DONE. The replicas check everything again themselves: an origin can drop, never
 * forge (a deposit's envelope must carry a certified sender, an acknowledgement must be
 * signed by a certified device of the mailbox's owner). */

enum {
	SN_MB_FETCH_MAX = 48,     /* envelopes a replica returns per MB_GET */
	SN_MB_JOB_MS = 4000,      /* a job waits this long for its replicas after the lookup */
	SN_MB_REPL_BOXES = 8,     /* mailboxes re-replicated per refresh */
	SN_MB_EXPIRE_MS = 10000,
	SN_MB_SEEN_MAX = 4 * SN_MB_FETCH_MAX,
	SN_MB_CACHE = 16,         /* mailboxes whose r closest we remember ... */
	SN_MB_CACHE_MS = 10000,   /* ... this long (a fetch is a run of rounds) */
};

/* The r closest supernodes of a mailbox found by a recent lookup: a device emptying a
 * large mailbox fetches and acknowledges round after round, and a lookup per round was
 * most of its time. */
struct sn_mbcache {
	uint8_t key[32];
	struct pn_kad_contact best[SN_R];
	size_t n;
	uint64_t until;
};
static struct sn_mbcache *mb_cache_slot(struct pn_supernode *sn, const uint8_t key[32]);

struct sn_mbjob {
	struct sn_mbjob *next;
	uint8_t kind;             /* the request it fans out: MB_STORE, MB_GET or MB_DEL */
	bool has_client;          /* else a re-replication: nobody to answer */
	uint32_t client_idx, client_req;
	uint8_t key[32];
	uint8_t **frames;         /* request frames; bytes 1..4 (req) are set per target */
	size_t *lens;
	unsigned n_frames;
	uint32_t reqs[SN_R + 1];
	uint8_t to[SN_R + 1][32]; /* kad ids of the targets (ours for the local one) */
	bool answered[SN_R + 1];
	unsigned n_targets, n_answered;
	bool more, started;
	uint64_t deadline;
	uint8_t seen[SN_MB_SEEN_MAX][16];
	unsigned n_seen;
};

static void mb_job_free(struct sn_mbjob *j)
{
	for (unsigned i = 0; i < j->n_frames; i++)
		free(j->frames[i]);
	free(j->frames);
	free(j->lens);
	free(j);
}

static void mb_free_all(struct pn_supernode *sn)
{
	while (sn->mbjobs) {
		struct sn_mbjob *j = sn->mbjobs;
		sn->mbjobs = j->next;
		mb_job_free(j);
	}
}

static int mb_job_add_frame(struct sn_mbjob *j, const uint8_t *f, size_t n)
{
	uint8_t **fr = realloc(j->frames, (j->n_frames + 1) * sizeof(*fr));
	size_t *ln;

	if (!fr)
		return -ENOMEM;
	j->frames = fr;
	ln = realloc(j->lens, (j->n_frames + 1) * sizeof(*ln));
	if (!ln)
		return -ENOMEM;
	j->lens = ln;
	if (!(fr[j->n_frames] = malloc(n)))
		return -ENOMEM;
	memcpy(fr[j->n_frames], f, n);
	ln[j->n_frames++] = n;
	return 0;
}

static void mb_client_frame(struct pn_supernode *sn, struct sn_mbjob *j, const uint8_t *f, size_t n)
{
	struct pn_lent *e;

	if (!j->has_client)
		return;
	e = pn_ltab_find(&sn->links, j->client_idx);
	if (e && e->user)
		send_frame(sn, e, f, n);
}

static void mb_job_finish(struct pn_supernode *sn, struct sn_mbjob *j)
{
	uint8_t f[16];
	struct pn_wr w;

	for (struct sn_mbjob **pp = &sn->mbjobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_DONE);
	pn_wr_u32(&w, j->client_req);
	pn_wr_u8(&w, j->n_answered ? PN_ST_OK : PN_ST_NOT_FOUND);
	pn_wr_u8(&w, j->more ? 1 : 0);
	pn_wr_u8(&w, (uint8_t)j->n_answered);
	mb_client_frame(sn, j, f, w.len);
	mb_job_free(j);
}

static void mb_mark(struct pn_supernode *sn, struct sn_mbjob *j, unsigned t)
{
	if (j->answered[t])
		return;
	j->answered[t] = true;
	if (++j->n_answered == j->n_targets)
		mb_job_finish(sn, j);
}

/* An answer from target t of job j (a replica, or our own store). May free j. */
static void mb_job_answer(struct pn_supernode *sn, struct sn_mbjob *j, unsigned t,
			  const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, st, flags, cnt;
	uint32_t req;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &req);
	if (r.err)
		return;
	switch (type) {
	case PN_F_MB_STORED: {
		/* relayed as it is: the sender checks the replica's signature */
		uint8_t out[PN_FRAME_MAX];
		struct pn_wr w;
		if (pn_rd_u8(&r, &st))
			return;
		pn_wr_init(&w, out, sizeof(out));
		pn_wr_u8(&w, PN_F_MB_RECEIPT);
		pn_wr_u32(&w, j->client_req);
		pn_wr_bytes(&w, f + 5, n - 5);
		if (!w.err)
			mb_client_frame(sn, j, out, w.len);
		mb_mark(sn, j, t);
		return;
	}
	case PN_F_MB_ITEMS: {
		uint8_t out[PN_FRAME_MAX];
		struct pn_wr w;
		size_t npos;
		uint8_t k = 0;
		pn_rd_u8(&r, &flags);
		pn_rd_u8(&r, &cnt);
		if (r.err)
			return;
		pn_wr_init(&w, out, sizeof(out));
		pn_wr_u8(&w, PN_F_MB_ITEMS);
		pn_wr_u32(&w, j->client_req);
		pn_wr_u8(&w, 0);
		npos = w.len;
		pn_wr_u8(&w, 0);
		for (unsigned i = 0; i < cnt; i++) {
			const uint8_t *env;
			size_t el;
			struct pn_mb_env me;
			bool dup = false;
			if (pn_rd_vec16(&r, &env, &el, PN_MB_ENV_MAX) ||
			    pn_mb_env_decode(&me, env, el))
				break;
			for (unsigned s = 0; s < j->n_seen && !dup; s++)
				dup = memcmp(j->seen[s], me.entry_id, 16) == 0;
			if (dup)
				continue;
			if (j->n_seen < SN_MB_SEEN_MAX)
				memcpy(j->seen[j->n_seen++], me.entry_id, 16);
			if (pn_wr_vec16(&w, env, el))
				break; /* cannot happen: a replica's frame held it */
			k++;
		}
		out[npos] = k;
		if (k)
			mb_client_frame(sn, j, out, w.len);
		if (flags & 1)
			j->more = true;
		if (flags & 2)
			mb_mark(sn, j, t);
		return;
	}
	case PN_F_MB_DONE:
		mb_mark(sn, j, t);
		return;
	default:
		return;
	}
}

/* Replies of our own store to a job it is a target of. */
struct mb_local {
	struct pn_supernode *sn;
	struct sn_mbjob *j;
	unsigned t;
	struct pn_lent *e; /* else: a remote origin's session */
};

static void mb_reply(struct mb_local *to, const uint8_t *f, size_t n)
{
	if (to->e)
		send_frame(to->sn, to->e, f, n);
	else
		mb_job_answer(to->sn, to->j, to->t, f, n);
}

struct mb_items {
	struct mb_local *to;
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;
	size_t npos;
	uint8_t n;
	uint32_t req;
};

static void mb_items_start(struct mb_items *it)
{
	pn_wr_init(&it->w, it->f, sizeof(it->f));
	pn_wr_u8(&it->w, PN_F_MB_ITEMS);
	pn_wr_u32(&it->w, it->req);
	pn_wr_u8(&it->w, 0);
	it->npos = it->w.len;
	pn_wr_u8(&it->w, 0);
	it->n = 0;
}

static void mb_items_flush(struct mb_items *it, uint8_t flags)
{
	it->f[it->npos - 1] = flags;
	it->f[it->npos] = it->n;
	mb_reply(it->to, it->f, it->w.len);
}

static int mb_items_add(void *arg, const struct pn_mbs_entry *e)
{
	struct mb_items *it = arg;
	struct pn_wr probe = it->w;

	if (pn_wr_vec16(&probe, e->env, e->len)) {
		mb_items_flush(it, 0);
		mb_items_start(it);
		probe = it->w;
		if (pn_wr_vec16(&probe, e->env, e->len))
			return 0;
	}
	it->w = probe;
	it->n++;
	return 0;
}

static void mb_answer_status(struct mb_local *to, uint8_t type, uint32_t req, uint8_t st)
{
	uint8_t f[16];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, type);
	pn_wr_u32(&w, req);
	pn_wr_u8(&w, st);
	if (type == PN_F_MB_DONE) {
		pn_wr_u8(&w, 0);
		pn_wr_u8(&w, 0);
	}
	mb_reply(to, f, w.len);
}

/* Replica side: MB_STORE, MB_GET, MB_DEL (from another supernode, or from ourselves). */
static void mb_serve(struct pn_supernode *sn, struct mb_local *to, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;
	uint32_t req;
	uint64_t now_s = sn->env.wall_s(sn->env.ctx);

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &req);
	switch (type) {
	case PN_F_MB_STORE: {
		char owner[PN_CERT_NAME_MAX + 1];
		uint8_t has_pass, pass[PN_MB_PASS_LEN], mid[32], rc_buf[PN_MB_RECEIPT_MAX + 16];
		const uint8_t *env;
		size_t el;
		struct pn_mb_env me;
		struct pn_mbs_entry ent;
		struct pn_wr w;
		int rc, rl;
		pn_rd_str8(&r, owner, sizeof(owner));
		pn_rd_u8(&r, &has_pass);
		if (has_pass)
			pn_rd_bytes(&r, pass, sizeof(pass));
		pn_rd_vec16(&r, &env, &el, PN_PKT_RX_MAX);
		if (pn_rd_end(&r) || has_pass > 1) {
			sn->st.bad_packets++;
			return;
		}
		if (el > PN_MB_ENV_MAX) {
			sn->st.mb_oversized++;
			mb_answer_status(to, PN_F_MB_STORED, req, PN_ST_BAD_REQUEST);
			return;
		}
		if (pn_mb_env_decode(&me, env, el) ||
		    pn_mb_cert_was_valid(&me.sender, sn->net.root_pk, PN_CERT_DEVICE) ||
		    me.expires > now_s + PN_MB_TTL_MAX_S || pn_username_valid(owner)) {
			sn->st.mb_bad_envelopes++;
			mb_answer_status(to, PN_F_MB_STORED, req, PN_ST_FORBIDDEN);
			return;
		}
		memset(&ent, 0, sizeof(ent));
		memcpy(ent.id, me.entry_id, 16);
		memcpy(ent.to_dev, me.to_dev, 16);
		ent.expires = me.expires;
		ent.env = env;
		ent.len = el;
		if (has_pass) {
			uint8_t dev[16], pk[32];
			pn_mb_pass_signer(pass, dev);
			if (!pn_mbstore_owner_find(sn->mbs, owner, dev, pk)) {
				sn->st.mb_pass_unknown++; /* request quota, until the owner shows */
			} else if (pn_mb_pass_verify(pass, owner, me.sender.name, pk, now_s) == 0) {
				ent.contact = true;
			} else {
				sn->st.mb_bad_envelopes++;
			}
			ent.pass = pass;
		}
		if (pn_mbstore_entries(sn->mbs, owner) == 0)
			pn_info("keeping entries of the mailbox of %s", owner);
		rc = pn_mbstore_put(sn->mbs, owner, &ent, me.sender.name, now_s);
		if (rc == -EDQUOT) {
			mb_answer_status(to, PN_F_MB_STORED, req, PN_ST_RATE_LIMITED);
			return;
		}
		if (rc && rc != -EEXIST) {
			mb_answer_status(to, PN_F_MB_STORED, req,
					 rc == -ESTALE ? PN_ST_STALE : PN_ST_INTERNAL);
			return;
		}
		if (rc == 0)
			sn->st.mb_stored++;
		pn_mb_key(mid, owner);
		rl = pn_mb_receipt_sign(rc_buf, sizeof(rc_buf), &sn->me, sn->cert, sn->cert_len, mid,
					me.entry_id, me.expires);
		if (rl < 0)
			return;
		{
			uint8_t out[PN_MB_RECEIPT_MAX + 32];
			pn_wr_init(&w, out, sizeof(out));
			pn_wr_u8(&w, PN_F_MB_STORED);
			pn_wr_u32(&w, req);
			pn_wr_u8(&w, PN_ST_OK);
			pn_wr_vec16(&w, rc_buf, (size_t)rl);
			if (!w.err)
				mb_reply(to, out, w.len);
		}
		return;
	}
	case PN_F_MB_GET: {
		char owner[PN_CERT_NAME_MAX + 1];
		const uint8_t *cert;
		size_t cl, held;
		uint16_t max;
		struct pn_cert c;
		struct mb_items *it;
		pn_rd_str8(&r, owner, sizeof(owner));
		pn_rd_vec16(&r, &cert, &cl, PN_CERT_MAX);
		pn_rd_u16(&r, &max);
		if (pn_rd_end(&r) || pn_cert_decode(&c, cert, cl) ||
		    sn_cert_verify(sn, &c, cert, cl, PN_CERT_DEVICE) || strcmp(c.name, owner) != 0) {
			sn->st.bad_packets++;
			return;
		}
		/* a certified device of the owner: passes it signed can be checked now */
		pn_mbstore_owner_key(sn->mbs, owner, c.device_id, c.sign_pk, cert, cl);
		sn->st.mb_fetches++;
		if (max > SN_MB_FETCH_MAX)
			max = SN_MB_FETCH_MAX;
		it = malloc(sizeof(*it));
		if (!it)
			return;
		it->to = to;
		it->req = req;
		mb_items_start(it);
		pn_mbstore_get(sn->mbs, owner, c.device_id, now_s, max, mb_items_add, it);
		held = pn_mbstore_count_for(sn->mbs, owner, c.device_id, now_s);
		mb_items_flush(it, (uint8_t)(2 | (held > max ? 1 : 0)));
		free(it);
		return;
	}
	case PN_F_MB_DEL: {
		struct pn_mb_ack a;
		uint8_t out[16];
		struct pn_wr w;
		size_t k;
		int rc;
		if (r.err) {
			sn->st.bad_packets++;
			return;
		}
		rc = pn_mb_ack_verify(&a, f + r.pos, n - r.pos, sn->net.root_pk, now_s);
		if (rc) {
			sn->st.mb_bad_acks++;
			mb_answer_status(to, PN_F_MB_DONE, req, PN_ST_FORBIDDEN);
			return;
		}
		if (pn_mbstore_ack_ts(sn->mbs, a.owner, a.cert.device_id, a.ts_ms)) {
			sn->st.mb_replays++;
			mb_answer_status(to, PN_F_MB_DONE, req, PN_ST_STALE);
			return;
		}
		pn_mbstore_owner_key(sn->mbs, a.owner, a.cert.device_id, a.cert.sign_pk, a.cert_raw,
				     a.cert_len);
		k = pn_mbstore_del(sn->mbs, a.owner, a.cert.device_id, (const uint8_t (*)[16])a.ids,
				   a.n, now_s + PN_MB_TTL_MAX_S);
		pn_wr_init(&w, out, sizeof(out));
		pn_wr_u8(&w, PN_F_MB_DONE);
		pn_wr_u32(&w, req);
		pn_wr_u8(&w, PN_ST_OK);
		pn_wr_u8(&w, 0);
		pn_wr_u8(&w, (uint8_t)k);
		mb_reply(to, out, w.len);
		return;
	}
	case PN_F_MB_OWNER: {
		/* from another replica: the root's signature is what makes it true (a
		 * certificate that has since expired still names the owner's device key) */
		char owner[PN_CERT_NAME_MAX + 1];
		const uint8_t *cert;
		size_t cl;
		struct pn_cert c;
		pn_rd_str8(&r, owner, sizeof(owner));
		pn_rd_vec16(&r, &cert, &cl, PN_CERT_MAX);
		if (pn_rd_end(&r) || pn_cert_decode(&c, cert, cl) ||
		    pn_mb_cert_was_valid(&c, sn->net.root_pk, PN_CERT_DEVICE) ||
		    strcmp(c.name, owner) != 0) {
			sn->st.bad_packets++;
			return;
		}
		pn_mbstore_owner_key(sn->mbs, owner, c.device_id, c.sign_pk, cert, cl);
		return;
	}
	default:
		sn->st.bad_packets++;
		return;
	}
}

static bool mb_on_request(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f, size_t n)
{
	struct mb_local to = {sn, NULL, 0, e};

	if (n < 1 || (f[0] != PN_F_MB_STORE && f[0] != PN_F_MB_GET && f[0] != PN_F_MB_DEL &&
		      f[0] != PN_F_MB_OWNER))
		return false;
	mb_serve(sn, &to, f, n);
	return true;
}

static void mb_on_answer(struct pn_supernode *sn, struct sn_out *o, const uint8_t *f, size_t n)
{
	uint32_t req;

	if (n < 5)
		return;
	req = (uint32_t)f[1] << 24 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 8 | f[4];
	for (struct sn_mbjob *j = sn->mbjobs; j; j = j->next)
		for (unsigned t = 0; t < j->n_targets; t++)
			if (j->reqs[t] == req && memcmp(j->to[t], o->id, 32) == 0) {
				mb_job_answer(sn, j, t, f, n);
				return;
			}
}

static void mb_set_req(uint8_t *f, uint32_t req)
{
	f[1] = (uint8_t)(req >> 24);
	f[2] = (uint8_t)(req >> 16);
	f[3] = (uint8_t)(req >> 8);
	f[4] = (uint8_t)req;
}

/* The lookup ended: the r closest it found, and ourselves when we are closer than the
 * r-th (our own table never lists us). */
static void mb_targets(struct pn_supernode *sn, struct sn_mbjob *j, const struct pn_kad_contact *best,
		       size_t n)
{
	bool self = n < SN_R || pn_kad_cmp_dist(j->key, sn->id, best[SN_R - 1].id) < 0;
	size_t remote = self && n >= SN_R ? SN_R - 1 : n;
	int self_t = -1;

	j->started = true;
	j->deadline = now_ms(sn) + SN_MB_JOB_MS;
	j->n_targets = 0;
	for (size_t i = 0; i < remote; i++) {
		struct sn_out *o = out_get(sn, best[i].key, &best[i].addr);
		if (!o)
			continue;
		j->reqs[j->n_targets] = new_req(sn);
		memcpy(j->to[j->n_targets], best[i].id, 32);
		for (unsigned k = 0; k < j->n_frames; k++) {
			mb_set_req(j->frames[k], j->reqs[j->n_targets]);
			out_send(sn, o, j->frames[k], j->lens[k]);
		}
		j->n_targets++;
	}
	if (self) {
		self_t = (int)j->n_targets;
		memcpy(j->to[j->n_targets], sn->id, 32);
		j->n_targets++;
	}
	if (!j->has_client) {
		/* re-replication: fire and forget (the answers find no job) */
		for (struct sn_mbjob **pp = &sn->mbjobs; *pp; pp = &(*pp)->next)
			if (*pp == j) {
				*pp = j->next;
				break;
			}
		sn->st.mb_replicated += (uint64_t)j->n_frames * (j->n_targets - (self ? 1 : 0));
		mb_job_free(j);
		return;
	}
	if (self_t >= 0) {
		struct mb_local to = {sn, j, (unsigned)self_t, NULL};
		/* our answer may finish (and free) the job */
		mb_serve(sn, &to, j->frames[0], j->lens[0]);
	}
}

static struct sn_mbjob *mb_job_start(struct pn_supernode *sn, uint8_t kind, struct pn_lent *e,
				     uint32_t client_req, const char *owner)
{
	struct sn_mbjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	if (e) {
		j->has_client = true;
		j->client_idx = e->link.local_idx;
		j->client_req = client_req;
	}
	pn_mb_key(j->key, owner);
	j->deadline = now_ms(sn) + SN_OP_TIMEOUT_MS + SN_MB_JOB_MS;
	j->next = sn->mbjobs;
	sn->mbjobs = j;
	return j;
}

/* The cache slot for key: its own, else an expired one, else the one expiring first. */
static struct sn_mbcache *mb_cache_slot(struct pn_supernode *sn, const uint8_t key[32])
{
	struct sn_mbcache *pick = NULL;

	if (!sn->mb_cache && !(sn->mb_cache = calloc(SN_MB_CACHE, sizeof(*sn->mb_cache))))
		return NULL;
	for (unsigned i = 0; i < SN_MB_CACHE; i++) {
		struct sn_mbcache *c = &sn->mb_cache[i];
		if (memcmp(c->key, key, 32) == 0)
			return c;
		if (!pick || c->until < pick->until)
			pick = c;
	}
	return pick;
}

/* The lookup for job j ended: remember the closest, then send. */
static void mb_lookup_done(struct pn_supernode *sn, struct sn_mbjob *j,
			   const struct pn_kad_contact *best, size_t n)
{
	struct sn_mbcache *mc = n ? mb_cache_slot(sn, j->key) : NULL;

	if (mc) {
		memcpy(mc->key, j->key, 32);
		memcpy(mc->best, best, n * sizeof(best[0]));
		mc->n = n;
		mc->until = now_ms(sn) + SN_MB_CACHE_MS;
	}
	mb_targets(sn, j, best, n);
}

/* Frames added: find the replicas (a single supernode is its own only replica). */
static void mb_job_go(struct pn_supernode *sn, struct sn_mbjob *j)
{
	struct sn_op *op;

	if (pn_kad_count(sn->kad) == 0) {
		mb_targets(sn, j, NULL, 0);
		return;
	}
	/* client rounds reuse a recent lookup; re-replication always looks again (it
	 * exists to follow the closest set as it changes) */
	if (j->has_client && sn->mb_cache) {
		for (unsigned i = 0; i < SN_MB_CACHE; i++) {
			struct sn_mbcache *c = &sn->mb_cache[i];
			if (c->n && now_ms(sn) < c->until && memcmp(c->key, j->key, 32) == 0) {
				struct pn_kad_contact best[SN_R];
				size_t n = c->n;
				memcpy(best, c->best, n * sizeof(best[0]));
				mb_targets(sn, j, best, n);
				return;
			}
		}
	}
	op = op_new(sn, OP_MBOX, j->key);
	if (!op) {
		mb_targets(sn, j, NULL, 0);
		return;
	}
	op->mb = j;
	op_step(sn, op);
}

static void mb_on_client(struct pn_supernode *sn, struct pn_lent *e, struct sn_dev *d, uint8_t type,
			 struct pn_rd *r)
{
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;
	uint32_t req;
	struct sn_mbjob *j;
	uint64_t now_s = sn->env.wall_s(sn->env.ctx);

	pn_rd_u32(r, &req);
	if (r->err) {
		sn->st.bad_packets++;
		return;
	}
	pn_wr_init(&w, f, sizeof(f));
	if (type == PN_F_MB_DEPOSIT) {
		char owner[PN_CERT_NAME_MAX + 1];
		uint8_t has_pass, pass[PN_MB_PASS_LEN];
		const uint8_t *env;
		size_t el;
		struct pn_mb_env me;
		pn_rd_str8(r, owner, sizeof(owner));
		pn_rd_u8(r, &has_pass);
		if (has_pass == 1)
			pn_rd_bytes(r, pass, sizeof(pass));
		pn_rd_vec16(r, &env, &el, PN_PKT_RX_MAX);
		if (pn_rd_end(r) || has_pass > 1 || pn_username_valid(owner)) {
			sn->st.bad_packets++;
			return;
		}
		if (!fwd_allow(sn, d))
			return;
		if (el > PN_MB_ENV_MAX) {
			sn->st.mb_oversized++;
			mb_answer_status(&(struct mb_local){sn, NULL, 0, e}, PN_F_MB_RECEIPT, req,
					 PN_ST_BAD_REQUEST);
			return;
		}
		/* the envelope must be sealed by the device that hands it to us, now certified */
		if (pn_mb_env_decode(&me, env, el) ||
		    memcmp(me.sender.device_id, d->device_id, 16) != 0 ||
		    sn_cert_verify(sn, &me.sender, me.cert, me.cert_len, PN_CERT_DEVICE) ||
		    me.expires > now_s + PN_MB_TTL_MAX_S || me.expires <= now_s) {
			sn->st.mb_bad_envelopes++;
			mb_answer_status(&(struct mb_local){sn, NULL, 0, e}, PN_F_MB_RECEIPT, req,
					 PN_ST_FORBIDDEN);
			return;
		}
		pn_wr_u8(&w, PN_F_MB_STORE);
		pn_wr_u32(&w, 0);
		pn_wr_str8(&w, owner);
		pn_wr_u8(&w, has_pass);
		if (has_pass)
			pn_wr_bytes(&w, pass, sizeof(pass));
		pn_wr_vec16(&w, env, el);
		if (w.err)
			return;
		j = mb_job_start(sn, PN_F_MB_STORE, e, req, owner);
	} else if (type == PN_F_MB_FETCH) {
		if (pn_rd_end(r)) {
			sn->st.bad_packets++;
			return;
		}
		pn_wr_u8(&w, PN_F_MB_GET);
		pn_wr_u32(&w, 0);
		pn_wr_str8(&w, d->username);
		pn_wr_vec16(&w, e->link.peer_cert, e->link.peer_cert_len);
		pn_wr_u16(&w, SN_MB_FETCH_MAX);
		if (w.err)
			return;
		j = mb_job_start(sn, PN_F_MB_GET, e, req, d->username);
	} else {
		struct pn_mb_ack a;
		/* checked here too, so a forged acknowledgement costs no lookup */
		if (pn_mb_ack_verify(&a, r->p + r->pos, pn_rd_left(r), sn->net.root_pk, now_s) ||
		    memcmp(a.cert.device_id, d->device_id, 16) != 0) {
			sn->st.mb_bad_acks++;
			mb_answer_status(&(struct mb_local){sn, NULL, 0, e}, PN_F_MB_DONE, req,
					 PN_ST_FORBIDDEN);
			return;
		}
		pn_wr_u8(&w, PN_F_MB_DEL);
		pn_wr_u32(&w, 0);
		pn_wr_bytes(&w, r->p + r->pos, pn_rd_left(r));
		if (w.err)
			return;
		j = mb_job_start(sn, PN_F_MB_DEL, e, req, a.owner);
	}
	if (!j)
		return;
	if (mb_job_add_frame(j, f, w.len)) {
		j->has_client = false;
		mb_targets(sn, j, NULL, 0); /* frees it (nothing to send) */
		return;
	}
	mb_job_go(sn, j);
}

static void mb_tick(struct pn_supernode *sn, uint64_t now)
{
	for (struct sn_mbjob *j = sn->mbjobs, *next; j; j = next) {
		next = j->next;
		if (j->started && now >= j->deadline)
			mb_job_finish(sn, j);
	}
	if (now >= sn->mb_next_expire) {
		pn_mbstore_expire(sn->mbs, sn->env.wall_s(sn->env.ctx));
		sn->mb_next_expire = now + SN_MB_EXPIRE_MS;
	}
}

static uint64_t mb_deadline(struct pn_supernode *sn)
{
	struct pn_mbs_stats ms;
	uint64_t t;

	/* an empty store has nothing to expire: an idle supernode stays idle */
	pn_mbstore_stats(sn->mbs, &ms);
	t = ms.entries ? sn->mb_next_expire : UINT64_MAX;

	for (struct sn_mbjob *j = sn->mbjobs; j; j = j->next)
		if (j->started && j->deadline < t)
			t = j->deadline;
	return t;
}

/* Re-replication: the entries of a slice of our mailboxes go again to the r supernodes now
 * closest to each mailbox key, so mailboxes follow churn. Replicas that hold an entry
 * answer it as a duplicate; those that saw it acknowledged refuse it (tombstone). */
struct mb_repl {
	struct pn_supernode *sn;
	struct sn_mbjob *j;
	char owner[PN_CERT_NAME_MAX + 1];
};

static void mb_repl_owner(void *arg, const uint8_t *cert, size_t len)
{
	struct mb_repl *rp = arg;
	uint8_t f[16 + PN_CERT_NAME_MAX + PN_CERT_MAX];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_OWNER);
	pn_wr_u32(&w, 0);
	pn_wr_str8(&w, rp->owner);
	pn_wr_vec16(&w, cert, len);
	if (!w.err)
		mb_job_add_frame(rp->j, f, w.len);
}

static void mb_repl_entry(void *arg, const char *owner, const struct pn_mbs_entry *e,
			  const char *sender)
{
	struct mb_repl *rp = arg;
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;

	(void)sender;
	if (!rp->j || strcmp(rp->owner, owner) != 0) {
		if (rp->j)
			mb_job_go(rp->sn, rp->j);
		rp->j = mb_job_start(rp->sn, PN_F_MB_STORE, NULL, 0, owner);
		snprintf(rp->owner, sizeof(rp->owner), "%s", owner);
		if (!rp->j)
			return;
		/* the owner's devices first, so the passes of the entries can be checked */
		pn_mbstore_owner_certs(rp->sn->mbs, owner, mb_repl_owner, rp);
	}
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_STORE);
	pn_wr_u32(&w, 0);
	pn_wr_str8(&w, owner);
	pn_wr_u8(&w, e->pass ? 1 : 0);
	if (e->pass)
		pn_wr_bytes(&w, e->pass, PN_MB_PASS_LEN);
	pn_wr_vec16(&w, e->env, e->len);
	if (!w.err)
		mb_job_add_frame(rp->j, f, w.len);
}

static void mb_replicate(struct pn_supernode *sn)
{
	struct mb_repl rp = {sn, NULL, ""};

	pn_mbstore_scan(sn->mbs, &sn->mb_cursor, SN_MB_REPL_BOXES, mb_repl_entry, &rp);
	if (rp.j)
		mb_job_go(sn, rp.j);
}

static void on_frame(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f, size_t n)
{
	struct sn_dev *d = e->user;
	struct pn_rd r;
	uint8_t type;

	if (e->link.purpose == PN_PURPOSE_OVERLAY) {
		on_overlay_request(sn, e, f, n);
		return;
	}
	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type) || !d) {
		sn->st.bad_packets++;
		return;
	}
	switch (type) {
	case PN_F_FORWARD_VIA:
		on_forward_via(sn, e, d, &r);
		return;
	case PN_F_PING: {
		uint64_t tok;
		uint8_t out[9];
		struct pn_wr w;
		pn_rd_u64(&r, &tok);
		if (pn_rd_end(&r))
			break;
		pn_wr_init(&w, out, sizeof(out));
		pn_wr_u8(&w, PN_F_PONG);
		pn_wr_u64(&w, tok);
		send_frame(sn, e, out, w.len);
		return;
	}
	case PN_F_GET_SUPERNODES: {
		/* for the client's host cache: ourselves and the supernodes nearest to us */
		uint8_t out[PN_FRAME_MAX];
		struct pn_wr w;
		struct pn_kad_contact cs[SN_NODES_MAX - 1];
		size_t k = pn_kad_closest(sn->kad, sn->id, cs, SN_NODES_MAX - 1);
		if (pn_rd_end(&r))
			break;
		pn_wr_init(&w, out, sizeof(out));
		pn_wr_u8(&w, PN_F_SUPERNODES);
		pn_wr_u8(&w, (uint8_t)(k + 1));
		pn_wr_bytes(&w, sn->me.dh_pk, 32);
		pn_addr_write(&w, &sn->public_addr);
		for (size_t i = 0; i < k; i++) {
			pn_wr_bytes(&w, cs[i].key, 32);
			pn_addr_write(&w, &cs[i].addr);
		}
		if (!w.err)
			send_frame(sn, e, out, w.len);
		return;
	}
	case PN_F_PUBLISH:
		on_publish(sn, e, d, &r);
		return;
	case PN_F_LOOKUP:
		on_lookup(sn, e, &r);
		return;
	case PN_F_FORWARD:
		on_forward(sn, e, d, &r);
		return;
	case PN_F_MB_DEPOSIT:
	case PN_F_MB_FETCH:
	case PN_F_MB_ACK:
		mb_on_client(sn, e, d, type, &r);
		return;
	default:
		break;
	}
	sn->st.bad_packets++;
}

static void handle_hs1(struct pn_supernode *sn, const struct pn_addr *from, const struct pn_pkt_hdr *h)
{
	struct pn_link_params p;
	struct pn_lent *e;
	uint8_t e_sk[32];
	uint32_t idx;
	uint64_t now = now_ms(sn);

	if (h->purpose != PN_PURPOSE_ATTACH && h->purpose != PN_PURPOSE_OVERLAY) {
		sn->st.bad_packets++;
		return;
	}
	if (!serving(sn)) /* open policy, self-test not passed: no clients, no overlay */
		return;
	e = pn_ltab_find_pending(&sn->links, from, h->sender_idx);
	if (e) { /* our HS2 was lost: resend it */
		sn->env.send(sn->env.ctx, &e->addr, e->link.hs_pkt, e->link.hs_pkt_len);
		return;
	}
	e = pn_ltab_alloc(&sn->links, &sn->env, &idx);
	if (!e)
		return;
	sn->env.random(sn->env.ctx, e_sk, sizeof(e_sk));
	memset(&p, 0, sizeof(p));
	p.s_sk = sn->me.dh_sk;
	p.e_sk = e_sk;
	p.local_idx = idx;
	p.timestamp_ms = now;
	p.now = now;
	p.cert = sn->cert;
	p.cert_len = sn->cert_len;
	if (pn_link_accept(&e->link, &p, h)) {
		sodium_memzero(e_sk, sizeof(e_sk));
		pn_ltab_remove(&sn->links, e);
		sn->st.bad_packets++;
		return;
	}
	sodium_memzero(e_sk, sizeof(e_sk));
	e->addr = *from;
	e->last_active = now;
	if (h->purpose == PN_PURPOSE_OVERLAY) {
		/* Another supernode: its certificate, from our root, must match its key. */
		if (e->link.state != PN_LINK_UP || check_sn_cert(sn, &e->link)) {
			sn->st.rejected_certs++;
			pn_ltab_remove(&sn->links, e);
			return;
		}
		learn(sn, e->link.remote_static, NULL, from, true);
		sn->env.send(sn->env.ctx, from, e->link.hs_pkt, e->link.hs_pkt_len);
		return;
	}
	/* IK: the device identified itself in message 1; check before answering. */
	if (e->link.state == PN_LINK_UP && attach(sn, e)) {
		pn_ltab_remove(&sn->links, e);
		return;
	}
	sn->env.send(sn->env.ctx, from, e->link.hs_pkt, e->link.hs_pkt_len);
	if (e->link.state == PN_LINK_UP) {
		/* attach() queued ATTACHED before HS2 went out; send it again after. */
		uint8_t f[64];
		struct pn_wr w;
		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_ATTACHED);
		pn_addr_write(&w, &e->addr);
		send_frame(sn, e, f, w.len);
	}
}

/* DATA for a session we do not have (we restarted, or it expired): tell the sender, so it
 * handshakes again instead of waiting for its keepalive to time out. Unauthenticated and
 * smaller than the DATA that caused it (no amplification); it names the index the sender
 * used, which an off-path attacker cannot guess; at most 200 a second. */
static void send_reset(struct pn_supernode *sn, const struct pn_addr *to, uint32_t idx)
{
	uint8_t pkt[PN_RESET_LEN];
	struct pn_wr w;
	uint64_t now = now_ms(sn);

	if (now / 1000 != sn->reset_window) {
		sn->reset_window = now / 1000;
		sn->resets_in_window = 0;
	}
	if (++sn->resets_in_window > 200)
		return;
	pn_wr_init(&w, pkt, sizeof(pkt));
	pn_wr_u8(&w, PN_PKT_RESET);
	pn_wr_u32(&w, idx);
	sn->env.send(sn->env.ctx, to, pkt, w.len);
}

static void sn_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct pn_supernode *sn = node;
	struct pn_pkt_hdr h;
	struct pn_lent *e;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;
	uint64_t now = now_ms(sn);

	/* STUN requests start with 0x00, which no packet of ours does (docs/PROTOCOL.md
	 * "STUN"): answer Binding, never with more bytes than the request had. */
	if (len > 0 && buf[0] == 0x01 && selftest_input(sn, buf, len))
		return;
	if (len > 0 && buf[0] == 0x00) {
		int rc = pn_stun_serve(&sn->env, from, buf, len);
		if (rc == 0)
			sn->st.stun_answered++;
		else if (rc == -EBADMSG)
			sn->st.bad_packets++;
		else
			sn->st.stun_dropped++;
		return;
	}
	if (pn_pkt_parse(&h, buf, len)) {
		sn->st.bad_packets++;
		return;
	}
	if (h.type == PN_PKT_HS1) {
		handle_hs1(sn, from, &h);
		return;
	}
	e = pn_ltab_find(&sn->links, h.receiver_idx);
	if (!e) {
		struct sn_out *o = out_find_idx(sn, h.receiver_idx);
		if (o && pn_addr_eq(from, &o->addr)) {
			out_input(sn, o, &h);
			return;
		}
		sn->st.bad_packets++;
		if (h.type == PN_PKT_RESET) {
			/* a peer supernode lost the session we use (it restarted): re-make it */
			for (o = sn->outs; o; o = o->next)
				if (o->link.state == PN_LINK_UP && o->link.remote_idx == h.receiver_idx &&
				    pn_addr_eq(from, &o->addr))
					pn_link_wipe(&o->link);
		} else if (h.type == PN_PKT_DATA) {
			send_reset(sn, from, h.receiver_idx);
		}
		return;
	}
	if (pn_link_input(&e->link, &h, now, f, sizeof(f), &n, &ev)) {
		if (e->link.rx_replay)
			sn->st.replays++;
		sn->st.bad_packets++;
		return;
	}
	e->last_active = now;
	if (ev == PN_LINK_EV_UP) { /* XX: HS3 arrived with the device certificate */
		if (attach(sn, e))
			pn_ltab_remove(&sn->links, e);
		return;
	}
	e->addr = *from; /* authenticated DATA: follow the device's address */
	if (ev == PN_LINK_EV_DATA)
		on_frame(sn, e, f, n);
}

static uint64_t sn_deadline(void *node)
{
	struct pn_supernode *sn = node;
	uint64_t t = overlay_deadline(sn);
	uint64_t h = sn->links.count ? sn->next_housekeep : UINT64_MAX;
	uint64_t m = mb_deadline(sn);
	if (m < t)
		t = m;
	return h < t ? h : t;
}

static void sn_tick(void *node)
{
	struct pn_supernode *sn = node;
	uint64_t now = now_ms(sn);

	overlay_tick(sn, now);
	mb_tick(sn, now);
	if (now < sn->next_housekeep)
		return;
	pn_ltab_expire(&sn->links, now, SN_IDLE_MS, SN_PENDING_MS);
	if (now >= sn->next_sweep) {
		out_sweep(sn, now);
		sn->next_sweep = now + SN_SWEEP_MS;
	}
	/* a slice per second: a full pass over 100,000 users would stall the node */
	pn_recstore_expire_some(sn->recs, sn->env.wall_s(sn->env.ctx), 64);
	sn->next_housekeep = now + SN_HOUSEKEEP_MS;
}

const struct pn_node_ops pn_supernode_ops = {sn_recv, sn_deadline, sn_tick};
