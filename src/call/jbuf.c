/* Adaptive jitter buffer (policy only; see jbuf.h for the design). */
#include "call/jbuf.h"

#include <string.h>

enum {
	FRAME_MS = 20,
	/* A frame this many frames behind the playout point means the sender restarted its
	 * clock (or paused): start over instead of calling everything late. */
	RESYNC_BEHIND = 50,
	EXPAND_SLACK_SPEECH_MS = 10,
	ACCEL_EXTRA_SPEECH_MS = 40,
};

#define FORGET 0.995
#define QUANTILE 0.97

static void reset_estimate(struct pn_jbuf *jb)
{
	for (int i = 0; i < PN_JB_BASE_SECS; i++)
		jb->bsec[i] = -1;
	memset(jb->hist, 0, sizeof(jb->hist));
	jb->have_base = false;
	jb->n_arrivals = 0;
}

static void reset_play(struct pn_jbuf *jb)
{
	for (int i = 0; i < PN_JB_SLOTS; i++)
		jb->slot[i].used = false;
	jb->started = false;
	jb->next = 0;
}

void pn_jb_init(struct pn_jbuf *jb, uint32_t floor_ms, uint32_t ceil_ms)
{
	memset(jb, 0, sizeof(*jb));
	jb->forget = FORGET;
	jb->ceil_ms = ceil_ms ? ceil_ms : 400;
	jb->floor_ms = floor_ms < jb->ceil_ms ? floor_ms : jb->ceil_ms;
	reset_estimate(jb);
	reset_play(jb);
	jb->target_ms = PN_JB_START_MS < jb->ceil_ms ? PN_JB_START_MS : jb->ceil_ms;
}


static uint32_t quantile_ms(const struct pn_jbuf *jb)
{
	double total = 0, acc = 0;

	for (int i = 0; i < PN_JB_BINS; i++)
		total += jb->hist[i];
	if (total <= 0)
		return 0;
	for (int i = 0; i < PN_JB_BINS; i++) {
		acc += jb->hist[i];
		if (acc >= QUANTILE * total)
			return (uint32_t)(i + 1) * PN_JB_BIN_MS;
	}
	return PN_JB_BINS * PN_JB_BIN_MS;
}

static void update_target(struct pn_jbuf *jb)
{
	uint32_t t = quantile_ms(jb);

	if (jb->n_arrivals < PN_JB_START_PACKETS && t < PN_JB_START_MS)
		t = PN_JB_START_MS;
	if (t < jb->floor_ms)
		t = jb->floor_ms;
	if (t > jb->ceil_ms)
		t = jb->ceil_ms;
	jb->target_ms = t;
}

void pn_jb_set_floor(struct pn_jbuf *jb, uint32_t floor_ms)
{
	jb->floor_ms = floor_ms < jb->ceil_ms ? floor_ms : jb->ceil_ms;
	update_target(jb);
}

uint32_t pn_jb_target(const struct pn_jbuf *jb)
{
	return jb->target_ms;
}

/* Feeds one arrival's delay d = arrival - frame * 20 into the base tracker and histogram. */
static void observe(struct pn_jbuf *jb, uint64_t now_ms, int64_t d)
{
	int64_t sec = (int64_t)(now_ms / 1000);
	int i = (int)(sec % PN_JB_BASE_SECS);
	double f;

	if (jb->bsec[i] != sec) {
		jb->bsec[i] = sec;
		jb->bmin[i] = d;
	} else if (d < jb->bmin[i]) {
		jb->bmin[i] = d;
	}
	jb->have_base = false;
	for (int k = 0; k < PN_JB_BASE_SECS; k++) {
		if (jb->bsec[k] < 0 || sec - jb->bsec[k] >= PN_JB_BASE_SECS)
			continue;
		if (!jb->have_base || jb->bmin[k] < jb->base)
			jb->base = jb->bmin[k];
		jb->have_base = true;
	}

	int64_t r = d - jb->base; /* >= 0: d itself is in the current second's minimum */
	int64_t bin = r / PN_JB_BIN_MS;
	if (bin >= PN_JB_BINS)
		bin = PN_JB_BINS - 1;
	/* Equal weights while the histogram is young (a running mean), then exponential
	 * forgetting: NetEQ's start-up rule, which avoids trusting the first packets forever. */
	f = 1.0 - 1.0 / (double)(jb->n_arrivals + 1);
	if (f > jb->forget)
		f = jb->forget;
	for (int k = 0; k < PN_JB_BINS; k++)
		jb->hist[k] *= (float)f;
	jb->hist[bin] += (float)(1.0 - f);
	jb->n_arrivals++;
	update_target(jb);
}

