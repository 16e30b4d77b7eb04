/* The media pipeline of one voice call, one side: Opus at 48 kHz mono, 20 ms frames,
 * in-band FEC and PLC, per-packet AEAD with a replay window, an adaptive jitter buffer
 * (jbuf.h), receiver reports every second that drive the peer's bitrate/FEC and give RTT,
 * and call statistics with an E-model MOS (quality.h). Sans-I/O: the caller passes the
 * time and the bytes and sends what comes out; nothing here touches a socket or a clock.
 *
 * Packet (docs/PROTOCOL.md "Media packets"):
 *
 *   u8 type=6 | u32 receiver tag | u32 seq | ChaCha20-Poly1305-IETF(inner) | 16-byte tag
 *
 * nonce = 4 zero bytes | seq as u64 little-endian; associated data = the 9-byte header.
 * seq bit 31 clear: an audio packet, seq = frame number (0, 1, 2, ...), inner = one Opus
 * packet. seq bit 31 set: a receiver report, seq & 0x7fffffff = report number, inner =
 * the report body (struct pn_media_report, PN_MEDIA_REPORT_LEN bytes). The two kinds
 * never share a nonce, and the frame number needs no separate timestamp field: the
 * header is 9 bytes because every byte costs 400 bit/s at 50 packets a second.
 *
 * Use, per call side (the host owns the clock, the socket and the audio device):
 *   pn_media_derive_keys(secret, caller, tx, rx); pn_media_new(&m, NULL, tx, rx, ours, theirs);
 *   every 20 ms:  pn_media_send_frame(m, now, mic, pkt, sizeof(pkt), &len)  -> send pkt;
 *                 pn_media_report(m, now, pkt, sizeof(pkt), &len)           -> send if len;
 *                 pn_media_playout(m, now, speaker);
 *   on a datagram whose first byte is 6 and whose pn_media_peek_tag is ours:
 *                 pn_media_on_packet(m, now, pkt, len);
 *   pn_media_stats(m, &st) at any time; pn_media_free(m) at the end.
 * The sender must call send_frame every 20 ms without gaps (the frame number is the media
 * clock); a stall of more than a second makes the receiver resynchronize.
 *
 * Threading: none; one struct pn_media is used by one thread. */
#ifndef PARLEY_CALL_MEDIA_H
#define PARLEY_CALL_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pn_media_limits {
	PN_MEDIA_RATE = 48000,
	PN_MEDIA_FRAME = 960,       /* samples per 20 ms frame */
	PN_MEDIA_FRAME_MS = 20,
	PN_MEDIA_KEY = 32,
	PN_MEDIA_HDR = 1 + 4 + 4,   /* type, tag, seq */
	PN_MEDIA_AEAD_TAG = 16,
	PN_MEDIA_OPUS_MAX = 400,    /* largest Opus packet we produce or accept */
	PN_MEDIA_REPORT_LEN = 4 + 4 + 4 + 2 + 4 + 4 + 2 + 2 + 2 + 2 + 2,
	PN_MEDIA_PKT_MAX = PN_MEDIA_HDR + PN_MEDIA_OPUS_MAX + PN_MEDIA_AEAD_TAG, /* <= 1400 */
	PN_MEDIA_SEQ_REPORT = 0x80000000u,
	PN_MEDIA_REPORT_MS = 1000,
};

/* Why a packet was dropped; pn_media_on_packet returns the negative value. */
enum pn_media_err {
	PN_MEDIA_EMALFORMED = -1, /* too short/long, wrong type, bad report length */
	PN_MEDIA_ETAG = -2,       /* receiver tag is not ours */
	PN_MEDIA_EREPLAY = -3,    /* sequence number already accepted */
	PN_MEDIA_EOLD = -4,       /* sequence number behind the replay window */
	PN_MEDIA_EAUTH = -5,      /* AEAD failed: wrong key or tampered */
	PN_MEDIA_EINVAL = -6,     /* bad argument */
	PN_MEDIA_ENOSPC = -7,     /* output buffer too small */
	PN_MEDIA_ECODEC = -8,     /* the Opus encoder failed */
	PN_MEDIA_EEXHAUSTED = -9, /* 2^31 frames sent: the call must be re-keyed */
};

struct pn_media_config {
	uint32_t bitrate_bps;  /* Opus target without FEC; 0 = 10000 (default) */
	uint32_t max_bitrate_bps; /* rate while FEC is on (Opus needs ~20k for it); 0 = 20000 */
	bool fec;              /* in-band FEC when the peer reports loss (default on) */
	bool plc;              /* Opus PLC for missing frames (default on; off = silence) */
	int complexity;        /* Opus encoder complexity 0..10; -1 = default (5) */
	uint32_t jb_max_ms;    /* ceiling of the jitter-buffer target; 0 = 400 */
	uint32_t jb_min_ms;    /* floor of the target; default 0 */
};

/* Fills the defaults above (fec and plc on). pn_media_new with cfg NULL uses them. */
void pn_media_config_init(struct pn_media_config *cfg);

/* The stats of one side. "rx" figures are about what we receive, "tx" about what we send
 * (as the peer's reports tell us). */
