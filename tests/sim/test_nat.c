/* Direct paths in virtual time (docs/NAT.md): two devices behind simulated NATs
 * (src/sim's RFC 4787 model) start relayed, exchange candidates inside their session,
 * punch through at once and move the session to the direct path; a symmetric NAT against
 * a port-restricted one stays relayed. Every case sends a message and a 10 s audio-sized
 * stream and counts what arrived, and asserts on which path it went. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/addr.h"
#include "parley/supernode.h"
#include "scenario.h"
#include "wire/wire.h"

enum { NONE = 0 };

static void contact(struct sc_net *n, int i, const char *who)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, "contacts.add", sc_args2("username", who, NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

/* Client i at a private address behind a NAT of `kind` with public IP pub (kind 0: the
 * client sits on the public address itself). */
static int add_site(struct sc_net *n, const char *priv, const char *pub, int kind, const char *user)
{
	int i = sc_net_add_client(n, priv);
	struct pn_addr a;

	assert_true(i >= 0);
	if (kind) {
		assert_int_equal(pn_addr_parse(&a, pub), 0);
		assert_int_equal(pn_sim_host_set_nat(n->client_hosts[i], &a, kind), 0);
	}
	sc_up_user(n, i, user);
	return i;
}

/* The paths entry of client i's session with user, as a new reference (or NULL). */
static json_t *path_of(struct sc_net *n, int i, const char *user)
{
	struct sc_reply r;
	json_t *s, *out = NULL;

	assert_true(sc_call(n, i, "paths", sc_args2("user", user, NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	s = json_object_get(r.result, "sessions");
	if (json_array_size(s) > 0)
		out = json_incref(json_array_get(s, 0));
	sc_reply_clear(&r);
	return out;
}

static const char *path_kind(json_t *p)
{
	return p ? json_string_value(json_object_get(p, "path")) : "none";
}

static json_int_t num(json_t *p, const char *k)
{
	return json_integer_value(json_object_get(p, k));
}

/* Sends a 500-frame stream from client a to user b_name (client b) and checks that all
 * arrived. */
static void stream_all(struct sc_net *n, int a, int b, const char *a_name, const char *b_name)
{
	struct sc_reply r;
	json_t *p;

	assert_true(sc_call(n, a, "nat.stream", sc_args2("user", b_name, NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 11000);
	p = path_of(n, b, a_name);
	assert_non_null(p);
	assert_int_equal(num(p, "stream_rx"), 500);
	json_decref(p);
}

struct pair_case {
	int ka, kb;
	bool direct;
};

/* alice behind ka, bob behind kb; both are contacts; a message; the path; a stream. */
static void run_pair(const struct pair_case *pc, uint64_t seed)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10};
	int a, b;
	json_t *pa, *pb;

	assert_int_equal(sc_net_init(&n, seed, &base), 0);
	a = add_site(&n, "198.19.1.2:5000", "198.18.0.101:0", pc->ka, "alice");
	b = add_site(&n, "198.19.2.2:5000", "198.18.0.102:0", pc->kb, "bob");
	contact(&n, a, "bob");
	contact(&n, b, "alice");
	sc_exchange(&n, a, b, "bob", "hello through the NAT");
	/* checks take a few round trips; a failing pair gives up after 8 s */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + (pc->direct ? 2000 : 10000));
	pa = path_of(&n, a, "bob");
	pb = path_of(&n, b, "alice");
	assert_non_null(pa);
	assert_non_null(pb);
	if (strcmp(path_kind(pa), pc->direct ? "direct" : "relay") != 0 ||
	    strcmp(path_kind(pb), pc->direct ? "direct" : "relay") != 0)
		fail_msg("NAT %d vs %d: paths %s / %s, expected %s", pc->ka, pc->kb, path_kind(pa),
			 path_kind(pb), pc->direct ? "direct" : "relay");
	if (pc->direct)
		assert_true(num(pa, "direct_ms") > 0 && num(pa, "direct_ms") < 1000);
	json_decref(pa);
	json_decref(pb);
	/* the stream both ways, and a message after the switch */
	stream_all(&n, a, b, "alice", "bob");
	stream_all(&n, b, a, "bob", "alice");
	pa = path_of(&n, a, "bob");
	if (pc->direct)
		assert_true(num(pa, "direct_tx") >= 500);
	else
		if (num(pa, "direct_tx") != 0)
			fail_msg("%s", json_dumps(pa, 0));
	json_decref(pa);
	sc_exchange(&n, b, a, "alice", "and back");
	sc_net_free(&n);
}

static void test_prc_fullcone_direct(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_PRC, PN_SIM_NAT_FULLCONE, true};
	run_pair(&pc, 71);
}

static void test_prc_prc_direct(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_PRC, PN_SIM_NAT_PRC, true};
	run_pair(&pc, 72);
}

