/* Identity keys derived from one seed, so a device stores (and wipes) a single secret. */
#include "crypto/keys.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

int pn_keys_from_seed(struct pn_keys *k, const uint8_t seed[PN_SEED])
{
	crypto_generichash_blake2b_state st;
	uint8_t h[crypto_generichash_blake2b_BYTES_MAX];
	int err = 0;

	if (!k || !seed)
		return -EINVAL;
	if (sodium_init() < 0) {
		err = -EINVAL;
		goto out;
	}
	/* Copy first: seed may alias k->seed. */
	memmove(k->seed, seed, PN_SEED);
	if (crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, k->seed) != 0) {
		err = -EINVAL;
		goto out;
	}
	/* A separate hash keeps the X25519 key independent of the Ed25519 scalar rather than
	 * converting one into the other. */
	crypto_generichash_blake2b_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_blake2b_update(&st, k->seed, PN_SEED);
	crypto_generichash_blake2b_update(&st, (const uint8_t *)"dh", 2);
	crypto_generichash_blake2b_final(&st, h, sizeof(h));
	memcpy(k->dh_sk, h, PN_DH_SK);
	crypto_scalarmult_base(k->dh_pk, k->dh_sk);
out:
	sodium_memzero(h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
	if (err)
		pn_keys_wipe(k);
	return err;
}

void pn_keys_wipe(struct pn_keys *k)
{
	if (k)
		sodium_memzero(k, sizeof(*k));
}

void pn_device_id(uint8_t out[PN_DEVICE_ID], const uint8_t sign_pk[PN_SIGN_PK])
{
	uint8_t h[32];

	/* A 32-byte BLAKE2b truncated, not BLAKE2b-128: the output length is a parameter of
	 * BLAKE2b, and the two give different bytes. */
	crypto_generichash_blake2b(h, sizeof(h), sign_pk, PN_SIGN_PK, NULL, 0);
	memcpy(out, h, PN_DEVICE_ID);
}

bool pn_ct_eq(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}
