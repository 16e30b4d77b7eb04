/* Simulator scenarios for profiles and profile search (docs/PROTOCOL.md 3.1, docs/API.md
 * `profile.set`, `search`): users publish a profile to the login server and anyone finds
 * the searchable ones by full-text search. */
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
#include "crypto/keys.h"
#include "scenario.h"
#include "session/link.h"
#include "wire/wire.h"

enum { ALICE = 0, BOB = 1, CAROL = 2 };

static void call_ok(struct sc_net *n, int i, const char *cmd, json_t *args)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, cmd, args, &r, 15000));
	if (r.err)
		fprintf(stderr, "%s failed: %s\n", cmd, r.code);
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

/* The error code of a command that must fail. */
static void call_fails(struct sc_net *n, int i, const char *cmd, json_t *args, const char *code)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, cmd, args, &r, 15000));
	assert_int_not_equal(r.err, 0);
	assert_string_equal(r.code, code);
	sc_reply_clear(&r);
}

static void login(struct sc_net *n, int i, const char *user)
{
	call_ok(n, i, "register", json_pack("{s:s,s:s}", "username", user, "password", "correct horse"));
	call_ok(n, i, "login", json_pack("{s:s,s:s}", "username", user, "password", "correct horse"));
}

/* Runs a search on client i and returns the usernames found, joined by spaces, in *out. */
static void search(struct sc_net *n, int i, const char *query, char out[256])
{
	struct sc_reply r;
	json_t *res, *p;
	size_t k;

	out[0] = 0;
	assert_true(sc_call(n, i, "search", json_pack("{s:s}", "query", query), &r, 15000));
	if (r.err)
		fprintf(stderr, "search `%s' failed: %s\n", query, r.code);
	assert_int_equal(r.err, 0);
	res = json_object_get(r.result, "results");
	assert_true(json_is_array(res));
	json_array_foreach(res, k, p)
	{
		size_t l = strlen(out);
		snprintf(out + l, 256 - l, "%s%s", l ? " " : "",
			 json_string_value(json_object_get(p, "username")));
	}
	sc_reply_clear(&r);
}

/* alice publishes a searchable profile, bob a hidden one; carol has a device but no
 * account. */
static void bring_up(struct sc_net *n)
{
	assert_int_equal(sc_net_init(n, 77, NULL), 0);
	assert_int_equal(sc_net_add_client(n, "198.18.1.1:5000"), ALICE);
	assert_int_equal(sc_net_add_client(n, "198.18.1.2:5000"), BOB);
	assert_int_equal(sc_net_add_client(n, "198.18.1.3:5000"), CAROL);
	login(n, ALICE, "alice");
	login(n, BOB, "bob");
	call_ok(n, ALICE, "profile.set",
		json_pack("{s:s,s:s,s:s,s:s,s:b}", "display_name", "Alice Smith", "city",
			  "Z\xc3\xbcrich", "country", "CH", "languages", "de,en", "searchable", 1));
	/* codes in any case are stored canonical (CH, de) */
	call_ok(n, BOB, "profile.set",
		json_pack("{s:s,s:s,s:s,s:s,s:b}", "display_name", "Bob Smith", "city", "Bern",
			  "country", "ch", "languages", "DE", "searchable", 0));
}

