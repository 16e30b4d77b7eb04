/* Unit tests for src/runtime: UDP to itself through the env, timers, the API socket
 * (mode 0600, stale socket replaced, live socket refused), end-to-end API round trip. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "base/addr.h"
#include "parley/api.h"
#include "parley/client.h"
#include "parley/runtime.h"

struct test_node {
	struct pn_rt *rt;
	const struct pn_env *env;
	struct pn_addr from;
	uint8_t got[64];
	size_t got_len;
	int n_recv;
	uint64_t deadline;
	int n_tick;
};

static void node_recv(void *n, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct test_node *t = n;

	t->from = *from;
	t->got_len = len < sizeof(t->got) ? len : sizeof(t->got);
	memcpy(t->got, buf, t->got_len);
	t->n_recv++;
	pn_rt_stop(t->rt);
}

static uint64_t node_deadline(void *n)
{
	return ((struct test_node *)n)->deadline;
}

static void node_tick(void *n)
{
	struct test_node *t = n;

	t->n_tick++;
	t->deadline = UINT64_MAX;
	pn_rt_stop(t->rt);
}

static const struct pn_node_ops test_ops = {node_recv, node_deadline, node_tick};

static void udp_send_to_self(void **state)
{
	struct test_node t = {.deadline = UINT64_MAX};
	struct pn_addr a, bound;
	const uint8_t msg[] = "hello parley";

	assert_int_equal(pn_rt_new(&t.rt), 0);
	t.env = pn_rt_env(t.rt);
	pn_rt_set_node(t.rt, &t, &test_ops);
	assert_int_equal(pn_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(pn_rt_udp_bind(t.rt, &a, &bound), 0);
	assert_int_equal(bound.family, PN_AF_INET);
	assert_int_not_equal(bound.port, 0);
	assert_int_equal(pn_rt_udp_bind(t.rt, &a, NULL), -EALREADY);
	assert_int_equal(t.env->send(t.env->ctx, &bound, msg, sizeof(msg)), 0);
	/* A safety net: if the datagram never came the tick would stop the loop. */
	t.deadline = t.env->now_ms(t.env->ctx) + 5000;
	pn_rt_set_node(t.rt, &t, &test_ops);
	assert_int_equal(pn_rt_run(t.rt), 0);
	assert_int_equal(t.n_recv, 1);
	assert_int_equal(t.n_tick, 0);
	assert_int_equal(t.got_len, sizeof(msg));
	assert_memory_equal(t.got, msg, sizeof(msg));
	assert_true(pn_addr_eq(&t.from, &bound));
	pn_rt_free(t.rt);
}

static void udp_dual_stack_maps_v4(void **state)
{
	struct test_node t = {.deadline = UINT64_MAX};
	struct pn_addr a, bound, to;
	const uint8_t msg[] = "v4 over v6";

	assert_int_equal(pn_rt_new(&t.rt), 0);
	t.env = pn_rt_env(t.rt);
	assert_int_equal(pn_addr_parse(&a, "[::]:0"), 0);
	if (pn_rt_udp_bind(t.rt, &a, &bound) < 0) {
		pn_rt_free(t.rt);
		skip(); /* no IPv6 in this environment */
	}
	assert_int_equal(bound.family, PN_AF_INET6);
	assert_int_equal(pn_addr_parse(&to, "127.0.0.1:0"), 0);
	to.port = bound.port;
	t.deadline = t.env->now_ms(t.env->ctx) + 5000;
	pn_rt_set_node(t.rt, &t, &test_ops);
	assert_int_equal(t.env->send(t.env->ctx, &to, msg, sizeof(msg)), 0);
	assert_int_equal(pn_rt_run(t.rt), 0);
	assert_int_equal(t.n_recv, 1);
	/* The sender shows up as plain IPv4, not ::ffff:127.0.0.1. */
	assert_int_equal(t.from.family, PN_AF_INET);
	assert_true(pn_addr_same_host(&t.from, &to));
	pn_rt_free(t.rt);
}

/* A node that answers every datagram to its sender. */
static void echo_recv(void *n, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct test_node *t = n;

	t->env->send(t->env->ctx, from, buf, len);
	t->n_recv++;
	pn_rt_stop(t->rt);
}

static const struct pn_node_ops echo_ops = {echo_recv, node_deadline, node_tick};

/* Bound to a wildcard address, the runtime answers from the address a datagram came to
 * (IP_PKTINFO / IPV6_PKTINFO), not the one the kernel would pick: 127.0.0.2 here, while a
 * reply to 127.0.0.1 would by default leave from 127.0.0.1. */
