/* WAV reading/writing with libsndfile, resampling with speexdsp (see wav.h). */
#include "audio/wav.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>
#include <speex/speex_resampler.h>

#include "base/log.h"

enum { RESAMPLE_QUALITY = 8, CHUNK = 4096 };

int pn_resample(const int16_t *in, size_t n, int rate_in, int rate_out, int16_t **out,
		size_t *nout)
{
	SpeexResamplerState *st;
	int16_t *y;
	size_t cap, pos = 0, done = 0;
	int err;

	if (!in || !out || !nout || rate_in < 1000 || rate_in > 384000 || rate_out < 1000 ||
	    rate_out > 384000)
		return -EINVAL;
	/* Room for the output plus the resampler's tail (flushed below). */
	cap = (size_t)((double)n * rate_out / rate_in) + 1024;
	y = malloc(cap * sizeof(*y));
	if (!y)
		return -ENOMEM;
	st = speex_resampler_init(1, (spx_uint32_t)rate_in, (spx_uint32_t)rate_out,
				  RESAMPLE_QUALITY, &err);
	if (!st) {
		free(y);
		return -ENOMEM;
	}
	/* The filter delays its output by its input latency: skip that much at the start so
	 * the output lines up with the input, and feed zeros at the end to flush it. */
	speex_resampler_skip_zeros(st);
	size_t flush = (size_t)speex_resampler_get_input_latency(st);
	int16_t zeros[CHUNK] = {0};
	size_t total_in = n + flush;
	while (pos < total_in && done < cap) {
		spx_uint32_t ilen = (spx_uint32_t)(total_in - pos < CHUNK ? total_in - pos : CHUNK);
		spx_uint32_t olen = (spx_uint32_t)(cap - done < UINT_MAX ? cap - done : UINT_MAX);
		const int16_t *src = in + pos;
		if (pos >= n)
			src = zeros;
		else if (pos + ilen > n)
			ilen = (spx_uint32_t)(n - pos);
		speex_resampler_process_int(st, 0, src, &ilen, y + done, &olen);
		if (!ilen && !olen)
			break;
		pos += ilen;
		done += olen;
	}
	speex_resampler_destroy(st);
	size_t want = (size_t)((double)n * rate_out / rate_in);
	*nout = done < want ? done : want;
	*out = y;
	return 0;
}

int pn_wav_read(const char *path, int16_t **pcm, size_t *n)
{
	SF_INFO info;
	SNDFILE *f;
	int16_t *chunk = NULL, *mono = NULL;
	size_t frames = 0, cap = 0, max_frames;
	int err = 0;

	if (!path || !pcm || !n)
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	f = sf_open(path, SFM_READ, &info);
	if (!f) {
		pn_log(PN_LOG_WARN, "wav: cannot open `%s': %s", path, sf_strerror(NULL));
		return -ENOENT;
	}
	if (info.channels < 1 || info.channels > 64 || info.samplerate < 1000 ||
	    info.samplerate > 384000) {
		pn_log(PN_LOG_WARN, "wav: `%s': unusable audio (%d channels, %d Hz)", path,
		       info.channels, info.samplerate);
		err = -EINVAL;
		goto out;
	}
	/* Read in chunks and grow with what actually arrives: the header's frame count is
	 * a claim, not a promise, and must not size an allocation. */
	size_t ch = (size_t)info.channels;
	max_frames = (size_t)info.samplerate * PN_WAV_MAX_SECONDS;
	chunk = malloc(CHUNK * ch * sizeof(*chunk));
	if (!chunk) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		sf_count_t got = sf_readf_short(f, chunk, CHUNK);
		if (got <= 0)
			break;
		if (frames + (size_t)got > max_frames) {
			pn_log(PN_LOG_WARN, "wav: `%s': longer than %d s", path,
			       PN_WAV_MAX_SECONDS);
			err = -EINVAL;
			goto out;
		}
		if (frames + (size_t)got > cap) {
			size_t ncap = cap ? cap * 2 : 4 * CHUNK;
			while (ncap < frames + (size_t)got)
				ncap *= 2;
			int16_t *m2 = realloc(mono, ncap * sizeof(*mono));
			if (!m2) {
				err = -ENOMEM;
				goto out;
			}
			mono = m2;
			cap = ncap;
		}
		for (size_t i = 0; i < (size_t)got; i++) {
			long sum = 0;
			for (size_t c = 0; c < ch; c++)
				sum += chunk[i * ch + c];
			mono[frames + i] = (int16_t)(sum / (long)ch);
		}
		frames += (size_t)got;
	}
	if (sf_error(f) != SF_ERR_NO_ERROR) {
		pn_log(PN_LOG_WARN, "wav: `%s': read failed: %s", path, sf_strerror(f));
		err = -EIO;
		goto out;
	}
	if (!frames) {
		pn_log(PN_LOG_WARN, "wav: `%s': no audio", path);
		err = -EINVAL;
		goto out;
	}
	if (info.samplerate == PN_WAV_RATE) {
		*pcm = mono;
		*n = frames;
		mono = NULL;
	} else {
		err = pn_resample(mono, frames, info.samplerate, PN_WAV_RATE, pcm, n);
		if (!err && !*n) { /* a few samples at a high rate: less than one at 48 kHz */
			free(*pcm);
			*pcm = NULL;
			pn_log(PN_LOG_WARN, "wav: `%s': too short", path);
			err = -EINVAL;
		}
	}
out:
	free(chunk);
	free(mono);
	sf_close(f);
	return err;
}

int pn_wav_write(const char *path, const int16_t *pcm, size_t n, int rate)
{
	SF_INFO info = {.samplerate = rate, .channels = 1,
			.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f;
	int err = 0;

	if (!path || (!pcm && n) || rate < 1000 || rate > 384000)
		return -EINVAL;
	f = sf_open(path, SFM_WRITE, &info);
	if (!f) {
		pn_log(PN_LOG_WARN, "wav: cannot create `%s': %s", path, sf_strerror(NULL));
		return -EIO;
	}
	if (sf_write_short(f, pcm, (sf_count_t)n) != (sf_count_t)n) {
		pn_log(PN_LOG_WARN, "wav: `%s': write failed: %s", path, sf_strerror(f));
		err = -EIO;
	}
	if (sf_close(f) != 0)
		err = -EIO;
	return err;
}
