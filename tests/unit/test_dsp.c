/* Voice DSP (src/audio/dsp.c): echo cancellation and noise suppression on synthetic
 * signals with known echo paths, measured as echo return loss enhancement (ERLE) and
 * noise reduction, plus a double-talk check that the near-end voice survives. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audio/dsp.h"

enum { SECONDS = 10, N = PN_DSP_RATE * SECONDS };

static uint32_t rng = 12345;
static double urand(void)
{
	rng = rng * 1664525u + 1013904223u;
	return (double)(rng >> 8) / 16777216.0 * 2.0 - 1.0;
}

/* Speech-like: low-passed noise under a syllable envelope (4 Hz), with pauses. */
static void voice(int16_t *x, size_t n, double level, double phase)
{
	double lp = 0;
	for (size_t i = 0; i < n; i++) {
		double t = (double)i / PN_DSP_RATE;
		double env = sin(2 * M_PI * 4 * t + phase);
		env = env > 0 ? env : 0;
		if (fmod(t + phase, 3.0) > 2.4)
			env = 0; /* a pause every 3 s */
		lp += 0.25 * (urand() - lp);
		x[i] = (int16_t)(level * 32767 * env * lp * 3);
	}
}

static double energy(const int16_t *x, size_t a, size_t b)
{
	double e = 1e-9;
	for (size_t i = a; i < b; i++)
		e += (double)x[i] * x[i];
	return e;
}

static int16_t *run(struct pn_voice_dsp *d, const int16_t *mic, const int16_t *far)
{
	int16_t *out = calloc(N, sizeof(int16_t));
	for (size_t f = 0; f + PN_DSP_FRAME <= N; f += PN_DSP_FRAME)
		pn_voice_dsp_process(d, mic + f, far ? far + f : NULL, out + f);
	return out;
}

static void test_echo_cancelled(void **state)
{
	int16_t *far = calloc(N, sizeof(int16_t)), *mic = calloc(N, sizeof(int16_t)), *out;
	struct pn_voice_dsp_config cfg = {.aec = true, .denoise = false};
	struct pn_voice_dsp *d = pn_voice_dsp_new(&cfg);
	double erle;

	(void)state;
	voice(far, N, 0.5, 0);
	/* the room: two reflections, 25 ms and 45 ms, well inside the 100 ms tail */
	for (size_t i = 0; i < N; i++) {
		double e = 0;
		if (i >= 1200)
			e += 0.5 * far[i - 1200];
		if (i >= 2160)
			e += 0.2 * far[i - 2160];
		mic[i] = (int16_t)e;
	}
	out = run(d, mic, far);
	/* after 4 s of convergence */
	erle = 10 * log10(energy(mic, 4 * PN_DSP_RATE, N) / energy(out, 4 * PN_DSP_RATE, N));
	printf("  echo return loss enhancement: %.1f dB\n", erle);
	assert_true(erle >= 20.0);
	/* the default chain (echo canceller, then the denoiser) keeps the enhancement */
	pn_voice_dsp_free(d);
	d = pn_voice_dsp_new(NULL);
	free(out);
	out = run(d, mic, far);
	erle = 10 * log10(energy(mic, 4 * PN_DSP_RATE, N) / energy(out, 4 * PN_DSP_RATE, N));
	printf("  with the denoiser after it: %.1f dB\n", erle);
	assert_true(erle >= 20.0);
	/* without the speaker frames the canceller cannot know the echo: no enhancement */
	pn_voice_dsp_free(d);
	d = pn_voice_dsp_new(&cfg);
	free(out);
	out = run(d, mic, NULL);
	erle = 10 * log10(energy(mic, 4 * PN_DSP_RATE, N) / energy(out, 4 * PN_DSP_RATE, N));
	assert_true(erle < 3.0);
	pn_voice_dsp_free(d);
	free(out);
	free(far);
	free(mic);
}

static void test_double_talk_keeps_near_voice(void **state)
{
	int16_t *far = calloc(N, sizeof(int16_t)), *near = calloc(N, sizeof(int16_t));
	int16_t *mic = calloc(N, sizeof(int16_t)), *out;
	struct pn_voice_dsp_config cfg = {.aec = true, .denoise = false};
	struct pn_voice_dsp *d = pn_voice_dsp_new(&cfg);
	double num = 0, den1 = 1e-9, den2 = 1e-9, corr;

	(void)state;
	voice(far, N, 0.5, 0);
	voice(near, N, 0.3, 1.3);
	for (size_t i = 0; i < N; i++)
		mic[i] = (int16_t)(near[i] + (i >= 1200 ? 0.5 * far[i - 1200] : 0));
	out = run(d, mic, far);
	for (size_t i = 5 * PN_DSP_RATE; i < N; i++) {
		num += (double)out[i] * near[i];
		den1 += (double)out[i] * out[i];
		den2 += (double)near[i] * near[i];
	}
	corr = num / sqrt(den1 * den2);
	printf("  near-end voice kept through double talk: correlation %.3f\n", corr);
	assert_true(corr >= 0.8);
	pn_voice_dsp_free(d);
	free(out);
	free(far);
	free(near);
	free(mic);
}

static void test_noise_suppressed(void **state)
{
	int16_t *mic = calloc(N, sizeof(int16_t)), *out;
	struct pn_voice_dsp_config cfg = {.aec = false, .denoise = true};
	struct pn_voice_dsp *d = pn_voice_dsp_new(&cfg);
	double red;

	(void)state;
	voice(mic, N, 0.4, 0);
	for (size_t i = 0; i < N; i++)
		mic[i] = (int16_t)(mic[i] + 300 * urand()); /* steady hiss, about -40 dBFS */
	out = run(d, mic, NULL);
	/* the pauses (2.4..3 s of every 3 s) hold only noise */
	{
		double ein = 0, eout = 0;
		for (int k = 1; k < SECONDS / 3; k++) {
			size_t a = (size_t)((3 * k + 2.45) * PN_DSP_RATE), b = (size_t)((3 * k + 2.95) * PN_DSP_RATE);
			ein += energy(mic, a, b);
			eout += energy(out, a, b);
		}
		red = 10 * log10(ein / eout);
	}
	printf("  noise reduction in speech pauses: %.1f dB\n", red);
	assert_true(red >= 6.0);
	pn_voice_dsp_free(d);
	free(out);
	free(mic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_cancelled),
		cmocka_unit_test(test_double_talk_keeps_near_voice),
		cmocka_unit_test(test_noise_suppressed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
