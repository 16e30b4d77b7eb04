/* Unit tests for src/sim: delivery timing, jitter and reordering, loss, hosts going down,
 * node deadlines, run_while_not, the tap and determinism, driven by small toy nodes. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/addr.h"
#include "sim/sim.h"

enum { TOY_MAX_RECV = 12000, TOY_MAX_TIMERS = 16, PAYLOAD_LEN = 12 };

/* One toy node covers every case: it records what it receives, optionally echoes it back,
 * fires a fixed list of timers, and optionally sends one numbered packet per period. */
struct toy {
	const struct pn_env *env;
	bool echo;
	/* received */
	size_t nrecv;
	uint64_t recv_t[TOY_MAX_RECV];
	uint32_t recv_seq[TOY_MAX_RECV];
	uint64_t recv_sent_t[TOY_MAX_RECV];
	size_t recv_len[TOY_MAX_RECV];
	struct pn_addr last_from;
	uint64_t order_hash;
	/* timers: absolute deadlines in order */
	uint64_t timers[TOY_MAX_TIMERS];
	size_t ntimers, next_timer;
	uint64_t tick_t[TOY_MAX_TIMERS];
	size_t nticks;
	/* periodic sender */
	struct pn_addr dst;
	uint64_t period, next_send;
	uint32_t to_send, sent;
	/* misbehaving node: deadline always 0 */
	bool stuck;
};

static void put_payload(uint8_t *p, uint32_t seq, uint64_t t)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(seq >> (8 * i));
	for (int i = 0; i < 8; i++)
		p[4 + i] = (uint8_t)(t >> (8 * i));
}

static void get_payload(const uint8_t *p, uint32_t *seq, uint64_t *t)
{
	*seq = 0;
	*t = 0;
	for (int i = 0; i < 4; i++)
		*seq |= (uint32_t)p[i] << (8 * i);
	for (int i = 0; i < 8; i++)
		*t |= (uint64_t)p[4 + i] << (8 * i);
}

static void toy_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct toy *t = node;
	uint32_t seq = 0;
	uint64_t st = 0;

	if (len >= PAYLOAD_LEN)
		get_payload(buf, &seq, &st);
	if (t->nrecv < TOY_MAX_RECV) {
		t->recv_t[t->nrecv] = t->env->now_ms(t->env->ctx);
		t->recv_seq[t->nrecv] = seq;
		t->recv_sent_t[t->nrecv] = st;
		t->recv_len[t->nrecv] = len;
	}
	t->nrecv++;
	t->last_from = *from;
	t->order_hash = (t->order_hash ^ seq) * 0x100000001b3ull;
	if (t->echo)
		assert_int_equal(t->env->send(t->env->ctx, from, buf, len), 0);
}

static uint64_t toy_next_deadline(void *node)
{
	struct toy *t = node;
	uint64_t d = UINT64_MAX;

	if (t->stuck)
		return 0;
	if (t->next_timer < t->ntimers)
		d = t->timers[t->next_timer];
	if (t->sent < t->to_send && t->next_send < d)
		d = t->next_send;
	return d;
}

static void toy_tick(void *node)
{
	struct toy *t = node;
	uint64_t now = t->env->now_ms(t->env->ctx);
	uint8_t p[PAYLOAD_LEN];

	if (t->stuck)
		return;
	if (t->next_timer < t->ntimers && t->timers[t->next_timer] <= now) {
		if (t->nticks < TOY_MAX_TIMERS)
			t->tick_t[t->nticks++] = now;
		t->next_timer++;
	}
	if (t->sent < t->to_send && t->next_send <= now) {
		put_payload(p, t->sent, now);
		assert_int_equal(t->env->send(t->env->ctx, &t->dst, p, sizeof(p)), 0);
		t->sent++;
		t->next_send += t->period;
	}
}

static const struct pn_node_ops toy_ops = {
	.recv = toy_recv,
	.next_deadline = toy_next_deadline,
	.tick = toy_tick,
};

