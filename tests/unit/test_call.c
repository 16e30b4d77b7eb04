#include <stdio.h>
/* Call signaling (src/call/signal.c): several devices' state machines exchanging frames
 * through a little in-memory network with latency and seeded loss, in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "call/signal.h"
#include "wire/wire.h"

enum { MAXE = 6, MAXQ = 4096 };

struct ep {
	struct pn_calls *cs;
	char user[33];
	uint8_t dev[16];
	bool refuse, drop, dead;
	int changes, freed;
	enum pn_call_state last_state;
	struct pn_call *last_call;
};

struct msg {
	uint64_t at;
	int from, to;
	uint8_t b[PN_CALL_FRAME_MAX];
	size_t n;
};

static struct world {
	struct ep ep[MAXE];
	int n;
	struct msg q[MAXQ];
	int nq;
	uint64_t now;
	uint32_t rng;
	unsigned loss_pct;
	uint64_t latency;
	unsigned sent, bad;
} W;

static uint32_t rnd(void)
{
	W.rng = W.rng * 1103515245u + 12345u;
	return W.rng >> 8;
}

static int ep_of_ctx(void *ctx)
{
	return (int)((struct ep *)ctx - W.ep);
}

static void op_send(void *ctx, const uint8_t dev[16], const uint8_t *f, size_t n)
{
	int from = ep_of_ctx(ctx), to = -1;

	for (int i = 0; i < W.n; i++)
		if (memcmp(W.ep[i].dev, dev, 16) == 0)
			to = i;
	assert_true(to >= 0);
	assert_true(n <= PN_CALL_FRAME_MAX);
	W.sent++;
	if (W.ep[from].dead || (W.loss_pct && rnd() % 100 < W.loss_pct))
		return;
	assert_true(W.nq < MAXQ);
	W.q[W.nq].at = W.now + W.latency;
	W.q[W.nq].from = from;
	W.q[W.nq].to = to;
	memcpy(W.q[W.nq].b, f, n);
	W.q[W.nq].n = n;
	W.nq++;
}

static void op_random(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)rnd();
}

static enum pn_call_policy op_policy(void *ctx, const char *from, const char *to)
{
	struct ep *e = ctx;
	(void)from;
	if (strcmp(to, e->user) != 0)
		return PN_CALL_REFUSE;
	return e->drop ? PN_CALL_DROP : e->refuse ? PN_CALL_REFUSE : PN_CALL_ACCEPT;
}

static void op_changed(void *ctx, struct pn_call *call, enum pn_call_state old)
{
	struct ep *e = ctx;
	(void)old;
	e->changes++;
	e->last_state = call->state;
	e->last_call = call;
}

static void op_freed(void *ctx, struct pn_call *call)
{
	struct ep *e = ctx;
	(void)call;
	e->freed++;
}

static int add_ep(const char *user, uint8_t devbyte)
{
	struct ep *e = &W.ep[W.n];
	struct pn_call_ops ops = {
		.ctx = e, .send = op_send, .random = op_random, .offer_policy = op_policy,
		.changed = op_changed, .freed = op_freed,
	};

	memset(e, 0, sizeof(*e));
	snprintf(e->user, sizeof(e->user), "%s", user);
	memset(e->dev, devbyte, 16);
	e->cs = pn_calls_new(&ops);
	assert_non_null(e->cs);
	return W.n++;
}

static int setup(void **state)
{
	(void)state;
	memset(&W, 0, sizeof(W));
	W.rng = 42;
	W.now = 1000;
	W.latency = 10;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < W.n; i++)
		pn_calls_free(W.ep[i].cs);
	return 0;
}

/* Runs the world until virtual time `until`. */
static void run_until(uint64_t until)
{
	for (;;) {
		uint64_t t = until;
		int qi = -1;
		for (int i = 0; i < W.nq; i++)
			if (W.q[i].at <= t && (qi < 0 || W.q[i].at < W.q[qi].at)) {
				t = W.q[i].at;
				qi = i;
			}
		for (int i = 0; i < W.n; i++) {
			uint64_t d = pn_calls_next_deadline(W.ep[i].cs);
			if (d < t) {
				t = d;
				qi = -1;
			}
		}
		if (t > until)
			break;
		W.now = t > W.now ? t : W.now;
		if (qi >= 0) {
			struct msg m = W.q[qi];
			W.q[qi] = W.q[--W.nq];
			if (!W.ep[m.to].dead &&
			    pn_calls_on_frame(W.ep[m.to].cs, W.now, W.ep[m.from].dev, W.ep[m.from].user,
					      m.b, m.n))
				W.bad++;
		} else {
			for (int i = 0; i < W.n; i++)
				if (pn_calls_next_deadline(W.ep[i].cs) <= W.now)
					pn_calls_tick(W.ep[i].cs, W.now);
		}
		if (W.now >= until)
			break;
	}
	W.now = until;
}

