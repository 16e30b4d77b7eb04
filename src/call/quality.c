/* Objective speech comparison and the G.107 E-model (see quality.h). */
#include "call/quality.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

enum {
	SEG = 960,          /* 20 ms at 48 kHz */
	D8 = 6,             /* 48 kHz -> 8 kHz */
	D2 = 24,            /* 48 kHz -> 2 kHz */
	SEG8 = SEG / D8,
	GLOBAL_MAX_MS = 1000,
	TRACK_MS = 30,
	REFINE = 6,         /* +- samples at 48 kHz around the 8 kHz lag */
	AGREE = 3,
	AGREE_TOL = 2 * 48, /* lags within 2 ms agree */
};

#define BAD_NCC 0.6
#define BAD_LSD_DB 6.0

/* ---- spectral envelope ---------------------------------------------------------------- */

enum { NFFT = 1024, NBANDS = 18 };
#define BAND_LO_HZ 100.0
#define BAND_HI_HZ 7000.0
#define ENV_FLOOR_DB 50.0

/* In-place radix-2 complex FFT (n a power of two). */
static void fft(double *re, double *im, int n)
{
	for (int i = 1, j = 0; i < n; i++) {
		int bit = n >> 1;
		for (; j & bit; bit >>= 1)
			j ^= bit;
		j ^= bit;
		if (i < j) {
			double t = re[i];
			re[i] = re[j];
			re[j] = t;
			t = im[i];
			im[i] = im[j];
			im[j] = t;
		}
	}
	for (int len = 2; len <= n; len <<= 1) {
		double a = -2 * M_PI / len, wr = cos(a), wi = sin(a);
		for (int i = 0; i < n; i += len) {
			double cr = 1, ci = 0;
			for (int k = 0; k < len / 2; k++) {
				int u = i + k, v = i + k + len / 2;
				double tr = re[v] * cr - im[v] * ci, ti = re[v] * ci + im[v] * cr;
				re[v] = re[u] - tr;
				im[v] = im[u] - ti;
				re[u] += tr;
				im[u] += ti;
				double nr = cr * wr - ci * wi;
				ci = cr * wi + ci * wr;
				cr = nr;
			}
		}
	}
}

/* Band energies in dB of one Hann-windowed 20 ms segment. */
static void bands_db(const int16_t *x, double out[NBANDS])
{
	static double re[NFFT], im[NFFT];
	double edges[NBANDS + 1];

	for (int i = 0; i < NFFT; i++) {
		double w = i < SEG ? 0.5 - 0.5 * cos(2 * M_PI * i / (SEG - 1)) : 0;
		re[i] = i < SEG ? x[i] * w : 0;
		im[i] = 0;
	}
	fft(re, im, NFFT);
	for (int b = 0; b <= NBANDS; b++)
		edges[b] = BAND_LO_HZ * pow(BAND_HI_HZ / BAND_LO_HZ, (double)b / NBANDS);
	for (int b = 0; b < NBANDS; b++) {
		int k0 = (int)(edges[b] * NFFT / 48000), k1 = (int)(edges[b + 1] * NFFT / 48000);
		double e = 0;
		if (k1 <= k0)
			k1 = k0 + 1;
		for (int k = k0; k < k1; k++)
			e += re[k] * re[k] + im[k] * im[k];
		out[b] = 10 * log10(e / (k1 - k0) + 1e-3);
	}
}

/* Log-spectral distance (dB) between the band envelopes of two segments; bands more than
 * ENV_FLOOR_DB below the reference's loudest band are raised to that floor in both, so
 * inaudible detail does not count. */
