/* libFuzzer target: certificate decode and verify, and revocation notice decode and verify,
 * on arbitrary bytes.
 *
 * Besides "does not crash", it checks two properties: whatever decodes re-encodes to the
 * exact input (the encoding is canonical, so a signature over it means one thing), and
 * nothing the fuzzer makes verifies under the root unless it came from the root. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cert.h"
#include "crypto/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *root_pk(void)
{
	static struct pn_keys root;
	static int ready;

	if (!ready) {
		uint8_t seed[PN_SEED];

		memset(seed, 0x01, sizeof(seed)); /* the documented test-vector root */
		if (pn_keys_from_seed(&root, seed))
			abort();
		ready = 1;
	}
	return root.sign_pk;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pn_cert c;
	struct pn_revocation rv;
	uint8_t again[PN_CERT_MAX];
	int n;

	/* a notice the fuzzer makes never carries the root's signature */
	if (pn_revocation_decode_verify(&rv, data, size, root_pk()) == 0)
		abort();
	if (pn_cert_decode(&c, data, size) != 0)
		return 0;
	n = pn_cert_encode(&c, again, sizeof(again));
	if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
		abort();
	/* Exercise every verdict: inside the validity window, before it, and each role. */
	(void)pn_cert_verify(&c, root_pk(), c.not_before, PN_CERT_DEVICE);
	(void)pn_cert_verify(&c, root_pk(), 0, 0);
	(void)pn_cert_verify(&c, root_pk(), UINT64_MAX, PN_CERT_SUPERNODE | PN_CERT_LOGIN);
	return 0;
}
