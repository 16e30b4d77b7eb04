/* The media pipeline of one call side (see media.h for the packet format and API). */
#include "call/media.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>
#include <sodium.h>

#include "base/buf.h"
#include "call/jbuf.h"
#include "call/quality.h"
#include "crypto/replay.h"
#include "wire/wire.h"

enum {
	DEFAULT_BITRATE = 10000,
	DEFAULT_MAX_BITRATE = 20000,
	MIN_BITRATE = 6000,
	MAX_BITRATE = 64000, /* keeps every Opus packet far below PN_MEDIA_OPUS_MAX */
	DEFAULT_COMPLEXITY = 5,
	DEFAULT_JB_MAX = 400,
	RX_MAX = 2048,       /* largest datagram accepted (wire.h's PN_PKT_RX_MAX) */
	XFADE = 120,         /* 2.5 ms cross-fade when a frame is dropped */
	LOOKAHEAD_MS_X10 = 65, /* Opus VOIP lookahead at 48 kHz: 312 samples */
	/* Congestion: RTT this far above the call's minimum means queues are building. */
	QUEUE_RTT_MS = 100,
	NO_ECHO = 0xffffffffu,
	REORDER_FRAMES = 10, /* 200 ms */
	RTT_RECENT = 5,
};

/* -45 dBFS: below this a frame counts as a pause, where frames may be added or dropped. */
#define QUIET_RMS 184.0

struct pn_media {
	struct pn_media_config cfg;
	uint8_t tx_key[PN_MEDIA_KEY], rx_key[PN_MEDIA_KEY];
	uint32_t local_tag, remote_tag;
	OpusEncoder *enc;
	OpusDecoder *dec;

	/* sending */
	uint32_t tx_frame, tx_report_no;
	uint32_t bitrate, cap_bps, loss_perc;
	bool fec_on;
	double loss_s; /* smoothed reported loss */
	double srtt, min_rtt;
	uint32_t rtt_recent[RTT_RECENT]; /* last RTT samples, for the queueing test */
	unsigned n_rtt;
	bool have_rtt;

	/* receiving */
	struct pn_replay replay;
	uint32_t rx_report_no; /* next acceptable report number */
	struct pn_jbuf jb;
	bool have_rx;
	uint32_t first_frame, highest_frame;
	int64_t last_transit;
	bool have_transit;
	double jitter;
	uint64_t rx_payload_bytes;
	/* Bitrate of the frames that decoded to speech (not pauses: VBR pauses are cheap and
	 * would make the codec look worse than it sounds), averaged over ~50 frames. */
	double speech_bps;
	bool quiet;
	bool in_loss_run;
	uint64_t loss_runs;

	/* reports */
	bool report_armed;
	uint64_t next_report_ms;
	uint32_t peer_ts;
	uint64_t peer_ts_at;
	bool have_peer_ts;
	uint64_t int_played, int_concealed, int_synth, int_due, int_missing;
	uint32_t loss_mark;    /* first frame not yet counted in a report's loss */

	struct pn_media_stats st;
};

void pn_media_config_init(struct pn_media_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->bitrate_bps = DEFAULT_BITRATE;
	cfg->max_bitrate_bps = DEFAULT_MAX_BITRATE;
	cfg->fec = true;
	cfg->plc = true;
	cfg->complexity = -1;
	cfg->jb_max_ms = DEFAULT_JB_MAX;
}

void pn_media_derive_keys(const uint8_t secret[32], bool caller, uint8_t tx[32], uint8_t rx[32])
{
	/* BLAKE2b keyed by the call secret; subkey 1 protects caller -> callee, 2 the
	 * reverse. The context binds the keys to this use. */
	static const char ctx[crypto_kdf_CONTEXTBYTES] = {'p', 'n', 'm', 'e', 'd', 'i', 'a', '1'};

	crypto_kdf_derive_from_key(caller ? tx : rx, 32, 1, ctx, secret);
	crypto_kdf_derive_from_key(caller ? rx : tx, 32, 2, ctx, secret);
}

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void apply_encoder(struct pn_media *m)
{
	opus_encoder_ctl(m->enc, OPUS_SET_BITRATE((opus_int32)m->bitrate));
	opus_encoder_ctl(m->enc, OPUS_SET_INBAND_FEC(m->fec_on ? 1 : 0));
	opus_encoder_ctl(m->enc, OPUS_SET_PACKET_LOSS_PERC((opus_int32)m->loss_perc));
}