static void test_sym_public_direct(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_SYMMETRIC, NONE, true};
	run_pair(&pc, 73);
}

static void test_sym_fullcone_direct(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_FULLCONE, PN_SIM_NAT_SYMMETRIC, true};
	run_pair(&pc, 74);
}

static void test_sym_prc_relayed(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_SYMMETRIC, PN_SIM_NAT_PRC, false};
	run_pair(&pc, 75);
}

static void test_sym_sym_relayed(void **state)
{
	struct pair_case pc = {PN_SIM_NAT_SYMMETRIC, PN_SIM_NAT_SYMMETRIC, false};
	run_pair(&pc, 76);
}

/* What crosses the wire between the two clients' public addresses directly. */
struct tap {
	struct pn_addr a, b; /* IPs only */
	unsigned direct;
};

static void tap_cb(void *arg, const struct pn_addr *from, const struct pn_addr *to,
		   const uint8_t *buf, size_t len)
{
	struct tap *t = arg;

	if ((pn_addr_same_host(from, &t->a) && pn_addr_same_host(to, &t->b)) ||
	    (pn_addr_same_host(from, &t->b) && pn_addr_same_host(to, &t->a)))
		t->direct++;
}

/* Strangers, and a contact with "always relay": no candidates, no direct packet. */
static void run_hidden(bool strangers)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10};
	struct tap t;
	struct sc_reply r;
	int a, b;
	json_t *pa;

	assert_int_equal(sc_net_init(&n, strangers ? 81 : 82, &base), 0);
	memset(&t, 0, sizeof(t));
	assert_int_equal(pn_addr_parse(&t.a, "198.18.1.1:0"), 0);
	assert_int_equal(pn_addr_parse(&t.b, "198.18.1.2:0"), 0);
	pn_sim_set_tap(n.sim, tap_cb, &t);
	a = add_site(&n, "198.18.1.1:5000", NULL, NONE, "alice");
	b = add_site(&n, "198.18.1.2:5000", NULL, NONE, "bob");
	if (!strangers) {
		contact(&n, a, "bob");
		contact(&n, b, "alice");
		assert_true(sc_call(&n, b, "settings.set",
				    json_pack("{s:b}", "always_relay", 1), &r, 1000));
		assert_int_equal(r.err, 0);
		assert_true(json_is_true(json_object_get(r.result, "always_relay")));
		sc_reply_clear(&r);
	}
	sc_exchange(&n, a, b, "bob", "no addresses please");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 10000);
	pa = path_of(&n, a, "bob");
	assert_string_equal(path_kind(pa), "relay");
	assert_int_equal(num(pa, "checks_sent"), 0);
	json_decref(pa);
	pa = path_of(&n, b, "alice");
	assert_string_equal(path_kind(pa), "relay");
	assert_int_equal(num(pa, "checks_sent"), 0);
	json_decref(pa);
	assert_int_equal(t.direct, 0);
	/* turning the setting off (contacts only) lets the path come up */
	if (!strangers) {
		assert_true(sc_call(&n, b, "settings.set",
				    json_pack("{s:b}", "always_relay", 0), &r, 1000));
		sc_reply_clear(&r);
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
		pa = path_of(&n, a, "bob");
		assert_string_equal(path_kind(pa), "direct");
		json_decref(pa);
		assert_true(t.direct > 0);
	}
	sc_net_free(&n);
}

static void test_strangers_stay_relayed(void **state)
{
	run_hidden(true);
}

static void test_always_relay_hides_addresses(void **state)
{
	run_hidden(false);
}

