/* Helpers for simulator scenarios: a whole parley network (login server, supernodes,
 * clients) inside one pn_sim, commanded through the same JSON requests as the API. */
#ifndef PARLEY_TESTS_SCENARIO_H
#define PARLEY_TESTS_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>

#include "parley/client.h"
#include "parley/login.h"
#include "parley/network.h"
#include "crypto/cert.h"
#include "parley/supernode.h"
#include "sim/sim.h"

/* 128 clients: the group scenario (test_groups.c) has 100 members and more */
enum { SC_MAX_CLIENTS = 128, SC_MAX_EVENTS = 16384, SC_MAX_SNS = 16 };

struct sc_event {
	int client;
	char name[32];
	json_t *data;
	uint64_t at;
};

struct sc_net {
	struct pn_sim *sim;
	struct pn_network net;
	struct pn_login_server *login;
	struct pn_supernode *sn;      /* = sns[0] */
	struct pn_sim_host *sn_host;  /* = sn_hosts[0] */
	struct pn_supernode *sns[SC_MAX_SNS];
	struct pn_sim_host *sn_hosts[SC_MAX_SNS];
	unsigned n_sns;
	uint8_t sn_seed[SC_MAX_SNS][32];
	uint8_t sn_cert[SC_MAX_SNS][PN_CERT_MAX];
	size_t sn_cert_len[SC_MAX_SNS];
	struct pn_client *clients[SC_MAX_CLIENTS];
	struct pn_sim_host *client_hosts[SC_MAX_CLIENTS];
	unsigned n_clients;
	struct sc_event events[SC_MAX_EVENTS];
	unsigned n_events;
	uint8_t root_seed[32];
	unsigned echo_mask; /* bit i: client i is an echo test service (set before adding it) */
};

struct sc_reply {
	bool done;
	int err;
	char code[64];
	json_t *result;
	uint64_t at;
	struct sc_net *n;
};

/* Builds login server + one supernode; link as given. 0 or -errno. */
int sc_net_init(struct sc_net *n, uint64_t seed, const struct pn_sim_link *link);
/* count supernodes at 198.18.<i+10>.2:7701, all in the network file. */
int sc_net_init_multi(struct sc_net *n, uint64_t seed, const struct pn_sim_link *link,
		      unsigned count);
int sc_net_add_client(struct sc_net *n, const char *addr);
/* Replaces supernode i by a fresh process with the same key and certificate: everything
 * it held in memory (sessions, records) is gone, as after a crash and restart. */
int sc_restart_supernode(struct sc_net *n, unsigned i);
/* A client whose network file lists supernode sn_index first (its primary). */
int sc_net_add_client_at(struct sc_net *n, const char *addr, unsigned sn_index);
void sc_net_free(struct sc_net *n);
/* Runs cmd on client i until it replies or limit_ms of virtual time passes. The reply's
 * result is owned by r (json_decref it, or sc_reply_clear). */
bool sc_call(struct sc_net *n, int i, const char *cmd, json_t *args, struct sc_reply *r,
	     uint64_t limit_ms);
void sc_reply_clear(struct sc_reply *r);
/* Runs until client i has seen an event named name (from event index *from on), returns its
 * index or -1. */
int sc_wait_event(struct sc_net *n, int i, const char *name, unsigned from, uint64_t limit_ms);

/* Story steps shared by the scenario files; they assert (cmocka) on every step.
 * sc_args2: a JSON object of one or two string pairs (k2 NULL for one).
 * sc_bring_up: clients 0 (alice) and 1 (bob), registered, logged in, online.
 * sc_up_user: registers and logs in `name` on client i.
 * sc_exchange: from sends text to to_name (client to); asserts received once and the
 * receipt; returns the virtual time of the delivered event. */
json_t *sc_args2(const char *k1, const char *v1, const char *k2, const char *v2);
void sc_bring_up(struct sc_net *n);
void sc_accept_sender(struct sc_net *n, int from, int to);
void sc_up_user(struct sc_net *n, int i, const char *name);
uint64_t sc_exchange(struct sc_net *n, int from, int to, const char *to_name, const char *text);

#endif