static void run_for(uint64_t ms)
{
	run_until(W.now + ms);
}

static struct pn_call *dial(int from, const int *to, int n)
{
	uint8_t devs[PN_CALL_MAX_DEV][16];
	int err;
	struct pn_call *c;

	for (int i = 0; i < n; i++)
		memcpy(devs[i], W.ep[to[i]].dev, 16);
	c = pn_calls_dial(W.ep[from].cs, W.now, W.ep[from].user, W.ep[to[0]].user,
			  (const uint8_t(*)[16])devs, (unsigned)n, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

static struct pn_call *cur(int e)
{
	return pn_calls_current(W.ep[e].cs);
}

static void test_frames_round_trip(void **state)
{
	struct pn_callf f, g;
	uint8_t b[PN_CALL_FRAME_MAX];
	struct pn_wr w;
	struct pn_rd r;
	uint8_t t;

	(void)state;
	memset(&f, 0, sizeof(f));
	memset(f.call_id, 7, 16);
	f.seq = 3;
	f.kind = PN_CALLF_OFFER;
	strcpy(f.from, "alice");
	strcpy(f.to, "bob");
	f.tag = 0x01020304;
	memset(f.secret, 9, 32);
	f.media = PN_CALL_MEDIA_AUDIO;
	pn_wr_init(&w, b, sizeof(b));
	assert_int_equal(pn_callf_encode(&f, &w), 0);
	/* 1 + 16 + 4 + 1 + (1+5) + (1+3) + 4 + 32 + 1; the vector of docs/PROTOCOL.md 3.6 */
	assert_int_equal(w.len, 69);
	{
		static const char vec[] =
			"4207070707070707070707070707070707000000030105616c69636503626f62010203040909"
			"09090909090909090909090909090909090909090909090909090909090901";
		char hex[2 * 69 + 1];
		for (size_t i = 0; i < w.len; i++)
			snprintf(hex + 2 * i, 3, "%02x", b[i]);
		assert_string_equal(hex, vec);
	}
	pn_rd_init(&r, b, w.len);
	pn_rd_u8(&r, &t);
	assert_int_equal(t, PN_F_CALL);
	assert_int_equal(pn_callf_decode(&g, &r), 0);
	assert_memory_equal(&f, &g, sizeof(f));
	/* every truncation is rejected */
	for (size_t n = 1; n < w.len; n++) {
		pn_rd_init(&r, b, n);
		pn_rd_u8(&r, &t);
		assert_int_not_equal(pn_callf_decode(&g, &r), 0);
	}
	/* trailing garbage, unknown kind, bad reason, zero seq */
	b[w.len] = 0;
	pn_rd_init(&r, b, w.len + 1);
	pn_rd_u8(&r, &t);
	assert_int_not_equal(pn_callf_decode(&g, &r), 0);
	f.kind = 99;
	pn_wr_init(&w, b, sizeof(b));
	pn_callf_encode(&f, &w);
	pn_rd_init(&r, b, w.len);
	pn_rd_u8(&r, &t);
	assert_int_not_equal(pn_callf_decode(&g, &r), 0);
	f.kind = PN_CALLF_END;
	f.value = PN_CALL_R_MAX + 1;
	pn_wr_init(&w, b, sizeof(b));
	pn_callf_encode(&f, &w);
	pn_rd_init(&r, b, w.len);
	pn_rd_u8(&r, &t);
	assert_int_not_equal(pn_callf_decode(&g, &r), 0);
	f.value = PN_CALL_R_HANGUP;
	f.seq = 0;
	pn_wr_init(&w, b, sizeof(b));
	pn_callf_encode(&f, &w);
	pn_rd_init(&r, b, w.len);
	pn_rd_u8(&r, &t);
	assert_int_not_equal(pn_callf_decode(&g, &r), 0);
}

static void test_call_answer_hangup(void **state)
{
	int a = add_ep("alice", 1), b = add_ep("bob", 2);
	struct pn_call *ca, *cb;

	(void)state;
	ca = dial(a, &b, 1);
	assert_int_equal(ca->state, PN_CALL_DIALING);
	run_for(50);
	cb = cur(b);
	assert_non_null(cb);
	assert_int_equal(cb->state, PN_CALL_RINGING);
	assert_false(cb->outgoing);
	assert_string_equal(cb->peer, "alice");
	assert_int_equal(ca->state, PN_CALL_RINGING);
	/* both sides hold the same secret; tags cross over after the answer */
	assert_memory_equal(ca->secret, cb->secret, 32);
	assert_int_equal(pn_call_answer(W.ep[b].cs, cb, W.now), 0);
	assert_int_equal(cb->state, PN_CALL_ANSWERING);
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_ACTIVE);
	assert_int_equal(cb->state, PN_CALL_ACTIVE);
	assert_int_equal(ca->remote_tag, cb->local_tag);
	assert_int_equal(cb->remote_tag, ca->local_tag);
	/* hold and resume show on the other side */
	assert_int_equal(pn_call_hold(W.ep[a].cs, ca, W.now, true), 0);
	run_for(50);
	assert_true(cb->remote_hold);
	assert_int_equal(pn_call_hold(W.ep[a].cs, ca, W.now, false), 0);
	run_for(50);
	assert_false(cb->remote_hold);
	pn_call_alive(ca, W.now);
	pn_call_alive(cb, W.now);
	assert_int_equal(pn_call_hangup(W.ep[b].cs, cb, W.now), 0);
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_ENDED);
	assert_int_equal(ca->reason, PN_CALL_R_HANGUP);
	assert_int_equal(cb->reason, PN_CALL_R_HANGUP);
	/* the secret is gone once the call is over */
	{
		uint8_t z[32] = {0};
		assert_memory_equal(ca->secret, z, 32);
	}
	assert_int_equal(W.bad, 0);
	/* ended calls go away after the linger time */
	assert_int_equal(W.ep[a].freed, 0);
	run_for(PN_CALL_LINGER_MS + 100);
	assert_null(pn_calls_first(W.ep[a].cs));
	assert_null(pn_calls_first(W.ep[b].cs));
	/* the owner hears of each call's end of life, to free what it hung on it */
	assert_int_equal(W.ep[a].freed, 1);
	assert_int_equal(W.ep[b].freed, 1);
}

