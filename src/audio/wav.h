/* WAV (and any other libsndfile format) in and out, for headless calls and tests.
 * Reading converts to what the media pipeline takes: 48 kHz, mono, int16 — channels are
 * averaged, other rates go through speexdsp's resampler (quality 8). Writing produces a
 * 16-bit PCM WAV. File I/O is allowed in the core (see docs/ARCHITECTURE.md). */
#ifndef PARLEY_AUDIO_WAV_H
#define PARLEY_AUDIO_WAV_H

#include <stddef.h>
#include <stdint.h>

enum { PN_WAV_RATE = 48000, PN_WAV_MAX_SECONDS = 3600 };

/* Reads path into a new buffer (*pcm, free() it) of *n samples at 48 kHz mono.
 * Returns 0, -ENOENT/-EIO (open/read failed; the reason is logged), -EINVAL (no audio,
 * longer than PN_WAV_MAX_SECONDS, or an unusable rate/channel count), -ENOMEM. */
int pn_wav_read(const char *path, int16_t **pcm, size_t *n);
/* Writes n mono int16 samples at rate Hz as 16-bit PCM WAV. 0, -EIO or -EINVAL. */
int pn_wav_write(const char *path, const int16_t *pcm, size_t n, int rate);
/* Resamples mono int16 from rate_in to rate_out into a new buffer; 0, -EINVAL, -ENOMEM. */
int pn_resample(const int16_t *in, size_t n, int rate_in, int rate_out, int16_t **out,
		size_t *nout);

#endif
