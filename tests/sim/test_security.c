/* Security scenarios: an attacker device, "mallory", holds a valid certificate for her own
 * username from the network root and attaches to the supernode through a link she drives by
 * hand. She then tries to impersonate, forge, flood and feed garbage. Every refusal is
 * paired with a control: the same path, used honestly, delivers — so a test cannot pass
 * because nothing got through at all. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/addr.h"
#include "base/buf.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "scenario.h"
#include "session/link.h"
#include "overlay/mbstore.h"
#include "wire/mbox.h"
#include "wire/wire.h"

enum { ALICE = 0, BOB = 1 };

enum {
	WAIT_MS = 2000,       /* long enough for any one exchange on zero-delay links */
	FLOOD_N = 10000,
	FLOOD_CAP = 2000,     /* the supernode's documented per-device envelopes per second */
	FLOOD_MARGIN = 20,
	JUNK_N = 1000,
	JUNK_MAX_LEN = 1500,
};

/* ---- the honest network --------------------------------------------------------------------- */

/* How many events named name client i emitted from index from on. */
static unsigned count_events(const struct sc_net *n, int i, const char *name, unsigned from)
{
	unsigned c = 0;

	for (unsigned k = from; k < n->n_events; k++)
		if (n->events[k].client == i && strcmp(n->events[k].name, name) == 0)
			c++;
	return c;
}

static size_t history_len(struct sc_net *n, int i, const char *with)
{
	struct sc_reply r;
	size_t len;

	assert_true(sc_call(n, i, "history", sc_args2("with", with, NULL, NULL), &r, 100));
	assert_int_equal(r.err, 0);
	len = json_array_size(json_object_get(r.result, "messages"));
	sc_reply_clear(&r);
	return len;
}

static void run_for(struct sc_net *n, uint64_t ms)
{
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + ms);
}

/* ---- mallory: a device that speaks the protocol by hand ------------------------------------- */

struct mallory {
	struct sc_net *n;
	struct pn_sim_host *h;
	const struct pn_env *env;
	struct pn_keys keys;
	uint8_t device_id[16];
	uint8_t cert[PN_CERT_MAX];
	size_t cert_len;
	uint64_t hs_ts;    /* handshake timestamps must grow per device */
	uint32_t next_idx;
	/* the attachment to the supernode */
	struct pn_link sn;
	bool attached;
	/* the last LOOKUP_RESULT frame answering lookup_req */
	uint32_t lookup_req;
	uint8_t lookup[PN_PKT_RX_MAX];
	size_t lookup_len;
	/* one end-to-end session, with the device e2e_dst */
	struct pn_link e2e;
	uint8_t e2e_dst[16];
	/* what the supernode delivered */
	unsigned n_deliver, n_hs2, n_receipts, n_resets, n_unreachable;
	uint8_t last_src[16];
	uint32_t last_reset_idx;
	/* mailbox answers: store receipts (ok / refused) and MB_DONE by status */
	unsigned n_mb_ok, n_mb_refused, n_mb_done_ok, n_mb_done_refused;
	uint8_t last_mb_status;
};

static uint64_t mal_now(struct mallory *m)
{
	return m->env->now_ms(m->env->ctx);
}

static void mal_on_deliver(struct mallory *m, struct pn_rd *r)
{
	uint8_t src[16], f[PN_PKT_RX_MAX];
	const uint8_t *pkt;
	size_t n, fl;
	struct pn_pkt_hdr h;
	enum pn_link_event ev;

	pn_rd_bytes(r, src, 16);
	pn_rd_vec16(r, &pkt, &n, PN_PKT_RX_MAX);
	if (pn_rd_end(r) || pn_pkt_parse(&h, pkt, n))
		return;
	m->n_deliver++;
	memcpy(m->last_src, src, 16);
	if (h.type == PN_PKT_RESET) {
		m->n_resets++;
		m->last_reset_idx = h.receiver_idx;
		return;
	}
	if (memcmp(src, m->e2e_dst, 16) != 0 ||
	    pn_link_input(&m->e2e, &h, mal_now(m), f, sizeof(f), &fl, &ev))
		return;
	if (ev == PN_LINK_EV_UP)
		m->n_hs2++;
	else if (ev == PN_LINK_EV_DATA && fl > 0 && f[0] == PN_F_RECEIPT)
		m->n_receipts++;
}