static void test_rings_every_device_first_answer_wins(void **state)
{
	int a = add_ep("alice", 1), b1 = add_ep("bob", 2), b2 = add_ep("bob", 3),
	    b3 = add_ep("bob", 4);
	int to[3] = {b1, b2, b3};
	struct pn_call *ca;

	(void)state;
	ca = dial(a, to, 3);
	run_for(50);
	assert_int_equal(cur(b1)->state, PN_CALL_RINGING);
	assert_int_equal(cur(b2)->state, PN_CALL_RINGING);
	assert_int_equal(cur(b3)->state, PN_CALL_RINGING);
	pn_call_answer(W.ep[b2].cs, cur(b2), W.now);
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_ACTIVE);
	assert_int_equal(ca->peer_dev, 1);
	assert_int_equal(cur(b2)->state, PN_CALL_ACTIVE);
	assert_null(cur(b1));
	assert_null(cur(b3));
	assert_int_equal(pn_calls_first(W.ep[b1].cs)->reason, PN_CALL_R_ANSWERED_ELSEWHERE);
	assert_int_equal(pn_calls_first(W.ep[b3].cs)->reason, PN_CALL_R_ANSWERED_ELSEWHERE);
}

static void test_two_answers_same_instant(void **state)
{
	int a = add_ep("alice", 1), b1 = add_ep("bob", 2), b2 = add_ep("bob", 3);
	int to[2] = {b1, b2};
	struct pn_call *ca;
	int active = 0, elsewhere = 0;

	(void)state;
	ca = dial(a, to, 2);
	run_for(50);
	/* both answer before either answer reached the caller */
	pn_call_answer(W.ep[b1].cs, cur(b1), W.now);
	pn_call_answer(W.ep[b2].cs, cur(b2), W.now);
	run_for(200);
	assert_int_equal(ca->state, PN_CALL_ACTIVE);
	for (int e = b1; e <= b2; e++) {
		struct pn_call *c = pn_calls_first(W.ep[e].cs);
		if (c->state == PN_CALL_ACTIVE)
			active++;
		else if (c->state == PN_CALL_ENDED && c->reason == PN_CALL_R_ANSWERED_ELSEWHERE)
			elsewhere++;
	}
	assert_int_equal(active, 1);
	assert_int_equal(elsewhere, 1);
}

