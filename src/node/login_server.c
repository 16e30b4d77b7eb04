/* The login server node: registrations, logins, renewals and user profiles
 * (docs/PROTOCOL.md "Login").
 *
 * Every exchange rides a Noise IK session whose responder key clients pin from the network
 * file, so passwords travel only encrypted to the real login server. Password hashing is
 * Argon2id (libsodium crypto_pwhash_str); the hash runs synchronously on the event loop,
 * which bounds this node's rate to roughly 1 / hash time (docs/BENCHMARKS.md). */
#include "parley/login.h"

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
#include "login/store.h"
#include "session/link.h"
#include "session/ltab.h"
#include "wire/wire.h"

enum {
	LS_SESSIONS = 1024,
	LS_IDLE_MS = 30000,
	LS_PENDING_MS = 5000,
	LS_HOUSEKEEP_MS = 1000,
	LS_RATE_SLOTS = 4096,
	LS_PW_MIN = 8,
	LS_PW_MAX = 128,
};

/* What a request draws on: each kind has its own bucket per source host. */
enum rate_kind { RATE_REGISTER, RATE_LOGIN, RATE_SEARCH, RATE_KINDS };

/* Per-source-host token buckets, one per rate_kind. */
struct rate_slot {
	struct pn_addr host;
	double tokens[RATE_KINDS];
	uint64_t last_ms;
	bool used;
};

/* The last answer on a session, resent when the client retransmits the same request
 * (its copy of our answer was lost): requests are not idempotent (a registration). */
struct ls_sess {
	uint32_t req;
	size_t len;
	uint8_t frame[PN_FRAME_MAX];
};

struct pn_login_server {
	struct pn_env env;
	struct pn_network net;
	struct pn_acct_store *store;
	struct pn_keys root, me;
	uint32_t cert_lifetime;
	uint64_t pw_ops, pw_mem;
	uint32_t per_min[RATE_KINDS];
	struct pn_ltab links;
	struct rate_slot *rate;
	uint64_t next_housekeep;
	struct pn_login_stats st;
	char dummy_hash[crypto_pwhash_STRBYTES]; /* equalises timing for unknown users */
};

static void free_sess(void *arg, struct pn_lent *e)
{
	if (e->user) {
		sodium_memzero(e->user, sizeof(struct ls_sess));
		free(e->user);
		e->user = NULL;
	}
}

