/* Group chat fan-out in the simulator (virtual time, seeded): a group of N members (default
 * 100) on 4 supernodes, links of 15 ms +- 10 ms jitter.
 *
 * Figures (JSON lines, docs/BENCHMARKS.md "Group chats"):
 * - invite_all_ms: from group.create until every member device holds the group;
 * - first_all_ms: the first message (no sessions yet: lookups and handshakes first) until
 *   every other device of every member has it; first_delivered_ms: until the sender's
 *   delivered count reaches N-1;
 * - warm_all_ms p50/max: later messages, sessions up;
 * - sender_datagrams/sender_bytes per message (warm), and the same for one one-to-one
 *   message, so the fan-out factor is visible;
 * - cpu_ms_per_message: host CPU time the whole simulation spent per warm message (every
 *   node's work, not only the sender's).
 *
 *   bench-group [MEMBERS] [MESSAGES]      MEMBERS 2..120 (default 100), MESSAGES (default 20) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "base/addr.h"
#include "scenario.h"

static struct sc_net *n;
static struct pn_addr sender_addr;
static uint64_t tx_pkts, tx_bytes;
static int members;
static char gid[40];

static void tap(void *arg, const struct pn_addr *from, const struct pn_addr *to, const uint8_t *buf,
		size_t len)
{
	(void)arg;
	(void)to;
	(void)buf;
	if (pn_addr_eq(from, &sender_addr)) {
		tx_pkts++;
		tx_bytes += len;
	}
}

static void fig(const char *figure, double v, const char *unit)
{
	printf("{\"bench\": \"group\", \"figure\": \"%s\", \"value\": %.3f, \"unit\": \"%s\", "
	       "\"members\": %d}\n", figure, v, unit, members);
	fflush(stdout);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool call_ok(int i, const char *cmd, json_t *args, json_t **res)
{
	struct sc_reply r;

	if (!sc_call(n, i, cmd, args, &r, 30000) || r.err) {
		fprintf(stderr, "bench-group: %s on client %d failed: %s\n", cmd, i, r.code);
		sc_reply_clear(&r);
		return false;
	}
	if (res)
		*res = r.result;
	else
		sc_reply_clear(&r);
	return true;
}

/* How many clients (but `except`) saw an event `name` whose field `key` is `val`, from
 * event index ev0 on; *last gets the time of the latest. */
static int count_seen(const char *name, const char *key, const char *val, unsigned ev0, int except,
		      uint64_t *last)
{
	static bool hit[SC_MAX_CLIENTS];
	int c = 0;

	memset(hit, 0, sizeof(hit));
	for (unsigned k = ev0; k < n->n_events; k++) {
		const struct sc_event *e = &n->events[k];
		const char *v;
		if (e->client == except || hit[e->client] || strcmp(e->name, name) != 0)
			continue;
		v = json_string_value(json_object_get(e->data, key));
		if (!v || strcmp(v, val) != 0)
			continue;
		hit[e->client] = true;
		c++;
		if (last && e->at > *last)
			*last = e->at;
	}
	return c;
}

/* Polls every 10 ms of virtual time until `want` clients saw it; the time comes from the
 * events' own stamps. */
static bool wait_seen(const char *name, const char *key, const char *val, unsigned ev0, int except,
		      int want, uint64_t *last)
{
	uint64_t end = pn_sim_now(n->sim) + 120000;

	while (count_seen(name, key, val, ev0, except, NULL) < want && pn_sim_now(n->sim) < end)
		pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 10);
	return count_seen(name, key, val, ev0, except, last) >= want;
}

/* The sender's message.state event with delivered == n-1: its time. */
static bool wait_delivered(const char *id, unsigned ev0, uint64_t *at)
{
	uint64_t end = pn_sim_now(n->sim) + 120000;

	for (;;) {
		for (unsigned k = ev0; k < n->n_events; k++) {
			const struct sc_event *e = &n->events[k];
			const char *v = json_string_value(json_object_get(e->data, "id"));
			if (e->client == 0 && strcmp(e->name, "message.state") == 0 && v &&
			    strcmp(v, id) == 0 &&
			    json_integer_value(json_object_get(e->data, "delivered")) == members - 1) {
				*at = e->at;
				return true;
			}
		}
		if (pn_sim_now(n->sim) >= end)
			return false;
		pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 10);
	}
}

