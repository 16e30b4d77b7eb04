/* The control API framing (sans-I/O): JSON lines in, JSON lines out, over any byte stream
 * the host provides (the runtime uses a Unix socket, mode 0600). docs/API.md is the contract.
 *
 *   request  {"id": <int|string>, "cmd": "send", "args": {...}}
 *   response {"id": ..., "ok": true, "result": {...}}
 *            {"id": ..., "ok": false, "error": {"code": "...", "message": "..."}}
 *   event    {"event": "message.received", "data": {...}}   (after "events.subscribe")
 *
 * A malformed line gets an error response (id null if unknown) and the connection stays
 * open. Lines are limited to PN_API_LINE_MAX bytes; a longer line is answered with an
 * error and discarded up to its newline. */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include <stddef.h>

#include "parley/client.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { PN_API_LINE_MAX = 65536 };

struct pn_api;
struct pn_api_conn;

/* write_cb sends bytes to the peer of that connection (always whole lines). */
typedef void (*pn_api_write_cb)(void *arg, const char *data, size_t len);

int pn_api_new(struct pn_api **out, struct pn_client *c);
void pn_api_free(struct pn_api *api); /* frees remaining connections too; NULL ok */
int pn_api_conn_new(struct pn_api_conn **out, struct pn_api *api, pn_api_write_cb cb, void *arg);
/* Feed bytes received from the peer. */
void pn_api_conn_input(struct pn_api_conn *conn, const char *data, size_t len);
void pn_api_conn_free(struct pn_api_conn *conn); /* cancels its pending requests; NULL ok */

#ifdef __cplusplus
}
#endif
#endif