static void mal_on_frame(struct mallory *m, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;
	uint32_t req;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	switch (type) {
	case PN_F_ATTACHED:
		m->attached = true;
		break;
	case PN_F_LOOKUP_RESULT:
		if (pn_rd_u32(&r, &req) == 0 && req == m->lookup_req && n <= sizeof(m->lookup)) {
			memcpy(m->lookup, f, n);
			m->lookup_len = n;
		}
		break;
	case PN_F_DELIVER:
		mal_on_deliver(m, &r);
		break;
	case PN_F_UNREACHABLE:
		m->n_unreachable++;
		break;
	case PN_F_MB_RECEIPT:
	case PN_F_MB_DONE: {
		uint8_t st;
		if (pn_rd_u32(&r, &req) || pn_rd_u8(&r, &st))
			break;
		m->last_mb_status = st;
		if (type == PN_F_MB_RECEIPT && st == PN_ST_OK)
			m->n_mb_ok++;
		else if (type == PN_F_MB_RECEIPT)
			m->n_mb_refused++;
		else if (st == PN_ST_OK)
			m->n_mb_done_ok++;
		else
			m->n_mb_done_refused++;
		break;
	}
	default:
		break;
	}
}

static void mal_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct mallory *m = node;
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (!pn_addr_eq(from, &m->n->net.supernodes[0].addr) || pn_pkt_parse(&h, buf, len) ||
	    h.receiver_idx != m->sn.local_idx)
		return;
	if (pn_link_input(&m->sn, &h, mal_now(m), f, sizeof(f), &n, &ev))
		return;
	if (ev == PN_LINK_EV_DATA)
		mal_on_frame(m, f, n);
}

static uint64_t mal_deadline(void *node)
{
	return UINT64_MAX;
}

static void mal_tick(void *node)
{
}

static const struct pn_node_ops mal_ops = {mal_recv, mal_deadline, mal_tick};

static void mal_send_frame(struct mallory *m, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	assert_int_equal(pn_link_seal(&m->sn, f, n, mal_now(m), pkt, sizeof(pkt), &len), 0);
	m->env->send(m->env->ctx, &m->n->net.supernodes[0].addr, pkt, len);
}

static void mal_forward(struct mallory *m, const uint8_t dst[16], const uint8_t *pkt, size_t n)
{
	uint8_t f[PN_PKT_RX_MAX];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_FORWARD);
	pn_wr_bytes(&w, dst, 16);
	pn_wr_vec16(&w, pkt, n);
	assert_int_equal(w.err, 0);
	mal_send_frame(m, f, w.len);
}

static bool mal_attached(void *arg)
{
	return ((struct mallory *)arg)->attached;
}

/* Adds mallory's host, gives her a valid device certificate for "mallory" from the
 * scenario's root and attaches her to the supernode over Noise IK. */
static void mal_init(struct mallory *m, struct sc_net *n, const char *addr)
{
	struct pn_keys root;
	struct pn_cert c;
	struct pn_addr a;
	struct pn_link_params p;
	uint8_t seed[32], e_sk[32];
	uint64_t t0;
	int cl;

	memset(m, 0, sizeof(*m));
	m->n = n;
	m->hs_ts = 1000;
	m->next_idx = 0x6d000000;
	assert_int_equal(pn_addr_parse(&a, addr), 0);
	assert_int_equal(pn_sim_host_add(n->sim, &a, &m->h), 0);
	m->env = pn_sim_host_env(m->h);
	pn_sim_host_set_node(m->h, m, &mal_ops);
	t0 = m->env->wall_s(m->env->ctx);

	memset(seed, 0x6d, sizeof(seed));
	assert_int_equal(pn_keys_from_seed(&m->keys, seed), 0);
	assert_int_equal(pn_keys_from_seed(&root, n->root_seed), 0);
	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.flags = PN_CERT_DEVICE;
	strcpy(c.name, "mallory");
	memcpy(c.sign_pk, m->keys.sign_pk, 32);
	memcpy(c.dh_pk, m->keys.dh_pk, 32);
	c.not_before = t0 - 100;
	c.not_after = t0 + 86400;
	assert_int_equal(pn_cert_sign(&c, root.sign_sk), 0);
	pn_keys_wipe(&root);
	memcpy(m->device_id, c.device_id, 16);
	cl = pn_cert_encode(&c, m->cert, sizeof(m->cert));
	assert_true(cl > 0);
	m->cert_len = (size_t)cl;

	m->env->random(m->env->ctx, e_sk, sizeof(e_sk));
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_ATTACH;
	p.s_sk = m->keys.dh_sk;
	p.rs = n->net.supernodes[0].key;
	p.e_sk = e_sk;
	p.local_idx = m->next_idx++;
	p.timestamp_ms = m->hs_ts++;
	p.cert = m->cert;
	p.cert_len = m->cert_len;
	p.now = mal_now(m);
	assert_int_equal(pn_link_connect(&m->sn, &p), 0);
	m->env->send(m->env->ctx, &n->net.supernodes[0].addr, m->sn.hs_pkt, m->sn.hs_pkt_len);
	assert_true(pn_sim_run_while_not(n->sim, mal_attached, m, pn_sim_now(n->sim) + WAIT_MS));
	assert_int_equal(m->sn.state, PN_LINK_UP);
}

/* Looks name up through mallory's attachment; fills out with the records that verify under
 * the root (retrying while the user's devices have not published yet). Returns the count. */