int pn_login_server_new(struct pn_login_server **out, const struct pn_login_config *cfg)
{
	struct pn_login_server *ls;
	int rc;

	ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	ls->env = *cfg->env;
	ls->net = *cfg->net;
	ls->cert_lifetime = cfg->cert_lifetime_s ? cfg->cert_lifetime_s : 86400;
	ls->pw_ops = cfg->pwhash_ops ? cfg->pwhash_ops : 2;
	ls->pw_mem = cfg->pwhash_mem ? cfg->pwhash_mem : 19u * 1024 * 1024;
	ls->per_min[RATE_REGISTER] = cfg->register_per_min ? cfg->register_per_min : 10;
	ls->per_min[RATE_LOGIN] = cfg->login_per_min ? cfg->login_per_min : 30;
	ls->per_min[RATE_SEARCH] = cfg->search_per_min ? cfg->search_per_min : 30;
	rc = pn_keys_from_seed(&ls->root, cfg->root_seed);
	if (!rc)
		rc = pn_keys_from_seed(&ls->me, cfg->login_seed);
	if (rc)
		goto fail;
	rc = pn_ltab_init(&ls->links, LS_SESSIONS);
	if (rc)
		goto fail;
	ls->links.evict_cb = free_sess;
	ls->rate = calloc(LS_RATE_SLOTS, sizeof(*ls->rate));
	if (!ls->rate) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = pn_acct_store_open(&ls->store, cfg->db_path);
	if (rc)
		goto fail;
	{
		/* A hash of a random password with the live parameters. */
		uint8_t r[16];
		char pw[33];
		ls->env.random(ls->env.ctx, r, sizeof(r));
		pn_hex_encode(pw, sizeof(pw), r, sizeof(r));
		if (crypto_pwhash_str_alg(ls->dummy_hash, pw, strlen(pw), ls->pw_ops,
					  (size_t)ls->pw_mem, crypto_pwhash_ALG_ARGON2ID13)) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	*out = ls;
	return 0;
fail:
	pn_login_server_free(ls);
	return rc;
}

void pn_login_server_free(struct pn_login_server *ls)
{
	if (!ls)
		return;
	pn_ltab_fini(&ls->links);
	pn_acct_store_free(ls->store);
	free(ls->rate);
	pn_keys_wipe(&ls->root);
	pn_keys_wipe(&ls->me);
	sodium_memzero(ls, sizeof(*ls));
	free(ls);
}

void pn_login_server_stats(const struct pn_login_server *ls, struct pn_login_stats *st)
{
	*st = ls->st;
}

static uint64_t now_ms(struct pn_login_server *ls)
{
	return ls->env.now_ms(ls->env.ctx);
}

/* Takes one token from the host's bucket of that kind; false when it is empty. */
static bool rate_take(struct pn_login_server *ls, const struct pn_addr *from, enum rate_kind kind)
{
	uint32_t h = 2166136261u;
	size_t n = from->family == PN_AF_INET ? 4 : 8; /* IPv6: per /64 */
	struct rate_slot *s;
	uint64_t now = now_ms(ls);
	double dt;

	for (size_t i = 0; i < n; i++)
		h = (h ^ from->ip[i]) * 16777619u;
	s = &ls->rate[h % LS_RATE_SLOTS];
	if (!s->used || !pn_addr_same_host(&s->host, from)) {
		/* A colliding host takes the slot over with a full bucket: collisions can only
		 * loosen the limit for two hosts, never lock an innocent one out. */
		memset(s, 0, sizeof(*s));
		s->used = true;
		s->host = *from;
		s->host.port = 0;
		for (int k = 0; k < RATE_KINDS; k++)
			s->tokens[k] = ls->per_min[k];
		s->last_ms = now;
	}
	dt = (double)(now - s->last_ms) / 60000.0;
	for (int k = 0; k < RATE_KINDS; k++) {
		s->tokens[k] += dt * ls->per_min[k];
		if (s->tokens[k] > ls->per_min[k])
			s->tokens[k] = ls->per_min[k];
	}
	s->last_ms = now;
	if (s->tokens[kind] < 1.0)
		return false;
	s->tokens[kind] -= 1.0;
	return true;
}

static void send_frame(struct pn_login_server *ls, struct pn_lent *e, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_MAX];
	size_t len;

	if (pn_link_seal(&e->link, f, n, now_ms(ls), pkt, sizeof(pkt), &len) == 0)
		ls->env.send(ls->env.ctx, &e->addr, pkt, len);
}

/* Sends an answer and keeps it as the session's last one, so a retransmitted request
 * gets the same answer again instead of being executed twice. */
static void answer(struct pn_login_server *ls, struct pn_lent *e, uint32_t req, const uint8_t *f,
		   size_t n)
{
	send_frame(ls, e, f, n);
	if (!e->user)
		e->user = calloc(1, sizeof(struct ls_sess));
	if (e->user) {
		struct ls_sess *s = e->user;
		s->req = req;
		s->len = n;
		memcpy(s->frame, f, n);
	}
}

/* LOGIN_RESULT with blob (a certificate, or REVOKE's notice) in its vec16. Only an answer
 * that carries a certificate (LOGIN, RENEW: sns) lists the bootstrap supernodes; the
 * others answer with n = 0. */