int pn_media_new(struct pn_media **out, const struct pn_media_config *cfg,
		 const uint8_t tx_key[32], const uint8_t rx_key[32], uint32_t local_tag,
		 uint32_t remote_tag)
{
	struct pn_media_config def;
	struct pn_media *m;
	int e;

	if (!out || !tx_key || !rx_key)
		return PN_MEDIA_EINVAL;
	if (!cfg) {
		pn_media_config_init(&def);
		cfg = &def;
	}
	if (sodium_init() < 0)
		return PN_MEDIA_EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	if (!m->cfg.bitrate_bps)
		m->cfg.bitrate_bps = DEFAULT_BITRATE;
	m->cfg.bitrate_bps = clamp_u32(m->cfg.bitrate_bps, MIN_BITRATE, MAX_BITRATE);
	if (!m->cfg.max_bitrate_bps)
		m->cfg.max_bitrate_bps = DEFAULT_MAX_BITRATE;
	m->cfg.max_bitrate_bps = clamp_u32(m->cfg.max_bitrate_bps, m->cfg.bitrate_bps, MAX_BITRATE);
	if (m->cfg.complexity < 0 || m->cfg.complexity > 10)
		m->cfg.complexity = DEFAULT_COMPLEXITY;
	if (!m->cfg.jb_max_ms)
		m->cfg.jb_max_ms = DEFAULT_JB_MAX;
	memcpy(m->tx_key, tx_key, PN_MEDIA_KEY);
	memcpy(m->rx_key, rx_key, PN_MEDIA_KEY);
	m->local_tag = local_tag;
	m->remote_tag = remote_tag;

	m->enc = opus_encoder_create(PN_MEDIA_RATE, 1, OPUS_APPLICATION_VOIP, &e);
	m->dec = opus_decoder_create(PN_MEDIA_RATE, 1, &e);
	if (!m->enc || !m->dec) {
		pn_media_free(m);
		return -ENOMEM;
	}
	opus_encoder_ctl(m->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
	opus_encoder_ctl(m->enc, OPUS_SET_COMPLEXITY(m->cfg.complexity));
	opus_encoder_ctl(m->enc, OPUS_SET_VBR(1));
	opus_encoder_ctl(m->enc, OPUS_SET_DTX(0));
	m->bitrate = m->cfg.bitrate_bps;
	m->cap_bps = m->cfg.max_bitrate_bps;
	apply_encoder(m);

	pn_replay_init(&m->replay);
	pn_jb_init(&m->jb, m->cfg.jb_min_ms, m->cfg.jb_max_ms);
	m->quiet = true;
	*out = m;
	return 0;
}

void pn_media_free(struct pn_media *m)
{
	if (!m)
		return;
	if (m->enc)
		opus_encoder_destroy(m->enc);
	if (m->dec)
		opus_decoder_destroy(m->dec);
	sodium_memzero(m->tx_key, sizeof(m->tx_key));
	sodium_memzero(m->rx_key, sizeof(m->rx_key));
	free(m);
}

/* ---- packets ------------------------------------------------------------------------ */

static void make_nonce(uint8_t nonce[12], uint32_t seq)
{
	memset(nonce, 0, 12);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)((uint64_t)seq >> (8 * i));
}

int pn_media_seal(const uint8_t key[32], uint32_t tag, uint32_t seq, const uint8_t *inner,
		  size_t n, uint8_t *out, size_t cap, size_t *len)
{
	struct pn_wr w;
	uint8_t nonce[12];
	unsigned long long clen;

	if (!key || (!inner && n) || !len)
		return PN_MEDIA_EINVAL;
	if (!out || cap < PN_MEDIA_HDR + n + PN_MEDIA_AEAD_TAG)
		return PN_MEDIA_ENOSPC;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, PN_PKT_MEDIA);
	pn_wr_u32(&w, tag);
	pn_wr_u32(&w, seq);
	if (w.err)
		return PN_MEDIA_ENOSPC;
	make_nonce(nonce, seq);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + PN_MEDIA_HDR, &clen, inner, n, out,
						  PN_MEDIA_HDR, NULL, nonce, key);
	*len = PN_MEDIA_HDR + (size_t)clen;
	return 0;
}

