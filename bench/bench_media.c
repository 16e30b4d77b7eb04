/* Voice media benchmark (src/call): jitter-buffer delay against a reference estimator,
 * call quality under loss with and without FEC, bandwidth on the wire, CPU per call
 * side, and the delay the stack adds. Single thread; the calls run in virtual time
 * (tests/sim/media_chan.c); only the CPU figure reads a clock.
 *
 * Output: a human-readable line per figure, then JSON lines
 *   {"bench":"media","figure":"mos_loss5_fec","value":4.18,"unit":"mos"}
 * Usage: bench-media [speech.wav]   (default: synthesize a sentence with espeak-ng) */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <opus/opus.h>

#include "audio/wav.h"
#include "call/jbuf.h"
#include "call/media.h"
#include "call/quality.h"
#include "media_chan.h"

struct figure {
	char name[48];
	double value;
	const char *unit;
};

static struct figure figures[96];
static int n_figures;

static void record(const char *name, double value, const char *unit)
{
	if (n_figures < (int)(sizeof(figures) / sizeof(figures[0]))) {
		snprintf(figures[n_figures].name, sizeof(figures[0].name), "%s", name);
		figures[n_figures].value = value;
		figures[n_figures].unit = unit;
		n_figures++;
	}
	printf("  %-34s %10.3f %s\n", name, value, unit);
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- 1. jitter buffer against a reference estimator ------------------------------------ */

static uint64_t rng = 12345;

static double unif(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng >> 11) / 9007199254740992.0;
}

enum { TRACE_FRAMES = 4000, REF_WINDOW = 100 }; /* 80 s; reference looks at the last 2 s */

/* Trace: four 20 s phases with exponential extra delay of mean 3, 15, 40 and 8 ms (caps at
 * 5x the mean), plus a 150 ms delay spike lasting 0.5 s at 30 s. */
