/* libFuzzer target: history-transfer frames (src/im/histsync) on arbitrary bytes.
 *
 * Besides "does not crash": a frame pn_hist_decode accepts re-encodes, item by item, to
 * exactly the same bytes (the format has one spelling), the callback sees only valid
 * items, and HIST_ACK decoding accepts exactly 5-byte frames of its type. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/histsync.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rebuild {
	struct pn_hist_wr hw;
	bool ok;
};

static int add_cb(void *arg, const struct pn_hist_item *it)
{
	struct rebuild *rb = arg;

	if (pn_username_valid(it->msg.peer) || !pn_hist_add(&rb->hw, it))
		rb->ok = false;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[70000];
	struct rebuild rb = {.ok = true};
	uint32_t seq, seq2;
	bool last;

	if (pn_hist_decode(data, size, &seq, &last, NULL, NULL) == 0) {
		pn_hist_begin(&rb.hw, out, sizeof(out), seq);
		if (pn_hist_decode(data, size, &seq2, &last, add_cb, &rb) != 0 || seq2 != seq)
			abort();
		if (!rb.ok)
			abort();
		size_t n = pn_hist_finish(&rb.hw, last);
		if (n != size || memcmp(out, data, size) != 0)
			abort();
	}
	if (pn_hist_ack_decode(data, size, &seq) == 0 && (size != 5 || data[0] != PN_F_HIST_ACK))
		abort();
	return 0;
}
