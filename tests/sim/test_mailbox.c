/* Offline delivery through mailboxes, in virtual time: bob is offline while alice writes;
 * the messages wait end-to-end encrypted on the r supernodes of bob's mailbox (alice sees
 * "stored" with n of r), survive fewer than r of those supernodes dying, and reach bob
 * once each, in order, when he comes back (alice sees "delivered"). Also: expiry, forged
 * acknowledgements, and a non-contact's flood that cannot crowd out a contact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "scenario.h"

enum { N_SNS = 6 };

static void contacts_add(struct sc_net *n, int i, const char *who)
{
	struct sc_reply r;

	assert_true(sc_call(n, i, "contacts.add", sc_args2("username", who, NULL, NULL), &r, 1000));
	assert_int_equal(r.err, 0);
	sc_reply_clear(&r);
}

static int count_state(struct sc_net *n, int i, const char *state, unsigned from)
{
	int c = 0;
	for (unsigned k = from; k < n->n_events; k++)
		if (n->events[k].client == i && strcmp(n->events[k].name, "message.state") == 0 &&
		    strcmp(json_string_value(json_object_get(n->events[k].data, "state")), state) == 0)
			c++;
	return c;
}

static int count_ev(struct sc_net *n, int i, const char *name, unsigned from)
{
	int c = 0;
	for (unsigned k = from; k < n->n_events; k++)
		c += n->events[k].client == i && strcmp(n->events[k].name, name) == 0;
	return c;
}

/* the supernodes that hold entries of any mailbox */
static unsigned holders(struct sc_net *n, bool up[N_SNS], unsigned which[N_SNS])
{
	unsigned k = 0;
	for (unsigned i = 0; i < n->n_sns; i++) {
		struct pn_supernode_stats st;
		if (!up[i])
			continue;
		pn_supernode_stats(n->sns[i], &st);
		if (st.mb_entries > 0)
			which[k++] = i;
	}
	return k;
}

static void net_up(struct sc_net *n, uint64_t seed)
{
	struct pn_sim_link base = {.delay_ms = 10, .jitter_ms = 3};

	assert_int_equal(sc_net_init_multi(n, seed, &base, N_SNS), 0);
	assert_int_equal(sc_net_add_client_at(n, "198.18.1.1:5000", 0), 0);
	assert_int_equal(sc_net_add_client_at(n, "198.18.1.2:5000", 1), 1);
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "bob" : "alice";
		sc_up_user(n, i, name);
	}
	/* the overlay settles */
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 5000);
	contacts_add(n, 0, "bob");
	contacts_add(n, 1, "alice");
	/* a first message both ways: sessions, passes for each other's mailbox */
	sc_exchange(n, 0, 1, "bob", "hello bob");
	sc_exchange(n, 1, 0, "alice", "hello alice");
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 2000);
}

static void send_many(struct sc_net *n, int from, const char *to, unsigned count, const char *prefix)
{
	struct sc_reply r;
	char text[64];

	for (unsigned i = 0; i < count; i++) {
		snprintf(text, sizeof(text), "%s %03u", prefix, i);
		assert_true(sc_call(n, from, "send", sc_args2("to", to, "text", text), &r, 1000));
		assert_int_equal(r.err, 0);
		sc_reply_clear(&r);
		pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 20);
	}
}

