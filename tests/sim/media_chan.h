/* A virtual-time call over an impaired channel: two pn_media sides, A sends a speech
 * signal, B sends silence, both send receiver reports; every packet crosses a channel
 * with a fixed delay, per-packet jitter and random or Gilbert-Elliott loss. Shared by
 * tests/sim/test_media_channel.c and bench/bench_media.c. Deterministic from the seed. */
#ifndef PARLEY_TESTS_MEDIA_CHAN_H
#define PARLEY_TESTS_MEDIA_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/media.h"
#include "call/quality.h"

struct mc_cond {
	const char *name;
	double loss;       /* random (Bernoulli) loss probability, per packet */
	bool gilbert;      /* Gilbert-Elliott instead: good->bad p, bad->good r, lose all in bad */
	double ge_p, ge_r;
	int delay_ms;      /* fixed one-way delay */
	int jitter_ms;     /* J: extra delay ~ exponential with mean J/2, capped at 2.5 J */
	uint64_t seed;
};

struct mc_result {
	struct pn_quality q;          /* A's input vs B's output */
	struct pn_media_stats a, b;   /* at the end */
	double mos;                   /* B's E-model MOS at the end */
	double tx_kbps_ip;            /* A -> B incl. IPv4 + UDP headers, audio + reports */
	double jb_delay_mean_ms;      /* B's jitter-buffer delay, mean over playout ticks */
	uint64_t net_lost;            /* A -> B packets the channel dropped */
	uint64_t net_sent;
};

/* Runs the call for the speech plus 2 s; out (optional, free() it) gets B's playout
 * from t = 0 (the speech's frame k enters A's encoder at t = 20 k ms, so the delay the
 * quality measure finds is network + codec + jitter buffer + playout phase; the 20 ms it
 * takes to capture a frame are not in it). Returns 0 or a negative error. */
int mc_run(const struct mc_cond *c, const struct pn_media_config *cfg, const int16_t *speech,
	   size_t n, int16_t **out, size_t *nout, struct mc_result *res);

#endif
