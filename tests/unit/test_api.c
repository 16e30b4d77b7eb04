/* Unit tests for src/api: JSON-lines framing over the client (docs/API.md). Driven through
 * the client with "ping" (answered synchronously) and the api-level "events.subscribe";
 * events are injected with pn__api_emit so the tests do not depend on what the client
 * emits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "base/addr.h"
#include "parley/api.h"
#include "parley/client.h"

void pn__api_emit(struct pn_api *api, const char *event, json_t *data);

/* ---- a client on a stub environment: virtual clock, datagrams dropped ------------------ */

struct fix {
	uint64_t now;
	struct pn_env env;
	struct pn_network net;
	struct pn_client *client;
	struct pn_api *api;
};

struct sink {
	char *buf;
	size_t len;
	int writes;
	bool bad_write; /* a write that was not exactly one whole line */
};

static uint64_t stub_now(void *ctx)
{
	return ((struct fix *)ctx)->now;
}

static uint64_t stub_wall(void *ctx)
{
	return 1790000000u + ((struct fix *)ctx)->now / 1000;
}

static void stub_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static int stub_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	return 0; /* lost on the way: nobody ever answers */
}

static int fix_setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct pn_client_config cfg = {0};

	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	f->now = 1000;
	f->env = (struct pn_env){f, stub_now, stub_wall, stub_random, stub_send, NULL};
	strcpy(f->net.name, "test");
	assert_int_equal(pn_addr_parse(&f->net.login.addr, "127.0.0.1:9"), 0);
	/* Keys nobody holds: exchanges start and then wait for answers that never come. */
	memset(f->net.login.key, 0x42, 32);
	f->net.login.has_key = true;
	memset(f->net.root_pk, 0x43, 32);
	assert_int_equal(pn_addr_parse(&f->net.supernodes[0].addr, "127.0.0.1:10"), 0);
	f->net.n_supernodes = 1;
	cfg.env = &f->env;
	cfg.net = &f->net;
	cfg.db_path = ":memory:";
	cfg.device_name = "test";
	assert_int_equal(pn_client_new(&f->client, &cfg), 0);
	assert_int_equal(pn_api_new(&f->api, f->client), 0);
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	pn_api_free(f->api);
	pn_client_free(f->client);
	free(f);
	return 0;
}

static void sink_write(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;
	char *nb;

	s->writes++;
	if (len == 0 || data[len - 1] != '\n' || memchr(data, '\n', len - 1))
		s->bad_write = true;
	nb = realloc(s->buf, s->len + len + 1);
	assert_non_null(nb);
	s->buf = nb;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = 0;
}

/* Removes and parses the first output line; NULL when there is none. */
static json_t *sink_pop(struct sink *s)
{
	char *nl;
	json_t *j;
	size_t n;

	if (!s->buf || !(nl = memchr(s->buf, '\n', s->len)))
		return NULL;
	n = (size_t)(nl - s->buf);
	j = json_loadb(s->buf, n, 0, NULL);
	assert_non_null(j);
	memmove(s->buf, nl + 1, s->len - n - 1);
	s->len -= n + 1;
	s->buf[s->len] = 0;
	return j;
}

static void sink_clear(struct sink *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static void input_str(struct pn_api_conn *c, const char *s)
{
	pn_api_conn_input(c, s, strlen(s));
}

static void assert_ok_id_int(json_t *r, json_int_t id)
{
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_integer(json_object_get(r, "id")));
	assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
	assert_true(json_is_object(json_object_get(r, "result")));
}

/* code and id (NULL: expect JSON null) of an error response. */
static void assert_error(json_t *r, const char *code, const json_t *id)
{
	json_t *e;

	assert_non_null(r);
	assert_true(json_is_false(json_object_get(r, "ok")));
	if (id)
		assert_true(json_equal(json_object_get(r, "id"), (json_t *)id));
	else
		assert_true(json_is_null(json_object_get(r, "id")));
	e = json_object_get(r, "error");
	assert_true(json_is_object(e));
	assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	assert_true(json_is_string(json_object_get(e, "message")));
}

/* ---- cases ---------------------------------------------------------------------------- */