static void test_offline_delivery_survives_replica_loss(void **state)
{
	struct sc_net n;
	struct sc_reply r;
	bool up[N_SNS];
	unsigned which[N_SNS], nh, killed = 0, ev0;
	json_t *msgs;
	enum { COUNT = 40 };

	(void)state;
	net_up(&n, 4242);
	for (unsigned i = 0; i < N_SNS; i++)
		up[i] = true;
	/* bob goes away */
	pn_sim_host_set_up(n.client_hosts[1], false);
	ev0 = n.n_events;
	send_many(&n, 0, "bob", COUNT, "offline");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 60000);
	/* every message is stored, on all r replicas (the last "stored" event of each says 3) */
	assert_int_equal(count_state(&n, 0, "delivered", ev0), 0);
	assert_true(count_state(&n, 0, "stored", ev0) >= COUNT);
	{
		int full = 0;
		for (unsigned k = ev0; k < n.n_events; k++)
			if (n.events[k].client == 0 &&
			    strcmp(n.events[k].name, "message.state") == 0 &&
			    json_integer_value(json_object_get(n.events[k].data, "stored")) == 3)
				full++;
		printf("  messages stored on 3 of 3 replicas: %d of %d\n", full, COUNT);
		assert_int_equal(full, COUNT);
	}
	assert_true(sc_call(&n, 0, "history", sc_args2("with", "bob", NULL, NULL), &r, 1000));
	msgs = json_object_get(r.result, "messages");
	for (size_t i = 2; i < json_array_size(msgs); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, i), "state")),
				    "stored");
	sc_reply_clear(&r);
	/* two of the mailbox's three supernodes die (not bob's or alice's own, when possible) */
	nh = holders(&n, up, which);
	printf("  supernodes holding the mailbox: %u\n", nh);
	assert_int_equal(nh, 3);
	for (unsigned k = 0; k < nh && killed < 2; k++) {
		if (which[k] <= 1 && nh - k > 2 - killed)
			continue;
		pn_sim_host_set_up(n.sn_hosts[which[k]], false);
		up[which[k]] = false;
		killed++;
	}
	assert_int_equal(killed, 2);
	/* re-replication: within two refresh periods the survivor has copied the mailbox to
	 * the supernodes now closest to its key, so it is on 3 live ones again */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 65000);
	{
		unsigned live = 0;
		for (unsigned i = 0; i < n.n_sns; i++)
			if (up[i] && pn_supernode_mailbox_entries(n.sns[i], "bob") == COUNT)
				live++;
		printf("  live supernodes holding all of bob's mailbox after churn: %u\n", live);
		assert_int_equal(live, 3);
	}
	/* bob comes back: everything arrives once, in order; alice sees it delivered */
	ev0 = n.n_events;
	pn_sim_host_set_up(n.client_hosts[1], true);
	for (int t = 0; t < 240 && count_state(&n, 0, "delivered", ev0) < COUNT; t++)
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 1000);
	printf("  received by bob: %d, delivered at alice: %d\n", count_ev(&n, 1, "message.received", ev0),
	       count_state(&n, 0, "delivered", ev0));
	assert_int_equal(count_ev(&n, 1, "message.received", ev0), COUNT);
	assert_int_equal(count_state(&n, 0, "delivered", ev0), COUNT);
	assert_true(sc_call(&n, 1, "history", sc_args2("with", "alice", NULL, NULL), &r, 1000));
	msgs = json_object_get(r.result, "messages");
	assert_int_equal(json_array_size(msgs), COUNT + 2);
	for (unsigned i = 0, k = 0; i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i);
		char want[32];
		if (strncmp(json_string_value(json_object_get(m, "text")), "offline", 7) != 0)
			continue;
		snprintf(want, sizeof(want), "offline %03u", k++);
		assert_string_equal(json_string_value(json_object_get(m, "text")), want);
	}
	sc_reply_clear(&r);
	/* what bob acknowledged is deleted everywhere; the receipts he left in alice's mailbox
	 * are gone after her next look into it (at most CL_MB_IDLE_POLL_MS later) */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 310000);
	for (unsigned i = 0; i < N_SNS; i++) {
		struct pn_supernode_stats st;
		if (!up[i])
			continue;
		pn_supernode_stats(n.sns[i], &st);
		printf("  sn %u: entries %llu mailboxes %llu stored %llu deleted %llu dup %llu repl %llu\n", i,
		       (unsigned long long)st.mb_entries, (unsigned long long)st.mb_mailboxes,
		       (unsigned long long)st.mb_stored, (unsigned long long)st.mb_deleted,
		       (unsigned long long)st.mb_duplicates, (unsigned long long)st.mb_replicated);
		assert_int_equal(st.mb_entries, 0);
	}
	sc_net_free(&n);
}

/* A message whose time to live runs out in the mailbox shows "expired" to the sender and
 * is gone from every supernode; the recipient, back later, never sees it. */
static void test_expiry(void **state)
{
	struct sc_net n;
	struct sc_reply r;
	json_t *args;
	unsigned ev0;
	uint64_t expired = 0;

	(void)state;
	net_up(&n, 777);
	args = json_pack("{s:i}", "mailbox_ttl_s", 120);
	assert_true(sc_call(&n, 0, "settings.set", args, &r, 1000));
	assert_int_equal(r.err, 0);
	assert_int_equal(json_integer_value(json_object_get(r.result, "mailbox_ttl_s")), 120);
	sc_reply_clear(&r);
	pn_sim_host_set_up(n.client_hosts[1], false);
	ev0 = n.n_events;
	send_many(&n, 0, "bob", 3, "short-lived");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 20000);
	assert_true(count_state(&n, 0, "stored", ev0) >= 3);
	assert_int_equal(count_state(&n, 0, "expired", ev0), 0);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 120000);
	assert_int_equal(count_state(&n, 0, "expired", ev0), 3);
	for (unsigned i = 0; i < n.n_sns; i++) {
		struct pn_supernode_stats st;
		pn_supernode_stats(n.sns[i], &st);
		assert_int_equal(st.mb_entries, 0);
		expired += st.mb_expired;
	}
	printf("  entries expired on the supernodes: %llu\n", (unsigned long long)expired);
	assert_true(expired >= 3 * 3);
	assert_true(sc_call(&n, 0, "history", sc_args2("with", "bob", NULL, NULL), &r, 1000));
	for (size_t i = 2; i < json_array_size(json_object_get(r.result, "messages")); i++)
		assert_string_equal(json_string_value(json_object_get(
					    json_array_get(json_object_get(r.result, "messages"), i), "state")),
				    "expired");
	sc_reply_clear(&r);
	ev0 = n.n_events;
	pn_sim_host_set_up(n.client_hosts[1], true);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 30000);
	assert_int_equal(count_ev(&n, 1, "message.received", ev0), 0);
	sc_net_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offline_delivery_survives_replica_loss),
		cmocka_unit_test(test_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