static void answer_from_arrival_address(const char *bind_to)
{
	struct test_node t = {.deadline = UINT64_MAX};
	struct pn_addr a, bound;
	struct sockaddr_in to = {0}, me = {0}, got = {0};
	socklen_t gl = sizeof(got);
	char buf[16];
	int fd;

	assert_int_equal(pn_rt_new(&t.rt), 0);
	t.env = pn_rt_env(t.rt);
	pn_rt_set_node(t.rt, &t, &echo_ops);
	assert_int_equal(pn_addr_parse(&a, bind_to), 0);
	assert_int_equal(pn_rt_udp_bind(t.rt, &a, &bound), 0);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	me.sin_family = AF_INET;
	me.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = htonl(0x7f000002);
	to.sin_port = htons(bound.port);
	assert_int_equal(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	t.deadline = t.env->now_ms(t.env->ctx) + 5000;
	pn_rt_run(t.rt);
	assert_int_equal(t.n_recv, 1);
	assert_int_equal(recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&got, &gl), 4);
	assert_int_equal(ntohl(got.sin_addr.s_addr), 0x7f000002);
	assert_int_equal(ntohs(got.sin_port), bound.port);
	close(fd);
	pn_rt_free(t.rt);
}

static void udp_answers_from_arrival_address_v4(void **state)
{
	answer_from_arrival_address("0.0.0.0:0");
}

static void udp_answers_from_arrival_address_dual(void **state)
{
	answer_from_arrival_address("[::]:0");
}

static void timer_fires_at_deadline(void **state)
{
	struct test_node t = {.deadline = UINT64_MAX};
	uint64_t start, end;

	assert_int_equal(pn_rt_new(&t.rt), 0);
	t.env = pn_rt_env(t.rt);
	start = t.env->now_ms(t.env->ctx);
	t.deadline = start + 30;
	pn_rt_set_node(t.rt, &t, &test_ops);
	assert_int_equal(pn_rt_run(t.rt), 0);
	end = t.env->now_ms(t.env->ctx);
	assert_int_equal(t.n_tick, 1);
	assert_true(end >= start + 30);
	assert_true(end < start + 2000);
	pn_rt_free(t.rt);
}

static bool exit_now(void *arg)
{
	int *calls = arg;

	(*calls)++;
	return true;
}