static void search_finds_searchable_profiles_only(void **state)
{
	struct sc_net n;
	struct sc_reply r;
	char found[256];
	json_t *p;

	bring_up(&n);
	/* "smith" matches both display names; bob's profile is hidden */
	search(&n, BOB, "smith", found);
	assert_string_equal(found, "alice");
	/* the whole profile comes back */
	assert_true(sc_call(&n, BOB, "search", json_pack("{s:s,s:i}", "query", "alice smith", "limit", 5),
			    &r, 15000));
	assert_int_equal(r.err, 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "results")), 1);
	p = json_array_get(json_object_get(r.result, "results"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "username")), "alice");
	assert_string_equal(json_string_value(json_object_get(p, "display_name")), "Alice Smith");
	assert_string_equal(json_string_value(json_object_get(p, "city")), "Z\xc3\xbcrich");
	assert_string_equal(json_string_value(json_object_get(p, "country")), "CH");
	assert_string_equal(json_string_value(json_object_get(p, "languages")), "de,en");
	sc_reply_clear(&r);
	/* Diacritics and case do not matter: zurich, Zürich and ZÜRICH all find alice. */
	search(&n, BOB, "zurich", found);
	assert_string_equal(found, "alice");
	search(&n, BOB, "Z\xc3\xbcrich", found);
	assert_string_equal(found, "alice");
	search(&n, BOB, "Z\xc3\x9cRICH", found);
	assert_string_equal(found, "alice");
	/* words are prefixes and must all match */
	search(&n, BOB, "smi zur", found);
	assert_string_equal(found, "alice");
	search(&n, BOB, "john smith", found);
	assert_string_equal(found, "");
	/* a hidden profile is never returned, whatever the words */
	search(&n, ALICE, "bob", found);
	assert_string_equal(found, "");
	search(&n, ALICE, "bern", found);
	assert_string_equal(found, "");
	search(&n, ALICE, "ch", found);
	assert_string_equal(found, "alice");
	/* the same device publishing again replaces its profile: alice hides hers */
	call_ok(&n, ALICE, "profile.set",
		json_pack("{s:s,s:b}", "display_name", "Alice Smith", "searchable", 0));
	search(&n, BOB, "smith", found);
	assert_string_equal(found, "");
	/* and bob makes his searchable (searchable defaults to true) */
	call_ok(&n, BOB, "profile.set", json_pack("{s:s,s:s}", "display_name", "Bob Smith", "city", "Bern"));
	search(&n, ALICE, "smith", found);
	assert_string_equal(found, "bob");
	sc_net_free(&n);
}

/* Search needs no account: a device that never logged in opens a login server session with
 * its own key and searches. Publishing needs a login. */
static void search_without_login_profile_needs_login(void **state)
{
	struct sc_net n;
	char found[256];

	bring_up(&n);
	search(&n, CAROL, "smith", found);
	assert_string_equal(found, "alice");
	call_fails(&n, CAROL, "profile.set", json_pack("{s:s}", "display_name", "Carol"),
		   "not_logged_in");
	sc_net_free(&n);
}

/* FTS5 syntax in the query is plain text: never an error, never a way to hidden profiles. */
static void search_with_fts_syntax_does_not_fail(void **state)
{
	static const char *const queries[] = {
		"\"", "*", "AND", "(", ")", "smith AND", "smith OR bob", "NOT alice", "\"smith",
		"NEAR(smith bob)", "display_name:bob", "smi*", "{city}:bern", "^smith", "-", "\"\"",
	};
	struct sc_net n;
	char found[256];

	bring_up(&n);
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		search(&n, BOB, queries[i], found);
		assert_null(strstr(found, "bob"));
	}
	search(&n, BOB, "(smith)", found);
	assert_string_equal(found, "alice");
	search(&n, BOB, "\"smith\"", found);
	assert_string_equal(found, "alice");
	sc_net_free(&n);
}

static void bad_arguments_are_refused(void **state)
{
	struct sc_net n;

	bring_up(&n);
	call_fails(&n, ALICE, "profile.set", json_pack("{s:s}", "country", "Switzerland"),
		   "bad_profile");
	call_fails(&n, ALICE, "profile.set", json_pack("{s:s}", "languages", "german"),
		   "bad_profile");
	call_fails(&n, ALICE, "profile.set", json_pack("{s:s}", "display_name", "two\nlines"),
		   "bad_profile");
	call_fails(&n, ALICE, "profile.set", json_pack("{s:i}", "city", 5), "bad_request");
	call_fails(&n, ALICE, "profile.set", json_pack("{s:s}", "searchable", "yes"), "bad_request");
	call_fails(&n, ALICE, "search", json_pack("{s:s}", "query", ""), "bad_query");
	call_fails(&n, ALICE, "search", NULL, "bad_request");
	call_fails(&n, ALICE, "search", json_pack("{s:s,s:i}", "query", "x", "limit", 51),
		   "bad_request");
	sc_net_free(&n);
}

/* Searches are rate limited per source host (30 a minute by default). */
static void searches_are_rate_limited(void **state)
{
	struct sc_net n;
	struct sc_reply r;
	char found[256];
	int limited = 0;

	bring_up(&n);
	for (int i = 0; i < 40 && !limited; i++) {
		assert_true(sc_call(&n, CAROL, "search", json_pack("{s:s}", "query", "smith"), &r,
				    15000));
		if (r.err) {
			assert_string_equal(r.code, "rate_limited");
			assert_true(i >= 30);
			limited = 1;
		}
		sc_reply_clear(&r);
	}
	assert_true(limited);
	/* another host is not affected */
	search(&n, BOB, "smith", found);
	assert_string_equal(found, "alice");
	sc_net_free(&n);
}

