/* The supernode overlay's routing and attachment bookkeeping, in small simulated networks:
 *
 *   - a client's standby attachment stays up (it was expired by the supernode 5 s after it
 *     was made, because nothing confirmed it, and came back only every 20 s or so);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(standby_attachment_stays_up),
	};

	pn_log_set_level(PN_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
