/* A discrete-event network simulator: virtual time, in-memory links with configurable
 * delay, jitter and loss, deterministic from a seed. It implements struct pn_env for every
 * simulated host and drives the same sans-I/O nodes the runtime drives. */
#ifndef PARLEY_SIM_H
#define PARLEY_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "parley/env.h"

struct pn_sim;
struct pn_sim_host;

struct pn_sim_link {
	uint32_t delay_ms;  /* one-way base delay */
	uint32_t jitter_ms; /* uniform extra delay in [0, jitter_ms] (may reorder) */
	double loss;        /* probability a datagram is dropped, 0..1 */
};

struct pn_sim_stats {
	uint64_t sent, delivered, dropped_loss, dropped_nohost, events;
};

/* start_wall_s: the virtual wall clock at t=0 (certificate validity). */
int pn_sim_new(struct pn_sim **out, uint64_t seed, uint64_t start_wall_s);
void pn_sim_free(struct pn_sim *s); /* does not free the nodes; NULL ok */
/* Adds a host at addr (unique). The returned env is owned by the sim. */
int pn_sim_host_add(struct pn_sim *s, const struct pn_addr *addr, struct pn_sim_host **out);
const struct pn_env *pn_sim_host_env(struct pn_sim_host *h);
void pn_sim_host_set_node(struct pn_sim_host *h, void *node, const struct pn_node_ops *ops);
/* A host that is down drops everything sent to it and does not tick. */
void pn_sim_host_set_up(struct pn_sim_host *h, bool up);
/* Default link for every pair; per-pair override (directional). */
void pn_sim_set_default_link(struct pn_sim *s, const struct pn_sim_link *l);
int pn_sim_set_link(struct pn_sim *s, const struct pn_addr *from, const struct pn_addr *to,
		    const struct pn_sim_link *l);
/* Optional tap on every delivered datagram (tests inspect what the wire carries). */
void pn_sim_set_tap(struct pn_sim *s,
		    void (*tap)(void *arg, const struct pn_addr *from, const struct pn_addr *to,
				const uint8_t *buf, size_t len),
		    void *arg);

uint64_t pn_sim_now(const struct pn_sim *s); /* virtual ms since start */
/* Processes events (deliveries and node deadlines) in time order until virtual time t.
 * Returns the number of events processed. */
uint64_t pn_sim_run_until(struct pn_sim *s, uint64_t t_ms);
/* Runs until pred(arg) is true (checked after each event) or virtual time limit_ms; true if
 * pred became true. */
bool pn_sim_run_while_not(struct pn_sim *s, bool (*pred)(void *arg), void *arg,
			  uint64_t limit_ms);
void pn_sim_get_stats(const struct pn_sim *s, struct pn_sim_stats *st);

/* ---- NAT (RFC 4787 behaviours, for NAT traversal scenarios) ---- */
enum pn_sim_nat_kind {
	PN_SIM_NAT_FULLCONE = 1,  /* endpoint-independent mapping and filtering */
	PN_SIM_NAT_PRC = 2,       /* endpoint-independent mapping, address-and-port filtering */
	PN_SIM_NAT_SYMMETRIC = 3, /* a new public port per destination, address-and-port filtering */
};
/* Puts host h (at its private address) behind a NAT whose public IP is pub's (port
 * ignored): what it sends leaves from pub's IP and a mapped port (from 40000 up, one
 * counter for the whole simulation), and a datagram to a mapped port reaches it when the
 * kind's filtering lets it in. Mappings never expire. No hairpinning. 0 or -EINVAL. */
int pn_sim_host_set_nat(struct pn_sim_host *h, const struct pn_addr *pub,
			enum pn_sim_nat_kind kind);

/* ---- scale and latency model (see docs/SIMULATOR.md) ---- */

/* Re-reads one host's next_deadline() now. Safe inside a node callback: a test or driver
 * node that drives another node from its own tick() or recv() touches that node's host
 * afterwards. O(log hosts). */
void pn_sim_host_touch(struct pn_sim_host *h);
/* By default every run starts by re-reading every host's deadline (O(hosts)), so nodes
 * driven from outside between runs need no care. A caller with many hosts and many short
 * runs can turn this off (on = false) and then must pn_sim_host_touch() each host whose
 * node it drove from outside. */
void pn_sim_set_refresh_all(struct pn_sim *s, bool on);
/* Location latency model: a host gets a position on a plane and an access (last-mile)
 * delay, all in milliseconds of one-way delay. A datagram between two located hosts that
 * use the default link takes default delay + Euclidean distance + access(from) +
 * access(to), rounded to the ms, plus the default jitter. A per-pair link set with
 * pn_sim_set_link replaces the whole model for that direction. |x|, |y| < 1e6 and
 * 0 <= access < 1e6; -EINVAL otherwise (also NaN). */
int pn_sim_host_set_location(struct pn_sim_host *h, double x_ms, double y_ms,
			     double access_ms);
/* The one-way delay from one host to another without jitter (what a send would get). */
uint64_t pn_sim_path_delay(const struct pn_sim *s, const struct pn_sim_host *from,
			   const struct pn_sim_host *to);
/* The host at addr, or NULL. */
struct pn_sim_host *pn_sim_host_find(struct pn_sim *s, const struct pn_addr *addr);

#endif
