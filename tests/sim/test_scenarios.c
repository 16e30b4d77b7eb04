/* Simulator scenarios: a whole network in virtual time, read as protocol stories. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/addr.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "overlay/kad.h"
#include "scenario.h"
#include "session/link.h"
#include "wire/wire.h"

enum { ALICE = 0, BOB = 1 };

static void register_login_message_both_ways(void **state)
{
	struct sc_net n;
	struct sc_reply r;
	json_t *msgs;

	assert_int_equal(sc_net_init(&n, 42, NULL), 0);
	sc_bring_up(&n);
	assert_true(sc_call(&n, ALICE, "contacts.add", sc_args2("username", "bob", NULL, NULL), &r, 100));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	assert_true(sc_call(&n, ALICE, "whois", sc_args2("username", "bob", NULL, NULL), &r, 10000));
	assert_int_equal(r.err, 0);
	assert_true(json_is_true(json_object_get(r.result, "online")));
	assert_int_equal(json_array_size(json_object_get(r.result, "devices")), 1);
	sc_reply_clear(&r);
	sc_exchange(&n, ALICE, BOB, "bob", "hello bob");
	sc_exchange(&n, BOB, ALICE, "alice", "hello alice");
	/* Both histories hold both messages, in order, with final states. */
	assert_true(sc_call(&n, ALICE, "history", sc_args2("with", "bob", NULL, NULL), &r, 100));
	msgs = json_object_get(r.result, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "text")),
			    "hello bob");
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "state")),
			    "delivered");
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "direction")),
			    "in");
	sc_reply_clear(&r);
	sc_net_free(&n);
}

static void wrong_password_and_bad_username(void **state)
{
	struct sc_net n;
	struct sc_reply r;

	assert_int_equal(sc_net_init(&n, 7, NULL), 0);
	sc_bring_up(&n);
	assert_true(sc_call(&n, ALICE, "register", sc_args2("username", "bob", "password", "whatever12"),
			    &r, 10000));
	assert_string_equal(r.code, "username_taken");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, BOB, "login", sc_args2("username", "alice", "password", "not her pass"),
			    &r, 10000));
	assert_string_equal(r.code, "wrong_password");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, BOB, "login", sc_args2("username", "nobody", "password", "whatever12"),
			    &r, 10000));
	assert_string_equal(r.code, "wrong_password"); /* no username oracle */
	sc_reply_clear(&r);
	assert_true(sc_call(&n, BOB, "register", sc_args2("username", "Bad Name", "password", "whatever12"),
			    &r, 100));
	assert_string_equal(r.code, "bad_username");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, ALICE, "whois", sc_args2("username", "nobody", NULL, NULL), &r, 10000));
	assert_string_equal(r.code, "no_such_user");
	sc_reply_clear(&r);
	sc_net_free(&n);
}

/* The same seed gives the same story, to the millisecond. */
static void deterministic_with_seed(void **state)
{
	uint64_t t[2];

	for (int run = 0; run < 2; run++) {
		struct sc_net n;
		struct pn_sim_link l = {.delay_ms = 15, .jitter_ms = 10, .loss = 0.05};
		assert_int_equal(sc_net_init(&n, 99, &l), 0);
		sc_bring_up(&n);
		t[run] = sc_exchange(&n, ALICE, BOB, "bob", "same every time");
		sc_net_free(&n);
	}
	assert_true(t[0] == t[1]);
}

