/* libFuzzer target: media packets (src/call/media.c).
 *
 * The first input byte picks the path:
 *   0: the rest is one datagram for pn_media_on_packet (header checks, tag, sizes, replay
 *      window, AEAD: the fuzzer cannot forge a tag, so this exercises the refusals);
 *   1: the rest is a list of (u8 len | u32 seq | len bytes) records, each sealed with the
 *      receiver's real key and fed in, with a playout tick between them: authentic but
 *      arbitrary content reaches the report decoder, the Opus packet checks, the jitter
 *      buffer and the decoder (FEC, PLC, accelerate, expand);
 *   2: the rest goes to pn_media_report_decode.
 * Invariants besides "no crash": every return is 0 or a PN_MEDIA_E* code, and the
 * rejection counters match the refusals returned. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "call/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { LOCAL = 0x11223344, REMOTE = 0x55667788 };

static const uint8_t tx_key[32] = {1}, rx_key[32] = {2};

static void check_counts(struct pn_media *m, uint64_t refused)
{
	struct pn_media_stats st;

	/* Every refusal is counted once; undecodable frames found at playout add to
	 * drop_decode without a refusal. */
	pn_media_stats(m, &st);
	uint64_t pre =
	    st.drop_malformed + st.drop_tag + st.drop_replay + st.drop_old + st.drop_auth;
	if (pre > refused || pre + st.drop_decode < refused)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pn_media *m;
	struct pn_media_report rp;
	uint8_t pkt[PN_MEDIA_HDR + 255 + PN_MEDIA_AEAD_TAG];
	int16_t pcm[PN_MEDIA_FRAME];
	uint64_t refused = 0, now = 0;
	size_t len;
	int r;

	if (size < 1)
		return 0;
	if (data[0] % 3 == 2) {
		pn_media_report_decode(&rp, data + 1, size - 1);
		return 0;
	}
	if (pn_media_new(&m, NULL, tx_key, rx_key, LOCAL, REMOTE) != 0)
		abort();
	if (data[0] % 3 == 0) {
		uint32_t tag;
		pn_media_peek_tag(data + 1, size - 1, &tag);
		r = pn_media_on_packet(m, 0, data + 1, size - 1);
		if (r > 0 || r < PN_MEDIA_EEXHAUSTED)
			abort();
		refused += r != 0;
		pn_media_playout(m, 20, pcm);
	} else {
		size_t pos = 1;
		while (pos + 5 <= size) {
			size_t n = data[pos];
			uint32_t seq = (uint32_t)data[pos + 1] << 24 |
				       (uint32_t)data[pos + 2] << 16 |
				       (uint32_t)data[pos + 3] << 8 | data[pos + 4];
			pos += 5;
			if (n > size - pos)
				n = size - pos;
			/* the sender's key for this receiver is its rx_key */
			if (pn_media_seal(rx_key, LOCAL, seq, data + pos, n, pkt, sizeof(pkt),
					  &len))
				abort();
			pos += n;
			now += 7;
			r = pn_media_on_packet(m, now, pkt, len);
			if (r > 0 || r < PN_MEDIA_EEXHAUSTED)
				abort();
			refused += r != 0;
			pn_media_playout(m, now, pcm);
			if (pn_media_report(m, now * 50, pkt, sizeof(pkt), &len))
				abort();
		}
	}
	check_counts(m, refused);
	pn_media_free(m);
	return 0;
}