static void exit_check_stops(void **state)
{
	struct pn_rt *rt;
	struct pn_addr a;
	int calls = 0;

	assert_int_equal(pn_rt_new(&rt), 0);
	assert_int_equal(pn_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(pn_rt_udp_bind(rt, &a, NULL), 0); /* keeps the loop alive */
	pn_rt_set_exit_check(rt, exit_now, &calls);
	assert_int_equal(pn_rt_run(rt), 0);
	assert_true(calls >= 1);
	pn_rt_free(rt);
}

/* ---- API socket ---------------------------------------------------------------------- */

struct api_fixture {
	char dir[64];
	char path[128];
	struct pn_client *client;
	struct pn_api *api;
	struct pn_rt *rt;
	struct pn_network net;
};

static int api_setup(void **state)
{
	struct api_fixture *f = calloc(1, sizeof(*f));
	struct pn_client_config cfg = {0};

	assert_non_null(f);
	strcpy(f->dir, "/tmp/pn-rt-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/api.sock", f->dir);
	assert_int_equal(pn_rt_new(&f->rt), 0);
	strcpy(f->net.name, "test");
	cfg.env = pn_rt_env(f->rt);
	cfg.net = &f->net;
	cfg.db_path = ":memory:";
	assert_int_equal(pn_client_new(&f->client, &cfg), 0);
	assert_int_equal(pn_api_new(&f->api, f->client), 0);
	*state = f;
	return 0;
}

static int api_teardown(void **state)
{
	struct api_fixture *f = *state;

	pn_rt_free(f->rt); /* first: its connections belong to the api */
	pn_api_free(f->api);
	pn_client_free(f->client);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void api_socket_mode_0600(void **state)
{
	struct api_fixture *f = *state;
	struct stat st;

	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void api_stale_socket_replaced(void **state)
{
	struct api_fixture *f = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	/* A socket file nobody listens on: what a crashed daemon leaves behind. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	strcpy(sun.sun_path, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void api_live_socket_refused(void **state)
{
	struct api_fixture *f = *state;
	struct pn_rt *rt2;

	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), 0);
	assert_int_equal(pn_rt_new(&rt2), 0);
	assert_int_equal(pn_rt_api_listen(rt2, f->path, f->api), -EADDRINUSE);
	pn_rt_free(rt2);
	/* The first runtime's socket is still there. */
	assert_int_equal(access(f->path, F_OK), 0);
}

static void api_regular_file_not_replaced(void **state)
{
	struct api_fixture *f = *state;
	int fd;

	fd = open(f->path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), -EADDRINUSE);
	assert_int_equal(access(f->path, F_OK), 0);
}

/* A client thread would complicate things: the test client is a non-blocking socket
 * written before the loop runs; the loop runs until the exit check sees a reply. */
struct round_trip {
	int fd;
	char buf[4096];
	size_t len;
};

static bool reply_seen(void *arg)
{
	struct round_trip *r = arg;
	ssize_t n;

	n = read(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
	if (n > 0)
		r->len += (size_t)n;
	r->buf[r->len] = 0;
	return strchr(r->buf, '\n') != NULL;
}

static void api_round_trip(void **state)
{
	struct api_fixture *f = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct round_trip r = {0};
	const char req[] = "{\"id\":7,\"cmd\":\"ping\"}\n";
	struct pn_addr a;

	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), 0);
	assert_int_equal(pn_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(pn_rt_udp_bind(f->rt, &a, NULL), 0);
	r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(r.fd >= 0);
	strcpy(sun.sun_path, f->path);
	assert_int_equal(connect(r.fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(write(r.fd, req, strlen(req)), (ssize_t)strlen(req));
	pn_rt_set_exit_check(f->rt, reply_seen, &r);
	assert_int_equal(pn_rt_run(f->rt), 0);
	assert_non_null(strstr(r.buf, "\"id\":7"));
	assert_non_null(strstr(r.buf, "\"ok\":true"));
	assert_non_null(strstr(r.buf, "\"pong\":true"));
	close(r.fd);
}

void pn__api_emit(struct pn_api *api, const char *event, json_t *data);

struct slow_client {
	int fd;
	size_t total;
	bool eof;
	bool subscribed;
	char head[256];
};

/* Reads whatever is there; true once the daemon side closed the connection. */
static bool slow_drained(void *arg)
{
	struct slow_client *sc = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(sc->fd, buf, sizeof(buf))) > 0) {
		if (sc->total < sizeof(sc->head) - 1) {
			size_t k = sizeof(sc->head) - 1 - sc->total;

			memcpy(sc->head + sc->total, buf, (size_t)n < k ? (size_t)n : k);
		}
		sc->total += (size_t)n;
	}
	if (n == 0)
		sc->eof = true;
	if (!sc->subscribed)
		return strchr(sc->head, '\n') != NULL;
	return sc->eof;
}

static uint64_t periodic_deadline(void *n)
{
	struct test_node *t = n;

	return t->deadline;
}

static void periodic_tick(void *n)
{
	struct test_node *t = n;

	t->n_tick++;
	t->deadline = t->env->now_ms(t->env->ctx) + 5;
	if (t->n_tick > 2000) /* 10 s: give up */
		pn_rt_stop(t->rt);
}

static const struct pn_node_ops periodic_ops = {NULL, periodic_deadline, periodic_tick};

/* A subscriber that never reads its events is disconnected once about 4 MiB wait for it,
 * instead of growing the daemon's memory without bound. */
static void api_slow_client_dropped(void **state)
{
	struct api_fixture *f = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct slow_client sc = {0};
	struct test_node t = {0};
	const char req[] = "{\"id\":1,\"cmd\":\"events.subscribe\"}\n";
	char *big;
	json_t *data;

	assert_int_equal(pn_rt_api_listen(f->rt, f->path, f->api), 0);
	t.rt = f->rt;
	t.env = pn_rt_env(f->rt);
	t.deadline = t.env->now_ms(t.env->ctx) + 5;
	pn_rt_set_node(f->rt, &t, &periodic_ops);
	sc.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(sc.fd >= 0);
	strcpy(sun.sun_path, f->path);
	assert_int_equal(connect(sc.fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(write(sc.fd, req, strlen(req)), (ssize_t)strlen(req));
	pn_rt_set_exit_check(f->rt, slow_drained, &sc);
	assert_int_equal(pn_rt_run(f->rt), 0);
	assert_non_null(strstr(sc.head, "\"subscribed\":true"));
	sc.subscribed = true;

	/* 16 MiB of events while the client reads nothing. */
	big = malloc(65536);
	assert_non_null(big);
	memset(big, 'z', 65535);
	big[65535] = 0;
	data = json_pack("{s:s}", "text", big);
	for (int i = 0; i < 256; i++)
		pn__api_emit(f->api, "message.received", data);
	json_decref(data);
	free(big);

	assert_int_equal(pn_rt_run(f->rt), 0);
	assert_true(sc.eof);
	assert_true(sc.total < 12u << 20);
	/* Queued writes are cancelled at the drop: only what the kernel already held arrives. */
	assert_true(sc.total > 0);
	close(sc.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(udp_send_to_self),
		cmocka_unit_test(udp_dual_stack_maps_v4),
		cmocka_unit_test(udp_answers_from_arrival_address_v4),
		cmocka_unit_test(udp_answers_from_arrival_address_dual),
		cmocka_unit_test(timer_fires_at_deadline),
		cmocka_unit_test(exit_check_stops),
		cmocka_unit_test_setup_teardown(api_socket_mode_0600, api_setup, api_teardown),
		cmocka_unit_test_setup_teardown(api_stale_socket_replaced, api_setup, api_teardown),
		cmocka_unit_test_setup_teardown(api_live_socket_refused, api_setup, api_teardown),
		cmocka_unit_test_setup_teardown(api_regular_file_not_replaced, api_setup,
						api_teardown),
		cmocka_unit_test_setup_teardown(api_round_trip, api_setup, api_teardown),
		cmocka_unit_test_setup_teardown(api_slow_client_dropped, api_setup, api_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