static unsigned mal_lookup(struct mallory *m, const char *name, struct pn_record *out, unsigned max)
{
	for (int tries = 0; tries < 20; tries++) {
		uint8_t f[64], st, cnt;
		struct pn_wr w;
		struct pn_rd r;
		uint32_t req;
		unsigned k = 0;

		m->lookup_len = 0;
		m->lookup_req++;
		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_LOOKUP);
		pn_wr_u32(&w, m->lookup_req);
		pn_wr_str8(&w, name);
		assert_int_equal(w.err, 0);
		mal_send_frame(m, f, w.len);
		run_for(m->n, 250);
		if (!m->lookup_len)
			continue;
		pn_rd_init(&r, m->lookup + 1, m->lookup_len - 1);
		pn_rd_u32(&r, &req);
		pn_rd_u8(&r, &st);
		pn_rd_u8(&r, &cnt);
		for (unsigned i = 0; i < cnt && !r.err && k < max; i++) {
			const uint8_t *rec;
			size_t rl;
			if (pn_rd_vec16(&r, &rec, &rl, PN_REC_MAX))
				break;
			if (pn_record_decode_verify(&out[k], rec, rl, m->n->net.root_pk,
						    m->env->wall_s(m->env->ctx)) == 0)
				k++;
		}
		if (k)
			return k;
	}
	return 0;
}

/* Starts an end-to-end IK session with device dst (X25519 key rs), presenting cert. */
static void mal_e2e_connect(struct mallory *m, const uint8_t dst[16], const uint8_t rs[32],
			    const uint8_t *cert, size_t cert_len)
{
	struct pn_link_params p;
	uint8_t e_sk[32];

	m->env->random(m->env->ctx, e_sk, sizeof(e_sk));
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_E2E;
	p.s_sk = m->keys.dh_sk;
	p.rs = rs;
	p.e_sk = e_sk;
	p.local_idx = m->next_idx++;
	p.timestamp_ms = m->hs_ts++;
	p.cert = cert;
	p.cert_len = cert_len;
	p.now = mal_now(m);
	assert_int_equal(pn_link_connect(&m->e2e, &p), 0);
	memcpy(m->e2e_dst, dst, 16);
	mal_forward(m, dst, m->e2e.hs_pkt, m->e2e.hs_pkt_len);
	run_for(m->n, WAIT_MS);
}

/* Sends a CHAT frame over the end-to-end session with whatever from/to mallory likes. */
static void mal_chat(struct mallory *m, const char *from, const char *to, const char *text)
{
	uint8_t f[PN_FRAME_MAX], pkt[PN_PKT_MAX], id[16];
	struct pn_wr w;
	size_t len;

	m->env->random(m->env->ctx, id, sizeof(id));
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_CHAT);
	pn_wr_bytes(&w, id, 16);
	pn_wr_u64(&w, m->env->wall_s(m->env->ctx) * 1000);
	pn_wr_str8(&w, from);
	pn_wr_str8(&w, to);
	pn_wr_vec16(&w, text, strlen(text));
	assert_int_equal(w.err, 0);
	assert_int_equal(pn_link_seal(&m->e2e, f, w.len, mal_now(m), pkt, sizeof(pkt), &len), 0);
	mal_forward(m, m->e2e_dst, pkt, len);
	run_for(m->n, WAIT_MS);
}

/* The network with alice, bob and an attached mallory who has looked bob up. Bob has
 * mallory as a contact (the worst case: what a stranger sends is only held as a request,
 * a contact's messages go straight into the history). */
static void setup(struct sc_net *n, struct mallory *m, uint64_t seed, struct pn_record *bob)
{
	struct sc_reply r;

	assert_int_equal(sc_net_init(n, seed, NULL), 0);
	sc_bring_up(n);
	assert_true(sc_call(n, BOB, "contacts.add", sc_args2("username", "mallory", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	mal_init(m, n, "198.18.6.6:666");
	assert_int_equal(mal_lookup(m, "bob", bob, 1), 1);
	assert_string_equal(bob->cert.name, "bob");
}

/* The received message at event index k is from `from` with text `text`. */
static void assert_received(struct sc_net *n, int k, const char *from, const char *text)
{
	assert_true(k >= 0);
	assert_string_equal(json_string_value(json_object_get(n->events[k].data, "from")), from);
	assert_string_equal(json_string_value(json_object_get(n->events[k].data, "text")), text);
}

/* ---- 1. a CHAT claiming another sender ------------------------------------------------------ */

/* Mallory's session with bob is authenticated as mallory's device; a CHAT in it that says
 * it is from alice is dropped. The same CHAT saying "mallory" is delivered. */
static void chat_claiming_another_sender_is_dropped(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob;
	unsigned ev0;

	setup(&n, &m, 101, &bob);
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len);
	assert_int_equal(m.n_hs2, 1);
	assert_int_equal(m.e2e.state, PN_LINK_UP);

	ev0 = n.n_events;
	mal_chat(&m, "alice", "bob", "it's me, alice, send money");
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 0);
	assert_int_equal(history_len(&n, BOB, "alice"), 0);
	assert_int_equal(m.n_receipts, 0);

	/* control: the same session and frame, honestly signed "mallory", is delivered */
	mal_chat(&m, "mallory", "bob", "hi bob, mallory here");
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 1);
	assert_received(&n, sc_wait_event(&n, BOB, "message.received", ev0, 0), "mallory",
			"hi bob, mallory here");
	assert_int_equal(history_len(&n, BOB, "mallory"), 1);
	assert_int_equal(history_len(&n, BOB, "alice"), 0);
	assert_int_equal(m.n_receipts, 1);
	sc_net_free(&n);
}

