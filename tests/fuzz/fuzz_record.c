/* libFuzzer target: a reachability record from the network, pn_record_decode_verify()
 * (and pn_record_decode_known(), which supernodes use on bytes their store holds).
 *
 * Records reach a supernode in PUBLISH and a client in LOOKUP_RESULT, so every byte is
 * attacker-chosen. Verified against the documented test-vector root (seed 32 x 0x01), at a
 * time inside the vector's validity, at 0 and at the far future, so every verdict path runs.
 * Invariant: an accepted record honours the limits the rest of the code relies on. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/keys.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *root_pk(void)
{
	static struct pn_keys root;
	static int ready;

	if (!ready) {
		uint8_t seed[PN_SEED];

		if (sodium_init() < 0)
			abort();
		memset(seed, 0x01, sizeof(seed));
		if (pn_keys_from_seed(&root, seed))
			abort();
		ready = 1;
	}
	return root.sign_pk;
}

static void check(const uint8_t *data, size_t size, uint64_t now)
{
	struct pn_record r;
	struct pn_record k;
	int rc = pn_record_decode_verify(&r, data, size, root_pk(), now);
	int kc = pn_record_decode_known(&k, data, size, now);

	/* The shortcut for stored bytes: never a verdict decode_verify does not have, and on
	 * bytes that verify it agrees exactly (only the signature checks are skipped). */
	if (kc != 0 && kc != -EBADMSG && kc != -EKEYEXPIRED)
		abort();
	if (rc == 0 && (kc != 0 || memcmp(&r, &k, sizeof(r)) != 0))
		abort();

	switch (rc) {
	case 0:
		if (r.n_sn > PN_REC_MAX_SN || r.expires < now || size > PN_REC_MAX ||
		    !(r.cert.flags & PN_CERT_DEVICE) || now < r.cert.not_before ||
		    now > r.cert.not_after)
			abort();
		break;
	case -EBADMSG:
	case -EKEYEXPIRED:
	case -EPERM:
		break;
	default:
		abort(); /* an error code the header does not document */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 1700001000u);
	check(data, size, 0);
	check(data, size, UINT64_MAX);
	return 0;
}