static void ping_answered(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":1,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 1);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "pong")));
	json_decref(r);
	assert_false(s.bad_write);
	/* Output is compact: no space after separators. */
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void line_split_across_inputs(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	const char *req = "{\"id\":2,\"cmd\":\"ping\",\"args\":{}}\n";
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	for (size_t i = 0; req[i]; i++) {
		assert_null(s.buf ? memchr(s.buf, '\n', s.len) : NULL);
		pn_api_conn_input(c, req + i, 1);
	}
	r = sink_pop(&s);
	assert_ok_id_int(r, 2);
	json_decref(r);
	/* Uneven chunks, CRLF line ending. */
	input_str(c, "{\"id\":3,");
	input_str(c, "\"cmd\":\"pi");
	input_str(c, "ng\"}\r");
	input_str(c, "\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 3);
	json_decref(r);
	assert_null(sink_pop(&s));
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void two_requests_in_one_input(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":10,\"cmd\":\"ping\"}\n\n{\"id\":11,\"cmd\":\"ping\"}\n{\"id\":12,");
	r = sink_pop(&s);
	assert_ok_id_int(r, 10);
	json_decref(r);
	r = sink_pop(&s);
	assert_ok_id_int(r, 11);
	json_decref(r);
	assert_null(sink_pop(&s)); /* the blank line is ignored, the third is incomplete */
	input_str(c, "\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 12);
	json_decref(r);
	assert_false(s.bad_write);
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void over_long_line(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	char *chunk;
	json_t *r;

	chunk = malloc(10000);
	assert_non_null(chunk);
	memset(chunk, 'x', 10000);
	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":1,\"cmd\":\"ping\",\"pad\":\"");
	for (int i = 0; i < 20; i++) /* 200 kB: well over the 64 KiB cap */
		pn_api_conn_input(c, chunk, 10000);
	/* Answered as soon as the cap was crossed, exactly once. */
	r = sink_pop(&s);
	assert_error(r, "line_too_long", NULL);
	json_decref(r);
	assert_null(sink_pop(&s));
	/* The rest of the long line (even something that looks like a request) is dropped,
	 * then the connection works again. */
	input_str(c, "{\"id\":5,\"cmd\":\"ping\"}\"}\n{\"id\":6,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 6);
	json_decref(r);
	assert_null(sink_pop(&s));

	/* An over-long line that arrives in one piece with its newline. */
	char *big = malloc(PN_API_LINE_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', PN_API_LINE_MAX + 1);
	big[PN_API_LINE_MAX + 1] = '\n';
	pn_api_conn_input(c, big, PN_API_LINE_MAX + 2);
	r = sink_pop(&s);
	assert_error(r, "line_too_long", NULL);
	json_decref(r);
	input_str(c, "{\"id\":7,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 7);
	json_decref(r);

	/* A line of exactly PN_API_LINE_MAX bytes is still accepted. */
	const char *req = "{\"id\":8,\"cmd\":\"ping\",\"pad\":\"";
	size_t hl = strlen(req);
	memset(big, 'y', PN_API_LINE_MAX);
	memcpy(big, req, hl);
	memcpy(big + PN_API_LINE_MAX - 2, "\"}", 2);
	pn_api_conn_input(c, big, PN_API_LINE_MAX / 2);
	pn_api_conn_input(c, big + PN_API_LINE_MAX / 2, PN_API_LINE_MAX / 2);
	input_str(c, "\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 8);
	json_decref(r);

	assert_false(s.bad_write);
	free(big);
	free(chunk);
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void bad_json_then_good(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":1,\"cmd\":\"ping\"\n");
	r = sink_pop(&s);
	assert_error(r, "bad_json", NULL);
	json_decref(r);
	input_str(c, "\xff\xfe garbage\n");
	r = sink_pop(&s);
	assert_error(r, "bad_json", NULL);
	json_decref(r);
	input_str(c, "{\"id\":2,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, 2);
	json_decref(r);
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void missing_or_invalid_cmd(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	json_t *r, *id;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":3}\n");
	id = json_integer(3);
	r = sink_pop(&s);
	assert_error(r, "bad_request", id);
	json_decref(r);
	json_decref(id);

	input_str(c, "{\"id\":\"x\",\"cmd\":5}\n");
	id = json_string("x");
	r = sink_pop(&s);
	assert_error(r, "bad_request", id);
	json_decref(r);
	json_decref(id);

	input_str(c, "{\"id\":4,\"cmd\":\"\"}\n");
	r = sink_pop(&s);
	id = json_integer(4);
	assert_error(r, "bad_request", id);
	json_decref(r);
	json_decref(id);

	input_str(c, "{\"id\":5,\"cmd\":\"ping\",\"args\":[1]}\n");
	r = sink_pop(&s);
	id = json_integer(5);
	assert_error(r, "bad_request", id);
	json_decref(r);
	json_decref(id);

	input_str(c, "[1,2]\n");
	r = sink_pop(&s);
	assert_error(r, "bad_request", NULL);
	json_decref(r);

	input_str(c, "{\"id\":1.5,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_error(r, "bad_request", NULL);
	json_decref(r);

	/* No id at all: the answer carries "id": null. */
	input_str(c, "{\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_non_null(r);
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);

	input_str(c, "{\"id\":6,\"cmd\":\"no.such.command\"}\n");
	r = sink_pop(&s);
	id = json_integer(6);
	assert_error(r, "unknown_command", id);
	json_decref(r);
	json_decref(id);
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void string_ids_echoed(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":\"req-\\u00e9-1\",\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "id")), "req-\xc3\xa9-1");
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	input_str(c, "{\"id\":-9007199254740993,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s);
	assert_ok_id_int(r, -9007199254740993LL);
	json_decref(r);
	pn_api_conn_free(c);
	sink_clear(&s);
}

static void events_only_to_subscribers(void **state)
{
	struct fix *f = *state;
	struct sink sa = {0}, sb = {0};
	struct pn_api_conn *a, *b;
	json_t *r, *data;

	assert_int_equal(pn_api_conn_new(&a, f->api, sink_write, &sa), 0);
	assert_int_equal(pn_api_conn_new(&b, f->api, sink_write, &sb), 0);
	input_str(a, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n");
	r = sink_pop(&sa);
	assert_ok_id_int(r, 1);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "subscribed")));
	json_decref(r);

	data = json_pack("{s:s,s:s,s:s,s:I}", "id", "00", "from", "alice", "text", "hi",
			 "sent_at", (json_int_t)1790000000000LL);
	pn__api_emit(f->api, "message.received", data);
	json_decref(data);
	r = sink_pop(&sa);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "event")), "message.received");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "data"), "from")), "alice");
	assert_null(json_object_get(r, "id"));
	json_decref(r);
	assert_null(sink_pop(&sb));

	/* Events without data still carry an object. */
	pn__api_emit(f->api, "status.changed", NULL);
	r = sink_pop(&sa);
	assert_non_null(r);
	assert_true(json_is_object(json_object_get(r, "data")));
	json_decref(r);

	/* Whatever the client emits on its own reaches only a, and is well formed. */
	input_str(a, "{\"id\":2,\"cmd\":\"ping\"}\n");
	input_str(b, "{\"id\":3,\"cmd\":\"ping\"}\n");
	while ((r = sink_pop(&sa))) {
		if (json_object_get(r, "event")) {
			assert_true(json_is_string(json_object_get(r, "event")));
			assert_true(json_is_object(json_object_get(r, "data")));
		}
		json_decref(r);
	}
	r = sink_pop(&sb);
	assert_ok_id_int(r, 3);
	json_decref(r);
	assert_null(sink_pop(&sb));

	/* A freed subscriber is forgotten. */
	pn_api_conn_free(a);
	sink_clear(&sa);
	pn__api_emit(f->api, "status.changed", NULL);
	assert_int_equal(sa.writes, 0);
	pn_api_conn_free(b);
	sink_clear(&sb);
}

/* Lets every client timer due in the next two minutes of virtual time run. */
static void run_client_for_2min(struct fix *f)
{
	for (int i = 0; i < 1200; i++) {
		f->now += 100;
		if (pn_client_ops.next_deadline(f->client) <= f->now)
			pn_client_ops.tick(f->client);
	}
}

/* A login that can never complete (datagrams are dropped): the client answers it later,
 * on a timeout. First check that this reply does come when the connection stays; then
 * free a connection first and check the reply does not reach it. */
static void conn_freed_with_pending_request(void **state)
{
	struct fix *f = *state;
	struct sink s = {0}, s2 = {0};
	struct pn_api_conn *c, *c2;
	const char *login = "{\"id\":1,\"cmd\":\"login\",\"args\":{\"username\":\"alice\","
			    "\"password\":\"correct horse\"}}\n";
	bool async;
	json_t *r;

	assert_int_equal(pn_api_conn_new(&c2, f->api, sink_write, &s2), 0);
	input_str(c2, login);
	async = s2.writes == 0;
	if (!async)
		print_message("note: the client answered login synchronously; "
			      "only the cancel path without a pending reply is exercised\n");
	run_client_for_2min(f);
	r = sink_pop(&s2);
	assert_non_null(r); /* answered late, exactly once */
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);
	assert_null(sink_pop(&s2));

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, login);
	if (async)
		assert_int_equal(s.writes, 0);
	s.writes = 0;
	pn_api_conn_free(c);
	run_client_for_2min(f);
	assert_int_equal(s.writes, 0);

	/* The other connection still works. */
	input_str(c2, "{\"id\":3,\"cmd\":\"ping\"}\n");
	r = sink_pop(&s2);
	assert_ok_id_int(r, 3);
	json_decref(r);
	pn_api_conn_free(c2);
	sink_clear(&s);
	sink_clear(&s2);
}

static void api_free_with_open_conns(void **state)
{
	struct fix *f = *state;
	struct sink s = {0};
	struct pn_api_conn *c;

	assert_int_equal(pn_api_conn_new(&c, f->api, sink_write, &s), 0);
	input_str(c, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n{\"id\":2,\"cmd\":\"pi");
	pn_api_free(f->api); /* frees c too */
	f->api = NULL;
	pn_api_free(NULL);
	pn_api_conn_free(NULL);
	sink_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ping_answered, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(line_split_across_inputs, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(two_requests_in_one_input, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(over_long_line, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(bad_json_then_good, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(missing_or_invalid_cmd, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(string_ids_echoed, fix_setup, fix_teardown),
		cmocka_unit_test_setup_teardown(events_only_to_subscribers, fix_setup,
						fix_teardown),
		cmocka_unit_test_setup_teardown(conn_freed_with_pending_request, fix_setup,
						fix_teardown),
		cmocka_unit_test_setup_teardown(api_free_with_open_conns, fix_setup, fix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