/* 20% loss both ways and 40 ms delay: every message still arrives exactly once. */
static void lossy_links_deliver_everything_once(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 40, .jitter_ms = 20, .loss = 0.2};
	struct sc_reply r;
	char text[32];
	int received = 0;

	assert_int_equal(sc_net_init(&n, 1234, &l), 0);
	sc_bring_up(&n);
	sc_accept_sender(&n, ALICE, BOB);
	for (int i = 0; i < 20; i++) {
		snprintf(text, sizeof(text), "msg %d", i);
		assert_true(sc_call(&n, ALICE, "send", sc_args2("to", "bob", "text", text), &r, 1000));
		assert_int_equal(r.err, 0);
		sc_reply_clear(&r);
	}
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 60000);
	for (unsigned k = 0; k < n.n_events; k++)
		if (n.events[k].client == BOB && strcmp(n.events[k].name, "message.received") == 0)
			received++;
	if (getenv("SC_DEBUG"))
		for (unsigned k = 0; k < n.n_events; k++) {
			char *d = json_dumps(n.events[k].data, JSON_COMPACT);
			fprintf(stderr, "%llu c%d %s %s\n", (unsigned long long)n.events[k].at,
				n.events[k].client, n.events[k].name, d);
			free(d);
		}
	assert_int_equal(received, 20);
	assert_true(sc_call(&n, BOB, "history", json_pack("{s:s,s:i}", "with", "alice", "limit", 100),
			    &r, 100));
	assert_int_equal(json_array_size(json_object_get(r.result, "messages")), 20);
	sc_reply_clear(&r);
	assert_true(sc_call(&n, ALICE, "history", json_pack("{s:s,s:i}", "with", "bob", "limit", 100),
			    &r, 100));
	for (size_t i = 0; i < 20; i++)
		assert_string_equal(json_string_value(json_object_get(
					    json_array_get(json_object_get(r.result, "messages"), i), "state")),
				    "delivered");
	sc_reply_clear(&r);
	sc_net_free(&n);
}

/* What the supernode forwards is ciphertext: a canary never appears in it. */
static const char canary[] = "CANARY-7f3a-plaintext";
static int canary_hits, forwarded;

static void fwd_hook(void *arg, const uint8_t *buf, size_t len)
{
	forwarded++;
	if (len >= sizeof(canary) - 1 && memmem(buf, len, canary, sizeof(canary) - 1))
		canary_hits++;
}

struct tap_ctx {
	int packets_with_canary;
	int total;
};

static void tap(void *arg, const struct pn_addr *from, const struct pn_addr *to, const uint8_t *buf,
		size_t len)
{
	struct tap_ctx *t = arg;
	t->total++;
	if (memmem(buf, len, canary, sizeof(canary) - 1))
		t->packets_with_canary++;
}

static void supernode_sees_only_ciphertext(void **state)
{
	struct sc_net n;
	struct tap_ctx t = {0, 0};

	assert_int_equal(sc_net_init(&n, 5, NULL), 0);
	sc_bring_up(&n);
	pn_supernode_set_forward_hook(n.sn, fwd_hook, NULL);
	pn_sim_set_tap(n.sim, tap, &t);
	sc_exchange(&n, ALICE, BOB, "bob", canary);
	assert_true(forwarded > 0);
	assert_int_equal(canary_hits, 0);
	assert_true(t.total > 0);
	assert_int_equal(t.packets_with_canary, 0);
	sc_net_free(&n);
}

/* A raw device that speaks the attach handshake with a certificate of our choosing. */
static int try_attach_keys(struct sc_net *n, const uint8_t root_seed[32], const char *name,
			   int64_t not_after_delta, struct pn_sim_host **hp, const char *addr,
			   bool stolen_cert);

static int try_attach(struct sc_net *n, const uint8_t root_seed[32], const char *name,
		      int64_t not_after_delta, struct pn_sim_host **hp, const char *addr)
{
	return try_attach_keys(n, root_seed, name, not_after_delta, hp, addr, false);
}

/* stolen_cert: present a valid certificate for someone else's keys (copied off the
 * wire) while holding only our own static key. */
