/* libFuzzer target: GROUP_LEAVE frames (pn_group_leave_decode) on arbitrary bytes: only
 * exactly 33 bytes starting with the type decode, and they re-encode identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/group.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t uid[16], gid[16], out[64];
	size_t len;

	if (pn_group_leave_decode(uid, gid, data, size))
		return 0;
	if (size != 33 || data[0] != PN_F_GROUP_LEAVE)
		abort();
	if (pn_group_leave_encode(uid, gid, out, sizeof(out), &len) || len != size ||
	    memcmp(out, data, size) != 0)
		abort();
	return 0;
}
