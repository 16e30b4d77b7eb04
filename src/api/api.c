/* The control API framing: JSON lines in, JSON lines out (docs/API.md is the contract).
 *
 * Sans-I/O: the host feeds received bytes with pn_api_conn_input() and gets whole output
 * lines through the connection's write callback. Every request becomes one
 * pn_client_request(); its reply may come back before pn_client_request() returns or
 * much later (a directory lookup), so each request carries a small record (struct req)
 * that remembers the connection and the request id. A connection keeps a list of its
 * records: when it goes away, every one is cancelled in the client and freed, so a late
 * reply can never reach freed memory.
 *
 * "events.subscribe" is answered here: the api is the client's single event listener and
 * fans events out to the subscribed connections. */
#include "parley/api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct req {
	struct pn_api_conn *conn;
	json_t *id; /* integer, string or null; owned */
	struct req *prev, *next;
};

struct pn_api_conn {
	struct pn_api *api;
	pn_api_write_cb write_cb;
	void *write_arg;
	char *line;       /* partial line; at most PN_API_LINE_MAX bytes */
	size_t line_len;
	size_t line_cap;
	bool discarding;  /* inside an over-long line: drop bytes up to the next newline */
	bool subscribed;
	struct req *reqs; /* pending requests */
	struct pn_api_conn *prev, *next;
};

struct pn_api {
	struct pn_client *client;
	struct pn_api_conn *conns;
};

/* Prototype for -Wmissing-prototypes: an internal helper the unit tests use to inject an
 * event without depending on what the client emits. */
void pn__api_emit(struct pn_api *api, const char *event, json_t *data);

/* Serialises obj as one compact line and hands it to the connection. */
static void conn_write_json(struct pn_api_conn *conn, json_t *obj)
{
	size_t n;
	char *s = NULL;

	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n == 0) {
		pn_warn("api: cannot serialise a reply");
		goto out;
	}
	s = malloc(n + 1);
	if (!s) {
		pn_warn("api: out of memory writing a reply of %zu bytes", n);
		goto out;
	}
	if (json_dumpb(obj, s, n, JSON_COMPACT) != n)
		goto out;
	s[n] = '\n';
	conn->write_cb(conn->write_arg, s, n + 1);
out:
	free(s);
}

static void conn_write_result(struct pn_api_conn *conn, json_t *id, json_t *result)
{
	json_t *r;

	/* "o" steals the reference (also on failure). */
	r = json_pack("{s:O?,s:b,s:o}", "id", id, "ok", 1, "result",
		      result ? json_incref(result) : json_object());
	if (!r)
		return;
	conn_write_json(conn, r);
	json_decref(r);
}

static void conn_write_error(struct pn_api_conn *conn, json_t *id, const char *code,
			     const char *message)
{
	json_t *r;

	r = json_pack("{s:O?,s:b,s:{s:s,s:s}}", "id", id, "ok", 0, "error", "code",
		      code ? code : "internal", "message", message ? message : "internal error");
	if (!r) {
		/* A message that is not valid UTF-8 cannot be a JSON string: keep the code. */
		r = json_pack("{s:O?,s:b,s:{s:s,s:s}}", "id", id, "ok", 0, "error", "code",
			      code ? code : "internal", "message", "(unprintable message)");
		if (!r)
			return;
	}
	conn_write_json(conn, r);
	json_decref(r);
}

static void req_free(struct req *rq)
{
	struct pn_api_conn *conn;

	if (!rq)
		return;
	conn = rq->conn;
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		conn->reqs = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	json_decref(rq->id);
	free(rq);
}

static void reply_cb(void *arg, int err, const char *code, const char *message, json_t *result)
{
	struct req *rq = arg;

	if (err == 0)
		conn_write_result(rq->conn, rq->id, result);
	else
		conn_write_error(rq->conn, rq->id, code, message);
	req_free(rq);
}

static void event_cb(void *arg, const char *event, json_t *data)
{
	pn__api_emit(arg, event, data);
}

void pn__api_emit(struct pn_api *api, const char *event, json_t *data)
{
	struct pn_api_conn *conn, *next;
	json_t *ev;

	if (!api || !event)
		return;
	ev = json_pack("{s:s,s:o}", "event", event, "data",
		       data ? json_incref(data) : json_object());
	if (!ev) {
		pn_warn("api: cannot build event `%s'", event);
		return;
	}
	/* A write callback never frees its connection synchronously (the host defers), but
	 * keep the next pointer anyway. */
	for (conn = api->conns; conn; conn = next) {
		next = conn->next;
		if (conn->subscribed)
			conn_write_json(conn, ev);
	}
	json_decref(ev);
}

static bool valid_id(const json_t *id)
{
	return json_is_integer(id) || json_is_string(id);
}