static struct pn_addr mkaddr(const char *s)
{
	struct pn_addr a;

	assert_int_equal(pn_addr_parse(&a, s), 0);
	return a;
}

static struct pn_sim_host *add_toy(struct pn_sim *s, const char *addr, struct toy **out)
{
	struct pn_addr a = mkaddr(addr);
	struct pn_sim_host *h = NULL;
	struct toy *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_int_equal(pn_sim_host_add(s, &a, &h), 0);
	t->env = pn_sim_host_env(h);
	pn_sim_host_set_node(h, t, &toy_ops);
	*out = t;
	return h;
}

static int send_from(struct toy *t, const char *to, uint32_t seq)
{
	struct pn_addr a = mkaddr(to);
	uint8_t p[PAYLOAD_LEN];

	put_payload(p, seq, t->env->now_ms(t->env->ctx));
	return t->env->send(t->env->ctx, &a, p, sizeof(p));
}

static void set_link(struct pn_sim *s, uint32_t delay, uint32_t jitter, double loss)
{
	struct pn_sim_link l = {.delay_ms = delay, .jitter_ms = jitter, .loss = loss};

	pn_sim_set_default_link(s, &l);
}

#define A "198.18.0.1:7700"
#define B "198.18.0.2:7700"
#define C "[2001:db8::3]:7700"

static void delivery_delay_exact(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	struct pn_sim_stats st;
	struct pn_addr aa = mkaddr(A);

	assert_int_equal(pn_sim_new(&s, 1, 1700000000), 0);
	set_link(s, 37, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	b->echo = true;
	assert_int_equal(send_from(a, B, 7), 0);
	assert_int_equal(pn_sim_run_until(s, 36), 0);
	assert_int_equal(b->nrecv, 0);
	assert_int_equal(pn_sim_run_until(s, 1000), 2);
	assert_int_equal(b->nrecv, 1);
	assert_int_equal(b->recv_t[0], 37);
	assert_int_equal(b->recv_seq[0], 7);
	assert_true(pn_addr_eq(&b->last_from, &aa));
	assert_int_equal(a->nrecv, 1);
	assert_int_equal(a->recv_t[0], 74);
	assert_int_equal(pn_sim_now(s), 1000);
	pn_sim_get_stats(s, &st);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.delivered, 2);
	assert_int_equal(st.dropped_loss, 0);
	assert_int_equal(st.dropped_nohost, 0);
	assert_int_equal(st.events, 2);
	pn_sim_free(s);
	free(a);
	free(b);
}