static bool send_and_measure(const char *text, uint64_t *all_ms, uint64_t *dl_ms, uint64_t *pkts,
			     uint64_t *bytes)
{
	json_t *res;
	char id[40];
	unsigned ev0 = n->n_events;
	uint64_t t0 = pn_sim_now(n->sim), last = 0, dl = 0;

	tx_pkts = tx_bytes = 0;
	if (!call_ok(0, "send", json_pack("{s:s,s:s}", "group", gid, "text", text), &res))
		return false;
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(res, "id")));
	json_decref(res);
	/* every member device but the sender: members - 1 users, plus the admin's 2nd device */
	if (!wait_seen("message.received", "id", id, ev0, 0, members - 1, &last) ||
	    !wait_delivered(id, ev0, &dl)) {
		fprintf(stderr, "bench-group: message %s did not reach everyone\n", id);
		return false;
	}
	*all_ms = last - t0;
	*dl_ms = dl - t0;
	/* let retransmissions and receipts settle before counting the sender's datagrams */
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 3000);
	*pkts = tx_pkts;
	*bytes = tx_bytes;
	return true;
}

int main(int argc, char **argv)
{
	struct pn_sim_link base = {.delay_ms = 15, .jitter_ms = 10};
	int n_msgs = 20;
	char addr[32], u[16];
	json_t *users, *res;
	uint64_t t0, last = 0, all, dl, pkts, bytes, *warm;
	struct timespec c0, c1;

	members = argc > 1 ? atoi(argv[1]) : 100;
	n_msgs = argc > 2 ? atoi(argv[2]) : 20;
	if (members < 2 || members > SC_MAX_CLIENTS - 2 || n_msgs < 1 || n_msgs > 1000) {
		fprintf(stderr, "usage: bench-group [MEMBERS 2..%d] [MESSAGES 1..1000]\n",
			SC_MAX_CLIENTS - 2);
		return 2;
	}
	n = calloc(1, sizeof(*n));
	warm = calloc((size_t)n_msgs, sizeof(*warm));
	if (!n || !warm || sc_net_init_multi(n, 7, &base, 4))
		return 1;
	for (int i = 0; i < members; i++) {
		snprintf(addr, sizeof(addr), "198.18.%d.%d:5000", 100 + i / 100, 2 + i % 100);
		if (sc_net_add_client_at(n, addr, (unsigned)i % 4) != i)
			return 1;
		snprintf(u, sizeof(u), "m%03d", i);
		if (!call_ok(i, "register", sc_args2("username", u, "password", "correct horse"), NULL) ||
		    !call_ok(i, "login", sc_args2("username", u, "password", "correct horse"), NULL))
			return 1;
		if (i > 0 && !call_ok(i, "contacts.add", sc_args2("username", "m000", NULL, NULL), NULL))
			return 1;
	}
	pn_addr_parse(&sender_addr, "198.18.100.2:5000");
	pn_sim_set_tap(n->sim, tap, NULL);
	pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 15000);

	/* the whole group at once */
	users = json_array();
	for (int i = 1; i < members; i++) {
		snprintf(u, sizeof(u), "m%03d", i);
		json_array_append_new(users, json_string(u));
	}
	{
		unsigned ev0 = n->n_events;
		t0 = pn_sim_now(n->sim);
		if (!call_ok(0, "group.create", json_pack("{s:s,s:o}", "name", "bench", "users", users), &res))
			return 1;
		snprintf(gid, sizeof(gid), "%s", json_string_value(json_object_get(res, "group")));
		json_decref(res);
		if (!wait_seen("group.changed", "group", gid, ev0, 0, members - 1, &last))
			return 1;
		fig("invite_all_ms", (double)(last - t0), "ms");
	}
	if (!send_and_measure("first", &all, &dl, &pkts, &bytes))
		return 1;
	fig("first_all_ms", (double)all, "ms");
	fig("first_delivered_ms", (double)dl, "ms");
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	for (int k = 0; k < n_msgs; k++) {
		if (!send_and_measure("warm message", &warm[k], &dl, &pkts, &bytes))
			return 1;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	qsort(warm, (size_t)n_msgs, sizeof(*warm), cmp_u64);
	fig("warm_all_ms_p50", (double)warm[n_msgs / 2], "ms");
	fig("warm_all_ms_max", (double)warm[n_msgs - 1], "ms");
	fig("warm_delivered_ms_last", (double)dl, "ms");
	fig("sender_datagrams_per_message", (double)pkts, "datagrams");
	fig("sender_bytes_per_message", (double)bytes, "bytes");
	fig("cpu_ms_per_message",
	    ((double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6) / n_msgs,
	    "ms");
	{
		/* the same sender, one one-to-one message to m001, for comparison */
		unsigned ev0 = n->n_events;
		tx_pkts = tx_bytes = 0;
		if (!call_ok(0, "send", sc_args2("to", "m001", "text", "warm message"), &res))
			return 1;
		json_decref(res);
		if (sc_wait_event(n, 0, "message.state", ev0, 10000) < 0)
			return 1;
		pn_sim_run_until(n->sim, pn_sim_now(n->sim) + 3000);
		fig("one_to_one_sender_datagrams", (double)tx_pkts, "datagrams");
		fig("one_to_one_sender_bytes", (double)tx_bytes, "bytes");
	}
	sc_net_free(n);
	free(n);
	free(warm);
	return 0;
}