/* ---- 2. a stolen certificate in the end-to-end handshake ------------------------------------ */

/* Mallory copies alice's certificate out of alice's record and presents it in her message 1
 * while holding only her own static key: bob refuses the handshake (no HS2). Presenting
 * her own certificate, the same handshake succeeds. */
static void stolen_certificate_refused_end_to_end(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob, alice;
	uint8_t acert[PN_CERT_MAX];
	unsigned ev0;
	int cl;

	setup(&n, &m, 102, &bob);
	assert_int_equal(mal_lookup(&m, "alice", &alice, 1), 1);
	cl = pn_cert_encode(&alice.cert, acert, sizeof(acert));
	assert_true(cl > 0);

	ev0 = n.n_events;
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, acert, (size_t)cl);
	assert_int_equal(m.n_hs2, 0);
	assert_int_equal(m.e2e.state, PN_LINK_WAIT_HS2);
	assert_int_equal(m.n_deliver, 0);
	/* not even a repeat of message 1 (as after a lost HS2) gets an answer */
	mal_forward(&m, bob.cert.device_id, m.e2e.hs_pkt, m.e2e.hs_pkt_len);
	run_for(&n, WAIT_MS);
	assert_int_equal(m.n_hs2, 0);
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 0);
	assert_int_equal(history_len(&n, BOB, "alice"), 0);

	/* control: her own certificate opens the session and carries a message */
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len);
	assert_int_equal(m.n_hs2, 1);
	mal_chat(&m, "mallory", "bob", "my own name this time");
	assert_received(&n, sc_wait_event(&n, BOB, "message.received", ev0, 0), "mallory",
			"my own name this time");
	sc_net_free(&n);
}

/* ---- 3. a CHAT addressed to someone else ---------------------------------------------------- */

static void chat_addressed_to_someone_else_is_dropped(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob;
	unsigned ev0;

	setup(&n, &m, 103, &bob);
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len);
	assert_int_equal(m.n_hs2, 1);

	ev0 = n.n_events;
	mal_chat(&m, "mallory", "carol", "for carol's eyes only");
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 0);
	assert_int_equal(history_len(&n, BOB, "mallory"), 0);
	assert_int_equal(m.n_receipts, 0);

	/* control */
	mal_chat(&m, "mallory", "bob", "for bob");
	assert_received(&n, sc_wait_event(&n, BOB, "message.received", ev0, 0), "mallory",
			"for bob");
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 1);
	assert_int_equal(m.n_receipts, 1);
	sc_net_free(&n);
}

/* ---- 4. forging the source of a forwarded envelope ------------------------------------------ */

/* A FORWARD names only the destination: the supernode states the source from the session.
 * Mallory tries a DELIVER frame of her own naming alice as source, and a FORWARD with a
 * trailing "source" field; both are refused. An honest FORWARD reaches bob with mallory's
 * device id as source: bob's RESET comes back to her, and bob accepts her certificate
 * (whose device id he checks against the stated source). */
