/* The environment interface: everything the sans-I/O protocol core needs from the outside
 * world. The libuv runtime (src/runtime) and the simulator (src/sim) are the two
 * implementations. Protocol code never calls sockets, clocks or an event loop itself.
 *
 * Timers are pull-based (the ngtcp2 style): every node exposes next_deadline() and tick();
 * the host calls tick() once now_ms() >= next_deadline() and after every input. */
#ifndef PARLEY_ENV_H
#define PARLEY_ENV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { PN_AF_INET = 4, PN_AF_INET6 = 6 };

/* A UDP endpoint, independent of the host's socket API. ip holds 4 or 16 bytes. */
struct pn_addr {
	uint8_t family; /* PN_AF_INET or PN_AF_INET6; 0 = unset */
	uint8_t ip[16];
	uint16_t port;
};

#define PN_ADDR_STRLEN 56

struct pn_env {
	void *ctx;
	/* Monotonic milliseconds. */
	uint64_t (*now_ms)(void *ctx);
	/* Unix time in seconds (certificate validity). */
	uint64_t (*wall_s)(void *ctx);
	/* Fill buf with random bytes (the simulator makes these deterministic from a seed). */
	void (*random)(void *ctx, void *buf, size_t len);
	/* Send one datagram. Returns 0 or a negative errno; a datagram may be lost either way. */
	int (*send)(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len);
	/* Optional (NULL: the host cannot tell). The host's own addresses, for host
	 * candidates (src/nat/ice.h): every interface's IPv4 and IPv6 addresses (not
	 * loopback, not IPv6 link-local) that the node's socket can send from, each with the
	 * node's UDP port. Writes at most max into out, returns how many. */
	unsigned (*local_addrs)(void *ctx, struct pn_addr *out, unsigned max);
};

/* The host side of every node (login server, supernode, client): how a runtime or the
 * simulator drives it. */
struct pn_node_ops {
	void (*recv)(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len);
	/* Absolute now_ms() value at which tick() wants to run; UINT64_MAX for never. */
	uint64_t (*next_deadline)(void *node);
	void (*tick)(void *node);
};

#ifdef __cplusplus
}
#endif
#endif