int pn_media_peek_tag(const uint8_t *pkt, size_t len, uint32_t *tag)
{
	struct pn_rd r;
	uint8_t type;
	uint32_t t;

	if (!pkt || len < PN_MEDIA_HDR + PN_MEDIA_AEAD_TAG || len > RX_MAX)
		return -1;
	pn_rd_init(&r, pkt, len);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &t);
	if (r.err || type != PN_PKT_MEDIA)
		return -1;
	if (tag)
		*tag = t;
	return 0;
}

int pn_media_send_frame(struct pn_media *m, uint64_t now_ms, const int16_t pcm[960],
			uint8_t *out, size_t cap, size_t *len)
{
	uint8_t opus[PN_MEDIA_OPUS_MAX];
	opus_int32 n;
	int err;

	if (!m || !pcm || !len)
		return PN_MEDIA_EINVAL;
	*len = 0;
	if (m->tx_frame >= PN_MEDIA_SEQ_REPORT)
		return PN_MEDIA_EEXHAUSTED;
	n = opus_encode(m->enc, pcm, PN_MEDIA_FRAME, opus, sizeof(opus));
	if (n < 1)
		return PN_MEDIA_ECODEC;
	err = pn_media_seal(m->tx_key, m->remote_tag, m->tx_frame, opus, (size_t)n, out, cap, len);
	if (err)
		return err;
	m->tx_frame++;
	m->st.tx_frames++;
	m->st.tx_bytes += *len;
	return 0;
}

/* ---- reports ------------------------------------------------------------------------ */

int pn_media_report_encode(const struct pn_media_report *rp, uint8_t *out, size_t cap)
{
	struct pn_wr w;

	pn_wr_init(&w, out, cap);
	pn_wr_u32(&w, rp->ts_ms);
	pn_wr_u32(&w, rp->echo_ts_ms);
	pn_wr_u32(&w, rp->echo_delay_ms);
	pn_wr_u16(&w, rp->loss_q16);
	pn_wr_u32(&w, rp->cum_lost);
	pn_wr_u32(&w, rp->highest_frame);
	pn_wr_u16(&w, rp->jitter_10us);
	pn_wr_u16(&w, rp->jb_delay_ms);
	pn_wr_u16(&w, rp->concealed_permille);
	pn_wr_u16(&w, rp->post_fec_loss_permille);
	pn_wr_u16(&w, rp->mos_x100);
	return w.err ? -ENOSPC : 0;
}

int pn_media_report_decode(struct pn_media_report *rp, const uint8_t *in, size_t len)
{
	struct pn_rd r;

	pn_rd_init(&r, in, len);
	pn_rd_u32(&r, &rp->ts_ms);
	pn_rd_u32(&r, &rp->echo_ts_ms);
	pn_rd_u32(&r, &rp->echo_delay_ms);
	pn_rd_u16(&r, &rp->loss_q16);
	pn_rd_u32(&r, &rp->cum_lost);
	pn_rd_u32(&r, &rp->highest_frame);
	pn_rd_u16(&r, &rp->jitter_10us);
	pn_rd_u16(&r, &rp->jb_delay_ms);
	pn_rd_u16(&r, &rp->concealed_permille);
	pn_rd_u16(&r, &rp->post_fec_loss_permille);
	pn_rd_u16(&r, &rp->mos_x100);
	if (pn_rd_end(&r))
		return -EBADMSG;
	/* Semantic bounds: a permille above 1000 or a MOS above 5 is not a report. */
	if (rp->concealed_permille > 1000 || rp->post_fec_loss_permille > 1000 ||
	    rp->mos_x100 > 500)
		return -EBADMSG;
	return 0;
}

/* Queues are building when even the smallest of the last RTT_RECENT RTT samples sits
 * QUEUE_RTT_MS above the call's minimum: jitter spreads the samples but leaves small
 * ones among them, a standing queue lifts them all. */
static bool queueing(const struct pn_media *m)
{
	uint32_t lo = UINT32_MAX;

	if (m->n_rtt < RTT_RECENT)
		return false;
	for (int i = 0; i < RTT_RECENT; i++)
		if (m->rtt_recent[i] < lo)
			lo = m->rtt_recent[i];
	return lo > m->min_rtt + QUEUE_RTT_MS;
}