static void forward_source_is_set_by_supernode(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob, alice;
	struct pn_supernode_stats before, after;
	uint8_t f[128], data[PN_DATA_HDR + PN_TAG + 8];
	struct pn_wr w;
	unsigned ev0;

	setup(&n, &m, 104, &bob);
	assert_int_equal(mal_lookup(&m, "alice", &alice, 1), 1);
	/* a DATA packet for a session bob does not have: he answers with a RESET */
	memset(data, 0xab, sizeof(data));
	pn_wr_init(&w, data, sizeof(data));
	pn_wr_u8(&w, PN_PKT_DATA);
	pn_wr_u32(&w, 0xdeadbeef);
	pn_wr_u64(&w, 1);
	assert_int_equal(w.err, 0);
	ev0 = n.n_events;

	/* a DELIVER frame from a client, naming alice as source */
	pn_supernode_stats(n.sn, &before);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_DELIVER);
	pn_wr_bytes(&w, alice.cert.device_id, 16);
	pn_wr_vec16(&w, data, sizeof(data));
	assert_int_equal(w.err, 0);
	mal_send_frame(&m, f, w.len);
	/* a FORWARD with alice's device id appended as if it were a source field */
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_FORWARD);
	pn_wr_bytes(&w, bob.cert.device_id, 16);
	pn_wr_vec16(&w, data, sizeof(data));
	pn_wr_bytes(&w, alice.cert.device_id, 16);
	assert_int_equal(w.err, 0);
	mal_send_frame(&m, f, w.len);
	run_for(&n, WAIT_MS);
	pn_supernode_stats(n.sn, &after);
	assert_int_equal(after.forwarded, before.forwarded);
	assert_true(after.bad_packets >= before.bad_packets + 2);
	assert_int_equal(m.n_deliver, 0);

	/* the honest FORWARD: bob's RESET goes to the source he was told, mallory */
	mal_forward(&m, bob.cert.device_id, data, sizeof(data));
	run_for(&n, WAIT_MS);
	pn_supernode_stats(n.sn, &after);
	assert_int_equal(after.forwarded, before.forwarded + 2); /* the envelope and the RESET */
	assert_int_equal(m.n_resets, 1);
	assert_int_equal(m.last_reset_idx, 0xdeadbeef);
	assert_memory_equal(m.last_src, bob.cert.device_id, 16);

	/* bob binds the session to the stated source: mallory's certificate matches it */
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len);
	assert_int_equal(m.n_hs2, 1);
	mal_chat(&m, "mallory", "bob", "source check");
	assert_received(&n, sc_wait_event(&n, BOB, "message.received", ev0, 0), "mallory",
			"source check");
	assert_int_equal(count_events(&n, ALICE, "message.received", ev0), 0);
	sc_net_free(&n);
}

/* ---- 5. a forwarding flood ------------------------------------------------------------------ */

/* 10,000 FORWARD frames at one instant of virtual time: the supernode delivers at most its
 * per-device budget (2000/s) and counts the rest; alice and bob keep talking. */
static void forward_flood_is_capped_per_device(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob;
	struct pn_supernode_stats before, after;
	uint8_t reset[PN_RESET_LEN];
	struct pn_wr w;
	uint64_t delivered, dropped;

	setup(&n, &m, 105, &bob);
	/* a RESET for an index bob never used: he ignores it, so the flood costs him nothing
	 * but the DELIVER frames themselves */
	pn_wr_init(&w, reset, sizeof(reset));
	pn_wr_u8(&w, PN_PKT_RESET);
	pn_wr_u32(&w, 0x0badf00d);
	assert_int_equal(w.err, 0);
	pn_supernode_stats(n.sn, &before);
	for (int i = 0; i < FLOOD_N; i++)
		mal_forward(&m, bob.cert.device_id, reset, sizeof(reset));
	run_for(&n, 1000);
	pn_supernode_stats(n.sn, &after);
	delivered = after.forwarded - before.forwarded;
	dropped = after.rate_limited - before.rate_limited;
	if (getenv("SC_DEBUG"))
		fprintf(stderr, "flood: forwarded %llu, dropped %llu\n",
			(unsigned long long)delivered, (unsigned long long)dropped);
	assert_true(delivered <= FLOOD_CAP + FLOOD_MARGIN);
	assert_true(delivered >= FLOOD_CAP / 2); /* the flood did reach the supernode */
	assert_true(dropped + delivered >= FLOOD_N);
	sc_exchange(&n, ALICE, BOB, "bob", "still here after the flood");
	sc_exchange(&n, BOB, ALICE, "alice", "me too");
	sc_net_free(&n);
}

/* ---- 6. random datagrams -------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A random datagram of 0..JUNK_MAX_LEN bytes. Half of them start with a valid packet type
 * (and, for HS1, a valid pattern and purpose) so they get past the first byte. */
static size_t junk(uint64_t *s, uint8_t *buf)
{
	size_t len = (size_t)(splitmix64(s) % (JUNK_MAX_LEN + 1));

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)splitmix64(s);
	if (len > 0 && splitmix64(s) % 2) {
		buf[0] = (uint8_t)(1 + splitmix64(s) % 5);
		if (buf[0] == PN_PKT_HS1 && len > 2) {
			buf[1] = (uint8_t)(1 + splitmix64(s) % 2);
			buf[2] = (uint8_t)(1 + splitmix64(s) % 3);
		}
	}
	return len;
}

