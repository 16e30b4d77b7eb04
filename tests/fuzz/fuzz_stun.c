/* libFuzzer target: STUN parsing (src/nat/stun) on arbitrary bytes.
 *
 * Besides "does not crash", it checks the properties the supernode relies on: whatever
 * pn_stun_parse accepts passes the cheap pn_stun_is_msg test; the server's answer, when
 * there is one, parses as a response to the same transaction; and pn_stun_serve never
 * sends more bytes than it received (no amplification). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "nat/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t sent_len;
static int sent_n;

static int count_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	sent_n++;
	sent_len = len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pn_addr from4 = {PN_AF_INET, {198, 18, 0, 1}, 40000};
	static const struct pn_addr from6 = {
		PN_AF_INET6, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 5};
	struct pn_env env = {.send = count_send};
	struct pn_stun_msg m, r;
	uint8_t ans[PN_STUN_ANSWER_MAX];
	size_t an;
	int rc;

	rc = pn_stun_parse(&m, data, size);
	if (rc == 0 && !pn_stun_is_msg(data, size))
		abort();
	if (size >= PN_STUN_HDR)
		(void)pn_stun_parse_response(&r, data, size, data + 8);
	for (int k = 0; k < 2; k++) {
		const struct pn_addr *from = k ? &from6 : &from4;

		if (pn_stun_answer(ans, sizeof(ans), &an, data, size, from) == 0) {
			if (rc != 0 || pn_stun_parse(&r, ans, an) != 0)
				abort();
			if (memcmp(r.tid, m.tid, PN_STUN_TID) != 0)
				abort();
			if (r.type == PN_STUN_BINDING_SUCCESS &&
			    (pn_stun_parse_response(&r, ans, an, m.tid) != 0 ||
			     !pn_addr_eq(pn_stun_mapped(&r), from)))
				abort();
		}
		sent_n = 0;
		if (pn_stun_serve(&env, from, data, size) == 0 && (sent_n != 1 || sent_len > size))
			abort();
		if (sent_n && sent_len > size)
			abort();
	}
	return 0;
}