/* A direct path that stops answering: consent fails, the session is back on the relay
 * within PN_ICE_CONSENT_MS + jitter + 3 s (controlling side) or + 6 s (controlled side),
 * and messages keep arriving. */
static void test_consent_lost_falls_back(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10}, dead = {.loss = 1.0};
	struct pn_addr pa4, pb4;
	int a, b, k;
	json_t *p;
	unsigned ev0;

	assert_int_equal(sc_net_init(&n, 83, &base), 0);
	a = add_site(&n, "198.18.1.1:5000", NULL, NONE, "alice");
	b = add_site(&n, "198.18.1.2:5000", NULL, NONE, "bob");
	contact(&n, a, "bob");
	contact(&n, b, "alice");
	sc_exchange(&n, a, b, "bob", "before");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	p = path_of(&n, a, "bob");
	assert_string_equal(path_kind(p), "direct");
	json_decref(p);
	/* idle for a minute: only keepalives, from the controlling side, every 20-25 s (no
	 * candidates resent, no re-checks) */
	{
		json_t *pa0 = path_of(&n, a, "bob"), *pb0 = path_of(&n, b, "alice"), *pa1, *pb1;
		json_int_t d;
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 60000);
		pa1 = path_of(&n, a, "bob");
		pb1 = path_of(&n, b, "alice");
		d = num(pa1, "checks_sent") - num(pa0, "checks_sent") + num(pb1, "checks_sent") -
		    num(pb0, "checks_sent");
		if (d < 2 || d > 3)
			fail_msg("%lld keepalives in an idle minute", (long long)d);
		json_decref(pa0);
		json_decref(pb0);
		json_decref(pa1);
		json_decref(pb1);
	}
	/* the direct path breaks (both directions); the relay still works */
	assert_int_equal(pn_addr_parse(&pa4, "198.18.1.1:5000"), 0);
	assert_int_equal(pn_addr_parse(&pb4, "198.18.1.2:5000"), 0);
	assert_int_equal(pn_sim_set_link(n.sim, &pa4, &pb4, &dead), 0);
	assert_int_equal(pn_sim_set_link(n.sim, &pb4, &pa4, &dead), 0);
	ev0 = n.n_events;
	k = sc_wait_event(&n, a, "path.changed", ev0, 35000);
	assert_true(k >= 0);
	assert_string_equal(json_string_value(json_object_get(n.events[k].data, "path")), "relay");
	sc_exchange(&n, a, b, "bob", "after the path died");
	sc_exchange(&n, b, a, "alice", "and back");
	p = path_of(&n, a, "bob");
	assert_true(num(p, "paths_lost") >= 1);
	json_decref(p);
	sc_net_free(&n);
}

/* Raw datagrams that claim to be checks: a DATA packet with the right session index but
 * no valid tag, and a replay of a real one from another address. Both are refused and
 * counted; the path stays as it was. */
struct grab {
	struct pn_addr from_ip;
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;
};

static void grab_cb(void *arg, const struct pn_addr *from, const struct pn_addr *to,
		    const uint8_t *buf, size_t len)
{
	struct grab *g = arg;

	if (pn_addr_same_host(from, &g->from_ip) && len > PN_DATA_HDR && buf[0] == PN_PKT_DATA &&
	    len <= sizeof(g->pkt)) {
		memcpy(g->pkt, buf, len);
		g->len = len;
	}
}

static void nop_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
}

static uint64_t nop_deadline(void *node)
{
	return UINT64_MAX;
}

static void nop_tick(void *node)
{
}

static const struct pn_node_ops nop_ops = {nop_recv, nop_deadline, nop_tick};