struct pn_media_stats {
	/* sending */
	uint64_t tx_frames, tx_bytes;     /* packets and their bytes (our packet, no IP/UDP) */
	uint64_t tx_reports;
	uint32_t bitrate_bps;             /* current Opus target */
	bool fec_on;                      /* current in-band FEC state of our encoder */
	uint32_t fec_loss_perc;           /* loss percentage we told the encoder */
	double rtt_ms;                    /* smoothed, from report echoes; 0 = unknown */
	double peer_loss;                 /* last reported loss fraction of our stream */
	double peer_jitter_ms;
	double peer_mos;
	/* receiving */
	uint64_t rx_packets, rx_bytes;    /* accepted audio packets */
	uint64_t rx_reports;
	uint64_t expected;                /* frames since the first one (highest - first + 1) */
	uint64_t lost;                    /* network: expected - received (never < 0) */
	double loss_pre_fec;              /* frames not there in time / frames played (0..1) */
	double loss_post_fec;             /* frames concealed by PLC / frames played */
	double jitter_ms;                 /* RFC 3550 interarrival jitter */
	double jb_delay_ms;               /* current playout delay (arrival jitter part) */
	double jb_target_ms;              /* current target (97th percentile estimate) */
	double concealed_pct;             /* percent of played frames made by PLC */
	uint64_t played, decoded, fec_recovered, concealed, expanded, accelerated, late;
	double mos;                       /* E-model (G.107) estimate for what we receive */
	double r_factor;
	/* rejections, each packet counted once */
	uint64_t drop_malformed, drop_tag, drop_replay, drop_old, drop_auth, drop_decode;
};

/* A receiver report, decoded (the body of a report packet, see docs/PROTOCOL.md). */
struct pn_media_report {
	uint32_t ts_ms;          /* sender's clock (low 32 bits of now_ms) */
	uint32_t echo_ts_ms;     /* ts_ms of the last report received from the peer; 0 none */
	uint32_t echo_delay_ms;  /* time from that report's arrival to this one's sending */
	uint16_t loss_q16;       /* loss of the peer's audio in the last interval: the larger
				  * of network loss and frames missing at playout */
	uint32_t cum_lost;
	uint32_t highest_frame;
	uint16_t jitter_10us;    /* interarrival jitter, 10 us units */
	uint16_t jb_delay_ms;
	uint16_t concealed_permille; /* this interval */
	uint16_t post_fec_loss_permille;
	uint16_t mos_x100;
};

struct pn_media;

/* Derives the two directional keys of a call from a 32-byte secret (chosen by the caller,
 * carried in the end-to-end encrypted offer). caller = true on the calling side: its tx
 * is the callee's rx and vice versa. Outputs are secrets: wipe them after pn_media_new. */
void pn_media_derive_keys(const uint8_t secret[32], bool caller, uint8_t tx[32], uint8_t rx[32]);

/* Creates one side. cfg may be NULL (defaults). local_tag is the tag our peer puts on
 * packets to us; remote_tag the one we put on packets to it. The keys are copied.
 * Returns 0, PN_MEDIA_EINVAL, or -ENOMEM; *out is set only on success. */
int pn_media_new(struct pn_media **out, const struct pn_media_config *cfg,
		 const uint8_t tx_key[32], const uint8_t rx_key[32], uint32_t local_tag,
		 uint32_t remote_tag);
/* Wipes the keys and frees. Accepts NULL. */
void pn_media_free(struct pn_media *m);

/* Encodes and seals one 20 ms frame (960 samples). out needs PN_MEDIA_PKT_MAX bytes.
 * Returns 0 and *len, or PN_MEDIA_EINVAL / ENOSPC / ECODEC / EEXHAUSTED. */
int pn_media_send_frame(struct pn_media *m, uint64_t now_ms, const int16_t pcm[960],
			uint8_t *out, size_t cap, size_t *len);
/* Takes one media packet (audio or report) addressed to local_tag. Returns 0 or a
 * negative PN_MEDIA_E* reason; every rejection is counted in the stats and leaves the
 * call's state untouched (an authentic audio packet that is not a 20 ms Opus frame
 * returns PN_MEDIA_EMALFORMED and counts as drop_decode; its seq is used up). */
int pn_media_on_packet(struct pn_media *m, uint64_t now_ms, const uint8_t *pkt, size_t len);
/* The next 20 ms for the speaker (decoded, FEC-recovered, concealed or silence before
 * the first packet). Call every 20 ms. */
void pn_media_playout(struct pn_media *m, uint64_t now_ms, int16_t pcm[960]);
/* When a report is due, seals it into out (needs PN_MEDIA_HDR + PN_MEDIA_REPORT_LEN + 16
 * bytes) and sets *len; otherwise *len = 0. The first call arms the timer; reports are
 * then due every PN_MEDIA_REPORT_MS. Call it at least every 20 ms (e.g. after
 * send_frame). Returns 0 or PN_MEDIA_EINVAL / ENOSPC / EEXHAUSTED. */
int pn_media_report(struct pn_media *m, uint64_t now_ms, uint8_t *out, size_t cap, size_t *len);
void pn_media_stats(const struct pn_media *m, struct pn_media_stats *st);
/* The tag of a media packet, without decrypting: 0, or -1 when it is not one. */
int pn_media_peek_tag(const uint8_t *pkt, size_t len, uint32_t *tag);

/* Seals one inner payload into a media packet (the primitive under send_frame and
 * report; exposed for tests and the docs/PROTOCOL.md vector). 0 or PN_MEDIA_ENOSPC. */
int pn_media_seal(const uint8_t key[32], uint32_t tag, uint32_t seq, const uint8_t *inner,
		  size_t n, uint8_t *out, size_t cap, size_t *len);

/* The report body codec (exposed for tests and the fuzzer). encode writes exactly
 * PN_MEDIA_REPORT_LEN bytes; decode accepts exactly that many. 0 or -EBADMSG/-ENOSPC. */
int pn_media_report_encode(const struct pn_media_report *r, uint8_t *out, size_t cap);
int pn_media_report_decode(struct pn_media_report *r, const uint8_t *in, size_t len);

#endif
