/* wavcmp REF DEG [--skip-ms N]: scores DEG (what came out of a call) against REF (what
 * went in) with the call quality measure of src/call/quality.c and prints one JSON line
 * {"ncc": ..., "bad_pct": ..., "segsnr_db": ..., "delay_ms": ..., "segments": ...}.
 * --skip-ms drops the first N ms of DEG (a known delay, e.g. the echo service's).
 * Exit status 0, or 1 when a file cannot be read or REF holds no speech. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/wav.h"
#include "call/quality.h"

int main(int argc, char **argv)
{
	int16_t *ref, *deg;
	size_t nref, ndeg, skip = 0;
	struct pn_quality q;

	if (argc == 5 && strcmp(argv[3], "--skip-ms") == 0)
		skip = (size_t)strtoul(argv[4], NULL, 10) * 48;
	else if (argc != 3) {
		fprintf(stderr, "usage: wavcmp REF DEG [--skip-ms N]\n");
		return 2;
	}
	if (pn_wav_read(argv[1], &ref, &nref) || pn_wav_read(argv[2], &deg, &ndeg)) {
		fprintf(stderr, "wavcmp: cannot read the files\n");
		return 1;
	}
	if (skip >= ndeg || pn_quality_compare(ref, nref, deg + skip, ndeg - skip, &q)) {
		fprintf(stderr, "wavcmp: nothing to compare\n");
		return 1;
	}
	printf("{\"ncc\": %.4f, \"bad_pct\": %.2f, \"segsnr_db\": %.2f, \"delay_ms\": %.1f, "
	       "\"segments\": %d}\n",
	       q.ncc_mean, q.bad_pct, q.segsnr_db, q.delay_ms, q.segments);
	free(ref);
	free(deg);
	return 0;
}