static void reply_blob(struct pn_login_server *ls, struct pn_lent *e, uint32_t req,
		       uint8_t status, const char *msg, const uint8_t *blob, size_t bl, bool sns)
{
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOGIN_RESULT);
	pn_wr_u32(&w, req);
	pn_wr_u8(&w, status);
	pn_wr_str8(&w, msg ? msg : "");
	pn_wr_vec16(&w, blob, bl);
	if (sns) {
		uint8_t n = 0;
		for (unsigned i = 0; i < ls->net.n_supernodes; i++)
			if (ls->net.supernodes[i].has_key)
				n++;
		pn_wr_u8(&w, n);
		for (unsigned i = 0; i < ls->net.n_supernodes; i++) {
			if (!ls->net.supernodes[i].has_key)
				continue;
			pn_addr_write(&w, &ls->net.supernodes[i].addr);
			pn_wr_bytes(&w, ls->net.supernodes[i].key, 32);
		}
	} else {
		pn_wr_u8(&w, 0);
	}
	if (w.err)
		return;
	answer(ls, e, req, f, w.len);
}

static void reply(struct pn_login_server *ls, struct pn_lent *e, uint32_t req, uint8_t status,
		  const char *msg, const struct pn_cert *cert)
{
	uint8_t cb[PN_CERT_MAX];
	int cl = 0;

	if (cert) {
		cl = pn_cert_encode(cert, cb, sizeof(cb));
		if (cl < 0)
			cl = 0;
	}
	reply_blob(ls, e, req, status, msg, cb, (size_t)cl, status == PN_ST_OK && cert);
}

/* A revocation succeeded: the answer carries the root's signed notice (in the place of a
 * LOGIN_RESULT's certificate) for the revoking device to spread to its peers. */
static void reply_revoked(struct pn_login_server *ls, struct pn_lent *e, uint32_t req,
			  const char *user, const uint8_t did[16])
{
	struct pn_revocation rv;
	uint8_t nb[PN_REVOKE_MAX];
	int n;

	memset(&rv, 0, sizeof(rv));
	memcpy(rv.device_id, did, 16);
	snprintf(rv.name, sizeof(rv.name), "%s", user);
	rv.revoked_at = ls->env.wall_s(ls->env.ctx);
	if (pn_revocation_sign(&rv, ls->root.sign_sk) ||
	    (n = pn_revocation_encode(&rv, nb, sizeof(nb))) < 0) {
		reply(ls, e, req, PN_ST_INTERNAL, "cannot sign the revocation", NULL);
		return;
	}
	reply_blob(ls, e, req, PN_ST_OK, "device revoked", nb, (size_t)n, false);
}

static int issue_cert(struct pn_login_server *ls, const char *username, const uint8_t sign_pk[32],
		      const uint8_t dh_pk[32], struct pn_cert *c)
{
	uint64_t now = ls->env.wall_s(ls->env.ctx);

	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->flags = PN_CERT_DEVICE;
	strcpy(c->name, username);
	memcpy(c->sign_pk, sign_pk, 32);
	memcpy(c->dh_pk, dh_pk, 32);
	/* Backdate a little so a client whose clock is slightly behind accepts it. */
	c->not_before = now > 300 ? now - 300 : 0;
	c->not_after = now + ls->cert_lifetime;
	return pn_cert_sign(c, ls->root.sign_sk);
}

static void on_register(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char user[64], pw[LS_PW_MAX + 2];
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, user, sizeof(user));
	pn_rd_str8(r, pw, sizeof(pw));
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		goto out;
	}
	if (!rate_take(ls, &e->addr, RATE_REGISTER)) {
		ls->st.rejected_rate++;
		reply(ls, e, req, PN_ST_RATE_LIMITED, "too many registrations from your address", NULL);
		goto out;
	}
	if (pn_username_valid(user)) {
		reply(ls, e, req, PN_ST_BAD_USERNAME,
		      "usernames are 3-32 characters a-z 0-9 . _ - starting with a letter", NULL);
		goto out;
	}
	if (strlen(pw) < LS_PW_MIN || strlen(pw) > LS_PW_MAX) {
		reply(ls, e, req, PN_ST_WEAK_PASSWORD, "passwords are 8 to 128 bytes", NULL);
		goto out;
	}
	if (crypto_pwhash_str_alg(hash, pw, strlen(pw), ls->pw_ops, (size_t)ls->pw_mem,
				  crypto_pwhash_ALG_ARGON2ID13)) {
		reply(ls, e, req, PN_ST_INTERNAL, "out of memory hashing the password", NULL);
		goto out;
	}
	rc = pn_acct_store_create_user(ls->store, user, hash, ls->env.wall_s(ls->env.ctx));
	if (rc == -EEXIST) {
		reply(ls, e, req, PN_ST_USERNAME_TAKEN, "that username is taken", NULL);
	} else if (rc) {
		reply(ls, e, req, PN_ST_INTERNAL, "account store error", NULL);
	} else {
		ls->st.registered++;
		pn_info("registered user %s", user);
		reply(ls, e, req, PN_ST_OK, "registered", NULL);
	}
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
}

