/* A call's running media: source -> pn_media -> packets, packets -> pn_media -> sink,
 * in 20 ms frames on the owner's clock (see callmedia.h). */
#include "call/callmedia.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>
#include <speex/speex_resampler.h>

#include "audio/dsp.h"
#include "base/log.h"

enum {
	CM_ECHO_FRAMES = PN_CALLMEDIA_ECHO_MS / PN_MEDIA_FRAME_MS,
	CM_MAX_CATCHUP = 5,       /* frames run in one tick after a late wake-up */
	CM_RESYNC_MS = 200,       /* later than this: skip ahead instead of catching up */
	SRC_CHUNK = 256,          /* input frames decoded at a time */
	SRC_FIFO = PN_MEDIA_FRAME + SRC_CHUNK * 8, /* room for a chunk at up to 8x upsampling */
};

struct pn_callmedia {
	struct pn_media *media;
	struct src *src;     /* the file to play, decoded 20 ms at a time */
	SNDFILE *sink;       /* the recording, written as the call goes */
	bool echo;
	int16_t *echo_line; /* CM_ECHO_FRAMES frames, a ring */
	unsigned echo_pos;
	uint64_t next_frame, start;
	uint64_t first_audio_at;
	uint64_t tx_packets, tx_bytes;
	const struct pn_audio_ops *dev; /* non-NULL while the device is open */
	bool dev_in, dev_out;
	struct pn_voice_dsp *dsp;       /* on the device's capture */
	int16_t last_played[PN_MEDIA_FRAME]; /* the echo canceller's reference */
};

/* A file source: decoded, mixed down to mono and resampled to 48 kHz as the call goes, so
 * starting a call costs no more than opening the file however long it is. */
struct src {
	SNDFILE *f;
	int channels;
	SpeexResamplerState *rs; /* NULL when the file is at 48 kHz */
	float in[SRC_CHUNK * 8];  /* one chunk of interleaved input frames */
	int16_t out[SRC_FIFO];    /* resampled, not yet used */
	size_t n_out;
	bool eof;
};

static void src_close(struct src *s)
{
	if (!s)
		return;
	if (s->rs)
		speex_resampler_destroy(s->rs);
	if (s->f)
		sf_close(s->f);
	free(s);
}

static struct src *src_open(const char *path, char *err, size_t cap)
{
	SF_INFO info = {0};
	struct src *s = calloc(1, sizeof(*s));
	int e;

	if (!s) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	s->f = sf_open(path, SFM_READ, &info);
	if (!s->f) {
		snprintf(err, cap, "cannot play %s: %s", path, sf_strerror(NULL));
		goto fail;
	}
	if (info.channels < 1 || info.channels > 8 || info.samplerate < 8000 ||
	    info.samplerate > 192000 || info.frames <= 0) {
		snprintf(err, cap, "cannot play %s: %d channels at %d Hz is not a usable voice file",
			 path, info.channels, info.samplerate);
		goto fail;
	}
	s->channels = info.channels;
	if (info.samplerate != PN_MEDIA_RATE) {
		s->rs = speex_resampler_init(1, (spx_uint32_t)info.samplerate, PN_MEDIA_RATE, 5, &e);
		if (!s->rs) {
			snprintf(err, cap, "cannot play %s: no resampler for %d Hz", path, info.samplerate);
			goto fail;
		}
		speex_resampler_skip_zeros(s->rs);
	}
	return s;
fail:
	src_close(s);
	return NULL;
}

/* Fills pcm with the next frame; zeros after the end of the file. */
static void src_read(struct src *s, int16_t pcm[PN_MEDIA_FRAME])
{
	while (s->n_out < PN_MEDIA_FRAME && !s->eof) {
		int16_t m16[SRC_CHUNK];
		sf_count_t got = sf_readf_float(s->f, s->in, SRC_CHUNK);
		if (got <= 0) {
			s->eof = true;
			break;
		}
		for (sf_count_t i = 0; i < got; i++) {
			float acc = 0;
			for (int ch = 0; ch < s->channels; ch++)
				acc += s->in[i * s->channels + ch];
			acc /= (float)s->channels;
			acc = acc > 1.0f ? 1.0f : acc < -1.0f ? -1.0f : acc;
			m16[i] = (int16_t)(acc * 32767.0f);
		}
		if (!s->rs) {
			memcpy(s->out + s->n_out, m16, (size_t)got * sizeof(int16_t));
			s->n_out += (size_t)got;
		} else {
			spx_uint32_t ilen = (spx_uint32_t)got, olen = (spx_uint32_t)(SRC_FIFO - s->n_out);
			speex_resampler_process_int(s->rs, 0, m16, &ilen, s->out + s->n_out, &olen);
			s->n_out += olen;
		}
	}
	memset(pcm, 0, PN_MEDIA_FRAME * sizeof(int16_t));
	{
		size_t k = s->n_out < PN_MEDIA_FRAME ? s->n_out : PN_MEDIA_FRAME;
		memcpy(pcm, s->out, k * sizeof(int16_t));
		memmove(s->out, s->out + k, (s->n_out - k) * sizeof(int16_t));
		s->n_out -= k;
	}
}

