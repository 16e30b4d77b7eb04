/* libFuzzer target: pn_wav_read (src/audio/wav.c) on arbitrary file contents — libsndfile's
 * header parsing, our chunked reading (the header's frame count must not size anything),
 * the channel mix and the speexdsp resampler at whatever rate the header claims.
 * The input is written to a memfd and opened by its /proc path. Invariant besides "no
 * crash": on success the output is non-empty and no longer than the resampled input can
 * be (the file's bytes bound the frames it holds). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audio/wav.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet_sink(void *arg, enum pn_log_level lvl, const char *msg)
{
	(void)arg;
	(void)lvl;
	(void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	char path[64];
	int16_t *pcm = NULL;
	size_t n = 0;
	int fd;

	if (!init) {
		pn_log_set_sink(quiet_sink, NULL);
		init = 1;
	}
	fd = memfd_create("fuzz-wav", 0);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (pn_wav_read(path, &pcm, &n) == 0) {
		/* at most size bytes of 1-byte samples at >= 1000 Hz, resampled to 48 kHz */
		if (!n || n > size * 48 + 1024)
			abort();
		free(pcm);
	}
	close(fd);
	return 0;
}
