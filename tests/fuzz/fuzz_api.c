/* libFuzzer target: arbitrary bytes into the control API framing (src/api) of a client
 * that has no network (datagrams are dropped) and an in-memory database.
 *
 * The first input byte chooses how the rest is cut into pn_api_conn_input() calls, so
 * line reassembly across reads is fuzzed too. Every output must be whole JSON lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "base/addr.h"
#include "base/log.h"
#include "parley/api.h"
#include "parley/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fake_now = 1000;

static uint64_t stub_now(void *ctx)
{
	return fake_now;
}

static uint64_t stub_wall(void *ctx)
{
	return 1790000000u + fake_now / 1000;
}

static void stub_random(void *ctx, void *buf, size_t len)
{
	/* Deterministic, so that a crash reproduces. */
	static uint8_t x = 0x5a;
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		x = (uint8_t)(x * 33 + 7);
		p[i] = x;
	}
}

static int stub_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	return 0;
}

static const struct pn_env env = {NULL, stub_now, stub_wall, stub_random, stub_send, NULL};
static struct pn_network net;
static struct pn_client *client;
static struct pn_api *api;

static void check_write(void *arg, const char *out, size_t len)
{
	json_t *j;

	/* Exactly one line, and it parses. */
	if (len == 0 || out[len - 1] != '\n' || memchr(out, '\n', len - 1))
		abort();
	j = json_loadb(out, len - 1, 0, NULL);
	if (!j || !json_is_object(j))
		abort();
	json_decref(j);
}

static void init_once(void)
{
	struct pn_client_config cfg = {0};

	if (api)
		return;
	if (sodium_init() < 0)
		abort();
	pn_log_set_level(PN_LOG_ERROR);
	strcpy(net.name, "fuzz");
	pn_addr_parse(&net.login.addr, "127.0.0.1:9");
	memset(net.login.key, 0x42, 32);
	net.login.has_key = true;
	memset(net.root_pk, 0x43, 32);
	pn_addr_parse(&net.supernodes[0].addr, "127.0.0.1:10");
	net.n_supernodes = 1;
	cfg.env = &env;
	cfg.net = &net;
	cfg.db_path = ":memory:";
	cfg.device_name = "fuzz";
	if (pn_client_new(&client, &cfg) < 0 || pn_api_new(&api, client) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pn_api_conn *conn;
	size_t chunk, off;

	init_once();
	if (size == 0)
		return 0;
	chunk = (size_t)data[0] * 7 + 1;
	data++;
	size--;
	if (pn_api_conn_new(&conn, api, check_write, NULL) < 0)
		abort();
	for (off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		pn_api_conn_input(conn, (const char *)data + off, n);
	}
	/* Let any timers of requests it started run once, then drop the connection with
	 * whatever is still pending. */
	fake_now += 1000;
	if (pn_client_ops.next_deadline(client) <= fake_now)
		pn_client_ops.tick(client);
	pn_api_conn_free(conn);
	return 0;
}