static void random_datagrams_are_counted_and_survived(void **state)
{
	struct sc_net n;
	struct pn_sim_host *h;
	struct pn_addr a, bob_addr;
	struct pn_supernode_stats sb, sa;
	struct pn_login_stats lb, la;
	struct sc_reply r;
	uint8_t buf[JUNK_MAX_LEN];
	uint64_t s = 0x5eed5eed;
	const struct pn_env *env;
	const struct pn_addr *to[3];

	assert_int_equal(sc_net_init(&n, 106, NULL), 0);
	sc_bring_up(&n);
	assert_int_equal(pn_addr_parse(&a, "198.18.7.7:7"), 0);
	assert_int_equal(pn_sim_host_add(n.sim, &a, &h), 0);
	env = pn_sim_host_env(h);
	to[0] = &n.net.supernodes[0].addr;
	to[1] = &n.net.login.addr;
	assert_int_equal(pn_addr_parse(&bob_addr, "198.18.1.2:5000"), 0);
	to[2] = &bob_addr;
	pn_supernode_stats(n.sn, &sb);
	pn_login_server_stats(n.login, &lb);
	for (int t = 0; t < 3; t++) {
		for (int i = 0; i < JUNK_N; i++) {
			size_t len = junk(&s, buf);
			env->send(env->ctx, to[t], buf, len);
		}
		run_for(&n, 100);
	}
	run_for(&n, WAIT_MS);
	pn_supernode_stats(n.sn, &sa);
	pn_login_server_stats(n.login, &la);
	if (getenv("SC_DEBUG"))
		fprintf(stderr, "junk: supernode bad +%llu, login bad +%llu\n",
			(unsigned long long)(sa.bad_packets - sb.bad_packets),
			(unsigned long long)(la.bad_packets - lb.bad_packets));
	/* Each datagram is refused and counted. A random XX message 1 of exactly 32 bytes of
	 * body is a well-formed unauthenticated first message, so allow the odd one. */
	assert_true(sa.bad_packets - sb.bad_packets >= JUNK_N - 10);
	assert_true(la.bad_packets - lb.bad_packets >= JUNK_N - 10);
	assert_int_equal(sa.clients, sb.clients);
	assert_true(sc_call(&n, BOB, "status", NULL, &r, 1000));
	assert_string_equal(json_string_value(json_object_get(r.result, "state")), "online");
	sc_reply_clear(&r);
	sc_exchange(&n, ALICE, BOB, "bob", "after the noise");
	sc_exchange(&n, BOB, ALICE, "alice", "loud and clear");
	sc_net_free(&n);
}

/* ---- 7. garbage inside authenticated sessions ----------------------------------------------- */

/* The parsers behind the cryptography: random frames sealed in mallory's attachment (the
 * supernode's frame parser), random packets in FORWARD envelopes to bob (his envelope
 * parser) and random frames sealed in her end-to-end session with bob (his chat parser).
 * Nothing crashes, nothing is shown to bob, and messaging still works. */
static void garbage_inside_sessions_is_survived(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob;
	struct pn_supernode_stats sb, sa;
	uint8_t buf[JUNK_MAX_LEN], pkt[PN_PKT_RX_MAX];
	uint64_t s = 0xfeedface;
	unsigned ev0;

	setup(&n, &m, 107, &bob);
	mal_e2e_connect(&m, bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len);
	assert_int_equal(m.n_hs2, 1);
	ev0 = n.n_events;
	pn_supernode_stats(n.sn, &sb);
	/* attachment frames: a random type from the attachment family, random body */
	for (int i = 0; i < JUNK_N; i++) {
		size_t len = 1 + (size_t)(splitmix64(&s) % (PN_FRAME_MAX - 1));
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)splitmix64(&s);
		buf[0] = (uint8_t)(0x20 + splitmix64(&s) % 10);
		mal_send_frame(&m, buf, len);
		if (i % 100 == 99)
			run_for(&n, 100);
	}
	run_for(&n, WAIT_MS);
	pn_supernode_stats(n.sn, &sa);
	assert_true(sa.bad_packets > sb.bad_packets);
	/* end-to-end packets of random content, to bob through the supernode; spread over
	 * time so the forwarding budget is not what stops them */
	for (int i = 0; i < JUNK_N; i++) {
		size_t len = junk(&s, buf);
		if (len > PN_FRAME_MAX - 1 - 16 - 2) /* what fits in one FORWARD */
			len = PN_FRAME_MAX - 1 - 16 - 2;
		mal_forward(&m, bob.cert.device_id, buf, len);
		if (i % 100 == 99)
			run_for(&n, 100);
	}
	run_for(&n, WAIT_MS);
	/* random frames inside the authenticated end-to-end session */
	for (int i = 0; i < JUNK_N; i++) {
		size_t len = 1 + (size_t)(splitmix64(&s) % 1300), pl;
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)splitmix64(&s);
		buf[0] = (uint8_t)(0x40 + splitmix64(&s) % 3);
		assert_int_equal(
			pn_link_seal(&m.e2e, buf, len, pn_sim_now(n.sim), pkt, sizeof(pkt), &pl), 0);
		mal_forward(&m, bob.cert.device_id, pkt, pl);
		if (i % 100 == 99)
			run_for(&n, 100);
	}
	run_for(&n, WAIT_MS);
	assert_int_equal(count_events(&n, BOB, "message.received", ev0), 0);
	sc_exchange(&n, ALICE, BOB, "bob", "after the garbage");
	sc_exchange(&n, BOB, ALICE, "alice", "none got through");
	sc_net_free(&n);
}