static double trace_extra(int k)
{
	static const double mean[4] = {3, 15, 40, 8};
	double m = mean[k / 1000], x = -log(1 - unif()) * m;

	if (x > 5 * m)
		x = 5 * m;
	if (k >= 1500 && k < 1525)
		x += 150;
	return x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_jbuf(void)
{
	static struct pn_jbuf jb;
	static double extra[TRACE_FRAMES], arrive[TRACE_FRAMES];
	static uint64_t ev[TRACE_FRAMES];
	uint8_t payload[4] = {1};
	struct pn_jb_out o;
	double sum_cur = 0, sum_t = 0, sum_ref = 0, sum_err = 0, phase_t[4] = {0};
	int ticks = 0, phase_n[4] = {0}, ref_late = 0, ref_n = 0;

	for (int k = 0; k < TRACE_FRAMES; k++) {
		extra[k] = trace_extra(k);
		arrive[k] = 50 + 20.0 * k + extra[k];
		ev[k] = (uint64_t)llround(arrive[k]) << 16 | (uint64_t)k;
	}
	qsort(ev, TRACE_FRAMES, sizeof(ev[0]), cmp_u64);
	pn_jb_init(&jb, 0, 400);

	/* Reference: at each tick, the exact 97th percentile of the relative delays of the
	 * packets that arrived in the last 2 s (NetEQ's statistic without its histogram and
	 * forgetting). "Late" for it: a packet whose relative delay exceeds the reference
	 * target in force when it arrives. */
	size_t ei = 0;
	double ref_target = 40;
	for (uint64_t t = 0; t < TRACE_FRAMES * 20 + 400; t++) {
		for (; ei < TRACE_FRAMES && (ev[ei] >> 16) <= t; ei++) {
			int k = (int)(ev[ei] & 0xffff);
			pn_jb_put(&jb, t, (uint32_t)k, payload, sizeof(payload));
			if (ref_n > REF_WINDOW) {
				ref_late += extra[k] > ref_target;
			}
			ref_n++;
		}
		if (t % 20 != 7 || ei < REF_WINDOW)
			continue;
		double win[REF_WINDOW];
		int m = 0;
		for (size_t j = ei - REF_WINDOW; j < ei; j++)
			win[m++] = extra[ev[j] & 0xffff];
		qsort(win, (size_t)m, sizeof(double), cmp_double);
		ref_target = win[m * 97 / 100];
		pn_jb_get(&jb, t, true, &o);
		if (t > 10000 && t < TRACE_FRAMES * 20) { /* after 10 s of warm-up */
			double tg = pn_jb_target(&jb);
			sum_cur += jb.cur_ms;
			sum_t += tg;
			sum_ref += ref_target;
			sum_err += fabs(tg - ref_target);
			phase_t[t / 20000] += tg;
			phase_n[t / 20000]++;
			ticks++;
		}
	}
	printf("jitter buffer on an 80 s trace (extra delay mean 3/15/40/8 ms per 20 s, "
	       "150 ms spike at 30 s):\n");
	record("jb_target_mean_ms", sum_t / ticks, "ms");
	record("jb_delay_mean_ms", sum_cur / ticks, "ms");
	record("ref_p97_2s_target_mean_ms", sum_ref / ticks, "ms");
	record("jb_target_vs_ref_mae_ms", sum_err / ticks, "ms");
	record("jb_late_pct", 100.0 * (double)jb.late / TRACE_FRAMES, "%");
	record("ref_late_pct", 100.0 * ref_late / (ref_n - REF_WINDOW), "%");
	for (int p = 0; p < 4; p++) {
		char name[48];
		snprintf(name, sizeof(name), "jb_target_phase%d_ms", p + 1);
		record(name, phase_n[p] ? phase_t[p] / phase_n[p] : 0, "ms");
	}
}

/* ---- 2, 3, 5: calls over the channel ---------------------------------------------------- */

static int16_t *speech;
static size_t n_speech;

static void bench_calls(void)
{
	static const struct {
		const char *name;
		double loss;
	} conds[] = {{"loss0", 0}, {"loss5", 0.05}, {"loss15", 0.15}};
	char name[64];

	printf("calls over a 40 ms channel (%.1f s of speech per run):\n", n_speech / 48000.0);
	for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++) {
		for (int fec = 1; fec >= 0; fec--) {
			struct mc_cond c = {.name = conds[i].name, .loss = conds[i].loss,
					    .delay_ms = 40, .seed = 100 + i};
			struct pn_media_config cfg;
			struct mc_result r;

			pn_media_config_init(&cfg);
			cfg.fec = fec;
			if (mc_run(&c, &cfg, speech, n_speech, NULL, NULL, &r)) {
				fprintf(stderr, "bench-media: call %s failed\n", c.name);
				exit(1);
			}
			const char *tag = fec ? "fec" : "nofec";
			snprintf(name, sizeof(name), "mos_%s_%s", c.name, tag);
			record(name, r.mos, "mos");
			snprintf(name, sizeof(name), "bad_segments_%s_%s", c.name, tag);
			record(name, r.q.bad_pct, "%");
			snprintf(name, sizeof(name), "lsd_%s_%s", c.name, tag);
			record(name, r.q.lsd_db, "dB");
			snprintf(name, sizeof(name), "loss_after_fec_%s_%s", c.name, tag);
			record(name, r.b.loss_post_fec * 100, "%");
			snprintf(name, sizeof(name), "kbps_ip_%s_%s", c.name, tag);
			record(name, r.tx_kbps_ip, "kbit/s");
		}
	}

	/* 5. added delay at zero jitter, zero network delay: what the quality measure finds
	 * between A's microphone samples and B's speaker, plus the 20 ms of capturing a frame
	 * (the simulation hands A a whole frame at once). */
	struct mc_cond c = {.name = "zero", .delay_ms = 0, .seed = 9};
	struct pn_media_config cfg;
	struct mc_result r;
	OpusEncoder *enc;
	int e, la = 0;

	pn_media_config_init(&cfg);
	if (mc_run(&c, &cfg, speech, n_speech, NULL, NULL, &r)) {
		fprintf(stderr, "bench-media: zero-delay call failed\n");
		exit(1);
	}
	enc = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &e);
	opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&la));
	opus_encoder_destroy(enc);
	printf("delay the stack adds (no network delay, no jitter):\n");
	record("framing_ms", 20, "ms");
	record("codec_lookahead_ms", la / 48.0, "ms");
	record("jb_delay_mean_zero_jitter_ms", r.jb_delay_mean_ms, "ms");
	record("measured_mic_to_speaker_ms", r.q.delay_ms + 20, "ms");
}

/* ---- 4. CPU per call side --------------------------------------------------------------- */

/* One side's work per 20 ms: encode + seal its own frame, open + jitter buffer + decode the
 * peer's. Both sides of a call run here, so the per-side figure is half the total. */