static int try_attach_keys(struct sc_net *n, const uint8_t root_seed[32], const char *name,
			   int64_t not_after_delta, struct pn_sim_host **hp, const char *addr,
			   bool stolen_cert)
{
	struct pn_keys root, dev;
	uint8_t dseed[32], cb[PN_CERT_MAX], e_sk[32];
	struct pn_cert c;
	struct pn_link l;
	struct pn_link_params p;
	struct pn_addr a;
	struct pn_supernode_stats before, after;
	int cl;
	uint64_t t0 = pn_sim_host_env(n->sn_host)->wall_s(pn_sim_host_env(n->sn_host)->ctx);

	memset(dseed, 0x5a, sizeof(dseed));
	memset(e_sk, 0x33, sizeof(e_sk));
	pn_keys_from_seed(&root, root_seed);
	pn_keys_from_seed(&dev, dseed);
	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.flags = PN_CERT_DEVICE;
	strcpy(c.name, name);
	memcpy(c.sign_pk, dev.sign_pk, 32);
	memcpy(c.dh_pk, dev.dh_pk, 32);
	if (stolen_cert) {
		struct pn_keys victim;
		uint8_t vseed[32];
		memset(vseed, 0x77, sizeof(vseed));
		pn_keys_from_seed(&victim, vseed);
		memcpy(c.sign_pk, victim.sign_pk, 32);
		memcpy(c.dh_pk, victim.dh_pk, 32);
	}
	c.not_before = t0 - 100;
	c.not_after = (uint64_t)((int64_t)t0 + not_after_delta);
	assert_int_equal(pn_cert_sign(&c, root.sign_sk), 0);
	cl = pn_cert_encode(&c, cb, sizeof(cb));
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_ATTACH;
	p.s_sk = dev.dh_sk;
	p.rs = n->net.supernodes[0].key;
	p.e_sk = e_sk;
	p.local_idx = 77;
	p.timestamp_ms = 1;
	p.cert = cb;
	p.cert_len = (size_t)cl;
	assert_int_equal(pn_link_connect(&l, &p), 0);
	pn_addr_parse(&a, addr);
	if (!*hp)
		assert_int_equal(pn_sim_host_add(n->sim, &a, hp), 0);
	pn_supernode_stats(n->sn, &before);
	pn_sim_host_env(*hp)->send(pn_sim_host_env(*hp)->ctx, &n->net.supernodes[0].addr, l.hs_pkt,
				   l.hs_pkt_len);
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 1000);
	pn_supernode_stats(n->sn, &after);
	return (int)(after.clients - before.clients);
}

static void forged_certificates_cannot_attach(void **state)
{
	struct sc_net n;
	uint8_t other_root[32];
	struct pn_sim_host *h = NULL;
	struct pn_supernode_stats st;

	assert_int_equal(sc_net_init(&n, 11, NULL), 0);
	memset(other_root, 0xee, sizeof(other_root));
	/* signed by another root */
	assert_int_equal(try_attach(&n, other_root, "alice", 3600, &h, "198.18.9.1:1"), 0);
	/* expired */
	h = NULL;
	assert_int_equal(try_attach(&n, n.root_seed, "alice", -1, &h, "198.18.9.2:1"), 0);
	/* a valid certificate, but for keys the sender does not hold */
	h = NULL;
	assert_int_equal(try_attach_keys(&n, n.root_seed, "alice", 3600, &h, "198.18.9.4:1", true), 0);
	pn_supernode_stats(n.sn, &st);
	assert_int_equal(st.rejected_certs, 3);
	/* the control: the same device with a good certificate attaches */
	h = NULL;
	assert_int_equal(try_attach(&n, n.root_seed, "alice", 3600, &h, "198.18.9.3:1"), 1);
	sc_net_free(&n);
}

/* Replays: a captured DATA packet and a captured handshake message 1 are both refused. */
struct capture {
	struct pn_addr to;
	uint8_t data[PN_PKT_RX_MAX];
	size_t data_len;
	uint8_t hs1[PN_PKT_RX_MAX];
	size_t hs1_len;
	struct pn_addr from;
};

static void cap_tap(void *arg, const struct pn_addr *from, const struct pn_addr *to,
		    const uint8_t *buf, size_t len)
{
	struct capture *c = arg;
	if (!pn_addr_eq(to, &c->to) || len > sizeof(c->data))
		return;
	c->from = *from;
	if (buf[0] == PN_PKT_DATA) {
		memcpy(c->data, buf, len);
		c->data_len = len;
	} else if (buf[0] == PN_PKT_HS1) {
		memcpy(c->hs1, buf, len);
		c->hs1_len = len;
	}
}