static void per_pair_link_is_directional(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	struct pn_addr aa = mkaddr(A), bb = mkaddr(B);
	struct pn_sim_link fast = {.delay_ms = 5};

	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	set_link(s, 50, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	b->echo = true;
	assert_int_equal(pn_sim_set_link(s, &aa, &bb, &fast), 0);
	assert_int_equal(send_from(a, B, 1), 0);
	pn_sim_run_until(s, 1000);
	assert_int_equal(b->recv_t[0], 5);
	assert_int_equal(a->recv_t[0], 55); /* B->A still uses the default */
	pn_sim_free(s);
	free(a);
	free(b);
}

static void equal_time_events_keep_fifo_order(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;

	assert_int_equal(pn_sim_new(&s, 3, 0), 0);
	set_link(s, 10, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	for (uint32_t i = 0; i < 500; i++)
		assert_int_equal(send_from(a, B, i), 0);
	pn_sim_run_until(s, 100);
	assert_int_equal(b->nrecv, 500);
	for (uint32_t i = 0; i < 500; i++) {
		assert_int_equal(b->recv_seq[i], i);
		assert_int_equal(b->recv_t[i], 10);
	}
	pn_sim_free(s);
	free(a);
	free(b);
}

static void jitter_bounds_and_reorder(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	size_t inversions = 0;
	uint64_t min_d = UINT64_MAX, max_d = 0;

	assert_int_equal(pn_sim_new(&s, 42, 0), 0);
	set_link(s, 10, 20, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	a->dst = mkaddr(B);
	a->period = 1;
	a->to_send = 2000;
	pn_sim_run_until(s, 5000);
	assert_int_equal(a->sent, 2000);
	assert_int_equal(b->nrecv, 2000);
	for (size_t i = 0; i < b->nrecv; i++) {
		uint64_t d = b->recv_t[i] - b->recv_sent_t[i];

		assert_in_range(d, 10, 30);
		min_d = d < min_d ? d : min_d;
		max_d = d > max_d ? d : max_d;
		if (i) {
			/* Time never goes backwards; equal arrival times keep send order. */
			assert_true(b->recv_t[i] >= b->recv_t[i - 1]);
			if (b->recv_seq[i] < b->recv_seq[i - 1])
				inversions++;
			if (b->recv_t[i] == b->recv_t[i - 1])
				assert_true(b->recv_seq[i] > b->recv_seq[i - 1]);
		}
	}
	/* Both ends of [delay, delay + jitter] are reachable. */
	assert_int_equal(min_d, 10);
	assert_int_equal(max_d, 30);
	assert_true(inversions > 100);
	pn_sim_free(s);
	free(a);
	free(b);
}

struct loss_run {
	struct pn_sim_stats st;
	uint64_t hash;
	size_t nrecv;
};

static void run_lossy(uint64_t seed, struct loss_run *r)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;

	assert_int_equal(pn_sim_new(&s, seed, 0), 0);
	set_link(s, 20, 15, 0.1);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	a->dst = mkaddr(B);
	a->period = 1;
	a->to_send = 10000;
	pn_sim_run_until(s, 20000);
	pn_sim_get_stats(s, &r->st);
	r->hash = b->order_hash;
	r->nrecv = b->nrecv;
	pn_sim_free(s);
	free(a);
	free(b);
}

static void loss_rate_and_reproducible(void **state)
{
	struct loss_run r1, r2, r3;

	run_lossy(7, &r1);
	assert_int_equal(r1.st.sent, 10000);
	assert_int_equal(r1.st.delivered + r1.st.dropped_loss, 10000);
	assert_int_equal(r1.nrecv, r1.st.delivered);
	/* Binomial(10000, 0.1): sd = 30, so +-150 is 5 sd. */
	assert_in_range(r1.st.dropped_loss, 850, 1150);

	run_lossy(7, &r2);
	assert_memory_equal(&r1.st, &r2.st, sizeof(r1.st));
	assert_int_equal(r1.hash, r2.hash);

	run_lossy(8, &r3);
	assert_int_not_equal(r1.hash, r3.hash);
}

static void host_down_drops(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	struct pn_sim_host *hb;
	struct pn_sim_stats st;

	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	set_link(s, 50, 0, 0.0);
	add_toy(s, A, &a);
	hb = add_toy(s, B, &b);
	b->timers[0] = 10;
	b->ntimers = 1;

	/* Down before sending: dropped, and a down host does not tick. */
	pn_sim_host_set_up(hb, false);
	assert_int_equal(send_from(a, B, 1), 0);
	pn_sim_run_until(s, 100);
	assert_int_equal(b->nrecv, 0);
	assert_int_equal(b->nticks, 0);
	pn_sim_get_stats(s, &st);
	assert_int_equal(st.dropped_nohost, 1);
	assert_int_equal(st.delivered, 0);

	/* Back up: receives, and the overdue timer fires at once (clock never goes back). */
	pn_sim_host_set_up(hb, true);
	assert_int_equal(send_from(a, B, 2), 0);
	pn_sim_run_until(s, 200);
	assert_int_equal(b->nrecv, 1);
	assert_int_equal(b->recv_t[0], 150);
	assert_int_equal(b->nticks, 1);
	assert_int_equal(b->tick_t[0], 100);

	/* Goes down while the datagram is in flight. */
	assert_int_equal(send_from(a, B, 3), 0);
	pn_sim_run_until(s, 210);
	pn_sim_host_set_up(hb, false);
	pn_sim_run_until(s, 300);
	assert_int_equal(b->nrecv, 1);

	/* No such host. */
	assert_int_equal(send_from(a, "198.18.0.99:1", 4), 0);
	pn_sim_run_until(s, 400);
	pn_sim_get_stats(s, &st);
	assert_int_equal(st.sent, 4);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(st.dropped_nohost, 3);
	pn_sim_free(s);
	free(a);
	free(b);
}

static void deadlines_tick_exactly(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *t, *u;
	const uint64_t want[] = {5, 17, 17, 250, 999, 1000};

	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	add_toy(s, A, &t);
	add_toy(s, B, &u);
	memcpy(t->timers, want, sizeof(want));
	t->ntimers = 6;
	u->timers[0] = 3;
	u->timers[1] = 1001;
	u->ntimers = 2;
	/* run_until is inclusive of its end time. */
	assert_int_equal(pn_sim_run_until(s, 1000), 7);
	assert_int_equal(pn_sim_now(s), 1000);
	assert_int_equal(t->nticks, 6);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(t->tick_t[i], want[i]);
	assert_int_equal(u->nticks, 1);
	assert_int_equal(u->tick_t[0], 3);
	pn_sim_run_until(s, 1001);
	assert_int_equal(u->nticks, 2);
	assert_int_equal(u->tick_t[1], 1001);

	/* A deadline armed from outside, already in the past, ticks at the current time. */
	u->timers[2] = 40;
	u->ntimers = 3;
	assert_int_equal(pn_sim_run_until(s, 1500), 1);
	assert_int_equal(u->tick_t[2], 1001);

	/* Running to an earlier time does nothing. */
	assert_int_equal(pn_sim_run_until(s, 10), 0);
	assert_int_equal(pn_sim_now(s), 1500);
	pn_sim_free(s);
	free(t);
	free(u);
}

static void stuck_node_aborts(void **state)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct pn_sim *s = NULL;
		struct toy *t;

		/* Keep the expected diagnostic out of the test log. */
		if (!freopen("/dev/null", "w", stderr))
			_exit(2);
		if (pn_sim_new(&s, 1, 0))
			_exit(2);
		add_toy(s, A, &t);
		t->stuck = true;
		pn_sim_run_until(s, 10);
		_exit(0); /* not reached */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

static bool got_three(void *arg)
{
	struct toy *t = arg;

	return t->nrecv >= 3;
}

static bool never(void *arg)
{
	return false;
}

static void run_while_not_stops(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;

	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	set_link(s, 10, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	a->echo = true;
	b->echo = true;
	assert_int_equal(send_from(a, B, 1), 0);
	/* Ping-pong: B receives at 10, 30, 50, ... */
	assert_true(pn_sim_run_while_not(s, got_three, b, 10000));
	assert_int_equal(b->nrecv, 3);
	assert_int_equal(pn_sim_now(s), 50);
	/* Already true: returns at once without running. */
	assert_true(pn_sim_run_while_not(s, got_three, b, 10000));
	assert_int_equal(pn_sim_now(s), 50);
	/* Never true: stops at the limit with the clock there. */
	assert_false(pn_sim_run_while_not(s, never, NULL, 1000));
	assert_int_equal(pn_sim_now(s), 1000);
	assert_int_equal(b->nrecv, 50);
	assert_int_equal(a->nrecv, 50); /* A receives at 20, 40, ..., 1000 inclusive */
	pn_sim_free(s);
	free(a);
	free(b);
}

struct tap_log {
	size_t n;
	struct pn_addr from, to;
	uint8_t buf[64];
	size_t len;
};

static void tap_cb(void *arg, const struct pn_addr *from, const struct pn_addr *to,
		   const uint8_t *buf, size_t len)
{
	struct tap_log *l = arg;

	l->n++;
	l->from = *from;
	l->to = *to;
	l->len = len;
	memcpy(l->buf, buf, len < sizeof(l->buf) ? len : sizeof(l->buf));
}

static void tap_sees_bytes(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	struct tap_log log = {0};
	struct pn_addr aa = mkaddr(A), bb = mkaddr(B);
	const uint8_t msg[] = "hello, wire";

	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	set_link(s, 5, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	pn_sim_set_tap(s, tap_cb, &log);
	assert_int_equal(a->env->send(a->env->ctx, &bb, msg, sizeof(msg)), 0);
	/* Tapped at delivery, not at send. */
	assert_int_equal(log.n, 0);
	pn_sim_run_until(s, 10);
	assert_int_equal(log.n, 1);
	assert_true(pn_addr_eq(&log.from, &aa));
	assert_true(pn_addr_eq(&log.to, &bb));
	assert_int_equal(log.len, sizeof(msg));
	assert_memory_equal(log.buf, msg, sizeof(msg));
	pn_sim_free(s);
	free(a);
	free(b);
}

static void datagram_size_limit_and_self_send(void **state)
{
	struct pn_sim *s = NULL;
	struct toy *a, *c;
	struct pn_addr aa = mkaddr(A);
	uint8_t *big = calloc(1, 65536);
	struct pn_sim_stats st;

	assert_non_null(big);
	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	set_link(s, 1, 0, 0.0);
	add_toy(s, A, &a);
	add_toy(s, C, &c);
	assert_int_equal(a->env->send(a->env->ctx, &aa, big, 65536), -EMSGSIZE);
	assert_int_equal(a->env->send(a->env->ctx, &aa, big, 65535), 0);
	assert_int_equal(send_from(a, C, 9), 0); /* IPv6 host */
	pn_sim_run_until(s, 5);
	assert_int_equal(a->nrecv, 1);
	assert_int_equal(a->recv_len[0], 65535);
	assert_true(pn_addr_eq(&a->last_from, &aa));
	assert_int_equal(c->nrecv, 1);
	pn_sim_get_stats(s, &st);
	assert_int_equal(st.sent, 2); /* the rejected send is not counted */
	pn_sim_free(s);
	free(big);
	free(a);
	free(c);
}

static void host_add_rules(void **state)
{
	struct pn_sim *s = NULL;
	struct pn_sim_host *h = NULL, *h2 = NULL;
	struct pn_addr a = mkaddr(A), unset;
	char name[PN_ADDR_STRLEN];

	memset(&unset, 0, sizeof(unset));
	assert_int_equal(pn_sim_new(&s, 1, 0), 0);
	assert_int_equal(pn_sim_host_add(s, &a, &h), 0);
	assert_int_equal(pn_sim_host_add(s, &a, &h2), -EEXIST);
	assert_null(h2);
	assert_int_equal(pn_sim_host_add(s, &unset, &h2), -EINVAL);
	/* Many hosts (the address table grows) are all found again. */
	for (int i = 0; i < 3000; i++) {
		struct pn_addr x;

		snprintf(name, sizeof(name), "10.%d.%d.1:%d", i / 256, i % 256, 1000 + i);
		x = mkaddr(name);
		assert_int_equal(pn_sim_host_add(s, &x, NULL), 0);
	}
	for (int i = 0; i < 3000; i += 7) {
		struct pn_addr x;

		snprintf(name, sizeof(name), "10.%d.%d.1:%d", i / 256, i % 256, 1000 + i);
		x = mkaddr(name);
		assert_int_equal(pn_sim_host_add(s, &x, NULL), -EEXIST);
	}
	pn_sim_free(s);
	pn_sim_free(NULL);
}

static void env_clock_and_wall(void **state)
{
	struct pn_sim *s = NULL;
	struct pn_sim_host *h = NULL;
	struct pn_addr a = mkaddr(A);
	const struct pn_env *env;

	assert_int_equal(pn_sim_new(&s, 1, 1700000000), 0);
	assert_int_equal(pn_sim_host_add(s, &a, &h), 0);
	env = pn_sim_host_env(h);
	assert_int_equal(env->now_ms(env->ctx), 0);
	assert_int_equal(env->wall_s(env->ctx), 1700000000);
	pn_sim_run_until(s, 2999);
	assert_int_equal(env->now_ms(env->ctx), 2999);
	assert_int_equal(env->wall_s(env->ctx), 1700000002);
	pn_sim_run_until(s, 3000);
	assert_int_equal(env->wall_s(env->ctx), 1700000003);
	pn_sim_free(s);
}

static void draw(uint64_t seed, uint8_t out_a[100], uint8_t out_b[100])
{
	struct pn_sim *s = NULL;
	struct pn_sim_host *ha = NULL, *hb = NULL;
	struct pn_addr a = mkaddr(A), b = mkaddr(B);
	const struct pn_env *ea, *eb;

	assert_int_equal(pn_sim_new(&s, seed, 0), 0);
	assert_int_equal(pn_sim_host_add(s, &a, &ha), 0);
	assert_int_equal(pn_sim_host_add(s, &b, &hb), 0);
	ea = pn_sim_host_env(ha);
	eb = pn_sim_host_env(hb);
	/* Odd sizes exercise partial words. */
	ea->random(ea->ctx, out_a, 3);
	ea->random(ea->ctx, out_a + 3, 97);
	eb->random(eb->ctx, out_b, 100);
	pn_sim_free(s);
}

static void env_random_deterministic(void **state)
{
	uint8_t a1[100], b1[100], a2[100], b2[100], a3[100], b3[100];
	static const uint8_t zero[100];

	draw(1234, a1, b1);
	draw(1234, a2, b2);
	draw(1235, a3, b3);
	assert_memory_equal(a1, a2, sizeof(a1));
	assert_memory_equal(b1, b2, sizeof(b1));
	assert_memory_not_equal(a1, a3, sizeof(a1));
	assert_memory_not_equal(b1, b3, sizeof(b1));
	/* Hosts get distinct streams. */
	assert_memory_not_equal(a1, b1, sizeof(a1));
	assert_memory_not_equal(a1, zero, sizeof(a1));
}

static void env_random_does_not_shift_loss(void **state)
{
	struct loss_run r1;
	struct pn_sim *s = NULL;
	struct toy *a, *b;
	uint8_t junk[1000];

	run_lossy(7, &r1);
	/* Same run, but the sender draws randomness first: the network stream is separate. */
	assert_int_equal(pn_sim_new(&s, 7, 0), 0);
	set_link(s, 20, 15, 0.1);
	add_toy(s, A, &a);
	add_toy(s, B, &b);
	a->env->random(a->env->ctx, junk, sizeof(junk));
	a->dst = mkaddr(B);
	a->period = 1;
	a->to_send = 10000;
	pn_sim_run_until(s, 20000);
	assert_int_equal(b->order_hash, r1.hash);
	assert_int_equal(b->nrecv, r1.nrecv);
	pn_sim_free(s);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(delivery_delay_exact),
		cmocka_unit_test(per_pair_link_is_directional),
		cmocka_unit_test(equal_time_events_keep_fifo_order),
		cmocka_unit_test(jitter_bounds_and_reorder),
		cmocka_unit_test(loss_rate_and_reproducible),
		cmocka_unit_test(host_down_drops),
		cmocka_unit_test(deadlines_tick_exactly),
		cmocka_unit_test(stuck_node_aborts),
		cmocka_unit_test(run_while_not_stops),
		cmocka_unit_test(tap_sees_bytes),
		cmocka_unit_test(datagram_size_limit_and_self_send),
		cmocka_unit_test(host_add_rules),
		cmocka_unit_test(env_clock_and_wall),
		cmocka_unit_test(env_random_deterministic),
		cmocka_unit_test(env_random_does_not_shift_loss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