/* The peer tells us how our stream arrives: adapt FEC and bitrate, measure RTT. */
static void on_report(struct pn_media *m, uint64_t now_ms, const struct pn_media_report *rp)
{
	double loss = rp->loss_q16 / 65535.0;

	m->peer_ts = rp->ts_ms;
	m->peer_ts_at = now_ms;
	m->have_peer_ts = true;
	m->st.rx_reports++;
	m->st.peer_loss = loss;
	m->st.peer_jitter_ms = rp->jitter_10us / 100.0;
	m->st.peer_mos = rp->mos_x100 / 100.0;

	/* RTT as in RTCP: now - (our timestamp it echoes) - (time it sat at the peer). */
	if (rp->echo_delay_ms != NO_ECHO) {
		uint32_t s = (uint32_t)now_ms - rp->echo_ts_ms - rp->echo_delay_ms;
		if (s < 60000) {
			if (!m->have_rtt) {
				m->srtt = s;
				m->min_rtt = s;
			} else {
				m->srtt = 0.875 * m->srtt + 0.125 * s;
				/* The minimum creeps up 2 % of the gap per report, so a path that
				 * became longer for good stops counting as queueing within a
				 * minute. */
				if (s < m->min_rtt)
					m->min_rtt = s;
				else
					m->min_rtt += 0.02 * (s - m->min_rtt);
			}
			m->have_rtt = true;
			m->rtt_recent[m->n_rtt++ % RTT_RECENT] = s;
		}
	}

	/* Loss: fast attack, slow release, so FEC comes at once and goes after a few
	 * clean seconds. */
	m->loss_s = loss > m->loss_s ? loss : 0.8 * m->loss_s + 0.2 * loss;
	/* Opus sizes its LBRR from the expected loss; a long RTT makes each loss costlier
	 * (no time for anything but FEC), so ask for 25 % more protection then. */
	double perc = m->loss_s * 100 * (m->have_rtt && m->srtt > 200 ? 1.25 : 1.0);
	m->loss_perc = clamp_u32((uint32_t)lround(perc), 0, 30);
	m->fec_on = m->cfg.fec && m->loss_s >= 0.01;
	/* Opus 1.3 (decide_fec) adds LBRR at an expected loss of 5 % or less only when the
	 * rate covers FEC at the full bandwidth, which at our rates it never does; above 5 %
	 * it narrows the bandwidth until FEC fits. Measured: no LBRR at 3-5 % even at 20
	 * kbit/s, LBRR in 84 % of frames at 6 %. So once we want FEC we ask for at least 6. */
	if (m->fec_on && m->loss_perc < 6)
		m->loss_perc = 6;

	/* Congestion: random loss is not a congestion signal for a 10-20 kbit/s flow, but a
	 * growing RTT is: back off 15 % per report while it lasts, recover 1 kbit/s per clean
	 * report (the delay-based half of WebRTC's GCC, much simplified). */
	if (queueing(m))
		m->cap_bps = clamp_u32((uint32_t)(m->bitrate * 0.85), MIN_BITRATE, MAX_BITRATE);
	else
		m->cap_bps = clamp_u32(m->cap_bps + 1000, MIN_BITRATE, m->cfg.max_bitrate_bps);
	/* Opus 1.3 only adds LBRR when the rate leaves room for it (measured: 20 kbit/s at
	 * complexity 5, 18 at 10), so FEC raises the target to the maximum. */
	uint32_t want = m->fec_on ? m->cfg.max_bitrate_bps : m->cfg.bitrate_bps;
	m->bitrate = want < m->cap_bps ? want : m->cap_bps;
	apply_encoder(m);
}

static double burst_ratio(const struct pn_media *m)
{
	uint64_t due = m->st.decoded + m->st.fec_recovered + m->st.concealed;
	double p, run;

	if (!m->loss_runs || !due)
		return 1;
	p = (double)m->st.concealed / (double)due;
	run = (double)m->st.concealed / (double)m->loss_runs;
	return run * (1 - p) < 1 ? 1 : run * (1 - p);
}

/* E-model for the audio we receive: Ta = half the RTT + jitter-buffer delay + framing
 * + codec lookahead; Ie from the bitrate we actually receive, loss after FEC. */
