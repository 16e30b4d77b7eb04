/* Call quality: an objective comparison of what went in with what came out (for tests
 * and benchmarks), and the ITU-T G.107 E-model that turns delay and loss into a MOS
 * estimate (for live call stats, where no reference exists).
 *
 * Objective measure (pn_quality_compare). Opus is a perceptual codec, so waveform SNR
 * says little on its own; what a network impairment does is replace speech segments by
 * something else (concealment, silence, a skipped or repeated frame) or shift them in
 * time. The measure therefore asks, for each 20 ms segment of the reference that holds
 * speech: does the output contain the same waveform at the expected delay? Steps:
 *   1. active segments: reference RMS within 35 dB of the loudest segment and above
 *      -50 dBFS;
 *   2. a global delay by normalized cross-correlation on 2 kHz decimated signals;
 *   3. a tracked delay per segment: the best lag within +-30 ms of the current delay on
 *      8 kHz signals, refined at 48 kHz; the tracked delay moves only when three
 *      segments in a row agree on a new lag (the jitter buffer moves it in 20 ms steps),
 *      so a concealed frame that repeats the previous pitch period is scored at the
 *      true delay and does not earn credit for matching an older segment;
 *   4. per segment at the tracked delay: normalized cross-correlation (NCC, 1 = same
 *      waveform up to gain) and SNR after the least-squares gain, clamped to [-5, 30] dB.
 * Outputs: mean NCC, the share of segments with NCC below 0.6 ("bad": a listener hears a
 * wrong or missing segment), and mean segmental SNR. */
#ifndef PARLEY_CALL_QUALITY_H
#define PARLEY_CALL_QUALITY_H

#include <stddef.h>
#include <stdint.h>

struct pn_quality {
	double ncc_mean;    /* mean NCC over active segments */
	double lsd_db;      /* mean log-spectral distance of band envelopes, dB */
	double bad_pct;     /* percent of active segments with LSD > 6 dB */
	double segsnr_db;   /* mean segmental SNR over active segments */
	double delay_ms;    /* median tracked delay over the scored segments */
	int segments;       /* active segments scored */
};

/* ref and deg are 48 kHz mono. Returns 0, or -EINVAL when ref has no active segment. */
int pn_quality_compare(const int16_t *ref, size_t nref, const int16_t *deg, size_t ndeg,
		       struct pn_quality *q);

/* E-model inputs beyond the G.107 defaults (which are used for everything else: no
 * room noise, TELR 65 dB with T = one-way delay, WEPL 110 dB, A = 0). */
struct pn_emodel {
	double one_way_ms;  /* mouth-to-ear delay Ta */
	double ppl_pct;     /* packet loss after FEC, percent */
	double burst_r;     /* burst ratio (1 = random loss) */
	double ie;          /* equipment impairment of the codec at its bitrate */
	double bpl;         /* packet-loss robustness of the codec + PLC */
};

/* R factor per G.107 (simplified to default room/circuit parameters; see docs). */
double pn_emodel_r(const struct pn_emodel *e);
/* G.107 Annex B mapping from R to the MOS (1..4.5). */
double pn_emodel_mos(double r);
/* Our Ie and Bpl for Opus (documented in docs/BENCHMARKS.md "Voice media"). */
double pn_opus_ie(uint32_t bitrate_bps);
double pn_opus_bpl(void);

#endif