static SNDFILE *open_record(const char *path, char *err, size_t cap)
{
	SF_INFO info = {.samplerate = PN_MEDIA_RATE, .channels = 1,
			.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f = sf_open(path, SFM_WRITE, &info);

	if (!f)
		snprintf(err, cap, "cannot record to %s: %s", path, sf_strerror(NULL));
	return f;
}

int pn_callmedia_check(const char *play, const char *record, char *err, size_t cap)
{
	if (play) {
		struct src *s = src_open(play, err, cap);
		if (!s)
			return -EINVAL;
		src_close(s);
	}
	if (record) {
		/* the recording is created when the call's media starts; here only check the
		 * file can be written */
		FILE *f = fopen(record, "ab");
		if (!f) {
			snprintf(err, cap, "cannot write %s: %s", record, strerror(errno));
			return -EINVAL;
		}
		fclose(f);
	}
	return 0;
}

int pn_callmedia_new(struct pn_callmedia **out, const struct pn_callmedia_config *cfg, char *err,
		     size_t cap)
{
	struct pn_callmedia *m = calloc(1, sizeof(*m));
	uint8_t tx[32], rx[32];
	int rc;

	if (!m) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	pn_media_derive_keys(cfg->secret, cfg->caller, tx, rx);
	rc = pn_media_new(&m->media, NULL, tx, rx, cfg->local_tag, cfg->remote_tag);
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(rx, sizeof(rx));
	if (rc) {
		snprintf(err, cap, "cannot start the media pipeline (%d)", rc);
		goto fail;
	}
	if (cfg->play && !(m->src = src_open(cfg->play, err, cap)))
		goto fail;
	if (cfg->record && !(m->sink = open_record(cfg->record, err, cap)))
		goto fail;
	m->echo = cfg->echo;
	if (m->echo) {
		m->echo_line = calloc(CM_ECHO_FRAMES, PN_MEDIA_FRAME * sizeof(int16_t));
		if (!m->echo_line) {
			snprintf(err, cap, "out of memory");
			goto fail;
		}
	}
	if (cfg->dev && !m->echo && (!m->src || !m->sink)) {
		if (cfg->dev->start(cfg->dev->ctx) == 0) {
			m->dev = cfg->dev;
			m->dev_in = !m->src;
			m->dev_out = !m->sink;
			if (m->dev_in && !(m->dsp = pn_voice_dsp_new(NULL))) {
				snprintf(err, cap, "out of memory");
				goto fail;
			}
		} else {
			pn_warn("call media: no sound device; %s", m->src ? "nothing is played" : "sending silence");
		}
	}
	m->start = m->next_frame = cfg->now;
	*out = m;
	return 0;
fail:
	pn_callmedia_free(m);
	return -EINVAL;
}

void pn_callmedia_free(struct pn_callmedia *m)
{
	if (!m)
		return;
	pn_media_free(m->media);
	if (m->dev)
		m->dev->stop(m->dev->ctx);
	pn_voice_dsp_free(m->dsp);
	src_close(m->src);
	if (m->sink)
		sf_close(m->sink); /* writes the final header */
	free(m->echo_line);
	free(m);
}

uint64_t pn_callmedia_next_deadline(const struct pn_callmedia *m)
{
	return m->next_frame;
}

/* The next 20 ms to send. */
static void capture(struct pn_callmedia *m, int16_t pcm[PN_MEDIA_FRAME])
{
	memset(pcm, 0, PN_MEDIA_FRAME * sizeof(int16_t));
	if (m->echo) {
		memcpy(pcm, m->echo_line + (size_t)m->echo_pos * PN_MEDIA_FRAME,
		       PN_MEDIA_FRAME * sizeof(int16_t));
	} else if (m->src) {
		src_read(m->src, pcm);
	} else if (m->dev_in) {
		/* a frame the device has not delivered yet stays silent */
		if (m->dev->read(m->dev->ctx, pcm))
			pn_voice_dsp_process(m->dsp, pcm, m->last_played, pcm);
	}
}

static void one_frame(struct pn_callmedia *m, uint64_t t, bool hold,
		      void (*send)(void *arg, const uint8_t *pkt, size_t n), void *arg)
{
	int16_t in[PN_MEDIA_FRAME], outp[PN_MEDIA_FRAME];
	uint8_t pkt[PN_MEDIA_PKT_MAX];
	size_t len;
	struct pn_media_stats st;
	uint64_t decoded_before;

	capture(m, in);
	if (!hold && pn_media_send_frame(m->media, t, in, pkt, sizeof(pkt), &len) == 0) {
		m->tx_packets++;
		m->tx_bytes += len;
		send(arg, pkt, len);
	}
	pn_media_stats(m->media, &st);
	decoded_before = st.decoded + st.fec_recovered;
	pn_media_playout(m->media, t, outp);
	if (!m->first_audio_at) {
		pn_media_stats(m->media, &st);
		if (st.decoded + st.fec_recovered > decoded_before)
			m->first_audio_at = t;
	}
	if (m->sink)
		sf_writef_short(m->sink, outp, PN_MEDIA_FRAME);
	if (m->dev_out) {
		m->dev->write(m->dev->ctx, outp);
		memcpy(m->last_played, outp, sizeof(outp));
	}
	if (m->echo) {
		/* what we just heard goes out again CM_ECHO_FRAMES frames from now */
		memcpy(m->echo_line + (size_t)m->echo_pos * PN_MEDIA_FRAME, outp,
		       PN_MEDIA_FRAME * sizeof(int16_t));
		m->echo_pos = (m->echo_pos + 1) % CM_ECHO_FRAMES;
	}
	if (pn_media_report(m->media, t, pkt, sizeof(pkt), &len) == 0 && len)
		send(arg, pkt, len);
}

void pn_callmedia_tick(struct pn_callmedia *m, uint64_t now, bool hold,
		       void (*send)(void *arg, const uint8_t *pkt, size_t n), void *arg)
{
	unsigned n = 0;

	if (now >= m->next_frame + CM_RESYNC_MS) {
		/* we slept far too long (a stalled loop): do not burst, start again from now */
		uint64_t skipped = (now - m->next_frame) / PN_MEDIA_FRAME_MS;
		m->next_frame += skipped * PN_MEDIA_FRAME_MS;
	}
	while (m->next_frame <= now && n++ < CM_MAX_CATCHUP) {
		one_frame(m, m->next_frame, hold, send, arg);
		m->next_frame += PN_MEDIA_FRAME_MS;
	}
}

int pn_callmedia_on_packet(struct pn_callmedia *m, uint64_t now, const uint8_t *pkt, size_t n)
{
	return pn_media_on_packet(m->media, now, pkt, n);
}

double pn_callmedia_mos(const struct pn_callmedia *m)
{
	struct pn_media_stats st;

	pn_media_stats(m->media, &st);
	return st.mos;
}

uint64_t pn_callmedia_first_audio_at(const struct pn_callmedia *m)
{
	return m->first_audio_at;
}

json_t *pn_callmedia_stats_json(const struct pn_callmedia *m)
{
	struct pn_media_stats st;

	pn_media_stats(m->media, &st);
	json_t *j = json_object();
	json_object_set_new(j, "rtt_ms", json_real(st.rtt_ms));
	json_object_set_new(j, "jitter_ms", json_real(st.jitter_ms));
	json_object_set_new(j, "loss_pre_fec", json_real(st.loss_pre_fec));
	json_object_set_new(j, "loss_post_fec", json_real(st.loss_post_fec));
	json_object_set_new(j, "bitrate_bps", json_integer(st.bitrate_bps));
	json_object_set_new(j, "fec", json_boolean(st.fec_on));
	json_object_set_new(j, "jitter_buffer_ms", json_real(st.jb_delay_ms));
	json_object_set_new(j, "jitter_buffer_target_ms", json_real(st.jb_target_ms));
	json_object_set_new(j, "concealed_pct", json_real(st.concealed_pct));
	json_object_set_new(j, "mos", json_real(st.mos));
	json_object_set_new(j, "r_factor", json_real(st.r_factor));
	json_object_set_new(j, "peer_mos", json_real(st.peer_mos));
	json_object_set_new(j, "peer_loss", json_real(st.peer_loss));
	json_object_set_new(j, "tx_packets", json_integer((json_int_t)m->tx_packets));
	json_object_set_new(j, "tx_bytes", json_integer((json_int_t)m->tx_bytes));
	json_object_set_new(j, "rx_packets", json_integer((json_int_t)st.rx_packets));
	json_object_set_new(j, "rx_bytes", json_integer((json_int_t)st.rx_bytes));
	json_object_set_new(j, "lost", json_integer((json_int_t)st.lost));
	json_object_set_new(j, "dropped",
			    json_integer((json_int_t)(st.drop_malformed + st.drop_tag + st.drop_replay +
						      st.drop_old + st.drop_auth + st.drop_decode)));
	json_object_set_new(j, "audio_in", json_string(m->echo ? "echo" : m->src ? "file" : m->dev_in ? "device" : "silence"));
	json_object_set_new(j, "audio_out", json_string(m->sink ? "file" : m->dev_out ? "device" : "none"));
	json_object_set_new(j, "first_audio_at_ms",
			    json_integer((json_int_t)(m->first_audio_at ? m->first_audio_at - m->start : 0)));
	return j;
}