static double rx_r(const struct pn_media *m, double ppl_pct)
{
	struct pn_emodel e = {
		.one_way_ms = (m->have_rtt ? m->srtt / 2 : 0) + m->jb.cur_ms + PN_MEDIA_FRAME_MS +
			      LOOKAHEAD_MS_X10 / 10.0,
		.ppl_pct = ppl_pct,
		.burst_r = burst_ratio(m),
		.ie = pn_opus_ie((uint32_t)m->speech_bps),
		.bpl = pn_opus_bpl(),
	};
	return pn_emodel_r(&e);
}

/* Loss for a report: frames up to REORDER_FRAMES behind the newest one are settled (a
 * frame still missing then is lost, not late in a reordering); each settled frame is
 * counted once, looked up in the replay window's bitmap, so reordering never counts as
 * loss. Frames older than the window cannot be looked up and are skipped. */
static void interval_loss(struct pn_media *m, uint64_t *expected, uint64_t *lost)
{
	*expected = *lost = 0;
	if (!m->have_rx || m->highest_frame < m->first_frame + REORDER_FRAMES)
		return;
	uint32_t settled = m->highest_frame - REORDER_FRAMES; /* count frames < settled + 1 */
	if (m->loss_mark < m->first_frame)
		m->loss_mark = m->first_frame;
	if (settled + 1 > m->loss_mark + PN_REPLAY_WINDOW - 2 * REORDER_FRAMES)
		m->loss_mark = settled + 1 - (PN_REPLAY_WINDOW - 2 * REORDER_FRAMES);
	for (uint32_t f = m->loss_mark; f <= settled; f++) {
		(*expected)++;
		*lost += pn_replay_check(&m->replay, f); /* still acceptable = never arrived */
	}
	m->loss_mark = settled + 1;
}

int pn_media_report(struct pn_media *m, uint64_t now_ms, uint8_t *out, size_t cap, size_t *len)
{
	struct pn_media_report rp = {0};
	uint8_t body[PN_MEDIA_REPORT_LEN];
	uint64_t expected, exp_i, lost_i, played_i, due_i;
	int err;

	if (!m || !len)
		return PN_MEDIA_EINVAL;
	*len = 0;
	if (!m->report_armed) {
		m->report_armed = true;
		m->next_report_ms = now_ms + PN_MEDIA_REPORT_MS;
		return 0;
	}
	if (now_ms < m->next_report_ms)
		return 0;
	if (cap < PN_MEDIA_HDR + PN_MEDIA_REPORT_LEN + PN_MEDIA_AEAD_TAG)
		return PN_MEDIA_ENOSPC;
	if (m->tx_report_no >= PN_MEDIA_SEQ_REPORT - 1)
		return PN_MEDIA_EEXHAUSTED;

	expected = m->have_rx ? (uint64_t)m->highest_frame - m->first_frame + 1 : 0;
	interval_loss(m, &exp_i, &lost_i);
	played_i = m->st.played - m->int_played;
	due_i = m->st.decoded + m->st.fec_recovered + m->st.concealed - m->int_due;

	rp.ts_ms = (uint32_t)now_ms;
	if (m->have_peer_ts) {
		rp.echo_ts_ms = m->peer_ts;
		rp.echo_delay_ms = (uint32_t)(now_ms - m->peer_ts_at);
	} else {
		rp.echo_delay_ms = NO_ECHO;
	}
	/* The loss that drives the peer's FEC is what our decoder misses: lost in the network
	 * or too late for the jitter buffer, whichever is larger (FEC rescues both). */
	double net = exp_i ? (double)lost_i / (double)exp_i : 0;
	double missing = due_i ? (double)(m->st.fec_recovered + m->st.concealed - m->int_missing) /
					 (double)due_i : 0;
	rp.loss_q16 = (uint16_t)lround(fmin(1, fmax(net, missing)) * 65535);
	rp.cum_lost = (uint32_t)(expected > m->st.rx_packets ? expected - m->st.rx_packets : 0);
	rp.highest_frame = m->highest_frame;
	rp.jitter_10us = (uint16_t)fmin(m->jitter * 100, 65535);
	rp.jb_delay_ms = (uint16_t)fmin(m->jb.cur_ms, 65535);
	rp.concealed_permille = played_i ?
		(uint16_t)((m->st.concealed + m->st.expanded - m->int_synth) * 1000 / played_i) : 0;
	if (rp.concealed_permille > 1000)
		rp.concealed_permille = 1000;
	rp.post_fec_loss_permille = due_i ?
		(uint16_t)((m->st.concealed - m->int_concealed) * 1000 / due_i) : 0;
	if (rp.post_fec_loss_permille > 1000)
		rp.post_fec_loss_permille = 1000;
	double mos = played_i ? pn_emodel_mos(rx_r(m, rp.post_fec_loss_permille / 10.0)) : 1;
	rp.mos_x100 = (uint16_t)lround(mos * 100);

	if (pn_media_report_encode(&rp, body, sizeof(body)))
		return PN_MEDIA_ENOSPC;
	err = pn_media_seal(m->tx_key, m->remote_tag, PN_MEDIA_SEQ_REPORT | m->tx_report_no, body,
		   sizeof(body), out, cap, len);
	if (err)
		return err;
	m->tx_report_no++;
	m->st.tx_reports++;
	m->int_played = m->st.played;
	m->int_concealed = m->st.concealed;
	m->int_synth = m->st.concealed + m->st.expanded;
	m->int_due = m->st.decoded + m->st.fec_recovered + m->st.concealed;
	m->int_missing = m->st.fec_recovered + m->st.concealed;
	/* FEC data for frame n rides in frame n + 1, which arrives 20 ms later: while frames
	 * are being lost, hold at least one frame in the buffer so FEC can be used. */
	if (m->cfg.fec && lost_i > 0)
		pn_jb_set_floor(&m->jb, m->cfg.jb_min_ms > PN_MEDIA_FRAME_MS ? m->cfg.jb_min_ms :
								      PN_MEDIA_FRAME_MS);
	else
		pn_jb_set_floor(&m->jb, m->cfg.jb_min_ms);
	m->next_report_ms += PN_MEDIA_REPORT_MS;
	if (m->next_report_ms <= now_ms)
		m->next_report_ms = now_ms + PN_MEDIA_REPORT_MS;
	return 0;
}