static void test_glare(void **state)
{
	int a = add_ep("alice", 1), b = add_ep("bob", 2);
	struct pn_call *ca, *cb;

	(void)state;
	ca = dial(a, &b, 1);
	cb = dial(b, &a, 1);
	(void)ca;
	(void)cb;
	run_for(500);
	/* exactly one call survives, connected on both sides, with the same id */
	assert_non_null(cur(a));
	assert_non_null(cur(b));
	assert_int_equal(cur(a)->state, PN_CALL_ACTIVE);
	assert_int_equal(cur(b)->state, PN_CALL_ACTIVE);
	assert_memory_equal(cur(a)->id, cur(b)->id, 16);
	assert_true(cur(a)->outgoing != cur(b)->outgoing);
}

static void test_cancel_during_ringing(void **state)
{
	int a = add_ep("alice", 1), b1 = add_ep("bob", 2), b2 = add_ep("bob", 3);
	int to[2] = {b1, b2};
	struct pn_call *ca;

	(void)state;
	ca = dial(a, to, 2);
	run_for(50);
	assert_int_equal(pn_call_hangup(W.ep[a].cs, ca, W.now), 0);
	assert_int_equal(ca->reason, PN_CALL_R_CANCELLED);
	run_for(50);
	assert_null(cur(b1));
	assert_null(cur(b2));
	assert_int_equal(pn_calls_first(W.ep[b1].cs)->reason, PN_CALL_R_CANCELLED);
	assert_int_equal(pn_calls_first(W.ep[b2].cs)->reason, PN_CALL_R_CANCELLED);
}

static void test_decline_busy_refused_no_answer(void **state)
{
	int a = add_ep("alice", 1), b1 = add_ep("bob", 2), b2 = add_ep("bob", 3),
	    c = add_ep("carol", 4), d = add_ep("dave", 5);
	int to[2] = {b1, b2};
	struct pn_call *ca;

	(void)state;
	/* one device declining declines for all */
	ca = dial(a, to, 2);
	run_for(50);
	pn_call_hangup(W.ep[b1].cs, cur(b1), W.now);
	run_for(50);
	assert_int_equal(ca->reason, PN_CALL_R_DECLINED);
	assert_null(cur(b2));
	assert_int_equal(pn_calls_first(W.ep[b2].cs)->reason, PN_CALL_R_DECLINED_ELSEWHERE);
	/* busy: carol is in a call with dave */
	dial(d, &c, 1);
	run_for(50);
	pn_call_answer(W.ep[c].cs, cur(c), W.now);
	run_for(50);
	assert_int_equal(cur(c)->state, PN_CALL_ACTIVE);
	ca = dial(a, &c, 1);
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_ENDED);
	assert_int_equal(ca->reason, PN_CALL_R_BUSY);
	assert_int_equal(cur(c)->state, PN_CALL_ACTIVE);
	/* refused by policy (not a contact) */
	pn_call_hangup(W.ep[c].cs, cur(c), W.now);
	run_for(50);
	W.ep[c].refuse = true;
	ca = dial(a, &c, 1);
	run_for(50);
	assert_int_equal(ca->reason, PN_CALL_R_REFUSED);
	assert_null(cur(c));
	/* no answer */
	W.ep[c].refuse = false;
	ca = dial(a, &c, 1);
	run_for(PN_CALL_RING_MS + 100);
	assert_int_equal(ca->reason, PN_CALL_R_NO_ANSWER);
	assert_int_equal(pn_calls_first(W.ep[c].cs)->reason, PN_CALL_R_NO_ANSWER);
	/* rate limited: dropped silently, the caller gives up as unreachable */
	run_for(PN_CALL_LINGER_MS + 1000);
	W.ep[c].drop = true;
	ca = dial(a, &c, 1);
	run_for(10000);
	assert_int_equal(ca->reason, PN_CALL_R_UNREACHABLE);
	assert_null(pn_calls_first(W.ep[c].cs));
}