static void replayed_packets_rejected(void **state)
{
	struct sc_net n;
	struct capture cap;
	struct pn_supernode_stats before, after;
	struct pn_sim_host *mallory;
	struct pn_addr ma;

	memset(&cap, 0, sizeof(cap));
	assert_int_equal(sc_net_init(&n, 3, NULL), 0);
	cap.to = n.net.supernodes[0].addr;
	pn_sim_set_tap(n.sim, cap_tap, &cap);
	sc_bring_up(&n);
	sc_exchange(&n, ALICE, BOB, "bob", "to be replayed");
	pn_sim_set_tap(n.sim, NULL, NULL);
	assert_true(cap.data_len > 0 && cap.hs1_len > 0);
	pn_addr_parse(&ma, "198.18.6.6:666");
	assert_int_equal(pn_sim_host_add(n.sim, &ma, &mallory), 0);
	pn_supernode_stats(n.sn, &before);
	/* the same DATA packet again, from the original address and from another one */
	pn_sim_host_env(n.client_hosts[BOB])->send(pn_sim_host_env(n.client_hosts[BOB])->ctx,
						   &cap.to, cap.data, cap.data_len);
	pn_sim_host_env(mallory)->send(pn_sim_host_env(mallory)->ctx, &cap.to, cap.data, cap.data_len);
	/* the handshake message 1 from mallory's address */
	pn_sim_host_env(mallory)->send(pn_sim_host_env(mallory)->ctx, &cap.to, cap.hs1, cap.hs1_len);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 1000);
	pn_supernode_stats(n.sn, &after);
	assert_true(after.replays >= before.replays + 3);
	assert_int_equal(after.clients, before.clients);
	assert_int_equal(after.forwarded, before.forwarded);
	/* and the network still works */
	sc_exchange(&n, BOB, ALICE, "alice", "still fine");
	sc_net_free(&n);
}

/* Five supernodes form an overlay: alice attached to the first reaches bob attached to the
 * fifth (lookup through the overlay, envelopes relayed supernode to supernode), and the
 * lookup survives the loss of r-1 = 2 of the supernodes responsible for bob's record. */