/* ---- receiving ---------------------------------------------------------------------- */

static int reject(struct pn_media *m, int why)
{
	switch (why) {
	case PN_MEDIA_EMALFORMED: m->st.drop_malformed++; break;
	case PN_MEDIA_ETAG: m->st.drop_tag++; break;
	case PN_MEDIA_EREPLAY: m->st.drop_replay++; break;
	case PN_MEDIA_EOLD: m->st.drop_old++; break;
	case PN_MEDIA_EAUTH: m->st.drop_auth++; break;
	default: break;
	}
	return why;
}

static void on_audio(struct pn_media *m, uint64_t now_ms, uint32_t frame, const uint8_t *p,
		     size_t n)
{
	int64_t transit = (int64_t)now_ms - (int64_t)frame * PN_MEDIA_FRAME_MS;

	if (!m->have_rx) {
		m->first_frame = m->highest_frame = frame;
		m->have_rx = true;
	} else if (frame > m->highest_frame) {
		m->highest_frame = frame;
	} else if (frame < m->first_frame) {
		m->first_frame = frame; /* reordered start of the call */
	}
	/* RFC 3550 interarrival jitter, in ms */
	if (m->have_transit) {
		int64_t d = transit - m->last_transit;
		m->jitter += ((double)(d < 0 ? -d : d) - m->jitter) / 16.0;
	}
	m->last_transit = transit;
	m->have_transit = true;
	m->st.rx_packets++;
	m->rx_payload_bytes += n;
	pn_jb_put(&m->jb, now_ms, frame, p, n);
}

