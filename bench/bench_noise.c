/* Noise benchmark: CPU cost of a full handshake (both sides, including the transport-key
 * split) for IK and XX, and transport seal/open throughput for 100-byte (voice frame) and
 * 1200-byte (near-MTU) packets. Single thread, wall time from CLOCK_MONOTONIC.
 *
 * Output: a human-readable line per figure, then JSON lines
 *   {"bench":"noise","figure":"ik_handshake_us","value":123.4,"unit":"us"}
 * Usage: bench-noise [scale]  (scale multiplies the iteration counts; default 1) */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "crypto/keys.h"
#include "crypto/noise.h"

struct figure {
	const char *name;
	double value;
	const char *unit;
};

static struct figure figures[16];
static int n_figures;

static void record(const char *name, double value, const char *unit)
{
	if (n_figures < (int)(sizeof(figures) / sizeof(figures[0])))
		figures[n_figures++] = (struct figure){name, value, unit};
	printf("%-24s %12.3f %s\n", name, value, unit);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint8_t sink;

/* One full handshake between fresh states; returns 0 or exits on failure. */
static void handshake(const char *pattern, const struct pn_keys *ik, const struct pn_keys *rk,
		      bool known_responder)
{
	struct pn_noise_hs ini, res;
	struct pn_noise_cipher a, b, c, d;
	uint8_t e1[32], e2[32], msg[256], pt[64];
	size_t n, m;

	randombytes_buf(e1, sizeof(e1));
	randombytes_buf(e2, sizeof(e2));
	if (pn_noise_hs_init(&ini, pattern, true, NULL, 0, ik->dh_sk,
			     known_responder ? rk->dh_pk : NULL, e1) ||
	    pn_noise_hs_init(&res, pattern, false, NULL, 0, rk->dh_sk, NULL, e2))
		goto fail;
	while (!pn_noise_hs_is_done(&ini)) {
		struct pn_noise_hs *tx = pn_noise_hs_my_turn(&ini) ? &ini : &res;
		struct pn_noise_hs *rx = tx == &ini ? &res : &ini;

		if (pn_noise_hs_write(tx, NULL, 0, msg, sizeof(msg), &n) ||
		    pn_noise_hs_read(rx, msg, n, pt, sizeof(pt), &m))
			goto fail;
	}
	if (pn_noise_hs_split(&ini, &a, &b) || pn_noise_hs_split(&res, &c, &d))
		goto fail;
	sink ^= a.k[0] ^ d.k[0];
	pn_noise_hs_wipe(&ini);
	pn_noise_hs_wipe(&res);
	return;
fail:
	fprintf(stderr, "bench-noise: %s handshake failed\n", pattern);
	exit(1);
}

static void bench_handshake(const char *pattern, const char *figure, int iters,
			    const struct pn_keys *ik, const struct pn_keys *rk, bool known)
{
	double t0;

	for (int i = 0; i < iters / 10 + 1; i++) /* warm-up */
		handshake(pattern, ik, rk, known);
	t0 = now_s();
	for (int i = 0; i < iters; i++)
		handshake(pattern, ik, rk, known);
	record(figure, (now_s() - t0) * 1e6 / iters, "us");
}

static void bench_aead(size_t len, int iters, const char *seal_ns, const char *open_ns,
		       const char *seal_mbs, const char *open_mbs)
{
	uint8_t key[32], ad[16] = {1}, pt[1200], ct[1200 + 16], back[1200];
	double t0, seal_s, open_s;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(pt, sizeof(pt));
	t0 = now_s();
	for (int i = 0; i < iters; i++) {
		pn_aead_seal(key, (uint64_t)i, ad, sizeof(ad), pt, len, ct);
		sink ^= ct[0];
	}
	seal_s = now_s() - t0;
	pn_aead_seal(key, 7, ad, sizeof(ad), pt, len, ct);
	t0 = now_s();
	for (int i = 0; i < iters; i++) {
		if (pn_aead_open(key, 7, ad, sizeof(ad), ct, len + 16, back)) {
			fprintf(stderr, "bench-noise: open failed\n");
			exit(1);
		}
		sink ^= back[0];
	}
	open_s = now_s() - t0;
	record(seal_ns, seal_s * 1e9 / iters, "ns");
	record(open_ns, open_s * 1e9 / iters, "ns");
	record(seal_mbs, (double)len * iters / seal_s / 1e6, "MB/s");
	record(open_mbs, (double)len * iters / open_s / 1e6, "MB/s");
}

int main(int argc, char **argv)
{
	struct pn_keys ik, rk;
	uint8_t seed[PN_SEED];
	long scale = 1;
	char *end;

	if (argc > 1) {
		errno = 0;
		scale = strtol(argv[1], &end, 10);
		if (errno || *end || scale < 1 || scale > 1000) {
			fprintf(stderr, "bench-noise: scale is not an integer in 1..1000: `%s'\n",
				argv[1]);
			return 2;
		}
	}
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(seed, sizeof(seed));
	if (pn_keys_from_seed(&ik, seed))
		return 1;
	randombytes_buf(seed, sizeof(seed));
	if (pn_keys_from_seed(&rk, seed))
		return 1;

	bench_handshake("IK", "ik_handshake_us", (int)(2000 * scale), &ik, &rk, true);
	bench_handshake("XX", "xx_handshake_us", (int)(2000 * scale), &ik, &rk, false);
	bench_aead(100, (int)(500000 * scale), "seal_100_ns", "open_100_ns", "seal_100_mb_per_s",
		   "open_100_mb_per_s");
	bench_aead(1200, (int)(200000 * scale), "seal_1200_ns", "open_1200_ns", "seal_1200_mb_per_s",
		   "open_1200_mb_per_s");

	for (int i = 0; i < n_figures; i++)
		printf("{\"bench\":\"noise\",\"figure\":\"%s\",\"value\":%.1f,\"unit\":\"%s\"}\n",
		       figures[i].name, figures[i].value, figures[i].unit);
	pn_keys_wipe(&ik);
	pn_keys_wipe(&rk);
	return 0;
}
