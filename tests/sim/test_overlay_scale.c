/* The supernode directory at small scale: 50 real supernodes and 250 lightweight clients
 * in virtual time, driven by the same code as the parley-sim program (cmd/parley-sim.c,
 * included here with its main() left out). Each test asserts the figures the directory
 * must reach, not only that a run completes:
 *
 *   - a stable network answers every lookup, and every record is still there at the end;
 *   - with 10 % of the supernodes replaced during one virtual hour, at least 99 % of the
 *     lookups succeed (clients of a removed supernode re-attach elsewhere and republish);
 *   - with 10 % of the supernodes dropping every overlay request, at least 95 % succeed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define PARLEY_SIM_NO_MAIN
#include "../../cmd/parley-sim.c"

enum { N_SN = 50, CLIENTS_PER_SN = 5, LOOKUPS = 200 };

static void base_config(struct osim_config *c, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->n_sn = N_SN;
	c->clients_per_sn = CLIENTS_PER_SN;
	c->seed = seed;
	c->lookups = LOOKUPS;
	c->misbehave = PN_SN_DROP;
}

static void print_result(const char *name, const struct osim_result *r)
{
	print_message("%s: %" PRIu64 "/%" PRIu64 " found, hops p50 %u p99 %u, latency p50 %.0f ms, "
		      "survival %" PRIu64 "/%" PRIu64 ", %" PRIu64 " supernodes replaced\n",
		      name, r->found, r->lookups, r->hops_p50, r->hops_p99, r->lat_p50,
		      r->survival_found, r->survival_n, r->sn_killed);
}

/* No churn, nobody malicious: every lookup finds its record, in at most 2 overlay hops at
 * the median, and every user's record survives six minutes. */
static void test_stable_all_found(void **state)
{
	struct osim_config c;
	struct osim_result r;

	base_config(&c, 11);
	c.hours = 0.1;
	assert_int_equal(osim_run(&c, &r), 0);
	print_result("stable", &r);
	assert_int_equal(r.lookups, LOOKUPS);
	assert_int_equal(r.found, r.lookups);
	assert_int_equal(r.survival_found, r.survival_n);
	assert_int_equal(r.survival_n, N_SN * CLIENTS_PER_SN);
	assert_true(r.hops_p50 <= 2);
	assert_true(r.hops_p99 <= 4);
	assert_int_equal(r.sn_killed, 0);
	osim_result_free(&r);
}

/* 10 % of the supernodes replaced over one virtual hour (5 of 50, new keys and addresses,
 * joining through the network file): at least 99 % of the lookups succeed and at least
 * 99 % of the records are still findable at the end. */
static void test_churn_10_percent(void **state)
{
	struct osim_config c;
	struct osim_result r;

	base_config(&c, 12);
	c.hours = 1;
	c.churn_per_hour = 10;
	assert_int_equal(osim_run(&c, &r), 0);
	print_result("churn 10%/h", &r);
	assert_int_equal(r.sn_killed, 5);
	assert_int_equal(r.lookups, LOOKUPS);
	assert_true(r.found * 100 >= r.lookups * 99);
	assert_true(r.survival_found * 100 >= r.survival_n * 99);
	osim_result_free(&r);
}

/* 5 of 50 supernodes never answer overlay requests and store nothing: at least 95 % of the
 * lookups still succeed (the lookup routes around them, and r = 3 replicas rarely all
 * land on droppers). */
static void test_drop_10_percent(void **state)
{
	struct osim_config c;
	struct osim_result r;

	base_config(&c, 13);
	c.hours = 0.1;
	c.malicious = 0.10;
	c.misbehave = PN_SN_DROP;
	assert_int_equal(osim_run(&c, &r), 0);
	print_result("10% drop", &r);
	assert_int_equal(r.lookups, LOOKUPS);
	assert_true(r.found * 100 >= r.lookups * 95);
	osim_result_free(&r);
}

/* The same seed gives the same run, event for event. */
static void test_deterministic(void **state)
{
	struct osim_config c;
	struct osim_result a, b;

	base_config(&c, 14);
	c.n_sn = 20;
	c.clients_per_sn = 2;
	c.lookups = 50;
	c.hours = 0.05;
	c.churn_per_hour = 50;
	assert_int_equal(osim_run(&c, &a), 0);
	assert_int_equal(osim_run(&c, &b), 0);
	assert_int_equal(a.events, b.events);
	assert_int_equal(a.found, b.found);
	assert_int_equal(a.nlat, b.nlat);
	for (size_t i = 0; i < a.nlat; i++)
		assert_true(a.lat[i] == b.lat[i]);
	osim_result_free(&a);
	osim_result_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stable_all_found),
		cmocka_unit_test(test_churn_10_percent),
		cmocka_unit_test(test_drop_10_percent),
		cmocka_unit_test(test_deterministic),
	};

	pn_log_set_level(PN_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
