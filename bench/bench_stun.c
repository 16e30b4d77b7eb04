/* STUN benchmark: CPU cost of the supernode's STUN answer (pn_stun_serve: parse, build
 * XOR-MAPPED-ADDRESS + FINGERPRINT, two CRC-32s, size check, hand to env->send) and of the
 * client's response parse. Single thread, wall time from CLOCK_MONOTONIC; the send
 * callback only counts, so socket cost is not included.
 *
 * Output: a human-readable line per figure, then JSON lines on stdout
 *   {"bench":"stun","figure":"serve_ns","value":123.4,"unit":"ns"}
 * Usage: bench-stun [scale]  (scale multiplies the iteration counts; default 1) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/addr.h"
#include "nat/stun.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long sent;

static int count_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	sent += len;
	return 0;
}

struct figure {
	const char *name;
	double value;
	const char *unit;
};

static struct figure figures[8];
static int n_figures;

static void emit(const char *figure, double value, const char *unit)
{
	if (n_figures < (int)(sizeof(figures) / sizeof(figures[0])))
		figures[n_figures++] = (struct figure){figure, value, unit};
	printf("%-24s %12.1f %s\n", figure, value, unit);
}

static double per_op_ns(int (*op)(void *), void *arg, long n)
{
	double t0 = now_s();

	for (long i = 0; i < n; i++)
		if (op(arg)) {
			fprintf(stderr, "bench-stun: operation failed\n");
			exit(1);
		}
	return (now_s() - t0) * 1e9 / (double)n;
}

struct serve_arg {
	struct pn_env env;
	struct pn_addr from;
	uint8_t req[PN_STUN_PAD_MAX + 64];
	size_t len;
};

static int op_serve(void *p)
{
	struct serve_arg *a = p;
	return pn_stun_serve(&a->env, &a->from, a->req, a->len);
}

struct parse_arg {
	uint8_t ans[PN_STUN_ANSWER_MAX];
	size_t len;
	uint8_t tid[PN_STUN_TID];
};

static int op_parse(void *p)
{
	struct parse_arg *a = p;
	struct pn_stun_msg m;
	return pn_stun_parse_response(&m, a->ans, a->len, a->tid);
}

int main(int argc, char **argv)
{
	long scale = argc > 1 ? strtol(argv[1], NULL, 10) : 1, n;
	struct pn_stun_req_opts o = {.fingerprint = true, .pad_to = 64};
	struct serve_arg s = {.env = {.send = count_send}};
	struct parse_arg p;

	if (scale < 1 || scale > 1000) {
		fprintf(stderr, "bench-stun: scale must be 1..1000\n");
		return 2;
	}
	n = 1000000 * scale;
	memset(o.tid, 0x5c, sizeof(o.tid));
	if (pn_addr_parse(&s.from, "198.18.0.102:40003") ||
	    pn_stun_build_request(s.req, sizeof(s.req), &s.len, &o))
		return 1;
	emit("serve_64B_ns", per_op_ns(op_serve, &s, n), "ns");
	/* the 1524-byte request of a client padding with 1500 bytes (coturn's -P) */
	o.pad_to = PN_STUN_PAD_MAX;
	if (pn_stun_build_request(s.req, sizeof(s.req), &s.len, &o))
		return 1;
	emit("serve_1400B_ns", per_op_ns(op_serve, &s, n / 10), "ns");
	memcpy(p.tid, o.tid, sizeof(p.tid));
	if (pn_stun_answer(p.ans, sizeof(p.ans), &p.len, s.req, s.len, &s.from))
		return 1;
	emit("parse_response_ns", per_op_ns(op_parse, &p, n), "ns");
	for (int i = 0; i < n_figures; i++)
		printf("{\"bench\":\"stun\",\"figure\":\"%s\",\"value\":%.1f,\"unit\":\"%s\"}\n",
		       figures[i].name, figures[i].value, figures[i].unit);
	return sent ? 0 : 1;
}