static double lsd(const int16_t *r, const int16_t *d)
{
	double br[NBANDS], bd[NBANDS], mx = -1e9, acc = 0;

	bands_db(r, br);
	bands_db(d, bd);
	for (int b = 0; b < NBANDS; b++)
		mx = fmax(mx, br[b]);
	for (int b = 0; b < NBANDS; b++) {
		double x = fmax(br[b], mx - ENV_FLOOR_DB), y = fmax(bd[b], mx - ENV_FLOOR_DB);
		acc += (x - y) * (x - y);
	}
	return sqrt(acc / NBANDS);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Box-filter decimation: crude low-pass, enough to find a lag. */
static float *decimate(const int16_t *x, size_t n, int d, size_t *nout)
{
	size_t m = n / (size_t)d;
	float *y = malloc((m ? m : 1) * sizeof(*y));

	if (!y)
		return NULL;
	for (size_t i = 0; i < m; i++) {
		float s = 0;
		for (int k = 0; k < d; k++)
			s += x[i * (size_t)d + (size_t)k];
		y[i] = s / (float)d;
	}
	*nout = m;
	return y;
}

static double ncc_f(const float *a, const float *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;

	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static double ncc_s(const int16_t *a, const int16_t *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;

	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static double seg_rms(const int16_t *x)
{
	double e = 0;

	for (int i = 0; i < SEG; i++)
		e += (double)x[i] * x[i];
	return sqrt(e / SEG);
}

/* Best lag (48 kHz samples) for reference segment s within [lo, hi]; NCC in *best. */
static long seg_best_lag(const int16_t *ref, const int16_t *deg, size_t ndeg, const float *r8,
			 const float *d8, size_t nd8, size_t s, long lo, long hi, double *best)
{
	long bl = -1;
	double bv = -2;

	if (lo < 0)
		lo = 0;
	for (long l8 = lo / D8; l8 <= hi / D8; l8++) {
		size_t off = s * SEG8 + (size_t)l8;
		if (off + SEG8 > nd8)
			break;
		double v = ncc_f(r8 + s * SEG8, d8 + off, SEG8);
		if (v > bv) {
			bv = v;
			bl = l8 * D8;
		}
	}
	if (bl < 0) {
		*best = 0;
		return -1;
	}
	long c = bl;
	bv = -2;
	for (long l = c - REFINE; l <= c + REFINE; l++) {
		if (l < 0 || s * SEG + (size_t)l + SEG > ndeg)
			continue;
		double v = ncc_s(ref + s * SEG, deg + s * SEG + (size_t)l, SEG);
		if (v > bv) {
			bv = v;
			bl = l;
		}
	}
	*best = bv;
	return bl;
}

/* Scores segment s at lag l (small refinement only: +-0.5 ms). */
static void seg_score(const int16_t *ref, const int16_t *deg, size_t ndeg, size_t s, long l,
		      double *ncc, double *snr, double *dist)
{
	long bl = -1;
	double bv = -2;

	for (long k = l - 24; k <= l + 24; k++) {
		if (k < 0 || s * SEG + (size_t)k + SEG > ndeg)
			continue;
		double v = ncc_s(ref + s * SEG, deg + s * SEG + (size_t)k, SEG);
		if (v > bv) {
			bv = v;
			bl = k;
		}
	}
	if (bl < 0) { /* the output ends before this segment: missing */
		*ncc = 0;
		*snr = -5;
		*dist = 40;
		return;
	}
	const int16_t *r = ref + s * SEG, *d = deg + s * SEG + (size_t)bl;
	double rd = 0, dd = 0, rr = 0, err = 0;
	for (int i = 0; i < SEG; i++) {
		rd += (double)r[i] * d[i];
		dd += (double)d[i] * d[i];
		rr += (double)r[i] * r[i];
	}
	double g = dd > 0 ? rd / dd : 0;
	for (int i = 0; i < SEG; i++) {
		double e = r[i] - g * d[i];
		err += e * e;
	}
	double v = err > 0 ? 10 * log10(rr / err) : 30;
	*snr = v < -5 ? -5 : v > 30 ? 30 : v;
	*ncc = bv < 0 ? 0 : bv;
	*dist = lsd(r, d);
}

int pn_quality_compare(const int16_t *ref, size_t nref, const int16_t *deg, size_t ndeg,
		       struct pn_quality *q)
{
	size_t nseg = nref / SEG, n2r = 0, n2d = 0, n8r = 0, n8d = 0;
	float *r2 = NULL, *d2 = NULL, *r8 = NULL, *d8 = NULL;
	bool *active = NULL;
	double *ncc = NULL, *snr = NULL, *dist = NULL, *lags = NULL;
	double peak = 0;
	int err = -EINVAL;

	*q = (struct pn_quality){0};
	if (!nseg)
		return -EINVAL;
	r2 = decimate(ref, nref, D2, &n2r);
	d2 = decimate(deg, ndeg, D2, &n2d);
	r8 = decimate(ref, nref, D8, &n8r);
	d8 = decimate(deg, ndeg, D8, &n8d);
	active = calloc(nseg, sizeof(*active));
	ncc = calloc(nseg, sizeof(*ncc));
	snr = calloc(nseg, sizeof(*snr));
	dist = calloc(nseg, sizeof(*dist));
	lags = calloc(nseg, sizeof(*lags));
	if (!r2 || !d2 || !r8 || !d8 || !active || !ncc || !snr || !dist || !lags) {
		err = -ENOMEM;
		goto out;
	}

	/* 1. active segments */
	for (size_t s = 0; s < nseg; s++) {
		double v = seg_rms(ref + s * SEG);
		if (v > peak)
			peak = v;
	}
	double floor_rms = fmax(peak * pow(10, -35.0 / 20), 32768 * pow(10, -50.0 / 20));
	int n_active = 0;
	for (size_t s = 0; s < nseg; s++) {
		active[s] = seg_rms(ref + s * SEG) >= floor_rms;
		n_active += active[s];
	}
	if (!n_active)
		goto out;

	/* 2. global delay */
	long gmax = GLOBAL_MAX_MS * 2, glag = 0;
	double gbest = -2;
	for (long l = 0; l <= gmax; l++) {
		if ((size_t)l >= n2d)
			break;
		size_t n = n2r < n2d - (size_t)l ? n2r : n2d - (size_t)l;
		double v = ncc_f(r2, d2 + l, n);
		if (v > gbest) {
			gbest = v;
			glag = l;
		}
	}
	long lag = glag * D2, cand = -1;
	int cand_n = 0;

	/* 3 and 4. tracked delay, scores */
	int nl = 0;
	for (size_t s = 0; s < nseg; s++) {
		if (!active[s])
			continue;
		lags[nl++] = (double)lag;
		double bv;
		long b = seg_best_lag(ref, deg, ndeg, r8, d8, n8d, s, lag - TRACK_MS * 48,
				      lag + TRACK_MS * 48, &bv);
		if (b >= 0 && labs(b - lag) > AGREE_TOL && bv > BAD_NCC) {
			if (cand >= 0 && labs(b - cand) <= AGREE_TOL) {
				cand_n++;
			} else {
				cand = b;
				cand_n = 1;
			}
			if (cand_n >= AGREE) {
				/* The delay moved: rescore the segments that saw it first. */
				lag = cand;
				int k = 0;
				for (size_t t = s + 1; t-- > 0 && k < AGREE;) {
					if (!active[t])
						continue;
					seg_score(ref, deg, ndeg, t, lag, &ncc[t], &snr[t],
						  &dist[t]);
					k++;
				}
				cand = -1;
				cand_n = 0;
				continue;
			}
		} else if (b >= 0 && labs(b - lag) <= AGREE_TOL) {
			cand = -1;
			cand_n = 0;
		}
		seg_score(ref, deg, ndeg, s, lag, &ncc[s], &snr[s], &dist[s]);
	}

	double sn = 0, ss = 0, sd = 0;
	int bad = 0;
	for (size_t s = 0; s < nseg; s++) {
		if (!active[s])
			continue;
		sn += ncc[s];
		ss += snr[s];
		sd += dist[s];
		bad += dist[s] > BAD_LSD_DB;
	}
	q->lsd_db = sd / n_active;
	q->segments = n_active;
	q->ncc_mean = sn / n_active;
	q->segsnr_db = ss / n_active;
	q->bad_pct = 100.0 * bad / n_active;
	/* the delay most segments were scored at (the final one may be a transient) */
	qsort(lags, (size_t)nl, sizeof(*lags), cmp_double);
	q->delay_ms = lags[nl / 2] / 48.0;
	err = 0;
out:
	free(r2);
	free(d2);
	free(r8);
	free(d8);
	free(active);
	free(ncc);
	free(snr);
	free(dist);
	free(lags);
	return err;
}

/* ---- E-model (ITU-T G.107) ---------------------------------------------------------- */

/* G.107 default values: Ro = 94.77 (from No = -61.18 dBm0p), Is = 1.41, TELR = 65 dB,
 * WEPL = 110 dB, qdu = 1, A = 0. With T = Ta = Tr/2 = 0 these give the default R = 93.2. */
#define RO 94.77
#define IS 1.41
#define TELR 65.0
#define WEPL 110.0

static double id_delay(double ta)
{
	double t = ta, tr = 2 * ta, idd = 0, idte, idle;

	/* Idd: absolute delay */
	if (ta > 100) {
		double x = log(ta / 100) / log(2);
		idd = 25 * (pow(1 + pow(x, 6), 1.0 / 6) - 3 * pow(1 + pow(x / 3, 6), 1.0 / 6) + 2);
	}
	/* Idte: talker echo, with the default TELR (a working echo canceller) */
	double roe = -1.5 * (-61.18 - 2); /* No = -61.18 */
	double terv = TELR - 40 * log10((1 + t / 10) / (1 + t / 150)) + 6 * exp(-0.3 * t * t);
	double re = 80 + 2.5 * (terv - 14);
	idte = ((roe - re) / 2 + sqrt((roe - re) * (roe - re) / 4 + 100) - 1) * (1 - exp(-t));
	/* Idle: listener echo */
	double rle = 10.5 * (WEPL + 7) * pow(tr + 1, -0.25);
	idle = (RO - rle) / 2 + sqrt((RO - rle) * (RO - rle) / 4 + 169);
	return idd + idte + idle;
}

double pn_emodel_r(const struct pn_emodel *e)
{
	double ppl = e->ppl_pct < 0 ? 0 : e->ppl_pct > 100 ? 100 : e->ppl_pct;
	double burst = e->burst_r < 1 ? 1 : e->burst_r;
	double ie_eff = e->ie + (95 - e->ie) * ppl / (ppl / burst + e->bpl);
	double r = RO - IS - id_delay(e->one_way_ms < 0 ? 0 : e->one_way_ms) - ie_eff;

	return r < 0 ? 0 : r > 100 ? 100 : r;
}

double pn_emodel_mos(double r)
{
	if (r <= 0)
		return 1;
	if (r >= 100)
		return 4.5;
	return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6;
}

/* ITU-T G.113 lists no Opus values. Our choice: Ie 0 from 12 kbit/s up (Opus wideband
 * there matches or beats G.711 narrowband, whose Ie is 0, in published listening tests),
 * rising linearly by 2.5 per kbit/s below (8 kbit/s, narrowband: Ie 10, near G.729A's
 * 11). */
double pn_opus_ie(uint32_t bitrate_bps)
{
	double ie = (12000.0 - (double)bitrate_bps) / 1000.0 * 2.5;

	return ie < 0 ? 0 : ie > 30 ? 30 : ie;
}

/* Applied to the loss left after FEC, so it rates Opus PLC alone: 20, between G.729A
 * with VAD (19) and G.711 with its Appendix I PLC (25.1) from G.113 Appendix I. */
double pn_opus_bpl(void)
{
	return 20.0;
}
