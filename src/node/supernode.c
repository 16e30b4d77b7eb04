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
#include "overlay/recstore.h"
#include "session/link.h"
#include "session/ltab.h"
#include "wire/wire.h"

enum {
	SN_IDLE_MS = 75000,  /* clients ping every 20 s; three missed pings detach them */
	SN_PENDING_MS = 5000,
	SN_HOUSEKEEP_MS = 1000,
	SN_DEV_BUCKETS = 4096,
	SN_FWD_PER_S = 2000, /* per attached device */
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
	struct pn_supernode_stats st;
	void (*fwd_hook)(void *arg, const uint8_t *buf, size_t len);
	void *fwd_hook_arg;
};

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

	if (!cfg->cert || cfg->cert_len > PN_CERT_MAX)
		return -EINVAL;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->env = *cfg->env;
	sn->net = *cfg->net;
	sn->public_addr = cfg->public_addr;
	memcpy(sn->cert, cfg->cert, cfg->cert_len);
	sn->cert_len = cfg->cert_len;
	rc = pn_keys_from_seed(&sn->me, cfg->seed);
	if (rc)
		goto fail;
	/* Refuse to start with a certificate that is not ours or not from this network. */
	rc = pn_cert_decode(&c, sn->cert, sn->cert_len);
	if (!rc)
		rc = pn_cert_verify(&c, sn->net.root_pk, sn->env.wall_s(sn->env.ctx), PN_CERT_SUPERNODE);
	if (!rc && !pn_ct_eq(c.dh_pk, sn->me.dh_pk, 32))
		rc = -EKEYREJECTED;
	if (rc)
		goto fail;
	rc = pn_ltab_init(&sn->links, cfg->max_clients ? cfg->max_clients : 10000);
	if (rc)
		goto fail;
	sn->links.evict_cb = on_evict;
	sn->links.evict_arg = sn;
	rc = pn_recstore_new(&sn->recs);
	if (rc)
		goto fail;
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
	pn_keys_wipe(&sn->me);
	free(sn);
}

void pn_supernode_stats(const struct pn_supernode *sn, struct pn_supernode_stats *st)
{
	*st = sn->st;
	st->records = pn_recstore_count(sn->recs);
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
		rc = pn_cert_verify(&c, sn->net.root_pk, sn->env.wall_s(sn->env.ctx), PN_CERT_DEVICE);
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
	rc = pn_record_decode_verify(&pr, rec, n, sn->net.root_pk, sn->env.wall_s(sn->env.ctx));
	/* Only the device itself publishes its record through its own attachment. */
	if (!rc && memcmp(pr.cert.device_id, d->device_id, 16) != 0)
		rc = -EPERM;
	if (rc) {
		sn->st.bad_packets++;
		send_result(sn, e, req, PN_ST_FORBIDDEN, "record rejected");
		return;
	}
	rc = pn_recstore_put(sn->recs, &pr, rec, n);
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
	if (lc.n == 0)
		f[npos - 1] = PN_ST_NOT_FOUND;
	send_frame(sn, e, f, w.len);
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
	uint64_t now = now_ms(sn);

	pn_rd_bytes(r, dst, 16);
	pn_rd_vec16(r, &pkt, &n, PN_PKT_MAX);
	if (pn_rd_end(r)) {
		sn->st.bad_packets++;
		return;
	}
	/* Per-device token bucket: a client cannot turn us into a flood amplifier. */
	d->fwd_tokens += (double)(now - d->fwd_last) * SN_FWD_PER_S / 1000.0;
	if (d->fwd_tokens > SN_FWD_PER_S)
		d->fwd_tokens = SN_FWD_PER_S;
	d->fwd_last = now;
	if (d->fwd_tokens < 1.0) {
		sn->st.rate_limited++;
		return;
	}
	d->fwd_tokens -= 1.0;
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

static void on_frame(struct pn_supernode *sn, struct pn_lent *e, const uint8_t *f, size_t n)
{
	struct sn_dev *d = e->user;
	struct pn_rd r;
	uint8_t type;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type) || !d) {
		sn->st.bad_packets++;
		return;
	}
	switch (type) {
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
	case PN_F_PUBLISH:
		on_publish(sn, e, d, &r);
		return;
	case PN_F_LOOKUP:
		on_lookup(sn, e, &r);
		return;
	case PN_F_FORWARD:
		on_forward(sn, e, d, &r);
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

	if (h->purpose != PN_PURPOSE_ATTACH) {
		sn->st.bad_packets++;
		return;
	}
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

static void sn_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct pn_supernode *sn = node;
	struct pn_pkt_hdr h;
	struct pn_lent *e;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;
	uint64_t now = now_ms(sn);

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
		sn->st.bad_packets++;
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
	return sn->links.count ? sn->next_housekeep : UINT64_MAX;
}

static void sn_tick(void *node)
{
	struct pn_supernode *sn = node;
	uint64_t now = now_ms(sn);

	if (now < sn->next_housekeep)
		return;
	pn_ltab_expire(&sn->links, now, SN_IDLE_MS, SN_PENDING_MS);
	pn_recstore_expire(sn->recs, sn->env.wall_s(sn->env.ctx));
	sn->next_housekeep = now + SN_HOUSEKEEP_MS;
}

const struct pn_node_ops pn_supernode_ops = {sn_recv, sn_deadline, sn_tick};