static void test_spoofed_checks_rejected(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10};
	struct grab g;
	struct pn_addr me, pb4;
	struct pn_sim_host *h;
	const struct pn_env *env;
	struct sc_reply r;
	json_int_t before;
	int a, b;
	json_t *p;

	assert_int_equal(sc_net_init(&n, 84, &base), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(pn_addr_parse(&g.from_ip, "198.18.1.1:0"), 0);
	a = add_site(&n, "198.18.1.1:5000", NULL, NONE, "alice");
	b = add_site(&n, "198.18.1.2:5000", NULL, NONE, "bob");
	contact(&n, a, "bob");
	contact(&n, b, "alice");
	pn_sim_set_tap(n.sim, grab_cb, &g);
	sc_exchange(&n, a, b, "bob", "hi");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	pn_sim_set_tap(n.sim, NULL, NULL);
	assert_true(g.len > 0); /* a real direct packet from alice to bob */
	assert_int_equal(pn_addr_parse(&me, "198.18.9.9:6000"), 0);
	assert_int_equal(pn_sim_host_add(n.sim, &me, &h), 0);
	pn_sim_host_set_node(h, NULL, &nop_ops);
	env = pn_sim_host_env(h);
	assert_int_equal(pn_addr_parse(&pb4, "198.18.1.2:5000"), 0);
	assert_true(sc_call(&n, b, "paths", NULL, &r, 1000));
	before = json_integer_value(json_object_get(r.result, "direct_rejected"));
	sc_reply_clear(&r);
	/* the replay, from another address */
	env->send(env->ctx, &pb4, g.pkt, g.len);
	/* the same header with a flipped tag byte */
	g.pkt[g.len - 1] ^= 1;
	env->send(env->ctx, &pb4, g.pkt, g.len);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 500);
	assert_true(sc_call(&n, b, "paths", NULL, &r, 1000));
	assert_int_equal(json_integer_value(json_object_get(r.result, "direct_rejected")), before + 2);
	sc_reply_clear(&r);
	p = path_of(&n, b, "alice");
	assert_string_equal(path_kind(p), "direct");
	assert_string_equal(json_string_value(json_object_get(p, "address")), "198.18.1.1:5000");
	json_decref(p);
	sc_net_free(&n);
}

/* A call between contacts behind a port-restricted and a full-cone NAT: the media goes
 * on the direct path (the call reports it, the receiver gets 50 packets a second, and
 * the supernode forwards next to nothing while it runs). */
static void test_call_media_goes_direct(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10};
	struct pn_supernode_stats s0, s1;
	struct sc_reply r;
	int a, b, k;
	unsigned ev0;
	json_t *st;

	assert_int_equal(sc_net_init(&n, 85, &base), 0);
	a = add_site(&n, "198.19.1.2:5000", "198.18.0.101:0", PN_SIM_NAT_PRC, "alice");
	b = add_site(&n, "198.19.2.2:5000", "198.18.0.102:0", PN_SIM_NAT_FULLCONE, "bob");
	contact(&n, a, "bob");
	contact(&n, b, "alice");
	sc_exchange(&n, a, b, "bob", "call me");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	ev0 = n.n_events;
	assert_true(sc_call(&n, a, "call", sc_args2("username", "bob", NULL, NULL), &r, 5000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	k = sc_wait_event(&n, b, "call.state", ev0, 5000);
	assert_true(k >= 0);
	assert_true(sc_call(&n, b, "call.answer", NULL, &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 1000);
	pn_supernode_stats(n.sn, &s0);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	pn_supernode_stats(n.sn, &s1);
	assert_true(sc_call(&n, b, "call.stats", NULL, &r, 1000));
	assert_string_equal(json_string_value(json_object_get(r.result, "path")), "direct-ipv4");
	st = json_object_get(r.result, "stats");
	if (json_integer_value(json_object_get(st, "rx_packets")) < 250)
		fail_msg("bob received %lld media packets", (long long)json_integer_value(json_object_get(st, "rx_packets")));
	sc_reply_clear(&r);
	/* 5 s of a call is 500 media packets both ways; the relay saw at most signaling */
	if (s1.forwarded - s0.forwarded > 20)
		fail_msg("the supernode forwarded %llu packets during the call",
			 (unsigned long long)(s1.forwarded - s0.forwarded));
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prc_fullcone_direct),
		cmocka_unit_test(test_prc_prc_direct),
		cmocka_unit_test(test_sym_public_direct),
		cmocka_unit_test(test_sym_fullcone_direct),
		cmocka_unit_test(test_sym_prc_relayed),
		cmocka_unit_test(test_sym_sym_relayed),
		cmocka_unit_test(test_strangers_stay_relayed),
		cmocka_unit_test(test_always_relay_hides_addresses),
		cmocka_unit_test(test_consent_lost_falls_back),
		cmocka_unit_test(test_spoofed_checks_rejected),
		cmocka_unit_test(test_call_media_goes_direct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
