/* Identity keys. A device (and a supernode, and the login server) has an Ed25519 signing
 * key and an X25519 static key (Noise). Both are derived from 32-byte seeds that come from
 * the environment's random source, so the simulator is deterministic. */
#ifndef PARLEY_CRYPTO_KEYS_H
#define PARLEY_CRYPTO_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pn_key_sizes {
	PN_SIGN_PK = 32,
	PN_SIGN_SK = 64,
	PN_SIG = 64,
	PN_DH_PK = 32,
	PN_DH_SK = 32,
	PN_DEVICE_ID = 16,
	PN_SEED = 32,
};

struct pn_keys {
	uint8_t sign_pk[PN_SIGN_PK];
	uint8_t sign_sk[PN_SIGN_SK];
	uint8_t dh_pk[PN_DH_PK];
	uint8_t dh_sk[PN_DH_SK];
	uint8_t seed[PN_SEED]; /* the single secret everything above derives from */
};

/* Derives both key pairs from seed (Ed25519 from seed; X25519 from BLAKE2b(seed || "dh")).
 * Returns 0 or -EINVAL. */
int pn_keys_from_seed(struct pn_keys *k, const uint8_t seed[PN_SEED]);
void pn_keys_wipe(struct pn_keys *k);
/* device id = first 16 bytes of BLAKE2b-256(sign_pk). */
void pn_device_id(uint8_t out[PN_DEVICE_ID], const uint8_t sign_pk[PN_SIGN_PK]);
/* Constant-time equality. */
bool pn_ct_eq(const void *a, const void *b, size_t n);

#endif
