/* Presence in virtual time: status and mood reach contacts within a second, never
 * strangers; invisible looks offline; logging out shows offline at once; a contact that
 * vanishes without a word expires to offline. Contact requests, blocks, and messages from
 * strangers held as message requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "scenario.h"

static void contact(struct sc_net *n, int i, const char *who)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, "contacts.add", sc_args2("username", who, NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

/* The next presence.changed on client i about user (from event index from), or NULL. */
static json_t *wait_presence(struct sc_net *n, int i, const char *user, unsigned from, uint64_t limit)
{
	uint64_t end = pn_sim_now(n->sim) + limit;

	for (;;) {
		int k = sc_wait_event(n, i, "presence.changed", from, end - pn_sim_now(n->sim));
		if (k < 0)
			return NULL;
		if (strcmp(json_string_value(json_object_get(n->events[k].data, "username")), user) == 0)
			return n->events[k].data;
		from = (unsigned)k + 1;
		if (pn_sim_now(n->sim) >= end)
			return NULL;
	}
}

static void set_presence(struct sc_net *n, int i, const char *st, const char *mood)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, "presence.set", sc_args2("status", st, mood ? "mood" : NULL, mood), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

static int count_events(struct sc_net *n, int i, const char *name, unsigned from)
{
	int c = 0;
	for (unsigned k = from; k < n->n_events; k++)
		c += n->events[k].client == i && strcmp(n->events[k].name, name) == 0;
	return c;
}

static void test_presence_contacts_only(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 20};
	struct sc_reply r;
	unsigned ev0;
	json_t *e;
	uint64_t t0;

	(void)state;
	assert_int_equal(sc_net_init(&n, 21, &base), 0);
	sc_bring_up(&n);
	assert_int_equal(sc_net_add_client(&n, "198.18.1.3:5000"), 2);
	sc_up_user(&n, 2, "carol");
	/* alice and bob are each other's contacts; carol adds alice, alice does not add carol */
	ev0 = n.n_events;
	contact(&n, 0, "bob");
	contact(&n, 1, "alice");
	contact(&n, 2, "alice");
	e = wait_presence(&n, 1, "alice", ev0, 3000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "online");
	assert_non_null(wait_presence(&n, 0, "bob", ev0, 3000));

	/* a change reaches bob within a second, with the mood */
	ev0 = n.n_events;
	t0 = pn_sim_now(n.sim);
	set_presence(&n, 0, "away", "at lunch");
	e = wait_presence(&n, 1, "alice", ev0, 1000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "away");
	assert_string_equal(json_string_value(json_object_get(e, "mood")), "at lunch");
	printf("  presence change reached the contact after %llu ms\n",
	       (unsigned long long)(n.events[n.n_events - 1].at - t0));
	assert_true(n.events[n.n_events - 1].at - t0 <= 1000);
	assert_true(sc_call(&n, 1, "contacts.list", NULL, &r, 1000));
	e = json_array_get(json_object_get(r.result, "contacts"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "away");
	sc_reply_clear(&r);

	/* carol, not alice's contact, never learns alice's presence */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	assert_int_equal(count_events(&n, 2, "presence.changed", 0), 0);
	assert_true(sc_call(&n, 2, "contacts.list", NULL, &r, 1000));
	e = json_array_get(json_object_get(r.result, "contacts"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "offline");
	sc_reply_clear(&r);

	/* invisible: bob sees alice offline */
	ev0 = n.n_events;
	set_presence(&n, 0, "invisible", NULL);
	e = wait_presence(&n, 1, "alice", ev0, 1000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "offline");
	assert_string_equal(json_string_value(json_object_get(e, "mood")), "");
	set_presence(&n, 0, "dnd", "busy busy");
	assert_non_null(wait_presence(&n, 1, "alice", ev0 + 1, 1000));

	/* bob logs out: alice sees him offline at once */
	ev0 = n.n_events;
	assert_true(sc_call(&n, 1, "logout", NULL, &r, 1000));
	sc_reply_clear(&r);
	e = wait_presence(&n, 0, "bob", ev0, 1000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "offline");
	sc_net_free(&n);
}

static void test_presence_expires(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 20};
	unsigned ev0;
	json_t *e;

	(void)state;
	assert_int_equal(sc_net_init(&n, 22, &base), 0);
	sc_bring_up(&n);
	ev0 = n.n_events;
	contact(&n, 0, "bob");
	contact(&n, 1, "alice");
	assert_non_null(wait_presence(&n, 0, "bob", ev0, 3000));
	/* bob's device vanishes without a word; alice keeps him online while his refreshes
	 * would still be due, then shows him offline */
	pn_sim_host_set_up(n.client_hosts[1], false);
	ev0 = n.n_events;
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5 * 60000);
	assert_int_equal(count_events(&n, 0, "presence.changed", ev0), 0);
	e = wait_presence(&n, 0, "bob", ev0, 8 * 60000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "offline");
	sc_net_free(&n);
}

