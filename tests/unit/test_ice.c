/* The direct-path state machine (src/nat/ice.c) and its frames, without a network: two
 * pn_ice instances exchange checks through a tiny in-test "wire" that can drop what
 * goes one way (a NAT that filters) and rewrite source addresses (a NAT that maps). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/addr.h"
#include "nat/ice.h"
#include "wire/wire.h"

static struct pn_addr A(const char *s)
{
	struct pn_addr a;

	assert_int_equal(pn_addr_parse(&a, s), 0);
	return a;
}

/* ---- frames ---------------------------------------------------------------------- */

static void cands_round_trip(void **state)
{
	struct pn_cand c[3] = {{PN_CAND_HOST, A("198.19.1.2:5000")},
			       {PN_CAND_HOST, A("[2001:db8:1::2]:5000")},
			       {PN_CAND_SRFLX, A("198.18.0.101:40000")}};
	uint8_t buf[256];
	struct pn_ice_frame f;
	int n = pn_ice_cands_encode(buf, sizeof(buf), 7, 0, c, 3);

	assert_true(n > 0);
	assert_int_equal(pn_ice_frame_decode(&f, buf, (size_t)n), 0);
	assert_int_equal(f.kind, PN_ICE_CANDS);
	assert_int_equal(f.gen, 7);
	assert_int_equal(f.n, 3);
	assert_true(pn_addr_eq(&f.cands[1].addr, &c[1].addr));
	assert_int_equal(f.cands[2].type, PN_CAND_SRFLX);
	/* every truncation is refused, and so is a trailing byte */
	for (int k = 0; k < n; k++)
		assert_int_equal(pn_ice_frame_decode(&f, buf, (size_t)k), -EBADMSG);
	buf[n] = 0;
	assert_int_equal(pn_ice_frame_decode(&f, buf, (size_t)n + 1), -EBADMSG);
}

