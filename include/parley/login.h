/* The login server node (sans-I/O): registrations, device logins, renewals and user
 * profiles (publish, full-text search) over Noise IK sessions (clients pin its X25519 key from the network file), Argon2id password
 * hashes in an SQLite account store, per-source rate limits. */
#ifndef PARLEY_LOGIN_H
#define PARLEY_LOGIN_H

#include <stdint.h>

#include "parley/env.h"
#include "parley/network.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pn_login_server;

struct pn_login_config {
	const struct pn_env *env;
	const struct pn_network *net; /* bootstrap supernodes handed to clients */
	const char *db_path;          /* SQLite accounts database (":memory:" allowed) */
	uint8_t root_seed[32];        /* the network root signing key seed (secret) */
	uint8_t login_seed[32];       /* the login server's own transport key seed (secret) */
	uint32_t cert_lifetime_s;     /* device certificate lifetime; 0 = 86400 */
	uint64_t pwhash_ops;          /* Argon2id opslimit; 0 = default (see docs) */
	uint64_t pwhash_mem;          /* Argon2id memlimit bytes; 0 = default */
	uint32_t register_per_min;    /* per source host; 0 = default 10 */
	uint32_t login_per_min;       /* per source host; 0 = default 30 */
	uint32_t search_per_min;      /* profile searches per source host; 0 = default 30 */
};

int pn_login_server_new(struct pn_login_server **out, const struct pn_login_config *cfg);
void pn_login_server_free(struct pn_login_server *ls);
extern const struct pn_node_ops pn_login_server_ops;

struct pn_login_stats {
	uint64_t registered, logins, renewals, rejected_rate, rejected_auth, bad_packets;
	uint64_t profiles_set, searches;
};
void pn_login_server_stats(const struct pn_login_server *ls, struct pn_login_stats *st);

#ifdef __cplusplus
}
#endif
#endif