/* ---- 8. mailboxes ------------------------------------------------------------------------------ */

/* Mallory seals a message for device `to` (X25519 key to_pk) and deposits it into
 * owner's mailbox, presenting `cert` as the sender (her own, or one she copied). */
static void mal_deposit(struct mallory *m, const char *owner, const uint8_t to[16],
			const uint8_t to_pk[32], const uint8_t *cert, size_t cert_len, size_t pad,
			uint8_t entry[16])
{
	uint8_t inner[PN_FRAME_MAX], env[2048], f[2200], id[16];
	struct pn_wr w;
	int el;

	m->env->random(m->env->ctx, id, sizeof(id));
	m->env->random(m->env->ctx, entry, 16);
	pn_wr_init(&w, inner, sizeof(inner));
	pn_wr_u8(&w, PN_F_CHAT);
	pn_wr_bytes(&w, id, 16);
	pn_wr_u64(&w, m->env->wall_s(m->env->ctx) * 1000);
	pn_wr_str8(&w, "mallory");
	pn_wr_str8(&w, owner);
	pn_wr_vec16(&w, "buy now", 7);
	assert_int_equal(w.err, 0);
	el = pn_mb_env_seal(env, sizeof(env), PN_MB_CHAT, entry, to, to_pk,
			    m->env->wall_s(m->env->ctx) + 3600, cert, cert_len, &m->keys, inner, w.len);
	assert_true(el > 0);
	memset(env + el, 0, pad);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_DEPOSIT);
	pn_wr_u32(&w, 7);
	pn_wr_str8(&w, owner);
	pn_wr_u8(&w, 0);
	pn_wr_vec16(&w, env, (size_t)el + pad);
	assert_int_equal(w.err, 0);
	mal_send_frame(m, f, w.len);
	run_for(m->n, 50);
}

static void mal_ack(struct mallory *m, const char *owner, const uint8_t *cert, size_t cert_len,
		    uint64_t ts, const uint8_t (*ids)[16], unsigned n, uint8_t *frame, size_t *flen)
{
	int al;

	frame[0] = PN_F_MB_ACK;
	memset(frame + 1, 0, 4);
	al = pn_mb_ack_sign(frame + 5, PN_FRAME_MAX - 5, owner, cert, cert_len, &m->keys, ts, ids, n);
	assert_true(al > 0);
	*flen = 5 + (size_t)al;
	mal_send_frame(m, frame, *flen);
	run_for(m->n, 200);
}

/* Offline bob's mailbox under attack: a stranger's flood fills only the small request
 * quota (alice's messages, with her pass, still go in); an envelope claiming another
 * sender, an oversized one, acknowledgements by anyone but a device of bob, and a
 * replayed acknowledgement are refused and counted. Control: bob comes back and gets
 * everything that was accepted, once; alice sees hers delivered. */