static void bad_frames_refused(void **state)
{
	struct pn_ice_frame f;
	struct pn_cand c = {PN_CAND_HOST, A("198.19.1.2:5000")};
	uint8_t buf[256];
	int n;

	/* unknown kind, wrong frame type, bad candidate type, n above the cap */
	const uint8_t k9[] = {PN_F_NAT, 9, 0, 0, 0, 0, 0, 0, 0, 0};
	const uint8_t wrong[] = {PN_F_CHAT, PN_ICE_CHECK, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	const uint8_t many[] = {PN_F_NAT, PN_ICE_CANDS, 0, 0, 0, 1, 0, PN_ICE_MAX_CANDS + 1};
	assert_int_equal(pn_ice_frame_decode(&f, k9, sizeof(k9)), -EBADMSG);
	assert_int_equal(pn_ice_frame_decode(&f, wrong, sizeof(wrong)), -EBADMSG);
	assert_int_equal(pn_ice_frame_decode(&f, many, sizeof(many)), -EBADMSG);
	n = pn_ice_cands_encode(buf, sizeof(buf), 1, 0, &c, 1);
	assert_true(n > 0);
	buf[8] = 9; /* the candidate's type byte */
	assert_int_equal(pn_ice_frame_decode(&f, buf, (size_t)n), -EBADMSG);
	buf[8] = PN_CAND_HOST;
	buf[9] = 5; /* address family 5 */
	assert_int_equal(pn_ice_frame_decode(&f, buf, (size_t)n), -EBADMSG);
	/* encoders refuse what they cannot express */
	c.type = 0;
	assert_int_equal(pn_ice_cands_encode(buf, sizeof(buf), 1, 0, &c, 1), -EINVAL);
	assert_int_equal(pn_ice_check_encode(buf, sizeof(buf), true, 1, 0, NULL), -EINVAL);
	assert_int_equal(pn_ice_check_encode(buf, 4, false, 1, 0, NULL), -ENOSPC);
	assert_int_equal(pn_ice_stream_encode(buf, sizeof(buf), 1, PN_ICE_STREAM_MAX + 1), -EINVAL);
}

/* The test vector of docs/PROTOCOL.md §3.7. */
static void frame_vector(void **state)
{
	struct pn_cand c[2] = {{PN_CAND_HOST, A("198.19.1.2:5000")},
			       {PN_CAND_SRFLX, A("198.18.0.101:40000")}};
	static const uint8_t want_cands[] = {
		0x47, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02,
		0x01, 0x04, 0xc6, 0x13, 0x01, 0x02, 0x13, 0x88,
		0x02, 0x04, 0xc6, 0x12, 0x00, 0x65, 0x9c, 0x40};
	static const uint8_t want_check[] = {0x47, 0x02, 0x00, 0x00, 0x00, 0x00,
					     0x00, 0x00, 0x01, 0x03, 0x01};
	static const uint8_t want_ok[] = {0x47, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
					  0x01, 0x03, 0x01, 0x04, 0xc6, 0x12, 0x00, 0x65,
					  0x9c, 0x40};
	uint8_t buf[64];
	struct pn_addr m = A("198.18.0.101:40000");

	assert_int_equal(pn_ice_cands_encode(buf, sizeof(buf), 2, 0, c, 2), sizeof(want_cands));
	assert_memory_equal(buf, want_cands, sizeof(want_cands));
	assert_int_equal(pn_ice_check_encode(buf, sizeof(buf), false, 0x103, PN_ICE_F_NOMINATE, NULL),
			 sizeof(want_check));
	assert_memory_equal(buf, want_check, sizeof(want_check));
	assert_int_equal(pn_ice_check_encode(buf, sizeof(buf), true, 0x103, PN_ICE_F_NOMINATE, &m),
			 sizeof(want_ok));
	assert_memory_equal(buf, want_ok, sizeof(want_ok));
}

/* ---- the state machine between two ends ---------------------------------------------- */

/* Two ends: a (controlling) at a_addr, b at b_addr; what a sends arrives from a_seen
 * (its NAT's mapping), likewise b. drop_to_a: checks towards a are filtered until a has
 * sent to b (a port-restricted NAT in front of a). */
struct duo {
	struct pn_ice a, b;
	struct pn_addr a_seen, b_seen;
	bool a_filters, b_filters, a_sent, b_sent;
	bool blackhole; /* everything lost */
	uint64_t now;
	unsigned checks;
};

static void deliver(struct duo *d, bool from_a, const struct pn_ice_out *o)
{
	struct pn_ice *to = from_a ? &d->b : &d->a;
	const struct pn_addr *src = from_a ? &d->a_seen : &d->b_seen;
	const struct pn_addr *dst = from_a ? &d->b_seen : &d->a_seen;

	d->checks++;
	if (from_a)
		d->a_sent = true;
	else
		d->b_sent = true;
	if (d->blackhole || !pn_addr_eq(&o->to, dst))
		return; /* to an address that is not the peer's: lost */
	if (from_a ? (d->b_filters && !d->b_sent) : (d->a_filters && !d->a_sent))
		return;
	/* the receiver answers with CHECK_OK (a triggered check may follow) */
	pn_ice_on_check(to, d->now, src, o->flags);
	pn_ice_on_ok(from_a ? &d->a : &d->b, d->now, dst, o->tid, o->flags, src);
}

static void run(struct duo *d, uint64_t until)
{
	struct pn_ice_out o;

	while (d->now < until) {
		while (pn_ice_poll(&d->a, d->now, &o))
			deliver(d, true, &o);
		while (pn_ice_poll(&d->b, d->now, &o))
			deliver(d, false, &o);
		d->now++;
	}
}

static void duo_init(struct duo *d, const char *a_seen, const char *b_seen)
{
	struct pn_cand ca[2], cb[2];

	memset(d, 0, sizeof(*d));
	d->now = 1000;
	d->a_seen = A(a_seen);
	d->b_seen = A(b_seen);
	pn_ice_init(&d->a, true);
	pn_ice_init(&d->b, false);
	/* each side: a host candidate nobody can reach, then the reflexive one */
	ca[0] = (struct pn_cand){PN_CAND_HOST, A("198.19.1.2:5000")};
	ca[1] = (struct pn_cand){PN_CAND_SRFLX, d->a_seen};
	cb[0] = (struct pn_cand){PN_CAND_HOST, A("198.19.2.2:5000")};
	cb[1] = (struct pn_cand){PN_CAND_SRFLX, d->b_seen};
	pn_ice_set_remote(&d->a, cb, 2, 1, d->now);
	pn_ice_set_remote(&d->b, ca, 2, 1, d->now);
}

static void punch_through_two_filters(void **state)
{
	struct duo d;

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	d.a_filters = d.b_filters = true;
	run(&d, d.now + 1000);
	assert_non_null(pn_ice_selected(&d.a));
	assert_non_null(pn_ice_selected(&d.b));
	assert_true(pn_addr_eq(pn_ice_selected(&d.a), &d.b_seen));
	assert_true(pn_addr_eq(pn_ice_selected(&d.b), &d.a_seen));
	/* only the controlling side nominates; the controlled side followed it */
	assert_true(d.a.selected_at <= d.b.selected_at + 1);
}

static void checks_are_paced(void **state)
{
	struct duo d;
	uint64_t t0;

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	d.blackhole = true;
	t0 = d.now;
	run(&d, t0 + 200);
	/* two sides, 200 ms, one check per Ta (20 ms) per side at most */
	assert_true(d.checks <= 2 * (200 / PN_ICE_TA_MS + 1));
	assert_true(d.checks >= 4);
}

static void nothing_works_then_relay_and_rounds(void **state)
{
	struct duo d;
	unsigned after_fail;

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	d.blackhole = true;
	run(&d, d.now + PN_ICE_PAIR_FAIL_MS + 1000);
	assert_null(pn_ice_selected(&d.a));
	for (unsigned i = 0; i < d.a.n; i++)
		assert_int_equal(d.a.pairs[i].state, PN_PAIR_FAILED);
	/* quiet until the next round */
	after_fail = d.checks;
	run(&d, d.now + PN_ICE_ROUND_MS / 2);
	assert_int_equal(d.checks, after_fail);
	run(&d, d.now + PN_ICE_ROUND_MS);
	assert_true(d.checks > after_fail);
	assert_true(d.a.rounds >= 1);
	/* the path opens later: the next round finds it (migration after fallback) */
	d.blackhole = false;
	run(&d, d.now + PN_ICE_ROUND_MS + 2000);
	assert_non_null(pn_ice_selected(&d.a));
}

static void ipv6_first(void **state)
{
	struct pn_ice ice;
	struct pn_cand c[3] = {{PN_CAND_SRFLX, A("198.18.0.101:40000")},
			       {PN_CAND_HOST, A("198.19.1.2:5000")},
			       {PN_CAND_HOST, A("[2001:db8:1::2]:5000")}};
	struct pn_ice_out o;

	pn_ice_init(&ice, true);
	pn_ice_set_remote(&ice, c, 3, 3, 0);
	assert_int_equal(ice.n, 3);
	assert_int_equal(ice.pairs[0].remote.family, PN_AF_INET6);
	assert_int_equal(ice.pairs[1].type, PN_CAND_HOST);
	assert_int_equal(ice.pairs[2].type, PN_CAND_SRFLX);
	assert_true(pn_ice_poll(&ice, 0, &o));
	assert_int_equal(o.to.family, PN_AF_INET6);
	/* an end without IPv6 skips those pairs */
	pn_ice_set_remote(&ice, c, 3, 1, 0);
	assert_int_equal(ice.n, 2);
	assert_int_equal(ice.pairs[0].remote.family, PN_AF_INET);
}

static void peer_reflexive_from_symmetric_nat(void **state)
{
	struct duo d;
	struct pn_cand cb[1];

	/* b is behind a symmetric NAT: its reflexive candidate (towards the supernode) is
	 * not what a sees; a is public. a learns b's real mapping from b's check. */
	duo_init(&d, "198.18.0.101:5000", "198.18.0.102:51234");
	cb[0] = (struct pn_cand){PN_CAND_SRFLX, A("198.18.0.102:40001")};
	pn_ice_set_remote(&d.a, cb, 1, 1, d.now);
	d.b_filters = true;
	run(&d, d.now + 2000);
	assert_non_null(pn_ice_selected(&d.a));
	assert_true(pn_addr_eq(pn_ice_selected(&d.a), &d.b_seen));
	assert_int_equal(d.a.pairs[d.a.selected].type, PN_CAND_PRFLX);
	assert_non_null(pn_ice_selected(&d.b));
}

static void stale_and_foreign_answers_ignored(void **state)
{
	struct pn_ice ice;
	struct pn_cand c = {PN_CAND_SRFLX, A("198.18.0.102:40001")};
	struct pn_addr other = A("198.18.0.9:40001");
	struct pn_ice_out o;

	pn_ice_init(&ice, true);
	pn_ice_set_remote(&ice, &c, 1, 1, 0);
	assert_true(pn_ice_poll(&ice, 0, &o));
	/* an answer from another address, to an unknown pair, to a future tid */
	assert_false(pn_ice_on_ok(&ice, 5, &other, o.tid, 0, &other));
	assert_false(pn_ice_on_ok(&ice, 5, &c.addr, o.tid | 0x7f, 0, &other));
	assert_false(pn_ice_on_ok(&ice, 5, &c.addr, o.tid + (100 << 8), 0, &other));
	assert_int_equal(ice.pairs[0].state, PN_PAIR_IN_PROGRESS);
	/* a controlled-side nominate flag on an answer does not make the controlling side
	 * select anything it did not nominate */
	assert_false(pn_ice_on_ok(&ice, 5, &c.addr, o.tid, PN_ICE_F_NOMINATE, &other));
	assert_null(pn_ice_selected(&ice));
	assert_int_equal(ice.pairs[0].state, PN_PAIR_SUCCEEDED);
}

static void consent_lost_and_keepalive(void **state)
{
	struct duo d;
	unsigned before;

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	run(&d, d.now + 1000);
	assert_non_null(pn_ice_selected(&d.a));
	/* idle: the controlling side sends a keepalive every 20-25 s, the controlled side
	 * only answers; both keep the path */
	before = d.checks;
	run(&d, d.now + 60000);
	assert_non_null(pn_ice_selected(&d.a));
	assert_non_null(pn_ice_selected(&d.b));
	if (!(d.checks - before >= 2 && d.checks - before <= 3))
		fail_msg("%u keepalives in 60 s", d.checks - before);
	/* the path dies: the controlling side notices within one keepalive interval +
	 * jitter + the failure time, the controlled side when the keepalives stop */
	d.blackhole = true;
	run(&d, d.now + PN_ICE_CONSENT_MS + 5000 + PN_ICE_CONSENT_FAIL_MS + 10);
	assert_null(pn_ice_selected(&d.a));
	assert_int_equal(d.a.paths_lost, 1);
	run(&d, d.now + PN_ICE_CONSENT_MS + 5000 + 2 * PN_ICE_CONSENT_FAIL_MS);
	assert_null(pn_ice_selected(&d.b));
	assert_int_equal(d.b.paths_lost, 1);
}

static void renomination_on_new_candidates(void **state)
{
	struct duo d;
	struct pn_cand cb[1];

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	run(&d, d.now + 1000);
	assert_non_null(pn_ice_selected(&d.a));
	/* b moved: new address, new candidates; the old path keeps working until it fails */
	d.b_seen = A("198.18.0.103:40007");
	cb[0] = (struct pn_cand){PN_CAND_SRFLX, d.b_seen};
	pn_ice_set_remote(&d.a, cb, 1, 1, d.now);
	assert_non_null(pn_ice_selected(&d.a));
	run(&d, d.now + PN_ICE_CONSENT_MS + 5000 + PN_ICE_CONSENT_FAIL_MS + 2000);
	assert_non_null(pn_ice_selected(&d.a));
	assert_true(pn_addr_eq(pn_ice_selected(&d.a), &d.b_seen));
}

/* A pair the host cannot send to at all (a private address of another network) fails at
 * once, so the nomination does not wait for it. */
static void unroutable_pair_fails_at_once(void **state)
{
	struct pn_ice ice;
	struct pn_cand c[2] = {{PN_CAND_HOST, A("198.19.2.2:5000")},
			       {PN_CAND_SRFLX, A("198.18.0.102:40001")}};
	struct pn_ice_out o;
	uint64_t now = 0;

	pn_ice_init(&ice, true);
	pn_ice_set_remote(&ice, c, 2, 1, now);
	assert_true(pn_ice_poll(&ice, now, &o));
	assert_true(pn_addr_eq(&o.to, &c[0].addr));
	pn_ice_send_failed(&ice, &o.to);
	assert_int_equal(ice.pairs[0].state, PN_PAIR_FAILED);
	now += PN_ICE_TA_MS;
	assert_true(pn_ice_poll(&ice, now, &o));
	assert_true(pn_addr_eq(&o.to, &c[1].addr));
	assert_false(pn_ice_on_ok(&ice, now + 1, &o.to, o.tid, 0, &o.to));
	/* the only better pair failed: the nomination goes out at once, no wait */
	assert_true(pn_ice_poll(&ice, now + PN_ICE_TA_MS, &o));
	assert_int_equal(o.flags, PN_ICE_F_NOMINATE);
	assert_true(pn_ice_on_ok(&ice, now + PN_ICE_TA_MS + 1, &o.to, o.tid, o.flags, &o.to));
	assert_non_null(pn_ice_selected(&ice));
}

static void stop_forgets_everything(void **state)
{
	struct duo d;

	duo_init(&d, "198.18.0.101:40000", "198.18.0.102:40001");
	run(&d, d.now + 1000);
	assert_non_null(pn_ice_selected(&d.a));
	pn_ice_stop(&d.a);
	assert_null(pn_ice_selected(&d.a));
	assert_int_equal(pn_ice_deadline(&d.a), UINT64_MAX);
	/* a zeroed, never initialised instance is not a path either */
	memset(&d.b, 0, sizeof(d.b));
	assert_null(pn_ice_selected(&d.b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cands_round_trip),
		cmocka_unit_test(bad_frames_refused),
		cmocka_unit_test(frame_vector),
		cmocka_unit_test(punch_through_two_filters),
		cmocka_unit_test(checks_are_paced),
		cmocka_unit_test(nothing_works_then_relay_and_rounds),
		cmocka_unit_test(ipv6_first),
		cmocka_unit_test(peer_reflexive_from_symmetric_nat),
		cmocka_unit_test(stale_and_foreign_answers_ignored),
		cmocka_unit_test(consent_lost_and_keepalive),
		cmocka_unit_test(renomination_on_new_candidates),
		cmocka_unit_test(unroutable_pair_fails_at_once),
		cmocka_unit_test(stop_forgets_everything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
