/* The supernode overlay's routing and attachment bookkeeping, in small simulated networks:
 *
 *   - a client's standby attachment stays up (it was expired by the supernode 5 s after it
 *     was made, because nothing confirmed it, and came back only every 20 s or so);
 *   - bucket refresh fills the routing tables: every supernode of a 60-node network knows
 *     nearly all the others after the warm-up;
 *   - open policy: an uncertified supernode serves only after the capable-node self-test
 *     saw it at its configured public address, and refuses clients when it did not;
 *   - lookups over d = 3 disjoint paths succeed with a quarter of the supernodes dropping
 *     or lying, as single-path lookups do (parley-sim's driver, cmd/parley-sim.c, included
 *     with its main() left out; the larger runs are in docs/BENCHMARKS.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/log.h"
#include "scenario.h"

#define PARLEY_SIM_NO_MAIN
#include "../../cmd/parley-sim.c"

enum { ALICE = 0, BOB = 1 };

static uint64_t clients_attached(const struct sc_net *n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n->n_sns; i++) {
		struct pn_supernode_stats st;
		pn_supernode_stats(n->sns[i], &st);
		sum += st.clients;
	}
	return sum;
}

/* Two clients, each with a primary and a warm standby on three supernodes: all four
 * attachments hold, second by second, for the 40 s after they were made. Before the
 * standby pinged at once, the supernode dropped each standby as a half-open handshake
 * 5 s after it attached (the client sends it nothing for its first 20 s), so a failover
 * in that window found no standby session. */
static void standby_attachment_stays_up(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10, .jitter_ms = 5, .loss = 0};
	unsigned ok = 0;

	(void)state;
	assert_int_equal(sc_net_init_multi(&n, 91, &l, 3), 0);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 0), ALICE);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.2:5000", 2), BOB);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	sc_up_user(&n, ALICE, "alice");
	sc_up_user(&n, BOB, "bob");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000); /* standbys attach */
	for (unsigned s = 0; s < 40; s++) {
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 1000);
		ok += clients_attached(&n) == 4;
	}
	print_message("standby: 4 attachments in %u of 40 one-second samples\n", ok);
	assert_int_equal(ok, 40);
	sc_net_free(&n);
}

/* Open network, supernode 2 without a certificate. Configured with the address it really
 * has, its STUN probe to another supernode comes back with that address: it passes and
 * alice attaches to it. Configured with an address it does not have (as behind a NAT), it
 * fails, takes no client (alice's handshakes go unanswered) and starts no overlay lookup. */
static void open_policy_self_test(void **state)
{
	struct sc_net n;
	struct pn_sim_link l = {.delay_ms = 10};
	struct pn_supernode_stats st;
	struct sc_reply r;

	(void)state;
	assert_int_equal(sc_net_init_multi(&n, 95, &l, 3), 0);
	n.net.open_policy = true;
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(sc_restart_supernode(&n, i), 0);
	n.sn_cert_len[2] = 0;
	assert_int_equal(sc_restart_supernode(&n, 2), 0);
	pn_supernode_stats(n.sns[2], &st);
	assert_int_equal(st.self_test, PN_SN_SELFTEST_PENDING);
	pn_supernode_stats(n.sns[0], &st);
	assert_int_equal(st.self_test, PN_SN_SELFTEST_NONE); /* certified: no test */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	pn_supernode_stats(n.sns[2], &st);
	assert_int_equal(st.self_test, PN_SN_SELFTEST_PASSED);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 2), ALICE);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	sc_up_user(&n, ALICE, "alice");
	pn_supernode_stats(n.sns[2], &st);
	assert_int_equal(st.clients, 1);
	sc_net_free(&n);

	/* the same, announcing 198.18.99.2:7701 while its datagrams come from .12.2 */
	assert_int_equal(sc_net_init_multi(&n, 96, &l, 3), 0);
	n.net.open_policy = true;
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(sc_restart_supernode(&n, i), 0);
	n.sn_cert_len[2] = 0;
	assert_int_equal(pn_addr_parse(&n.net.supernodes[2].addr, "198.18.99.2:7701"), 0);
	assert_int_equal(sc_restart_supernode(&n, 2), 0);
	assert_int_equal(pn_addr_parse(&n.net.supernodes[2].addr, "198.18.12.2:7701"), 0);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 2000);
	pn_supernode_stats(n.sns[2], &st);
	assert_int_equal(st.self_test, PN_SN_SELFTEST_FAILED);
	assert_int_equal(sc_net_add_client_at(&n, "198.18.1.1:5000", 2), ALICE);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 3000);
	assert_true(sc_call(&n, ALICE, "status", NULL, &r, 100));
	{
		/* not attached yet, or moved on to another supernode of the network file */
		const char *at = json_string_value(json_object_get(r.result, "supernode"));
		assert_true(!at || strcmp(at, "198.18.12.2:7701") != 0);
	}
	sc_reply_clear(&r);
	pn_supernode_stats(n.sns[2], &st);
	assert_int_equal(st.clients, 0);
	assert_int_equal(st.overlay_lookups, 0);
	assert_int_equal(st.lookups_done, 0);
	sc_net_free(&n);
}