static void bench_cpu(bool fec)
{
	uint8_t secret[32] = {7}, atx[32], arx[32], btx[32], brx[32], pkt[PN_MEDIA_PKT_MAX];
	struct pn_media *a, *b;
	int16_t out[PN_MEDIA_FRAME];
	size_t len, frames = n_speech / PN_MEDIA_FRAME;
	int reps = 3;
	uint64_t t = 0;
	double t0, t1;

	pn_media_derive_keys(secret, true, atx, arx);
	pn_media_derive_keys(secret, false, btx, brx);
	if (pn_media_new(&a, NULL, atx, arx, 1, 2) || pn_media_new(&b, NULL, btx, brx, 2, 1))
		exit(1);
	if (fec) {
		/* make both encoders run with FEC at 20 kbit/s, as after a lossy report */
		struct pn_media_report rp = {.echo_delay_ms = 0xffffffffu, .loss_q16 = 6554};
		uint8_t body[PN_MEDIA_REPORT_LEN];
		pn_media_report_encode(&rp, body, sizeof(body));
		pn_media_seal(btx, 1, PN_MEDIA_SEQ_REPORT, body, sizeof(body), pkt, sizeof(pkt),
			      &len);
		pn_media_on_packet(a, 0, pkt, len);
		pn_media_seal(atx, 2, PN_MEDIA_SEQ_REPORT, body, sizeof(body), pkt, sizeof(pkt),
			      &len);
		pn_media_on_packet(b, 0, pkt, len);
	}
	t0 = cpu_s();
	for (int rep = 0; rep < reps; rep++) {
		for (size_t k = 0; k < frames; k++, t += 20) {
			const int16_t *in = speech + k * PN_MEDIA_FRAME;
			if (pn_media_send_frame(a, t, in, pkt, sizeof(pkt), &len))
				exit(1);
			pn_media_on_packet(b, t + 30, pkt, len);
			if (pn_media_send_frame(b, t, in, pkt, sizeof(pkt), &len))
				exit(1);
			pn_media_on_packet(a, t + 30, pkt, len);
			pn_media_playout(a, t + 35, out);
			pn_media_playout(b, t + 35, out);
		}
	}
	t1 = cpu_s();
	double per_frame_us = (t1 - t0) / (double)(frames * (size_t)reps) / 2 * 1e6;
	struct pn_media_stats st;
	pn_media_stats(a, &st);
	record(fec ? "cpu_per_side_fec_us_per_20ms" : "cpu_per_side_us_per_20ms", per_frame_us,
	       "us");
	record(fec ? "cpu_per_side_fec_pct_core" : "cpu_per_side_pct_core",
	       per_frame_us / 20000 * 100, "%");
	if (fec != st.fec_on) {
		fprintf(stderr, "bench-media: FEC state %d, wanted %d\n", st.fec_on, fec);
		exit(1);
	}
	pn_media_free(a);
	pn_media_free(b);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/bench-media-XXXXXX.wav";
	const char *path = argc > 1 ? argv[1] : NULL;

	if (!path) {
		int fd = mkstemps(tmp, 4);
		char cmd[512];
		if (fd < 0)
			return 1;
		close(fd);
		snprintf(
		    cmd, sizeof(cmd),
		    "espeak-ng -v en -s 150 -w %s 'Parley voice calls carry speech over "
		    "networks that lose, delay and reorder packets. The jitter buffer waits just "
		    "long enough, forward error correction rebuilds single losses, and "
		    "concealment hides the rest. Seven, eight, nine, ten.'",
		    tmp);
		if (system(cmd) != 0) {
			fprintf(stderr,
				"bench-media: espeak-ng failed (install it, or pass a WAV)\n");
			return 1;
		}
		path = tmp;
	}
	if (pn_wav_read(path, &speech, &n_speech)) {
		fprintf(stderr, "bench-media: cannot read `%s'\n", path);
		return 1;
	}
	if (path == tmp)
		unlink(tmp);

	bench_jbuf();
	bench_calls();
	printf("CPU per call side (encode+seal, open+jitter buffer+decode, per 20 ms frame):\n");
	bench_cpu(false);
	bench_cpu(true);

	for (int i = 0; i < n_figures; i++)
		printf("{\"bench\":\"media\",\"figure\":\"%s\",\"value\":%.4f,\"unit\":\"%s\"}\n",
		       figures[i].name, figures[i].value, figures[i].unit);
	free(speech);
	return 0;
}