static void on_login(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char user[64], pw[LS_PW_MAX + 2], dname[64], hash[crypto_pwhash_STRBYTES];
	uint8_t sign_pk[32], did[PN_DEVICE_ID];
	struct pn_cert cert;
	bool known;
	int rc;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, user, sizeof(user));
	pn_rd_str8(r, pw, sizeof(pw));
	pn_rd_bytes(r, sign_pk, 32);
	pn_rd_str8(r, dname, sizeof(dname));
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		goto out;
	}
	if (!rate_take(ls, &e->addr, RATE_LOGIN)) {
		ls->st.rejected_rate++;
		reply(ls, e, req, PN_ST_RATE_LIMITED, "too many login attempts from your address", NULL);
		goto out;
	}
	known = pn_username_valid(user) == 0 &&
		pn_acct_store_get_pwhash(ls->store, user, hash, sizeof(hash)) == 0;
	/* Unknown users cost the same hash as known ones: no username oracle by timing. */
	rc = crypto_pwhash_str_verify(known ? hash : ls->dummy_hash, pw, strlen(pw));
	if (!known || rc != 0) {
		ls->st.rejected_auth++;
		reply(ls, e, req, PN_ST_WRONG_PASSWORD, "wrong username or password", NULL);
		goto out;
	}
	pn_device_id(did, sign_pk);
	rc = pn_acct_store_upsert_device(ls->store, user, did, sign_pk, e->link.remote_static,
					 dname[0] ? dname : "device", ls->env.wall_s(ls->env.ctx));
	if (rc == -EACCES) {
		reply(ls, e, req, PN_ST_FORBIDDEN, "this device was revoked", NULL);
		goto out;
	}
	if (rc == -EPERM) {
		reply(ls, e, req, PN_ST_DEVICE_TAKEN,
		      "this device belongs to another account; use another data directory", NULL);
		goto out;
	}
	if (rc || issue_cert(ls, user, sign_pk, e->link.remote_static, &cert)) {
		reply(ls, e, req, PN_ST_INTERNAL, "could not issue a certificate", NULL);
		goto out;
	}
	ls->st.logins++;
	pn_info("login %s device %02x%02x%02x%02x", user, did[0], did[1], did[2], did[3]);
	reply(ls, e, req, PN_ST_OK, "logged in", &cert);
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
}

/* Requests without a password (RENEW, PROFILE_SET): the Noise session already proved the
 * device's static key, which must be the one registered for that device of that user, and
 * the device must not be revoked. 0, or answers the request with the refusal and returns
 * non-zero. */
static int device_check(struct pn_login_server *ls, struct pn_lent *e, uint32_t req,
			const char *user, const uint8_t sign_pk[32])
{
	uint8_t did[PN_DEVICE_ID], reg_sign[32], reg_dh[32];
	int rc;

	pn_device_id(did, sign_pk);
	rc = pn_username_valid(user) ? -ENOENT
				     : pn_acct_store_get_device(ls->store, user, did, reg_sign, reg_dh);
	if (rc || !pn_ct_eq(reg_sign, sign_pk, 32) || !pn_ct_eq(reg_dh, e->link.remote_static, 32)) {
		ls->st.rejected_auth++;
		reply(ls, e, req, rc == -EACCES ? PN_ST_FORBIDDEN : PN_ST_UNKNOWN_DEVICE,
		      rc == -EACCES ? "this device was revoked" : "unknown device", NULL);
		return -EPERM;
	}
	return 0;
}