/* PROFILE_SET is authenticated like RENEW: a session whose static key is not a registered
 * device of the named user is refused and the profile stays as it was. */
struct raw_login {
	struct sc_net *n;
	struct pn_sim_host *h;
	const struct pn_env *env;
	struct pn_link link;
	bool up, answered;
	uint8_t status;
};

static void raw_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct raw_login *m = node;
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (pn_pkt_parse(&h, buf, len) || h.receiver_idx != m->link.local_idx ||
	    pn_link_input(&m->link, &h, m->env->now_ms(m->env->ctx), f, sizeof(f), &n, &ev))
		return;
	if (ev == PN_LINK_EV_UP)
		m->up = true;
	if (ev == PN_LINK_EV_DATA && n >= 6 && f[0] == PN_F_LOGIN_RESULT) {
		m->answered = true;
		m->status = f[5];
	}
}

static uint64_t raw_deadline(void *node)
{
	return UINT64_MAX;
}

static void raw_tick(void *node)
{
}

static const struct pn_node_ops raw_ops = {raw_recv, raw_deadline, raw_tick};

static bool raw_up(void *arg)
{
	return ((struct raw_login *)arg)->up;
}

static bool raw_answered(void *arg)
{
	return ((struct raw_login *)arg)->answered;
}

static void forged_profile_set_is_refused(void **state)
{
	struct sc_net n;
	struct raw_login m;
	struct pn_link_params p;
	struct pn_keys k;
	struct pn_addr a;
	uint8_t seed[32], e_sk[32], f[256], pkt[PN_PKT_MAX];
	struct pn_wr w;
	size_t len;
	char found[256];

	bring_up(&n);
	memset(&m, 0, sizeof(m));
	m.n = &n;
	assert_int_equal(pn_addr_parse(&a, "198.18.6.6:5000"), 0);
	assert_int_equal(pn_sim_host_add(n.sim, &a, &m.h), 0);
	m.env = pn_sim_host_env(m.h);
	pn_sim_host_set_node(m.h, &m, &raw_ops);
	memset(seed, 0x66, sizeof(seed));
	memset(e_sk, 0x67, sizeof(e_sk));
	assert_int_equal(pn_keys_from_seed(&k, seed), 0);
	memset(&p, 0, sizeof(p));
	p.pattern = PN_PATTERN_IK;
	p.purpose = PN_PURPOSE_LOGIN;
	p.s_sk = k.dh_sk;
	p.rs = n.net.login.key;
	p.e_sk = e_sk;
	p.local_idx = 0x66000001;
	p.timestamp_ms = 1;
	p.now = m.env->now_ms(m.env->ctx);
	assert_int_equal(pn_link_connect(&m.link, &p), 0);
	m.env->send(m.env->ctx, &n.net.login.addr, m.link.hs_pkt, m.link.hs_pkt_len);
	assert_true(pn_sim_run_while_not(n.sim, raw_up, &m, pn_sim_now(n.sim) + 5000));

	/* "I am alice": a profile that would make her searchable for "mallory" */
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PROFILE_SET);
	pn_wr_u32(&w, 1);
	pn_wr_str8(&w, "alice");
	pn_wr_bytes(&w, k.sign_pk, 32);
	pn_wr_u8(&w, 1);
	pn_wr_str8(&w, "Mallory was here");
	pn_wr_str8(&w, "");
	pn_wr_str8(&w, "");
	pn_wr_str8(&w, "");
	assert_int_equal(w.err, 0);
	assert_int_equal(pn_link_seal(&m.link, f, w.len, m.env->now_ms(m.env->ctx), pkt, sizeof(pkt),
				      &len), 0);
	m.env->send(m.env->ctx, &n.net.login.addr, pkt, len);
	assert_true(pn_sim_run_while_not(n.sim, raw_answered, &m, pn_sim_now(n.sim) + 5000));
	assert_int_equal(m.status, PN_ST_UNKNOWN_DEVICE);
	search(&n, BOB, "mallory", found);
	assert_string_equal(found, "");
	search(&n, BOB, "alice", found);
	assert_string_equal(found, "alice");
	pn_keys_wipe(&k);
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(search_finds_searchable_profiles_only),
		cmocka_unit_test(search_without_login_profile_needs_login),
		cmocka_unit_test(search_with_fts_syntax_does_not_fail),
		cmocka_unit_test(bad_arguments_are_refused),
		cmocka_unit_test(searches_are_rate_limited),
		cmocka_unit_test(forged_profile_set_is_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
