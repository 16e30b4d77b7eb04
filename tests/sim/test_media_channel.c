/* A voice call over impaired channels, in virtual time: two pn_media sides (tests/sim/
 * media_chan.c), A speaks a sentence synthesized by espeak-ng at build time
 * (tests/sim/meson.build), and B's speaker output is compared with A's microphone input
 * by the objective measure of src/call/quality.c.
 *
 * Each condition has thresholds, chosen from measured values with margin (the measured
 * values are in docs/BENCHMARKS.md "Voice media"), and each impaired condition is also run
 * with the defence it needs switched off (FEC and PLC, or a jitter buffer capped at
 * 20 ms); that run must miss the same thresholds, so they are known to discriminate.
 *
 * Measure: "bad" = percent of speech segments (20 ms) whose band envelope is more than
 * 6 dB (RMS over 18 bands) away from the reference's at the tracked delay; "lsd" = mean
 * of that distance. Opus at 10 kbit/s alone leaves about 13 % bad segments. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio/wav.h"
#include "media_chan.h"

#ifndef PN_SPEECH_WAV
#error "PN_SPEECH_WAV (the espeak-ng sample made by the build) must be defined"
#endif

static int16_t *speech;
static size_t n_speech;

struct limits {
	double max_bad_pct, max_lsd_db, min_mos, max_delay_ms;
};

static int setup(void **state)
{
	(void)state;
	if (pn_wav_read(PN_SPEECH_WAV, &speech, &n_speech) != 0) {
		fprintf(stderr, "cannot read the speech sample %s\n", PN_SPEECH_WAV);
		return -1;
	}
	return n_speech > 48000 * 3 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(speech);
	return 0;
}

static struct mc_result run(const struct mc_cond *c, const struct pn_media_config *cfg)
{
	struct mc_result r;

	assert_int_equal(mc_run(c, cfg, speech, n_speech, NULL, NULL, &r), 0);
	print_message("%-10s fec %d plc %d jbmax %3u: bad %5.1f %%  lsd %4.2f dB  ncc %.3f  "
		      "delay %5.1f ms  mos %.2f  loss %4.1f->%4.1f %%  late %llu  jb %5.1f ms  "
		      "%.1f kbit/s\n",
		      c->name, cfg->fec, cfg->plc, cfg->jb_max_ms, r.q.bad_pct, r.q.lsd_db,
		      r.q.ncc_mean, r.q.delay_ms, r.mos, r.b.loss_pre_fec * 100,
		      r.b.loss_post_fec * 100, (unsigned long long)r.b.late, r.jb_delay_mean_ms,
		      r.tx_kbps_ip);
	return r;
}

static bool meets(const struct mc_result *r, const struct limits *l)
{
	return r->q.bad_pct <= l->max_bad_pct && r->q.lsd_db <= l->max_lsd_db &&
	       r->mos >= l->min_mos && r->q.delay_ms <= l->max_delay_ms;
}

static void check(const struct mc_cond *c, const struct limits *l, int control)
{
	struct pn_media_config cfg;
	struct mc_result r;

	pn_media_config_init(&cfg);
	r = run(c, &cfg);
	assert_true(r.q.bad_pct <= l->max_bad_pct);
	assert_true(r.q.lsd_db <= l->max_lsd_db);
	assert_true(r.mos >= l->min_mos);
	assert_true(r.q.delay_ms <= l->max_delay_ms);
	assert_int_equal(r.b.drop_auth + r.b.drop_malformed + r.b.drop_replay, 0);

	/* the same call without the defence this condition needs must fail the limits */
	if (control == 1) {
		cfg.fec = false;
		cfg.plc = false;
	} else if (control == 2) {
		cfg.jb_max_ms = 20;
	} else {
		return;
	}
	r = run(c, &cfg);
	assert_false(meets(&r, l));
}

/* fixed one-way delay 40 ms everywhere; seeds fixed */
static void clean(void **state)
{
	struct mc_cond c = {.name = "clean", .delay_ms = 40, .seed = 1};
	/* delay: 40 ms network + 20 ms frame + 6.5 ms lookahead + playout phase */
	struct limits l = {.max_bad_pct = 17, .max_lsd_db = 4.8, .min_mos = 4.1,
			   .max_delay_ms = 80};

	(void)state;
	check(&c, &l, 0);
}

static void loss_5(void **state)
{
	struct mc_cond c = {.name = "loss5", .loss = 0.05, .delay_ms = 40, .seed = 2};
	struct limits l = {.max_bad_pct = 17, .max_lsd_db = 4.8, .min_mos = 3.9,
			   .max_delay_ms = 100};

	(void)state;
	check(&c, &l, 1);
}

static void loss_15(void **state)
{
	struct mc_cond c = {.name = "loss15", .loss = 0.15, .delay_ms = 40, .seed = 3};
	struct limits l = {.max_bad_pct = 31, .max_lsd_db = 5.7, .min_mos = 3.2,
			   .max_delay_ms = 100};

	(void)state;
	check(&c, &l, 1);
}

/* Gilbert-Elliott: p = 4 %, r = 30 % -> 11.8 % loss in bursts of 3.3 packets on average */
static void loss_bursty(void **state)
{
	struct mc_cond c = {.name = "bursty", .gilbert = true, .ge_p = 0.04, .ge_r = 0.3,
			    .delay_ms = 40, .seed = 4};
	struct limits l = {.max_bad_pct = 30, .max_lsd_db = 6.0, .min_mos = 2.7,
			   .max_delay_ms = 100};

	(void)state;
	check(&c, &l, 1);
}

static void jitter_30(void **state)
{
	struct mc_cond c = {.name = "jitter30", .delay_ms = 40, .jitter_ms = 30, .seed = 5};
	struct limits l = {.max_bad_pct = 18, .max_lsd_db = 4.8, .min_mos = 4.0,
			   .max_delay_ms = 140};

	(void)state;
	check(&c, &l, 2);
}

static void jitter_80(void **state)
{
	struct mc_cond c = {.name = "jitter80", .delay_ms = 40, .jitter_ms = 80, .seed = 6};
	struct limits l = {.max_bad_pct = 26, .max_lsd_db = 6.0, .min_mos = 3.4,
			   .max_delay_ms = 240};

	(void)state;
	check(&c, &l, 2);
}

static void loss_5_jitter_30(void **state)
{
	struct mc_cond c = {.name = "loss5+j30", .loss = 0.05, .delay_ms = 40, .jitter_ms = 30,
			    .seed = 7};
	struct limits l = {.max_bad_pct = 21, .max_lsd_db = 5.1, .min_mos = 3.7,
			   .max_delay_ms = 140};

	(void)state;
	check(&c, &l, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(clean),
		cmocka_unit_test(loss_5),
		cmocka_unit_test(loss_15),
		cmocka_unit_test(loss_bursty),
		cmocka_unit_test(jitter_30),
		cmocka_unit_test(jitter_80),
		cmocka_unit_test(loss_5_jitter_30),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
