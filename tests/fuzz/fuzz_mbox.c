/* libFuzzer target: the mailbox formats (src/wire/mbox.c). The first input byte picks the
 * decoder; the rest is attacker-chosen bytes as they reach a supernode (envelopes in
 * MB_STORE, acknowledgements in MB_ACK/MB_DEL, passes) or a client (envelopes from its
 * mailbox, receipts in MB_RECEIPT). Keys are the documented vector keys (seeds 01 root,
 * 02 alice, 04 bob, 05 supernode), so an input built from the vector gets past the
 * structure checks into the cryptography.
 * Invariants: an accepted envelope's lengths stay inside the buffer; an opened one yields
 * no more plaintext than its ciphertext holds. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/keys.h"
#include "wire/mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pn_keys root, bob;

static void init(void)
{
	static int ready;
	uint8_t seed[PN_SEED];

	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	memset(seed, 0x01, sizeof(seed));
	if (pn_keys_from_seed(&root, seed))
		abort();
	memset(seed, 0x04, sizeof(seed));
	if (pn_keys_from_seed(&bob, seed))
		abort();
	ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pt[PN_MB_ENV_MAX], mid[32], entry[16], signer[32];
	size_t pl;

	init();
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: {
		struct pn_mb_env e;
		if (pn_mb_env_decode(&e, data + 1, size - 1) == 0) {
			if (e.ct + e.ct_len > data + size || e.cert + e.cert_len > data + size ||
			    e.ad_len > size - 1)
				abort();
			pn_mb_cert_was_valid(&e.sender, root.sign_pk, PN_CERT_DEVICE);
			if (pn_mb_env_open(&e, data + 1, &bob, pt, sizeof(pt), &pl) == 0 &&
			    pl + 16 != e.ct_len)
				abort();
		}
		break;
	}
	case 1:
		pn_mb_key(mid, "bob");
		memset(entry, 0x11, sizeof(entry));
		pn_mb_receipt_verify(data + 1, size - 1, root.sign_pk, false, 1700001000, mid, entry,
				     NULL, signer);
		pn_mb_receipt_verify(data + 1, size - 1, root.sign_pk, true, 1700001000, mid, entry,
				     NULL, signer);
		break;
	case 2: {
		struct pn_mb_ack a;
		if (pn_mb_ack_verify(&a, data + 1, size - 1, root.sign_pk, 1700001000) == 0 &&
		    a.n > PN_MB_ACK_IDS)
			abort();
		break;
	}
	default:
		if (size - 1 >= PN_MB_PASS_LEN)
			pn_mb_pass_verify(data + 1, "bob", "alice", bob.sign_pk, 1700001000);
		break;
	}
	return 0;
}
