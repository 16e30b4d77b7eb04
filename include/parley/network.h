/* The network file: what a client or supernode needs to join a parley network.
 * Text, one "key = value" per line, '#' comments:
 *
 *   version = 1
 *   name = demo
 *   root_key = <64 hex: the root's Ed25519 public key>
 *   login = 127.0.0.1:7700 <64 hex: the login server's X25519 static key>
 *   supernode = 127.0.0.1:7701 [<64 hex X25519 key>]     (repeatable, up to 16)
 *   policy = enrolled                                      (or "open", later issue)
 */
#ifndef PARLEY_NETWORK_H
#define PARLEY_NETWORK_H

#include <stdbool.h>
#include <stdint.h>

#include "parley/env.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { PN_NET_MAX_SUPERNODES = 16, PN_NET_NAME_MAX = 64 };

struct pn_net_peer {
	struct pn_addr addr;
	uint8_t key[32]; /* X25519 static key */
	bool has_key;    /* false: connect with Noise XX and check the certificate instead */
};

struct pn_network {
	char name[PN_NET_NAME_MAX + 1];
	uint8_t root_pk[32];
	struct pn_net_peer login;
	struct pn_net_peer supernodes[PN_NET_MAX_SUPERNODES];
	unsigned n_supernodes;
	bool open_policy;
};

/* Loads path; on error returns -EINVAL/-ENOENT/-EIO and writes a message quoting the
 * offending line into err[errlen]. */
int pn_network_load(struct pn_network *n, const char *path, char *err, size_t errlen);
/* Writes atomically (temp file + rename). 0 or -EIO. */
int pn_network_save(const struct pn_network *n, const char *path);

#ifdef __cplusplus
}
#endif
#endif