static void on_renew(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char user[64];
	uint8_t sign_pk[32];
	struct pn_cert cert;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, user, sizeof(user));
	pn_rd_bytes(r, sign_pk, 32);
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		return;
	}
	if (!rate_take(ls, &e->addr, RATE_LOGIN)) {
		ls->st.rejected_rate++;
		reply(ls, e, req, PN_ST_RATE_LIMITED, "too many renewals from your address", NULL);
		return;
	}
	if (device_check(ls, e, req, user, sign_pk))
		return;
	/* the registered X25519 key is the session's static, which device_check compared */
	if (issue_cert(ls, user, sign_pk, e->link.remote_static, &cert)) {
		reply(ls, e, req, PN_ST_INTERNAL, "could not issue a certificate", NULL);
		return;
	}
	ls->st.renewals++;
	reply(ls, e, req, PN_ST_OK, "renewed", &cert);
}

/* ---- profiles ---- */

/* A profile is published by a logged-in device, authenticated as for RENEW; it shares the
 * login bucket because it costs about as much (one store write). */
static void on_profile_set(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char user[64];
	uint8_t sign_pk[32], searchable;
	struct pn_acct_profile p;
	const char *why;
	int rc;

	memset(&p, 0, sizeof(p));
	pn_rd_u32(r, &req);
	pn_rd_str8(r, user, sizeof(user));
	pn_rd_bytes(r, sign_pk, 32);
	pn_rd_u8(r, &searchable);
	pn_rd_str8(r, p.display_name, sizeof(p.display_name));
	pn_rd_str8(r, p.city, sizeof(p.city));
	pn_rd_str8(r, p.country, sizeof(p.country));
	pn_rd_str8(r, p.languages, sizeof(p.languages));
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		return;
	}
	if (!rate_take(ls, &e->addr, RATE_LOGIN)) {
		ls->st.rejected_rate++;
		reply(ls, e, req, PN_ST_RATE_LIMITED, "too many requests from your address", NULL);
		return;
	}
	if (device_check(ls, e, req, user, sign_pk))
		return;
	if (searchable > 1 ||
	    pn_profile_valid(p.display_name, p.city, p.country, p.languages, &why)) {
		reply(ls, e, req, PN_ST_BAD_REQUEST, searchable > 1 ? "searchable is 0 or 1" : why,
		      NULL);
		return;
	}
	p.searchable = searchable == 1;
	rc = pn_acct_store_set_profile(ls->store, user, &p, ls->env.wall_s(ls->env.ctx));
	if (rc) {
		reply(ls, e, req, PN_ST_INTERNAL, "account store error", NULL);
		return;
	}
	ls->st.profiles_set++;
	reply(ls, e, req, PN_ST_OK, "profile saved", NULL);
}

struct search_out {
	struct pn_wr *w;
	uint8_t n;
};

/* Appends one result while it fits: the answer is one frame, best matches first. */
static int search_row_cb(void *arg, const struct pn_acct_profile *p)
{
	struct search_out *o = arg;
	size_t need = 5 + strlen(p->username) + strlen(p->display_name) + strlen(p->city) +
		      strlen(p->country) + strlen(p->languages);

	if (o->w->len + need > o->w->cap)
		return 1;
	pn_wr_str8(o->w, p->username);
	pn_wr_str8(o->w, p->display_name);
	pn_wr_str8(o->w, p->city);
	pn_wr_str8(o->w, p->country);
	pn_wr_str8(o->w, p->languages);
	o->n++;
	return 0;
}

static void search_reply(struct pn_login_server *ls, struct pn_lent *e, uint32_t req,
			 uint8_t status, const char *query, unsigned limit)
{
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;
	struct search_out o = {&w, 0};
	size_t n_at;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_SEARCH_RESULT);
	pn_wr_u32(&w, req);
	n_at = w.len + 1;
	pn_wr_u8(&w, status);
	pn_wr_u8(&w, 0); /* n, set below */
	if (status == PN_ST_OK &&
	    pn_acct_store_search_profiles(ls->store, query, limit, search_row_cb, &o) < 0) {
		w.len = n_at + 1;
		o.n = 0;
		f[n_at - 1] = PN_ST_INTERNAL;
	}
	if (w.err)
		return;
	f[n_at] = o.n;
	answer(ls, e, req, f, w.len);
}