static void test_peer_vanishes_mid_call(void **state)
{
	int a = add_ep("alice", 1), b = add_ep("bob", 2);
	struct pn_call *ca, *cb;
	uint64_t t0;

	(void)state;
	ca = dial(a, &b, 1);
	run_for(50);
	cb = cur(b);
	pn_call_answer(W.ep[b].cs, cb, W.now);
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_ACTIVE);
	/* media keeps the call alive for a while (the owner reports it) */
	for (int i = 0; i < 10; i++) {
		pn_call_alive(ca, W.now);
		pn_call_alive(cb, W.now);
		run_for(1000);
	}
	assert_int_equal(ca->state, PN_CALL_ACTIVE);
	/* bob's device disappears: no media, no frames */
	W.ep[b].dead = true;
	t0 = W.now;
	while (ca->state == PN_CALL_ACTIVE && W.now < t0 + 20000) {
		pn_call_alive(cb, W.now);
		run_for(100);
	}
	assert_int_equal(ca->state, PN_CALL_ENDED);
	assert_int_equal(ca->reason, PN_CALL_R_CONNECTION_LOST);
	assert_true(W.now - t0 <= PN_CALL_MEDIA_DEAD_MS + 200);
}

static void test_lossy_signaling(void **state)
{
	int ok = 0;

	(void)state;
	/* 30 % loss both ways: retransmissions carry the calls through */
	for (int k = 0; k < 20; k++) {
		int a, b;
		struct pn_call *ca;
		teardown(NULL);
		setup(NULL);
		W.rng = 1000 + (uint32_t)k;
		W.loss_pct = 30;
		a = add_ep("alice", 1);
		b = add_ep("bob", 2);
		ca = dial(a, &b, 1);
		run_for(3000);
		if (cur(b))
			pn_call_answer(W.ep[b].cs, cur(b), W.now);
		run_for(3000);
		if (ca->state == PN_CALL_ACTIVE && cur(b) && cur(b)->state == PN_CALL_ACTIVE)
			ok++;
	}
	assert_true(ok >= 19);
}

static void test_forged_and_malformed(void **state)
{
	int a = add_ep("alice", 1), b = add_ep("bob", 2), m = add_ep("mallory", 3);
	struct pn_call *ca;
	uint8_t f[PN_CALL_FRAME_MAX];
	struct pn_wr w;
	struct pn_callf cf;

	(void)state;
	ca = dial(a, &b, 1);
	run_for(50);
	/* mallory's device claims to be alice in an offer: rejected */
	memset(&cf, 0, sizeof(cf));
	memset(cf.call_id, 0x55, 16);
	cf.seq = 1;
	cf.kind = PN_CALLF_OFFER;
	strcpy(cf.from, "alice");
	strcpy(cf.to, "bob");
	cf.tag = 5;
	cf.media = PN_CALL_MEDIA_AUDIO;
	pn_wr_init(&w, f, sizeof(f));
	pn_callf_encode(&cf, &w);
	assert_int_not_equal(pn_calls_on_frame(W.ep[b].cs, W.now, W.ep[m].dev, "mallory", f, w.len), 0);
	/* mallory tries to hang up alice's call with bob: not a device of that call */
	memcpy(cf.call_id, ca->id, 16);
	cf.kind = PN_CALLF_END;
	cf.value = PN_CALL_R_HANGUP;
	cf.seq = 50;
	pn_wr_init(&w, f, sizeof(f));
	pn_callf_encode(&cf, &w);
	assert_int_not_equal(pn_calls_on_frame(W.ep[b].cs, W.now, W.ep[m].dev, "mallory", f, w.len), 0);
	assert_int_equal(cur(b)->state, PN_CALL_RINGING);
	/* random bytes never crash and never count as valid */
	for (int i = 0; i < 2000; i++) {
		size_t n = rnd() % sizeof(f);
		for (size_t k = 0; k < n; k++)
			f[k] = (uint8_t)rnd();
		if (n)
			f[0] = (uint8_t)(PN_F_CALL + (rnd() & 1));
		pn_calls_on_frame(W.ep[b].cs, W.now, W.ep[m].dev, "mallory", f, n);
	}
	assert_int_equal(cur(b)->state, PN_CALL_RINGING);
	/* a duplicated (replayed) END from the right device is handled once */
	run_for(50);
	assert_int_equal(ca->state, PN_CALL_RINGING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_answer_hangup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rings_every_device_first_answer_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_answers_same_instant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_glare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_during_ringing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decline_busy_refused_no_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_vanishes_mid_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lossy_signaling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_and_malformed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
