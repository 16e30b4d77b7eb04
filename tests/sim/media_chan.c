/* Virtual-time call over an impaired channel (see media_chan.h). */
#include "media_chan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { IP_UDP = 28, MAX_FLIGHT = 512, PLAYOUT_PHASE = 10 };

struct pkt {
	uint64_t at;
	int to; /* 0 = A, 1 = B */
	size_t len;
	uint8_t b[PN_MEDIA_PKT_MAX];
};

struct chan {
	const struct mc_cond *c;
	uint64_t rng;
	bool bad;
	struct pkt *q[MAX_FLIGHT];
	int nq;
};

/* splitmix64: small, good enough for channel draws, identical on every machine */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unif(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static bool lose(struct chan *ch)
{
	const struct mc_cond *c = ch->c;

	if (c->gilbert) {
		if (ch->bad)
			ch->bad = unif(&ch->rng) >= c->ge_r;
		else
			ch->bad = unif(&ch->rng) < c->ge_p;
		return ch->bad;
	}
	return unif(&ch->rng) < c->loss;
}

/* Puts a packet in flight unless the channel loses it; 1 when lost. */
static int send_pkt(struct chan *ch, uint64_t now, int to, const uint8_t *b, size_t len)
{
	const struct mc_cond *c = ch->c;
	struct pkt *p;
	double extra = 0;

	if (lose(ch))
		return 1;
	if (c->jitter_ms > 0) {
		extra = -log(1 - unif(&ch->rng)) * c->jitter_ms / 2.0;
		if (extra > 2.5 * c->jitter_ms)
			extra = 2.5 * c->jitter_ms;
	}
	if (ch->nq >= MAX_FLIGHT || !(p = malloc(sizeof(*p))))
		return 1;
	p->at = now + (uint64_t)c->delay_ms + (uint64_t)lround(extra);
	p->to = to;
	p->len = len;
	memcpy(p->b, b, len);
	ch->q[ch->nq++] = p;
	return 0;
}

int mc_run(const struct mc_cond *c, const struct pn_media_config *cfg, const int16_t *speech,
	   size_t n, int16_t **out, size_t *nout, struct mc_result *res)
{
	uint8_t secret[32], atx[32], arx[32], btx[32], brx[32];
	struct pn_media *side[2] = {NULL, NULL};
	struct chan ch[2]; /* ch[0]: A -> B, ch[1]: B -> A */
	size_t frames = n / PN_MEDIA_FRAME + 100; /* + 2 s */
	uint64_t end = frames * PN_MEDIA_FRAME_MS, tx_ip_bytes = 0, jb_ticks = 0;
	double jb_sum = 0;
	int16_t *o = NULL, zero[PN_MEDIA_FRAME] = {0}, pcm[PN_MEDIA_FRAME];
	size_t no = 0;
	int err;

	memset(res, 0, sizeof(*res));
	memset(ch, 0, sizeof(ch));
	for (int i = 0; i < 32; i++)
		secret[i] = (uint8_t)(c->seed * 31 + (uint64_t)i);
	pn_media_derive_keys(secret, true, atx, arx);
	pn_media_derive_keys(secret, false, btx, brx);
	err = pn_media_new(&side[0], cfg, atx, arx, 0xA, 0xB);
	if (!err)
		err = pn_media_new(&side[1], cfg, btx, brx, 0xB, 0xA);
	/* o[i] is the speaker at t = i / 48 ms: playout ticks start at PLAYOUT_PHASE */
	no = PLAYOUT_PHASE * 48;
	o = calloc(frames * PN_MEDIA_FRAME + no, sizeof(*o));
	if (err || !o) {
		err = err ? err : -ENOMEM;
		goto out;
	}
	for (int d = 0; d < 2; d++) {
		ch[d].c = c;
		ch[d].rng = c->seed * 2 + (uint64_t)d + 1;
	}

	for (uint64_t t = 0; t < end; t++) {
		/* deliver everything due (in arrival order within this ms) */
		for (int d = 0; d < 2; d++) {
			for (int i = 0; i < ch[d].nq;) {
				struct pkt *p = ch[d].q[i];
				if (p->at > t) {
					i++;
					continue;
				}
				pn_media_on_packet(side[p->to], t, p->b, p->len);
				free(p);
				ch[d].q[i] = ch[d].q[--ch[d].nq];
			}
		}
		if (t % PN_MEDIA_FRAME_MS == 0) {
			uint64_t k = t / PN_MEDIA_FRAME_MS;
			const int16_t *src = zero;
			uint8_t b[PN_MEDIA_PKT_MAX];
			size_t len;

			if ((k + 1) * PN_MEDIA_FRAME <= n)
				src = speech + k * PN_MEDIA_FRAME;
			for (int s = 0; s < 2; s++) {
				err = pn_media_send_frame(side[s], t, s == 0 ? src : zero, b,
							  sizeof(b), &len);
				if (err)
					goto out;
				if (s == 0) {
					tx_ip_bytes += len + IP_UDP;
					res->net_sent++;
					res->net_lost += (uint64_t)send_pkt(&ch[0], t, 1, b, len);
				} else {
					send_pkt(&ch[1], t, 0, b, len);
				}
				err = pn_media_report(side[s], t, b, sizeof(b), &len);
				if (err)
					goto out;
				if (len) {
					if (s == 0)
						tx_ip_bytes += len + IP_UDP;
					send_pkt(&ch[s], t, 1 - s, b, len);
				}
			}
		}
		if (t % PN_MEDIA_FRAME_MS == PLAYOUT_PHASE) {
			struct pn_media_stats st;

			pn_media_playout(side[1], t, o + no);
			no += PN_MEDIA_FRAME;
			pn_media_playout(side[0], t, pcm);
			pn_media_stats(side[1], &st);
			if (st.played) {
				jb_sum += st.jb_delay_ms;
				jb_ticks++;
			}
		}
	}
	pn_media_stats(side[0], &res->a);
	pn_media_stats(side[1], &res->b);
	res->mos = res->b.mos;
	res->tx_kbps_ip = (double)tx_ip_bytes * 8 / (double)end;
	res->jb_delay_mean_ms = jb_ticks ? jb_sum / (double)jb_ticks : 0;
	err = pn_quality_compare(speech, n, o, no, &res->q);
out:
	for (int d = 0; d < 2; d++)
		for (int i = 0; i < ch[d].nq; i++)
			free(ch[d].q[i]);
	pn_media_free(side[0]);
	pn_media_free(side[1]);
	if (!err && out) {
		*out = o;
		*nout = no;
	} else {
		free(o);
	}
	return err;
}