/* Requests with a note, accept (seen by the asker as contact.accepted and presence),
 * silent decline, and block: a blocked user's messages and calls go nowhere. */
static void test_contact_requests_and_block(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 20};
	struct sc_reply r;
	unsigned ev0;
	int k;
	json_t *e;

	(void)state;
	assert_int_equal(sc_net_init(&n, 23, &base), 0);
	sc_bring_up(&n);
	assert_int_equal(sc_net_add_client(&n, "198.18.1.3:5000"), 2);
	sc_up_user(&n, 2, "carol");
	ev0 = n.n_events;
	assert_true(sc_call(&n, 0, "contacts.add", sc_args2("username", "carol", "note", "hi carol, alice from work"), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	k = sc_wait_event(&n, 2, "contact.request", ev0, 3000);
	assert_true(k >= 0);
	assert_string_equal(json_string_value(json_object_get(n.events[k].data, "from")), "alice");
	assert_string_equal(json_string_value(json_object_get(n.events[k].data, "note")), "hi carol, alice from work");
	assert_true(sc_call(&n, 2, "contacts.requests", NULL, &r, 1000));
	e = json_array_get(json_object_get(r.result, "requests"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "kind")), "incoming");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, 0, "contacts.requests", NULL, &r, 1000));
	e = json_array_get(json_object_get(r.result, "requests"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "kind")), "outgoing");
	sc_reply_clear(&r);
	/* carol accepts: alice hears it and sees carol's presence */
	ev0 = n.n_events;
	assert_true(sc_call(&n, 2, "contacts.accept", sc_args2("username", "alice", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	k = sc_wait_event(&n, 0, "contact.accepted", ev0, 3000);
	assert_true(k >= 0);
	assert_string_equal(json_string_value(json_object_get(n.events[k].data, "username")), "carol");
	assert_non_null(wait_presence(&n, 0, "carol", ev0, 3000));
	/* and carol, who could not take alice's presence before, sees her now */
	e = wait_presence(&n, 2, "alice", ev0, 3000);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "status")), "online");
	assert_true(sc_call(&n, 0, "contacts.requests", NULL, &r, 1000));
	assert_int_equal(json_array_size(json_object_get(r.result, "requests")), 0);
	sc_reply_clear(&r);

	/* bob asks too; carol declines silently */
	ev0 = n.n_events;
	assert_true(sc_call(&n, 1, "contacts.add", sc_args2("username", "carol", "note", "buy my stuff"), &r, 1000));
	sc_reply_clear(&r);
	assert_true(sc_wait_event(&n, 2, "contact.request", ev0, 3000) >= 0);
	assert_true(sc_call(&n, 2, "contacts.decline", sc_args2("username", "bob", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 3000);
	assert_int_equal(count_events(&n, 1, "contact.accepted", ev0), 0);
	assert_true(sc_call(&n, 2, "contacts.accept", sc_args2("username", "bob", NULL, NULL), &r, 1000));
	assert_string_equal(r.code, "no_such_request");
	sc_reply_clear(&r);

	/* carol blocks bob: his messages are dropped (no receipt), alice's still arrive */
	assert_true(sc_call(&n, 2, "contacts.block", sc_args2("username", "bob", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	ev0 = n.n_events;
	assert_true(sc_call(&n, 1, "send", sc_args2("to", "carol", "text", "are you there?"), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	sc_exchange(&n, 0, 2, "carol", "lunch at noon?");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	for (unsigned i = ev0; i < n.n_events; i++)
		if (n.events[i].client == 2 && strcmp(n.events[i].name, "message.received") == 0)
			assert_string_equal(json_string_value(json_object_get(n.events[i].data, "from")), "alice");
	for (unsigned i = ev0; i < n.n_events; i++)
		if (n.events[i].client == 1 && strcmp(n.events[i].name, "message.state") == 0)
			assert_string_not_equal(json_string_value(json_object_get(n.events[i].data, "state")), "delivered");
	/* a blocked user's request does not show up either */
	ev0 = n.n_events;
	assert_true(sc_call(&n, 1, "contacts.remove", sc_args2("username", "carol", NULL, NULL), &r, 1000));
	sc_reply_clear(&r);
	assert_true(sc_call(&n, 1, "contacts.add", sc_args2("username", "carol", "note", "please?"), &r, 1000));
	sc_reply_clear(&r);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 3000);
	assert_int_equal(count_events(&n, 2, "contact.request", ev0), 0);
	sc_net_free(&n);
}

static json_t *history(struct sc_net *n, int i, const char *with, struct sc_reply *r)
{
	assert_true(sc_call(n, i, "history", json_pack("{s:s,s:i}", "with", with, "limit", 100), r, 1000));
	assert_int_equal(r->err, 0);
	return json_object_get(r->result, "messages");
}

static void send_text(struct sc_net *n, int i, const char *to, const char *text)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, "send", sc_args2("to", to, "text", text), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

/* Messages from strangers are message requests: held out of the history (the sender sees
 * "delivered": the device has them), listed with the request, moved into the history in
 * order when accepted, deleted when declined; a stranger can hold at most 20. */
static void test_message_requests(void **state)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 20};
	struct sc_reply r;
	unsigned ev0;
	int k;
	json_t *e;
	char text[32];

	(void)state;
	assert_int_equal(sc_net_init(&n, 29, &base), 0);
	sc_bring_up(&n);
	assert_int_equal(sc_net_add_client(&n, "198.18.1.3:5000"), 2);
	sc_up_user(&n, 2, "carol");

	/* carol, a stranger to alice, writes twice */
	ev0 = n.n_events;
	send_text(&n, 2, "alice", "hi alice, carol from the conference");
	send_text(&n, 2, "alice", "here is my number");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 3000);
	assert_int_equal(count_events(&n, 0, "message.request", ev0), 2);
	assert_int_equal(count_events(&n, 0, "message.received", ev0), 0);
	assert_int_equal(count_events(&n, 0, "contact.request", ev0), 1);
	assert_int_equal(json_array_size(history(&n, 0, "carol", &r)), 0);
	sc_reply_clear(&r);
	e = history(&n, 2, "alice", &r); /* carol's device got the receipts */
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(e, 1), "state")), "delivered");
	sc_reply_clear(&r);
	assert_true(sc_call(&n, 0, "contacts.requests", NULL, &r, 1000));
	e = json_array_get(json_object_get(r.result, "requests"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "username")), "carol");
	assert_int_equal(json_array_size(json_object_get(e, "messages")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(e, "messages"), 0), "text")),
			    "hi alice, carol from the conference");
	sc_reply_clear(&r);

	/* alice accepts: both join her history, in order, announced as received */
	ev0 = n.n_events;
	assert_true(sc_call(&n, 0, "contacts.accept", sc_args2("username", "carol", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	assert_int_equal(count_events(&n, 0, "message.received", ev0), 2);
	e = history(&n, 0, "carol", &r);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "text")),
			    "hi alice, carol from the conference");
	assert_string_equal(json_string_value(json_object_get(json_array_get(e, 1), "text")), "here is my number");
	sc_reply_clear(&r);
	/* from now on carol's messages are received directly */
	ev0 = n.n_events;
	send_text(&n, 2, "alice", "thanks!");
	k = sc_wait_event(&n, 0, "message.received", ev0, 3000);
	assert_true(k >= 0);
	assert_int_equal(count_events(&n, 0, "message.request", ev0), 0);

	/* bob, a stranger to carol, floods her: 20 are held, the rest dropped and counted */
	ev0 = n.n_events;
	for (int i = 0; i < 25; i++) {
		snprintf(text, sizeof(text), "spam %d", i);
		send_text(&n, 1, "carol", text);
	}
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	assert_int_equal(count_events(&n, 2, "message.request", ev0), 20);
	assert_true(sc_call(&n, 2, "status", NULL, &r, 1000));
	assert_true(json_integer_value(json_object_get(json_object_get(r.result, "rejected"), "requests_dropped")) >= 5);
	assert_int_equal(json_integer_value(json_object_get(r.result, "messages_held")), 20);
	sc_reply_clear(&r);
	/* carol declines: the held messages are gone, nothing reaches her history */
	assert_true(sc_call(&n, 2, "contacts.decline", sc_args2("username", "bob", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
	assert_true(sc_call(&n, 2, "contacts.requests", NULL, &r, 1000));
	assert_int_equal(json_array_size(json_object_get(r.result, "requests")), 0);
	sc_reply_clear(&r);
	assert_int_equal(json_array_size(history(&n, 2, "bob", &r)), 0);
	sc_reply_clear(&r);

	/* with messages_from = anyone, a stranger's message goes straight to the history */
	assert_true(sc_call(&n, 1, "settings.set", sc_args2("messages_from", "anyone", NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	assert_string_equal(json_string_value(json_object_get(r.result, "messages_from")), "anyone");
	sc_reply_clear(&r);
	ev0 = n.n_events;
	send_text(&n, 2, "bob", "sorry, who are you?");
	assert_true(sc_wait_event(&n, 1, "message.received", ev0, 3000) >= 0);
	assert_int_equal(count_events(&n, 1, "message.request", ev0), 0);
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_presence_contacts_only),
		cmocka_unit_test(test_presence_expires),
		cmocka_unit_test(test_contact_requests_and_block),
		cmocka_unit_test(test_message_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