int pn_media_on_packet(struct pn_media *m, uint64_t now_ms, const uint8_t *pkt, size_t len)
{
	uint8_t inner[PN_MEDIA_OPUS_MAX];
	uint8_t nonce[12];
	unsigned long long n;
	struct pn_rd r;
	uint8_t type;
	uint32_t tag, seq;
	size_t clen;
	bool report;

	if (!m || !pkt)
		return PN_MEDIA_EINVAL;
	if (len < PN_MEDIA_HDR + PN_MEDIA_AEAD_TAG + 1 || len > RX_MAX)
		return reject(m, PN_MEDIA_EMALFORMED);
	pn_rd_init(&r, pkt, len);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, &tag);
	pn_rd_u32(&r, &seq);
	if (r.err || type != PN_PKT_MEDIA)
		return reject(m, PN_MEDIA_EMALFORMED);
	if (tag != m->local_tag)
		return reject(m, PN_MEDIA_ETAG);
	clen = len - PN_MEDIA_HDR;
	report = seq & PN_MEDIA_SEQ_REPORT;
	/* Exact sizes per kind before any cryptography. */
	if (report ? clen != PN_MEDIA_REPORT_LEN + PN_MEDIA_AEAD_TAG :
		     clen > PN_MEDIA_OPUS_MAX + PN_MEDIA_AEAD_TAG)
		return reject(m, PN_MEDIA_EMALFORMED);
	if (report) {
		/* Only the newest report matters: an older or repeated one is refused. */
		uint32_t no = seq & ~PN_MEDIA_SEQ_REPORT;
		if (no < m->rx_report_no)
			return reject(m, PN_MEDIA_EREPLAY);
	} else if (!pn_replay_check(&m->replay, seq)) {
		bool old = m->replay.top > PN_REPLAY_WINDOW &&
			   seq < m->replay.top - PN_REPLAY_WINDOW;
		return reject(m, old ? PN_MEDIA_EOLD : PN_MEDIA_EREPLAY);
	}
	make_nonce(nonce, seq);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(inner, &n, NULL, pkt + PN_MEDIA_HDR, clen,
						      pkt, PN_MEDIA_HDR, nonce, m->rx_key) != 0)
		return reject(m, PN_MEDIA_EAUTH);

	if (report) {
		struct pn_media_report rp;
		if (pn_media_report_decode(&rp, inner, (size_t)n))
			return reject(m, PN_MEDIA_EMALFORMED);
		m->rx_report_no = (seq & ~PN_MEDIA_SEQ_REPORT) + 1;
		on_report(m, now_ms, &rp);
		return 0;
	}
	pn_replay_commit(&m->replay, seq);
	/* Authentic, but we only play 20 ms Opus frames. */
	if (opus_packet_get_nb_samples(inner, (opus_int32)n, PN_MEDIA_RATE) != PN_MEDIA_FRAME) {
		m->st.drop_decode++;
		return PN_MEDIA_EMALFORMED;
	}
	on_audio(m, now_ms, seq, inner, (size_t)n);
	m->st.rx_bytes += len;
	return 0;
}

/* ---- playout ------------------------------------------------------------------------ */

static void conceal(struct pn_media *m, int16_t pcm[PN_MEDIA_FRAME])
{
	/* The decoder always runs its PLC, so its state stays continuous; without PLC the
	 * speaker just gets silence (a test setting). */
	if (opus_decode(m->dec, NULL, 0, pcm, PN_MEDIA_FRAME, 0) != PN_MEDIA_FRAME ||
	    !m->cfg.plc)
		memset(pcm, 0, PN_MEDIA_FRAME * sizeof(*pcm));
}

static bool decode(struct pn_media *m, const uint8_t *p, size_t n, int fec,
		   int16_t pcm[PN_MEDIA_FRAME])
{
	if (opus_decode(m->dec, p, (opus_int32)n, pcm, PN_MEDIA_FRAME, fec) == PN_MEDIA_FRAME)
		return true;
	m->st.drop_decode++;
	conceal(m, pcm);
	return false;
}

/* Whether a 20 ms Opus packet carries LBRR (in-band FEC) data for the frame before it.
 * Opus 1.3 has no call for this. In a SILK or hybrid packet the range coder's first
 * symbols are one VAD flag per SILK frame then the LBRR flag, each coded with probability
 * 1/2, i.e. the first bits of the first byte: for 20 ms mono (one SILK frame) bit 6. */
static bool has_lbrr(const uint8_t *p, size_t n)
{
	const unsigned char *frames[48];
	opus_int16 sizes[48];
	unsigned char toc;

	if (n < 2 || (p[0] & 0x80)) /* CELT-only: no LBRR */
		return false;
	if (opus_packet_parse(p, (opus_int32)n, &toc, frames, sizes, NULL) < 1 || sizes[0] < 1)
		return false;
	return (frames[0][0] >> 6) & 1;
}