static void small_net(struct osim_config *c, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->n_sn = 40;
	c->clients_per_sn = 2;
	c->seed = seed;
	c->lookups = 100;
	c->hours = 0.02;
	c->k = 4; /* small buckets, so that 40 nodes need more than one hop */
	c->misbehave = PN_SN_DROP;
}

static void print_res(const char *name, const struct osim_result *r)
{
	print_message("%s: %" PRIu64 "/%" PRIu64 " found (first attempt %" PRIu64 "), hops p50 %u "
		      "p99 %u, latency p50 %.0f ms p99 %.0f ms, %.1f contacts per supernode\n",
		      name, r->found, r->lookups, r->found_first, r->hops_p50, r->hops_p99,
		      r->lat_p50, r->lat_p99, r->contacts_mean);
}

/* With k = 4, a full table of a 40-node network holds 16.3 contacts on average: the sum
 * over buckets i of E[min(k, Binomial(39, 2^-(i+1)))]. Bucket refresh must bring the mean
 * close to that. */
static void refresh_fills_tables(void **state)
{
	struct osim_config c;
	struct osim_result r;

	(void)state;
	small_net(&c, 21);
	assert_int_equal(osim_run(&c, &r), 0);
	print_res("k=4, 40 supernodes", &r);
	assert_int_equal(r.found, r.lookups);
	assert_true(r.contacts_mean >= 14);
	osim_result_free(&r);
}

/* A quarter of the supernodes drop every overlay request, or lie (FIND_VALUE answered with
 * far-away nodes, STOREs acknowledged and thrown away). Lookups over 3 disjoint paths
 * still find at least 98 % of the records, and so do single-path ones (droppers); against droppers
 * the 3 paths also cut the slowest lookups (p99), as a path stuck on a silent node no
 * longer holds the others up. */
static void disjoint_paths_with_malicious(void **state)
{
	static const int kinds[] = {PN_SN_DROP, PN_SN_LIE};
	double drop_p99[4] = {0};

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		/* (a liar on one path is covered by the drop case's timing and the larger
		 * runs; one run fewer keeps the test at a few seconds) */
		for (unsigned d = i ? 3 : 1; d <= 3; d += 2) {
			struct osim_config c;
			struct osim_result r;
			char name[64];

			small_net(&c, 22 + i);
			c.malicious = 0.25;
			c.misbehave = kinds[i];
			c.paths = d;
			assert_int_equal(osim_run(&c, &r), 0);
			snprintf(name, sizeof(name), "25 %% %s, %u path%s", i ? "lie" : "drop", d,
				 d > 1 ? "s" : "");
			print_res(name, &r);
			assert_int_equal(r.lookups, c.lookups);
			assert_true(r.found * 100 >= r.lookups * 98);
			if (kinds[i] == PN_SN_DROP)
				drop_p99[d] = r.lat_p99;
			osim_result_free(&r);
		}
	}
	assert_true(drop_p99[3] < drop_p99[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(standby_attachment_stays_up),
		cmocka_unit_test(open_policy_self_test),
		cmocka_unit_test(refresh_fills_tables),
		cmocka_unit_test(disjoint_paths_with_malicious),
	};

	pn_log_set_level(PN_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
