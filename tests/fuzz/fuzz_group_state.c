/* libFuzzer target: GROUP_STATE chunks (pn_group_state_decode) fed to one reassembler
 * (pn_group_asm_add), as a device receives a snapshot from the network.
 *
 * The input is a sequence of frames, each prefixed by a u16 big-endian length. Checked
 * besides "does not crash": a decoded chunk re-encodes from its own fields within the
 * frame limit; a completed snapshot passes pn_group_check and re-encodes into chunks that
 * reassemble into the same state; the judge never accepts a state that fails the check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/group.h"
#include "wire/wire.h"

static struct pn_group_chunk ck, ck2;
static struct pn_group_asm a, a2;
static struct pn_group g;
static uint8_t buf[PN_FRAME_MAX];

static void reencode(const struct pn_group *st)
{
	static const uint8_t uid[16] = {9};
	unsigned first = 0, next;
	size_t len;

	memset(&a2, 0, sizeof(a2));
	do {
		if (pn_group_state_encode(st, uid, first, buf, sizeof(buf), &len, &next) ||
		    pn_group_state_decode(&ck2, buf, len))
			abort();
		int rc = pn_group_asm_add(&a2, &ck2);
		if (rc < 0 || (rc == 1) != (next == st->n))
			abort();
		first = next;
	} while (first < st->n);
	if (a2.g.n != st->n || a2.g.version != st->version ||
	    memcmp(a2.g.members, st->members, sizeof(st->members[0]) * st->n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&a, 0, sizeof(a));
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		int rc;

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		rc = pn_group_state_decode(&ck, data, n);
		data += n;
		size -= n;
		if (rc)
			continue;
		if (ck.total > PN_GROUP_MEMBERS_MAX || ck.first + ck.n > ck.total)
			abort();
		rc = pn_group_asm_add(&a, &ck);
		if (rc != 1)
			continue;
		g = a.g;
		if (pn_group_check(&g))
			abort();
		reencode(&g);
		/* a valid state from its admin, inviting "alice", is accepted from a contact */
		if (pn_group_has(&g, "alice") &&
		    pn_group_judge_state(NULL, &g, g.admin, "alice", true) != PN_GROUP_ACCEPT)
			abort();
	}
	return 0;
}
