/* Adaptive jitter buffer: holds received audio frames by frame number and decides, every
 * 20 ms, what the speaker gets. No codec in here (media.c decodes); this is the policy.
 *
 * Delay estimate (after WebRTC NetEQ's delay manager): each arrival gives a relative
 * delay r = (arrival - frame * 20 ms) - base, where base is the smallest such value seen
 * in the last 10 s (the fastest packet: pure path delay, no queueing). r goes into a
 * histogram (2 ms bins up to 1 s) whose old weight decays by a forgetting factor per
 * packet (0.995: half the weight is from the last ~2.8 s), and the target is its 97th
 * percentile, clamped to [floor, ceiling].
 *
 * Playout: frame n is due at n * 20 + base + target. At each 20 ms tick the buffer
 * compares the actual delay of the next frame, cur = now - (n * 20 + base), with the
 * target and corrects it by whole 20 ms frames:
 *   - cur below target: EXPAND — play one extra frame made by Opus PLC, do not advance
 *     (at once in quiet frames; in speech only when 10 ms or more short);
 *   - cur 20 ms or more above target (60 ms in speech): ACCELERATE — decode two frames
 *     and cross-fade the first 2.5 ms of the second onto the first, advance by two.
 * Growing therefore costs one PLC frame (Opus continues the pitch and fades smoothly),
 * shrinking one cross-faded frame, and both prefer quiet frames where neither is heard.
 * A missing frame is recovered from the next frame's in-band FEC when that one is
 * already here, else concealed by PLC. Frames arriving after their turn are late. */
#ifndef PARLEY_CALL_JBUF_H
#define PARLEY_CALL_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pn_jb_limits {
	PN_JB_SLOTS = 64,          /* 1.28 s of frames */
	PN_JB_PAYLOAD_MAX = 400,
	PN_JB_BIN_MS = 2,
	PN_JB_BINS = 500,          /* histogram up to 1000 ms */
	PN_JB_BASE_SECS = 10,      /* base = min over this many seconds */
	PN_JB_START_PACKETS = 25,  /* until then the target is at least PN_JB_START_MS */
	PN_JB_START_MS = 40,
};

enum pn_jb_action {
	PN_JB_WAIT,   /* nothing received yet: silence */
	PN_JB_PLAY,   /* decode payload (frame n) */
	PN_JB_FEC,    /* frame n lost: decode the FEC in payload (frame n + 1) */
	PN_JB_PLC,    /* frame n lost, no FEC: conceal */
	PN_JB_EXPAND, /* delay too short: one extra concealed frame, n not consumed */
	PN_JB_ACCEL,  /* delay too long: decode payload (n) and payload2 (n + 1), cross-fade */
};

struct pn_jb_slot {
	bool used;
	uint32_t frame;
	uint16_t len;
	uint8_t data[PN_JB_PAYLOAD_MAX];
};

struct pn_jbuf {
	struct pn_jb_slot slot[PN_JB_SLOTS];
	bool started, have_base;
	uint32_t next;            /* next frame to play */
	int64_t base;             /* ms */
	int64_t bmin[PN_JB_BASE_SECS];
	int64_t bsec[PN_JB_BASE_SECS];
	float hist[PN_JB_BINS];
	uint64_t n_arrivals;
	double forget;
	uint32_t floor_ms, ceil_ms, target_ms;
	double cur_ms;            /* delay of the last frame played (ms past its base time) */
	uint64_t late, resyncs, dup;
};

struct pn_jb_out {
	enum pn_jb_action action;
	uint32_t frame;
	const uint8_t *payload;
	size_t len;
	const uint8_t *payload2;
	size_t len2;
};

void pn_jb_init(struct pn_jbuf *jb, uint32_t floor_ms, uint32_t ceil_ms);
void pn_jb_set_floor(struct pn_jbuf *jb, uint32_t floor_ms);
/* Stores an arrived frame (len <= PN_JB_PAYLOAD_MAX) and updates the delay estimate.
 * Returns 0, or 1 when the frame came too late / twice and was not stored. */
int pn_jb_put(struct pn_jbuf *jb, uint64_t now_ms, uint32_t frame, const uint8_t *p, size_t len);
/* The decision for the next 20 ms. quiet: the last frame played was silence-like, so
 * expanding or accelerating now is inaudible. Payload pointers stay valid until the next
 * pn_jb_put or pn_jb_get. */
void pn_jb_get(struct pn_jbuf *jb, uint64_t now_ms, bool quiet, struct pn_jb_out *out);
uint32_t pn_jb_target(const struct pn_jbuf *jb);

#endif
