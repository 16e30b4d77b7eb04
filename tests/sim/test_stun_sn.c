/* A supernode answers plain STUN Binding requests on its UDP port (docs/PROTOCOL.md
 * "STUN"), in the simulator: a raw host sends STUN datagrams to the supernode of a whole
 * network and looks at what comes back. The rule under test is anti-amplification: no
 * answer is ever larger than the request that caused it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/addr.h"
#include "nat/stun.h"
#include "scenario.h"

struct probe {
	unsigned n;
	size_t len;
	uint8_t buf[PN_STUN_MAX];
	struct pn_addr from;
};

static void probe_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct probe *p = node;

	p->n++;
	p->from = *from;
	p->len = len < sizeof(p->buf) ? len : sizeof(p->buf);
	memcpy(p->buf, buf, p->len);
}

static uint64_t probe_deadline(void *node)
{
	return UINT64_MAX;
}

static void probe_tick(void *node)
{
}

static const struct pn_node_ops probe_ops = {probe_recv, probe_deadline, probe_tick};

struct lab {
	struct sc_net n;
	struct probe p;
	struct pn_addr me;
	const struct pn_env *env;
};

static void lab_up(struct lab *l)
{
	struct pn_sim_host *h;

	memset(l, 0, sizeof(*l));
	assert_int_equal(sc_net_init(&l->n, 77, NULL), 0);
	assert_int_equal(pn_addr_parse(&l->me, "198.18.99.2:5000"), 0);
	assert_int_equal(pn_sim_host_add(l->n.sim, &l->me, &h), 0);
	pn_sim_host_set_node(h, &l->p, &probe_ops);
	l->env = pn_sim_host_env(h);
}

/* Sends buf to the supernode, runs a second of virtual time, returns answers seen. */
static unsigned ask(struct lab *l, const uint8_t *buf, size_t len)
{
	unsigned before = l->p.n;

	l->env->send(l->env->ctx, &l->n.net.supernodes[0].addr, buf, len);
	pn_sim_run_until(l->n.sim, pn_sim_now(l->n.sim) + 1000);
	return l->p.n - before;
}

static void padded_request_answered(void **state)
{
	struct lab l;
	struct pn_stun_req_opts o = {.fingerprint = true, .pad_to = 64};
	struct pn_supernode_stats st;
	struct pn_stun_msg m;
	uint8_t req[128];
	size_t n;

	lab_up(&l);
	memset(o.tid, 0x42, sizeof(o.tid));
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &n, &o), 0);
	assert_int_equal(ask(&l, req, n), 1);
	assert_true(l.p.len <= n);
	assert_true(pn_addr_eq(&l.p.from, &l.n.net.supernodes[0].addr));
	assert_int_equal(pn_stun_parse_response(&m, l.p.buf, l.p.len, o.tid), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_SUCCESS);
	assert_true(pn_addr_eq(pn_stun_mapped(&m), &l.me));
	pn_supernode_stats(l.n.sn, &st);
	assert_int_equal(st.stun_answered, 1);
	assert_int_equal(st.stun_dropped, 0);
	sc_net_free(&l.n);
}

static void small_requests_dropped(void **state)
{
	struct lab l;
	struct pn_stun_req_opts o = {.fingerprint = false};
	struct pn_supernode_stats st;
	uint8_t req[128];
	size_t n;

	lab_up(&l);
	memset(o.tid, 0x17, sizeof(o.tid));
	/* 20 bytes: the answer (32) would be larger */
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &n, &o), 0);
	assert_int_equal(n, 20);
	assert_int_equal(ask(&l, req, n), 0);
	/* 28 bytes, still smaller than 32 */
	o.pad_to = 28;
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &n, &o), 0);
	assert_int_equal(n, 28);
	assert_int_equal(ask(&l, req, n), 0);
	/* exactly 32: answered with 32 */
	o.pad_to = 32;
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &n, &o), 0);
	assert_int_equal(ask(&l, req, n), 1);
	assert_int_equal(l.p.len, 32);
	pn_supernode_stats(l.n.sn, &st);
	assert_int_equal(st.stun_answered, 1);
	assert_int_equal(st.stun_dropped, 2);
	sc_net_free(&l.n);
}

static void malformed_stun_counted_bad(void **state)
{
	struct lab l;
	struct pn_supernode_stats before, after;
	/* first byte 0x00, wrong cookie */
	uint8_t junk[64] = {0x00, 0x01, 0x00, 0x2c, 0xde, 0xad, 0xbe, 0xef};

	lab_up(&l);
	pn_supernode_stats(l.n.sn, &before);
	assert_int_equal(ask(&l, junk, sizeof(junk)), 0);
	assert_int_equal(ask(&l, junk, 1), 0);
	pn_supernode_stats(l.n.sn, &after);
	assert_int_equal(after.bad_packets - before.bad_packets, 2);
	assert_int_equal(after.stun_answered + after.stun_dropped, 0);
	sc_net_free(&l.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(padded_request_answered),
		cmocka_unit_test(small_requests_dropped),
		cmocka_unit_test(malformed_stun_counted_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