static bool is_quiet(const int16_t pcm[PN_MEDIA_FRAME])
{
	double e = 0;

	for (int i = 0; i < PN_MEDIA_FRAME; i++)
		e += (double)pcm[i] * pcm[i];
	return sqrt(e / PN_MEDIA_FRAME) < QUIET_RMS;
}

static void loss_run(struct pn_media *m, bool lost)
{
	if (lost && !m->in_loss_run)
		m->loss_runs++;
	m->in_loss_run = lost;
}

void pn_media_playout(struct pn_media *m, uint64_t now_ms, int16_t pcm[960])
{
	struct pn_jb_out o;
	int16_t tmp[PN_MEDIA_FRAME];

	if (!m || !pcm)
		return;
	pn_jb_get(&m->jb, now_ms, m->quiet, &o);
	switch (o.action) {
	case PN_JB_WAIT:
		memset(pcm, 0, PN_MEDIA_FRAME * sizeof(*pcm));
		return;
	case PN_JB_PLAY:
		if (decode(m, o.payload, o.len, 0, pcm)) {
			m->st.decoded++;
			if (!is_quiet(pcm)) {
				double bps = (double)o.len * 8 * 1000 / PN_MEDIA_FRAME_MS;
				if (m->speech_bps > 0)
					m->speech_bps += (bps - m->speech_bps) / 50;
				else
					m->speech_bps = bps;
			}
		} else {
			m->st.concealed++;
		}
		loss_run(m, false);
		break;
	case PN_JB_FEC:
		if (m->cfg.fec && has_lbrr(o.payload, o.len)) {
			decode(m, o.payload, o.len, 1, pcm);
			m->st.fec_recovered++;
			loss_run(m, false);
		} else {
			conceal(m, pcm);
			m->st.concealed++;
			loss_run(m, true);
		}
		break;
	case PN_JB_PLC:
		conceal(m, pcm);
		m->st.concealed++;
		loss_run(m, true);
		break;
	case PN_JB_EXPAND:
		conceal(m, pcm);
		m->st.expanded++;
		break;
	case PN_JB_ACCEL:
		/* Drop one frame: decode both (the decoder needs both), keep the second and
		 * blend the first's start into it, so the waveform does not jump. */
		decode(m, o.payload, o.len, 0, tmp);
		decode(m, o.payload2, o.len2, 0, pcm);
		for (int i = 0; i < XFADE; i++) {
			float w = (float)(i + 1) / (XFADE + 1);
			pcm[i] = (int16_t)lrintf((1 - w) * tmp[i] + w * pcm[i]);
		}
		m->st.decoded += 2;
		m->st.accelerated++;
		loss_run(m, false);
		break;
	}
	m->st.played++;
	m->quiet = is_quiet(pcm);
}

void pn_media_stats(const struct pn_media *m, struct pn_media_stats *st)
{
	uint64_t due;

	if (!m || !st)
		return;
	*st = m->st;
	st->bitrate_bps = m->bitrate;
	st->fec_on = m->fec_on;
	st->fec_loss_perc = m->loss_perc;
	st->rtt_ms = m->have_rtt ? m->srtt : 0;
	st->expected = m->have_rx ? (uint64_t)m->highest_frame - m->first_frame + 1 : 0;
	st->lost = st->expected > st->rx_packets ? st->expected - st->rx_packets : 0;
	due = m->st.decoded + m->st.fec_recovered + m->st.concealed;
	st->loss_pre_fec = due ? (double)(m->st.fec_recovered + m->st.concealed) / due : 0;
	st->loss_post_fec = due ? (double)m->st.concealed / due : 0;
	st->jitter_ms = m->jitter;
	st->jb_delay_ms = m->jb.cur_ms;
	st->jb_target_ms = pn_jb_target(&m->jb);
	st->late = m->jb.late;
	st->concealed_pct = m->st.played ?
		100.0 * (double)(m->st.concealed + m->st.expanded) / (double)m->st.played : 0;
	st->r_factor = m->st.played ? rx_r(m, st->loss_post_fec * 100) : 0;
	st->mos = m->st.played ? pn_emodel_mos(st->r_factor) : 0;
}