static void overlay_across_supernodes(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10, .jitter_ms = 5, .loss = 0};
	struct sc_reply r;
	struct pn_supernode_stats st;
	uint8_t key[32];
	unsigned order[5], killed = 0;
	uint64_t relayed = 0;

	assert_int_equal(sc_net_init_multi(&n, 77, &l, 5), 0);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 0), ALICE);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.2:5000", 4), BOB);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000); /* supernodes join */
	sc_up_user(&n, ALICE, "alice");
	sc_up_user(&n, BOB, "bob");
	assert_true(sc_call(&n, BOB, "status", NULL, &r, 1000));
	assert_string_equal(json_string_value(json_object_get(r.result, "supernode")), "198.18.14.2:7701");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, ALICE, "whois", sc_args2("username", "bob", NULL, NULL), &r, 10000));
	assert_int_equal(r.err, 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
				    json_array_get(json_object_get(r.result, "devices"), 0), "supernodes"), 0)),
			    "198.18.14.2:7701");
	sc_reply_clear(&r);
	sc_exchange(&n, ALICE, BOB, "bob", "across the overlay");
	sc_exchange(&n, BOB, ALICE, "alice", "and back");
	{
		/* the longest text the API takes still fits one packet relayed across
		 * supernodes (FORWARD_VIA); one byte more is refused up front */
		char big[1200];
		memset(big, 'x', 800);
		big[800] = 0;
		sc_exchange(&n, ALICE, BOB, "bob", big);
		big[800] = 'x';
		big[801] = 0;
		assert_true(sc_call(&n, ALICE, "send", sc_args2("to", "bob", "text", big), &r, 1000));
		assert_string_equal(r.code, "text_too_long");
		sc_reply_clear(&r);
	}
	for (unsigned i = 0; i < n.n_sns; i++) {
		pn_supernode_stats(n.sns[i], &st);
		relayed += st.sn_forwarded;
	}
	assert_true(relayed > 0);
	{
		/* each user's record sits on its own supernode and on the r = 3 closest */
		uint64_t stored = 0;
		for (unsigned i = 0; i < n.n_sns; i++) {
			pn_supernode_stats(n.sns[i], &st);
			stored += st.records;
		}
		assert_true(stored >= 6);
	}

	/* Order the supernodes by closeness to bob's key; take down the two closest that
	 * neither alice nor bob is attached to. */
	pn_user_key(key, "bob");
	for (unsigned i = 0; i < 5; i++)
		order[i] = i;
	for (unsigned i = 0; i < 5; i++)
		for (unsigned j = i + 1; j < 5; j++) {
			uint8_t a[32], b[32];
			pn_kad_id_of(a, n.net.supernodes[order[i]].key);
			pn_kad_id_of(b, n.net.supernodes[order[j]].key);
			if (pn_kad_cmp_dist(key, b, a) < 0) {
				unsigned t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
	for (unsigned i = 0; i < 5 && killed < 2; i++) {
		if (order[i] == 0 || order[i] == 4)
			continue;
		pn_sim_host_set_up(n.sn_hosts[order[i]], false);
		killed++;
	}
	assert_int_equal(killed, 2);
	assert_true(sc_call(&n, ALICE, "whois", sc_args2("username", "bob", NULL, NULL), &r, 15000));
	assert_int_equal(r.err, 0);
	assert_true(json_is_true(json_object_get(r.result, "online")));
	sc_reply_clear(&r);
	sc_exchange(&n, ALICE, BOB, "bob", "still reachable");
	sc_net_free(&n);
}

/* A client keeps a warm standby supernode. When its primary dies, a message to it still
 * arrives within 2 s (the sender's retransmission goes to the supernode named second in
 * the record), and the client itself moves to the standby and can send again. */
static void standby_takes_over_when_primary_dies(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10, .jitter_ms = 5, .loss = 0};
	struct sc_reply r;
	unsigned ev0;
	uint64_t t_kill;
	int k;

	assert_int_equal(sc_net_init_multi(&n, 91, &l, 3), 0);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 0), ALICE);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.2:5000", 2), BOB);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	sc_up_user(&n, ALICE, "alice");
	sc_up_user(&n, BOB, "bob");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000); /* standbys attach, records name both */
	assert_true(sc_call(&n, BOB, "whois", sc_args2("username", "alice", NULL, NULL), &r, 10000));
	assert_int_equal(r.err, 0);
	assert_int_equal(json_array_size(json_object_get(
				 json_array_get(json_object_get(r.result, "devices"), 0), "supernodes")),
			 2);
	sc_reply_clear(&r);
	sc_exchange(&n, BOB, ALICE, "alice", "before");

	pn_sim_host_set_up(n.sn_hosts[0], false); /* alice's primary dies */
	t_kill = pn_sim_now(n.sim);
	ev0 = n.n_events;
	assert_true(sc_call(&n, BOB, "send", sc_args2("to", "alice", "text", "are you there?"), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	k = sc_wait_event(&n, ALICE, "message.received", ev0, 10000);
	assert_true(k >= 0);
	print_message("failover: message reached alice %llu ms after her supernode died\n",
		      (unsigned long long)(n.events[k].at - t_kill));
	assert_true(n.events[k].at - t_kill <= 2000);
	k = sc_wait_event(&n, BOB, "message.state", ev0, 10000);
	assert_true(k >= 0);
	print_message("failover: receipt back at bob after %llu ms\n",
		      (unsigned long long)(n.events[k].at - t_kill));
	/* alice now runs on her standby and reaches bob */
	sc_exchange(&n, ALICE, BOB, "bob", "after");
	/* bob reaching her through the standby made alice probe her primary: unanswered for a
	 * second, the standby is promoted, within 2.5 s of the death */
	pn_sim_run_until(n.sim, t_kill + 2500);
	assert_true(sc_call(&n, ALICE, "status", NULL, &r, 1000));
	assert_string_not_equal(json_string_value(json_object_get(r.result, "supernode")),
				"198.18.10.2:7701");
	sc_reply_clear(&r);
	sc_net_free(&n);
}

/* A supernode crashes and restarts at once, forgetting every session. Its clients learn
 * it from the RESET their next packet provokes (or from an unanswered keepalive) and
 * attach again within seconds, instead of waiting for the 65 s dead timer. */
static void restarted_supernode_gets_its_clients_back(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10, .jitter_ms = 5, .loss = 0};
	struct pn_supernode_stats st;

	assert_int_equal(sc_net_init_multi(&n, 93, &l, 2), 0);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 0), ALICE);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.2:5000", 1), BOB);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	sc_up_user(&n, ALICE, "alice");
	sc_up_user(&n, BOB, "bob");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	assert_int_equal(sc_restart_supernode(&n, 0), 0);
	pn_supernode_stats(n.sns[0], &st);
	assert_int_equal(st.clients, 0);
	/* within one keepalive period (20 s) plus a few seconds, the clients notice (RESET
	 * or an unanswered keepalive) and attach to the restarted supernode again, as
	 * primary or standby */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 25000);
	pn_supernode_stats(n.sns[0], &st);
	assert_true(st.clients >= 1);
	sc_exchange(&n, BOB, ALICE, "alice", "after the restart");
	sc_exchange(&n, ALICE, BOB, "bob", "and back");
	sc_net_free(&n);
}

