/* The libuv runtime: the only code that touches sockets, clocks and the event loop. It
 * implements struct pn_env for one node, binds its UDP socket, runs its timers, serves the
 * control API on a Unix socket (parleyd) and stops cleanly on SIGINT/SIGTERM. */
#ifndef PARLEY_RUNTIME_H
#define PARLEY_RUNTIME_H

#include <stdbool.h>

#include "parley/api.h"
#include "parley/env.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pn_rt;

/* 0 or -ENOMEM / a libuv error mapped to -errno. */
int pn_rt_new(struct pn_rt **out);
void pn_rt_free(struct pn_rt *rt); /* closes everything; NULL ok */
/* The environment to give to the node. Valid until pn_rt_free. */
const struct pn_env *pn_rt_env(struct pn_rt *rt);
/* Binds the UDP socket. "[::]:0"-style IPv6 wildcards are dual-stack. bound (optional)
 * receives the actual address (port chosen by the kernel when 0). 0 or -errno. */
int pn_rt_udp_bind(struct pn_rt *rt, const struct pn_addr *addr, struct pn_addr *bound);
/* The node the runtime drives (recv on datagrams; tick at its deadlines). */
void pn_rt_set_node(struct pn_rt *rt, void *node, const struct pn_node_ops *ops);
/* Serves the control API of api on a Unix socket at path (mode 0600; a stale socket
 * file is replaced, a live one is an error -EADDRINUSE). */
int pn_rt_api_listen(struct pn_rt *rt, const char *path, struct pn_api *api);
/* Optional: called after every event-loop iteration's work; returning true stops the loop
 * (parleyd uses it for the API "shutdown" command). */
void pn_rt_set_exit_check(struct pn_rt *rt, bool (*check)(void *arg), void *arg);
/* Runs until SIGINT/SIGTERM, pn_rt_stop() or the exit check. 0 or -errno. */
int pn_rt_run(struct pn_rt *rt);
void pn_rt_stop(struct pn_rt *rt);
/* Log sink: "2026-11-25T09:00:00.123Z info  message" on stderr, installed by pn_rt_new. */

#ifdef __cplusplus
}
#endif
#endif