/* Any session may search (no login needed): the answer holds only what users chose to
 * publish. Searches have their own per-host bucket. */
struct dev_list {
	struct pn_wr *w;
	uint8_t n;
};

static int dev_list_cb(void *arg, const struct pn_acct_device *d)
{
	struct dev_list *l = arg;
	struct pn_wr save = *l->w;

	if (l->n == 255)
		return 1;
	pn_wr_bytes(l->w, d->device_id, 16);
	pn_wr_str8(l->w, d->name);
	pn_wr_u64(l->w, d->created_at);
	pn_wr_u64(l->w, d->last_seen);
	pn_wr_u64(l->w, d->revoked_at);
	if (l->w->err) {
		*l->w = save; /* as many as fit in one frame */
		return 1;
	}
	l->n++;
	return 0;
}

static void on_devices(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r, bool revoke)
{
	uint32_t req;
	char user[64];
	uint8_t sign_pk[32], did[16];
	int rc;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, user, sizeof(user));
	pn_rd_bytes(r, sign_pk, 32);
	if (revoke)
		pn_rd_bytes(r, did, 16);
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		return;
	}
	if (!rate_take(ls, &e->addr, RATE_LOGIN)) {
		ls->st.rejected_rate++;
		reply(ls, e, req, PN_ST_RATE_LIMITED, "too many requests from your address", NULL);
		return;
	}
	/* only a live device of the account may list or revoke its devices */
	if (device_check(ls, e, req, user, sign_pk))
		return;
	if (revoke) {
		rc = pn_acct_store_revoke_device(ls->store, user, did, ls->env.wall_s(ls->env.ctx));
		if (rc == -ENOENT)
			reply(ls, e, req, PN_ST_NOT_FOUND, "no such device on this account", NULL);
		else if (rc)
			reply(ls, e, req, PN_ST_INTERNAL, "account store error", NULL);
		else
			reply_revoked(ls, e, req, user, did);
		return;
	}
	{
		uint8_t f[PN_FRAME_MAX];
		struct pn_wr w;
		size_t npos;
		struct dev_list l = {&w, 0};

		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_DEVICES_RESULT);
		pn_wr_u32(&w, req);
		pn_wr_u8(&w, PN_ST_OK);
		npos = w.len;
		pn_wr_u8(&w, 0);
		if (pn_acct_store_list_devices(ls->store, user, dev_list_cb, &l) < 0) {
			reply(ls, e, req, PN_ST_INTERNAL, "account store error", NULL);
			return;
		}
		f[npos] = l.n;
		send_frame(ls, e, f, w.len);
	}
}

static void on_search(struct pn_login_server *ls, struct pn_lent *e, struct pn_rd *r)
{
	uint32_t req;
	char query[PN_PROFILE_QUERY_MAX + 1];
	uint8_t limit;

	pn_rd_u32(r, &req);
	pn_rd_str8(r, query, sizeof(query));
	pn_rd_u8(r, &limit);
	if (pn_rd_end(r)) {
		ls->st.bad_packets++;
		return;
	}
	if (!rate_take(ls, &e->addr, RATE_SEARCH)) {
		ls->st.rejected_rate++;
		search_reply(ls, e, req, PN_ST_RATE_LIMITED, NULL, 0);
		return;
	}
	if (limit < 1 || limit > PN_PROFILE_SEARCH_MAX ||
	    pn_text_field_valid(query, PN_PROFILE_QUERY_MAX)) {
		search_reply(ls, e, req, PN_ST_BAD_REQUEST, NULL, 0);
		return;
	}
	ls->st.searches++;
	search_reply(ls, e, req, PN_ST_OK, query, limit);
}

