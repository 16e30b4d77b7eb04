/* TEMPORARY stand-in so the runtime and API can link while the real client is written.
 * Replaced by the real client node. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parley/client.h"

struct pn_client {
	pn_client_event_cb ev_cb;
	void *ev_arg;
	bool exit;
};

int pn_client_new(struct pn_client **out, const struct pn_client_config *cfg)
{
	struct pn_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

void pn_client_free(struct pn_client *c)
{
	free(c);
}

static void recv_(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len) {}
static uint64_t deadline_(void *node) { return UINT64_MAX; }
static void tick_(void *node) {}
const struct pn_node_ops pn_client_ops = {recv_, deadline_, tick_};

void pn_client_set_event_cb(struct pn_client *c, pn_client_event_cb cb, void *arg)
{
	c->ev_cb = cb;
	c->ev_arg = arg;
}

void pn_client_request(struct pn_client *c, const char *cmd, json_t *args, pn_client_reply_cb cb,
		       void *arg)
{
	if (strcmp(cmd, "ping") == 0) {
		json_t *r = json_pack("{s:b}", "pong", 1);
		cb(arg, 0, NULL, NULL, r);
		json_decref(r);
		if (c->ev_cb) {
			json_t *d = json_pack("{s:s}", "note", "ping");
			c->ev_cb(c->ev_arg, "debug.ping", d);
			json_decref(d);
		}
		return;
	}
	if (strcmp(cmd, "shutdown") == 0) {
		json_t *r = json_object();
		c->exit = true;
		cb(arg, 0, NULL, NULL, r);
		json_decref(r);
		return;
	}
	cb(arg, -ENOSYS, "unknown_command", "stand-in client", NULL);
}

void pn_client_cancel(struct pn_client *c, void *arg) {}
bool pn_client_wants_exit(const struct pn_client *c) { return c->exit; }
