/* libFuzzer target: a Noise responder reading attacker-chosen first messages.
 *
 * 1. IK responder reads the input as message 1 (the path every unauthenticated packet to
 *    a supernode takes).
 * 2. XX responder reads the input as message 1 (no MAC yet, so it succeeds for >= 32
 *    bytes), answers, then reads the same input as message 3.
 * 3. A genuine IK message 1 carrying the input as payload, with one byte altered at a
 *    position chosen by the input: reaches the decrypt paths with a valid prefix.
 * Invariant checked: any read error leaves the handshake failed, never half-usable. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keys.h"
#include "crypto/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MSG_CAP = PN_NOISE_MAX_MSG + 1 };

static struct pn_keys ini_keys, resp_keys;
static uint8_t payload[MSG_CAP], msg[MSG_CAP];

static void keys_once(void)
{
	static int ready;
	uint8_t seed[PN_SEED];

	if (ready)
		return;
	memset(seed, 0x11, sizeof(seed));
	if (pn_keys_from_seed(&ini_keys, seed))
		abort();
	memset(seed, 0x22, sizeof(seed));
	if (pn_keys_from_seed(&resp_keys, seed))
		abort();
	ready = 1;
}

static void check_read(struct pn_noise_hs *hs, const uint8_t *m, size_t len)
{
	size_t n;
	int err = pn_noise_hs_read(hs, m, len, payload, sizeof(payload), &n);

	if (err == 0 && n > len)
		abort();
	if (err != 0 && err != -EPROTO && !hs->failed)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t e_r[32] = {0x44}, e_i[32] = {0x33};
	struct pn_noise_hs hs, ini;
	size_t n;

	keys_once();

	/* 1. IK message 1 */
	if (pn_noise_hs_init(&hs, "IK", false, NULL, 0, resp_keys.dh_sk, NULL, e_r))
		abort();
	check_read(&hs, data, size);
	pn_noise_hs_wipe(&hs);

	/* 2. XX messages 1 and 3 */
	if (pn_noise_hs_init(&hs, "XX", false, NULL, 0, resp_keys.dh_sk, NULL, e_r))
		abort();
	check_read(&hs, data, size);
	if (!hs.failed && pn_noise_hs_my_turn(&hs) &&
	    pn_noise_hs_write(&hs, NULL, 0, msg, sizeof(msg), &n) == 0)
		check_read(&hs, data, size);
	pn_noise_hs_wipe(&hs);

	/* 3. genuine IK message 1, one byte altered */
	if (size == 0 || size > 1024)
		return 0;
	if (pn_noise_hs_init(&ini, "IK", true, NULL, 0, ini_keys.dh_sk, resp_keys.dh_pk, e_i) ||
	    pn_noise_hs_init(&hs, "IK", false, NULL, 0, resp_keys.dh_sk, NULL, e_r))
		abort();
	if (pn_noise_hs_write(&ini, data + 1, size - 1, msg, sizeof(msg), &n))
		abort();
	msg[data[0] % n] ^= (uint8_t)(data[size - 1] | 1);
	check_read(&hs, msg, n);
	if (!hs.failed)
		abort(); /* a modified message must never be accepted */
	pn_noise_hs_wipe(&ini);
	pn_noise_hs_wipe(&hs);
	return 0;
}