/* Handles one complete line (without its newline). */
static void conn_handle_line(struct pn_api_conn *conn, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *root = NULL, *id = NULL, *cmd, *args;
	struct req *rq;
	char msg[256];
	size_t i;

	for (i = 0; i < len; i++) {
		if (line[i] != ' ' && line[i] != '\t')
			break;
	}
	if (i == len)
		goto out; /* blank lines are keep-alives, not requests */

	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(msg, sizeof(msg), "invalid JSON at column %d: %s", jerr.column,
			 jerr.text);
		conn_write_error(conn, NULL, "bad_json", msg);
		goto out;
	}
	if (!json_is_object(root)) {
		conn_write_error(conn, NULL, "bad_request", "a request must be a JSON object");
		goto out;
	}
	id = json_object_get(root, "id");
	if (id && !json_is_null(id) && !valid_id(id)) {
		conn_write_error(conn, NULL, "bad_request",
				 "\"id\" must be an integer or a string");
		goto out;
	}
	if (json_is_null(id))
		id = NULL;
	cmd = json_object_get(root, "cmd");
	if (!json_is_string(cmd) || json_string_length(cmd) == 0) {
		conn_write_error(conn, id, "bad_request", "missing \"cmd\" (a non-empty string)");
		goto out;
	}
	args = json_object_get(root, "args");
	if (json_is_null(args))
		args = NULL;
	if (args && !json_is_object(args)) {
		conn_write_error(conn, id, "bad_request", "\"args\" must be an object");
		goto out;
	}

	if (strcmp(json_string_value(cmd), "events.subscribe") == 0) {
		json_t *r = json_pack("{s:b}", "subscribed", 1);

		conn->subscribed = true;
		conn_write_result(conn, id, r);
		json_decref(r);
		goto out;
	}

	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		conn_write_error(conn, id, "internal", "out of memory");
		goto out;
	}
	rq->conn = conn;
	rq->id = id ? json_incref(id) : json_null();
	rq->next = conn->reqs;
	if (conn->reqs)
		conn->reqs->prev = rq;
	conn->reqs = rq;
	/* reply_cb may run (and free rq) before this returns. */
	pn_client_request(conn->api->client, json_string_value(cmd), args, reply_cb, rq);
out:
	json_decref(root);
}

/* Appends n bytes to the partial line; the caller checked the cap. */
static int conn_append(struct pn_api_conn *conn, const char *p, size_t n)
{
	size_t need = conn->line_len + n;

	if (need > conn->line_cap) {
		size_t cap = conn->line_cap ? conn->line_cap : 1024;
		char *nl;

		while (cap < need)
			cap *= 2;
		if (cap > PN_API_LINE_MAX)
			cap = PN_API_LINE_MAX;
		nl = realloc(conn->line, cap);
		if (!nl)
			return -ENOMEM;
		conn->line = nl;
		conn->line_cap = cap;
	}
	memcpy(conn->line + conn->line_len, p, n);
	conn->line_len += n;
	return 0;
}

static void conn_too_long(struct pn_api_conn *conn)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "request line longer than %d bytes; discarded",
		 PN_API_LINE_MAX);
	conn_write_error(conn, NULL, "line_too_long", msg);
	conn->discarding = true;
	conn->line_len = 0;
}

void pn_api_conn_input(struct pn_api_conn *conn, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *nl;
	size_t n;

	if (!conn || !data)
		return;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (conn->discarding) {
			if (nl)
				conn->discarding = false;
		} else if (n > PN_API_LINE_MAX - conn->line_len) {
			/* Answer as soon as the cap is crossed, not at the (maybe never) newline. */
			conn_too_long(conn);
			if (nl)
				conn->discarding = false;
		} else if (!nl) {
			if (conn_append(conn, p, n) < 0) {
				conn_write_error(conn, NULL, "internal", "out of memory");
				conn->line_len = 0;
				conn->discarding = true;
			}
		} else if (conn->line_len == 0) {
			/* Whole line inside this input: no copy. */
			size_t m = n;

			if (m > 0 && p[m - 1] == '\r')
				m--;
			conn_handle_line(conn, p, m);
		} else {
			size_t m;

			if (conn_append(conn, p, n) < 0) {
				conn_write_error(conn, NULL, "internal", "out of memory");
				conn->line_len = 0;
			} else {
				m = conn->line_len;
				conn->line_len = 0;
				if (m > 0 && conn->line[m - 1] == '\r')
					m--;
				conn_handle_line(conn, conn->line, m);
			}
		}
		p += n + (nl ? 1 : 0);
	}
	/* Give back a large buffer once it is no longer needed. */
	if (conn->line_len == 0 && conn->line_cap > 4096) {
		free(conn->line);
		conn->line = NULL;
		conn->line_cap = 0;
	}
}

int pn_api_new(struct pn_api **out, struct pn_client *c)
{
	struct pn_api *api;

	if (!out || !c)
		return -EINVAL;
	api = calloc(1, sizeof(*api));
	if (!api)
		return -ENOMEM;
	api->client = c;
	pn_client_set_event_cb(c, event_cb, api);
	*out = api;
	return 0;
}

void pn_api_free(struct pn_api *api)
{
	if (!api)
		return;
	while (api->conns)
		pn_api_conn_free(api->conns);
	pn_client_set_event_cb(api->client, NULL, NULL);
	free(api);
}

int pn_api_conn_new(struct pn_api_conn **out, struct pn_api *api, pn_api_write_cb cb, void *arg)
{
	struct pn_api_conn *conn;

	if (!out || !api || !cb)
		return -EINVAL;
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return -ENOMEM;
	conn->api = api;
	conn->write_cb = cb;
	conn->write_arg = arg;
	conn->next = api->conns;
	if (api->conns)
		api->conns->prev = conn;
	api->conns = conn;
	*out = conn;
	return 0;
}

void pn_api_conn_free(struct pn_api_conn *conn)
{
	struct pn_api *api;

	if (!conn)
		return;
	api = conn->api;
	/* Cancel first so that no reply can arrive while the records are freed. */
	while (conn->reqs) {
		pn_client_cancel(api->client, conn->reqs);
		req_free(conn->reqs);
	}
	pn_client_cancel(api->client, conn);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		api->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	free(conn->line);
	free(conn);
}