static void mailbox_abuse_refused_and_counted(void **state)
{
	struct sc_net n;
	struct mallory m;
	struct pn_record bob, alice;
	struct pn_supernode_stats st;
	struct sc_reply r;
	uint8_t entries[40][16], own[16], frame[PN_FRAME_MAX];
	size_t flen;
	unsigned ev0, stored = 0, received = 0, delivered = 0;

	(void)state;
	setup(&n, &m, 808, &bob);
	assert_int_equal(mal_lookup(&m, "alice", &alice, 1), 1);
	for (int i = 0; i < 2; i++) {
		assert_true(sc_call(&n, i, "contacts.add",
				    sc_args2("username", i ? "alice" : "bob", NULL, NULL), &r, 1000));
		sc_reply_clear(&r);
	}
	sc_exchange(&n, ALICE, BOB, "bob", "before");
	pn_sim_host_set_up(n.client_hosts[BOB], false);
	ev0 = n.n_events;
	for (int i = 0; i < 3; i++) {
		assert_true(sc_call(&n, ALICE, "send", sc_args2("to", "bob", "text", "from a contact"), &r, 1000));
		sc_reply_clear(&r);
		run_for(&n, 10);
	}
	run_for(&n, 20000);
	/* the flood: 8 accepted (the per-sender share of the request quota), the rest refused */
	for (int i = 0; i < 30; i++)
		mal_deposit(&m, "bob", bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len, 0,
			    entries[i]);
	run_for(&n, 1000);
	printf("  flood: %u stored, %u refused\n", m.n_mb_ok, m.n_mb_refused);
	assert_int_equal(m.n_mb_ok, PN_MBS_REQ_PER_SENDER);
	assert_int_equal(m.n_mb_refused, 30 - PN_MBS_REQ_PER_SENDER);
	pn_supernode_stats(n.sn, &st);
	assert_true(st.mb_quota_refused == 30 - PN_MBS_REQ_PER_SENDER);
	/* alice still gets in */
	for (int i = 0; i < 3; i++) {
		assert_true(sc_call(&n, ALICE, "send", sc_args2("to", "bob", "text", "from a contact"), &r, 1000));
		sc_reply_clear(&r);
		run_for(&n, 10);
	}
	run_for(&n, 20000);
	for (unsigned k = ev0; k < n.n_events; k++)
		if (n.events[k].client == ALICE && strcmp(n.events[k].name, "message.state") == 0 &&
		    strcmp(json_string_value(json_object_get(n.events[k].data, "state")), "stored") == 0)
			stored++;
	assert_int_equal(stored, 6);
	/* an envelope naming alice as the sender (her certificate, mallory's key) */
	{
		uint8_t c[PN_CERT_MAX], e[16];
		int cl = pn_cert_encode(&alice.cert, c, sizeof(c));
		unsigned before = m.n_mb_refused;
		assert_true(cl > 0);
		mal_deposit(&m, "bob", bob.cert.device_id, bob.cert.dh_pk, c, (size_t)cl, 0, e);
		assert_int_equal(m.n_mb_refused, before + 1);
		assert_int_equal(m.last_mb_status, PN_ST_FORBIDDEN);
		/* oversized */
		mal_deposit(&m, "bob", bob.cert.device_id, bob.cert.dh_pk, m.cert, m.cert_len, 1000, e);
		assert_int_equal(m.n_mb_refused, before + 2);
	}
	pn_supernode_stats(n.sn, &st);
	assert_true(st.mb_bad_envelopes == 1);
	assert_true(st.mb_oversized == 1);
	/* acknowledgements deleting bob's entries: with mallory's own certificate, and with
	 * bob's certificate but mallory's signature */
	{
		uint64_t held = st.mb_entries;
		uint8_t c[PN_CERT_MAX];
		int cl = pn_cert_encode(&bob.cert, c, sizeof(c));
		mal_ack(&m, "bob", m.cert, m.cert_len, 1, (const uint8_t (*)[16])entries, 8, frame, &flen);
		mal_ack(&m, "bob", c, (size_t)cl, 2, (const uint8_t (*)[16])entries, 8, frame, &flen);
		assert_int_equal(m.n_mb_done_refused, 2);
		pn_supernode_stats(n.sn, &st);
		assert_true(st.mb_bad_acks == 2);
		assert_true(st.mb_entries == held);
	}
	/* mallory's own mailbox: a valid acknowledgement deletes, its replay is refused */
	mal_deposit(&m, "mallory", m.device_id, m.keys.dh_pk, m.cert, m.cert_len, 0, own);
	pn_supernode_stats(n.sn, &st);
	{
		uint64_t held = st.mb_entries, done = m.n_mb_done_ok;
		mal_ack(&m, "mallory", m.cert, m.cert_len, 5, (const uint8_t (*)[16])own, 1, frame, &flen);
		assert_true(m.n_mb_done_ok > done);
		pn_supernode_stats(n.sn, &st);
		assert_true(st.mb_entries == held - 1);
		mal_send_frame(&m, frame, flen); /* the same bytes again */
		run_for(&n, 200);
		pn_supernode_stats(n.sn, &st);
		assert_true(st.mb_replays == 1);
	}
	/* control: bob comes back and takes everything accepted, once */
	ev0 = n.n_events;
	pn_sim_host_set_up(n.client_hosts[BOB], true);
	run_for(&n, 40000);
	for (unsigned k = ev0; k < n.n_events; k++) {
		received += n.events[k].client == BOB && strcmp(n.events[k].name, "message.received") == 0;
		delivered += n.events[k].client == ALICE && strcmp(n.events[k].name, "message.state") == 0 &&
			     strcmp(json_string_value(json_object_get(n.events[k].data, "state")), "delivered") == 0;
	}
	printf("  bob back: %u received, alice: %u delivered\n", received, delivered);
	assert_true(sc_call(&n, BOB, "status", NULL, &r, 1000));
	{
		char *d = json_dumps(json_object_get(r.result, "mailbox"), JSON_COMPACT);
		printf("  bob's mailbox counters: %s\n", d);
		free(d);
	}
	sc_reply_clear(&r);
	assert_int_equal(received, 6 + PN_MBS_REQ_PER_SENDER);
	assert_int_equal(delivered, 6);
	/* bob's mailbox is empty; what is left are bob's receipts in the senders' mailboxes */
	assert_int_equal(pn_supernode_mailbox_entries(n.sn, "bob"), 0);
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chat_claiming_another_sender_is_dropped),
		cmocka_unit_test(stolen_certificate_refused_end_to_end),
		cmocka_unit_test(chat_addressed_to_someone_else_is_dropped),
		cmocka_unit_test(forward_source_is_set_by_supernode),
		cmocka_unit_test(forward_flood_is_capped_per_device),
		cmocka_unit_test(random_datagrams_are_counted_and_survived),
		cmocka_unit_test(garbage_inside_sessions_is_survived),
		cmocka_unit_test(mailbox_abuse_refused_and_counted),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
