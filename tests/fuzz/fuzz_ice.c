/* libFuzzer target: direct-path frames (e2e frame 0x47, src/nat/ice.c) on arbitrary bytes,
 * and the state machine fed whatever they decode to.
 *
 * Besides "does not crash": a frame that decodes re-encodes to the same bytes (one
 * encoding per frame; STREAM filler is zeros on the wire, so only its length counts), and
 * the state machine never selects an address that was neither a candidate nor the source
 * of a check, and never wants to run in the past for ever (poll terminates). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "nat/ice.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pn_addr from = {PN_AF_INET, {198, 18, 0, 7}, 40000};
	struct pn_ice_frame f;
	struct pn_ice ice;
	struct pn_ice_out o;
	uint8_t buf[PN_FRAME_MAX];
	int n = -1;
	uint64_t now = 1000;

	if (pn_ice_frame_decode(&f, data, size))
		return 0;
	switch (f.kind) {
	case PN_ICE_CANDS:
		n = pn_ice_cands_encode(buf, sizeof(buf), f.gen, f.flags, f.cands, f.n);
		break;
	case PN_ICE_CHECK:
	case PN_ICE_CHECK_OK:
		n = pn_ice_check_encode(buf, sizeof(buf), f.kind == PN_ICE_CHECK_OK, f.tid, f.flags,
					&f.mapped);
		break;
	case PN_ICE_STREAM:
		n = pn_ice_stream_encode(buf, sizeof(buf), f.seq, f.filler);
		break;
	}
	if (n < 0 || (f.kind != PN_ICE_STREAM && ((size_t)n != size || memcmp(buf, data, size) != 0)))
		abort();

	pn_ice_init(&ice, data[size - 1] & 1);
	if (f.kind == PN_ICE_CANDS)
		pn_ice_set_remote(&ice, f.cands, f.n, 3, now);
	else if (f.kind == PN_ICE_CHECK)
		pn_ice_on_check(&ice, now, &from, f.flags);
	for (int step = 0; step < 200; step++) {
		int k = 0;
		while (pn_ice_poll(&ice, now, &o)) {
			if (++k > 1000)
				abort(); /* poll must run dry */
			if (f.kind == PN_ICE_CHECK_OK || step % 3 == 0)
				pn_ice_on_ok(&ice, now, &o.to, f.kind == PN_ICE_CHECK_OK ? f.tid : o.tid,
					     f.flags | o.flags, &f.mapped);
		}
		now += 37;
	}
	if (pn_ice_selected(&ice) && !pn_ice_knows(&ice, pn_ice_selected(&ice)))
		abort();
	return 0;
}
