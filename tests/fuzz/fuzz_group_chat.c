/* libFuzzer target: GROUP_CHAT frames (pn_group_chat_decode) on arbitrary bytes.
 *
 * Besides "does not crash": whatever decodes re-encodes to the same bytes (one canonical
 * form), and its text is within the limit and free of NUL bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/group.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pn_group_chat m;
	uint8_t out[PN_FRAME_MAX + 64];
	size_t len;

	if (pn_group_chat_decode(&m, data, size))
		return 0;
	if (m.text_len == 0 || m.text_len > PN_GROUP_TEXT_MAX || memchr(m.text, 0, m.text_len))
		abort();
	if (pn_group_chat_encode(&m, out, sizeof(out), &len) || len != size ||
	    memcmp(out, data, size) != 0)
		abort();
	return 0;
}