/* The network file's policy = open: a supernode without a certificate joins the overlay
 * and serves clients; in an enrolled network the same supernode cannot even start, and
 * enrolled supernodes refuse its overlay handshakes. */
static void open_network_takes_uncertified_supernodes(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10};
	struct pn_supernode_stats st;
	uint64_t refused = 0;

	(void)state;
	/* enrolled: no certificate, no supernode */
	assert_int_equal(sc_net_init_multi(&n, 91, &l, 3), 0);
	n.sn_cert_len[2] = 0;
	assert_int_not_equal(sc_restart_supernode(&n, 2), 0);
	/* ... and one that believes the network open is refused by the enrolled ones */
	n.net.open_policy = true;
	assert_int_equal(sc_restart_supernode(&n, 2), 0);
	n.net.open_policy = false;
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	for (unsigned i = 0; i < 2; i++) {
		pn_supernode_stats(n.sns[i], &st);
		refused += st.rejected_certs;
	}
	assert_true(refused > 0);
	refused = 0;
	sc_net_free(&n);

	/* open: supernode 2 serves without one */
	assert_int_equal(sc_net_init_multi(&n, 92, &l, 3), 0);
	n.net.open_policy = true;
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(sc_restart_supernode(&n, i), 0);
	n.sn_cert_len[2] = 0;
	assert_int_equal(sc_restart_supernode(&n, 2), 0);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 2), ALICE);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.2:5000", 0), BOB);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	sc_up_user(&n, ALICE, "alice");
	sc_up_user(&n, BOB, "bob");
	{
		struct sc_reply r;
		assert_true(sc_call(&n, ALICE, "status", NULL, &r, 1000));
		assert_string_equal(json_string_value(json_object_get(r.result, "supernode")),
				    "198.18.12.2:7701");
		sc_reply_clear(&r);
	}
	sc_exchange(&n, ALICE, BOB, "bob", "through an uncertified supernode");
	sc_exchange(&n, BOB, ALICE, "alice", "and back");
	for (unsigned i = 0; i < n.n_sns; i++) {
		pn_supernode_stats(n.sns[i], &st);
		refused += st.rejected_certs;
	}
	assert_int_equal(refused, 0);
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(register_login_message_both_ways),
		cmocka_unit_test(wrong_password_and_bad_username),
		cmocka_unit_test(deterministic_with_seed),
		cmocka_unit_test(lossy_links_deliver_everything_once),
		cmocka_unit_test(supernode_sees_only_ciphertext),
		cmocka_unit_test(forged_certificates_cannot_attach),
		cmocka_unit_test(replayed_packets_rejected),
		cmocka_unit_test(overlay_across_supernodes),
		cmocka_unit_test(standby_takes_over_when_primary_dies),
		cmocka_unit_test(restarted_supernode_gets_its_clients_back),
		cmocka_unit_test(open_network_takes_uncertified_supernodes),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