static void on_frame(struct pn_login_server *ls, struct pn_lent *e, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	if (e->user && n >= 5) {
		struct ls_sess *s = e->user;
		uint32_t req = (uint32_t)f[1] << 24 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 8 | f[4];
		if (req == s->req) {
			send_frame(ls, e, s->frame, s->len);
			return;
		}
	}
	switch (type) {
	case PN_F_REGISTER:
		on_register(ls, e, &r);
		break;
	case PN_F_LOGIN:
		on_login(ls, e, &r);
		break;
	case PN_F_RENEW:
		on_renew(ls, e, &r);
		break;
	case PN_F_PROFILE_SET:
		on_profile_set(ls, e, &r);
		break;
	case PN_F_SEARCH:
		on_search(ls, e, &r);
		break;
	case PN_F_DEVICES:
	case PN_F_REVOKE:
		on_devices(ls, e, &r, type == PN_F_REVOKE);
		break;
	default:
		ls->st.bad_packets++;
	}
}

static void ls_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct pn_login_server *ls = node;
	struct pn_pkt_hdr h;
	struct pn_lent *e;
	uint64_t now = now_ms(ls);

	if (pn_pkt_parse(&h, buf, len)) {
		ls->st.bad_packets++;
		return;
	}
	if (h.type == PN_PKT_HS1) {
		struct pn_link_params p;
		uint8_t e_sk[32];
		uint32_t idx;

		if (h.purpose != PN_PURPOSE_LOGIN || h.pattern != PN_PATTERN_IK) {
			ls->st.bad_packets++;
			return;
		}
		e = pn_ltab_find_pending(&ls->links, from, h.sender_idx);
		if (e) { /* our HS2 was lost: resend it */
			ls->env.send(ls->env.ctx, &e->addr, e->link.hs_pkt, e->link.hs_pkt_len);
			return;
		}
		e = pn_ltab_alloc(&ls->links, &ls->env, &idx);
		if (!e)
			return;
		ls->env.random(ls->env.ctx, e_sk, sizeof(e_sk));
		memset(&p, 0, sizeof(p));
		p.s_sk = ls->me.dh_sk;
		p.e_sk = e_sk;
		p.local_idx = idx;
		p.timestamp_ms = now;
		p.now = now;
		if (pn_link_accept(&e->link, &p, &h)) {
			sodium_memzero(e_sk, sizeof(e_sk));
			pn_ltab_remove(&ls->links, e);
			ls->st.bad_packets++;
			return;
		}
		sodium_memzero(e_sk, sizeof(e_sk));
		e->addr = *from;
		e->last_active = now;
		ls->env.send(ls->env.ctx, from, e->link.hs_pkt, e->link.hs_pkt_len);
		return;
	}
	e = pn_ltab_find(&ls->links, h.receiver_idx);
	if (!e) {
		ls->st.bad_packets++;
		return;
	}
	{
		uint8_t f[PN_PKT_RX_MAX];
		size_t n;
		enum pn_link_event ev;

		if (pn_link_input(&e->link, &h, now, f, sizeof(f), &n, &ev)) {
			ls->st.bad_packets++;
			return;
		}
		e->last_active = now;
		e->addr = *from; /* authenticated: follow the client's address */
		if (ev == PN_LINK_EV_DATA)
			on_frame(ls, e, f, n);
		sodium_memzero(f, sizeof(f));
	}
}

static uint64_t ls_deadline(void *node)
{
	struct pn_login_server *ls = node;
	return ls->links.count ? ls->next_housekeep : UINT64_MAX;
}

static void ls_tick(void *node)
{
	struct pn_login_server *ls = node;
	uint64_t now = now_ms(ls);

	if (now < ls->next_housekeep)
		return;
	pn_ltab_expire(&ls->links, now, LS_IDLE_MS, LS_PENDING_MS);
	ls->next_housekeep = now + LS_HOUSEKEEP_MS;
}

const struct pn_node_ops pn_login_server_ops = {ls_recv, ls_deadline, ls_tick};