int pn_jb_put(struct pn_jbuf *jb, uint64_t now_ms, uint32_t frame, const uint8_t *p, size_t len)
{
	if (!len || len > PN_JB_PAYLOAD_MAX)
		return 1;
	if (jb->started && ((frame < jb->next && jb->next - frame > RESYNC_BEHIND) ||
			    (frame >= jb->next && frame - jb->next >= PN_JB_SLOTS))) {
		reset_estimate(jb);
		reset_play(jb);
		jb->resyncs++;
	}
	observe(jb, now_ms, (int64_t)now_ms - (int64_t)frame * FRAME_MS);
	if (jb->started && frame < jb->next) {
		jb->late++;
		return 1;
	}
	struct pn_jb_slot *s = &jb->slot[frame % PN_JB_SLOTS];
	if (s->used && s->frame == frame) {
		jb->dup++;
		return 1;
	}
	/* Before playout starts, a much older frame must not evict a newer one. */
	if (s->used && s->frame > frame)
		return 1;
	s->used = true;
	s->frame = frame;
	s->len = (uint16_t)len;
	memcpy(s->data, p, len);
	return 0;
}

static struct pn_jb_slot *find(struct pn_jbuf *jb, uint32_t frame)
{
	struct pn_jb_slot *s = &jb->slot[frame % PN_JB_SLOTS];

	return s->used && s->frame == frame ? s : NULL;
}

void pn_jb_get(struct pn_jbuf *jb, uint64_t now_ms, bool quiet, struct pn_jb_out *out)
{
	memset(out, 0, sizeof(*out));
	out->action = PN_JB_WAIT;
	if (!jb->started) {
		bool any = false;
		uint32_t lo = 0;

		for (int i = 0; i < PN_JB_SLOTS; i++) {
			if (jb->slot[i].used && (!any || jb->slot[i].frame < lo)) {
				lo = jb->slot[i].frame;
				any = true;
			}
		}
		if (!any || !jb->have_base)
			return;
		jb->started = true;
		jb->next = lo;
	}

	int64_t target = jb->target_ms;
	int64_t cur = (int64_t)now_ms - ((int64_t)jb->next * FRAME_MS + jb->base);
	int64_t expand_slack = quiet ? 0 : EXPAND_SLACK_SPEECH_MS;
	int64_t accel_at = FRAME_MS + (quiet ? 0 : ACCEL_EXTRA_SPEECH_MS);
	struct pn_jb_slot *s0 = find(jb, jb->next), *s1 = find(jb, jb->next + 1);

	jb->cur_ms = cur > 0 ? (double)cur : 0;
	out->frame = jb->next;
	if (cur < target - expand_slack) {
		out->action = PN_JB_EXPAND;
		return;
	}
	if (cur >= target + accel_at && s0 && s1) {
		out->action = PN_JB_ACCEL;
		out->payload = s0->data;
		out->len = s0->len;
		out->payload2 = s1->data;
		out->len2 = s1->len;
		s0->used = s1->used = false;
		jb->next += 2;
		return;
	}
	if (s0) {
		out->action = PN_JB_PLAY;
		out->payload = s0->data;
		out->len = s0->len;
		s0->used = false;
	} else if (s1) {
		out->action = PN_JB_FEC;
		out->payload = s1->data;
		out->len = s1->len;
	} else {
		out->action = PN_JB_PLC;
	}
	jb->next++;
}
