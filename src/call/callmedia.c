/* A call's running media: source -> pn_media -> packets, packets -> pn_media -> sink,
 * in 20 ms frames on the owner's clock (see callmedia.h). */
#include "call/callmedia.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>

#include "audio/wav.h"

enum {
	CM_ECHO_FRAMES = PN_CALLMEDIA_ECHO_MS / PN_MEDIA_FRAME_MS,
	CM_MAX_CATCHUP = 5,       /* frames run in one tick after a late wake-up */
	CM_RESYNC_MS = 200,       /* later than this: skip ahead instead of catching up */
};

struct pn_callmedia {
	struct pn_media *media;
	int16_t *src;        /* the whole file to play, 48 kHz mono */
	size_t src_n, src_pos;
	SNDFILE *sink;       /* the recording, written as the call goes */
	bool echo;
	int16_t *echo_line; /* CM_ECHO_FRAMES frames, a ring */
	unsigned echo_pos;
	uint64_t next_frame, start;
	uint64_t first_audio_at;
	uint64_t tx_packets, tx_bytes;
};

static int open_play(const char *path, int16_t **pcm, size_t *n, char *err, size_t cap)
{
	int rc = pn_wav_read(path, pcm, n);

	if (rc)
		snprintf(err, cap, "cannot play %s: %s", path,
			 rc == -EINVAL ? "not a usable audio file (or longer than an hour)"
				       : strerror(-rc));
	return rc;
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
		int16_t *pcm;
		size_t n;
		if (open_play(play, &pcm, &n, err, cap))
			return -EINVAL;
		free(pcm);
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
	if (cfg->play && open_play(cfg->play, &m->src, &m->src_n, err, cap))
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
	free(m->src);
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
	} else if (m->src && m->src_pos < m->src_n) {
		/* after the file: silence */
		size_t k = m->src_n - m->src_pos < PN_MEDIA_FRAME ? m->src_n - m->src_pos : PN_MEDIA_FRAME;
		memcpy(pcm, m->src + m->src_pos, k * sizeof(int16_t));
		m->src_pos += k;
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
	json_object_set_new(j, "first_audio_at_ms",
			    json_integer((json_int_t)(m->first_audio_at ? m->first_audio_at - m->start : 0)));
	return j;
}
