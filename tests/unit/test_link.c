/* Unit tests for src/session: the secure link (Noise IK and XX handshakes, DATA transport
 * with its replay window, every way a packet can be refused) and the link table (open
 * addressing with backward-shift deletion checked against a reference model, eviction,
 * expiry, pending lookup). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/addr.h"
#include "base/buf.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "crypto/noise.h"
#include "session/link.h"
#include "session/ltab.h"
#include "wire/wire.h"

/* ---------------------------------------------------------------- link helpers */

enum {
	INI_IDX = 0x11223344,
	RESP_IDX = 0x55667788,
	INI_TS = 1700000000123ull,
	RESP_TS = 1700000000456ull,
	T0 = 1000,
};

/* Two parties with keys and (fake but distinct) certificate bytes. Links are large, so a
 * pair lives on the heap. */
struct pair {
	struct pn_keys ik, rk;
	uint8_t e_i[32], e_r[32];
	uint8_t ini_cert[100], resp_cert[60];
	struct pn_link_params pi, pr;
	struct pn_link a, b; /* a initiates, b responds */
	uint8_t out[PN_PKT_RX_MAX];
	size_t out_len;
	enum pn_link_event ev;
};

static void seed_keys(struct pn_keys *k, uint8_t byte)
{
	uint8_t seed[PN_SEED];

	memset(seed, byte, sizeof(seed));
	assert_int_equal(pn_keys_from_seed(k, seed), 0);
}

static struct pair *pair_new(uint8_t pattern, uint8_t purpose)
{
	struct pair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	seed_keys(&p->ik, 0x11);
	seed_keys(&p->rk, 0x22);
	memset(p->e_i, 0x33, 32);
	memset(p->e_r, 0x44, 32);
	for (size_t i = 0; i < sizeof(p->ini_cert); i++)
		p->ini_cert[i] = (uint8_t)(0x80 + i);
	for (size_t i = 0; i < sizeof(p->resp_cert); i++)
		p->resp_cert[i] = (uint8_t)(0x10 + i);
	p->pi = (struct pn_link_params){
		.pattern = pattern,
		.purpose = purpose,
		.s_sk = p->ik.dh_sk,
		.rs = pattern == PN_PATTERN_IK ? p->rk.dh_pk : NULL,
		.e_sk = p->e_i,
		.local_idx = INI_IDX,
		.timestamp_ms = INI_TS,
		.cert = p->ini_cert,
		.cert_len = sizeof(p->ini_cert),
		.now = T0,
	};
	p->pr = (struct pn_link_params){
		.s_sk = p->rk.dh_sk,
		.e_sk = p->e_r,
		.local_idx = RESP_IDX,
		.timestamp_ms = RESP_TS,
		.cert = p->resp_cert,
		.cert_len = sizeof(p->resp_cert),
		.now = T0 + 1,
	};
	return p;
}

static void parse(struct pn_pkt_hdr *h, const uint8_t *buf, size_t len)
{
	assert_int_equal(pn_pkt_parse(h, buf, len), 0);
}

/* a -> HS1 -> b. */
static void do_hs1(struct pair *p)
{
	struct pn_pkt_hdr h;

	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	assert_int_equal(p->a.state, PN_LINK_WAIT_HS2);
	parse(&h, p->a.hs_pkt, p->a.hs_pkt_len);
	assert_int_equal(h.type, PN_PKT_HS1);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), 0);
}

/* Feeds pkt to link l; returns pn_link_input's result (the parse must succeed). */
static int feed(struct pair *p, struct pn_link *l, const uint8_t *pkt, size_t len, uint64_t now)
{
	struct pn_pkt_hdr h;

	parse(&h, pkt, len);
	return pn_link_input(l, &h, now, p->out, sizeof(p->out), &p->out_len, &p->ev);
}

/* Runs the whole handshake of the pair's pattern; both links end UP. */
static void handshake(struct pair *p)
{
	do_hs1(p);
	assert_int_equal(feed(p, &p->a, p->b.hs_pkt, p->b.hs_pkt_len, T0 + 2), 0);
	assert_int_equal(p->ev, PN_LINK_EV_UP);
	if (p->pi.pattern == PN_PATTERN_XX) {
		assert_int_equal(feed(p, &p->b, p->a.hs_pkt, p->a.hs_pkt_len, T0 + 3), 0);
		assert_int_equal(p->ev, PN_LINK_EV_UP);
	}
	assert_int_equal(p->a.state, PN_LINK_UP);
	assert_int_equal(p->b.state, PN_LINK_UP);
}

/* Seals frame on `from' and checks that `to' opens it to the same bytes. */
static void data_ok(struct pair *p, struct pn_link *from, struct pn_link *to, const char *frame)
{
	uint8_t pkt[PN_PKT_MAX];
	size_t n;

	assert_int_equal(pn_link_seal(from, (const uint8_t *)frame, strlen(frame), T0 + 10, pkt,
				      sizeof(pkt), &n),
			 0);
	assert_int_equal(n, PN_DATA_HDR + strlen(frame) + PN_TAG);
	assert_int_equal(feed(p, to, pkt, n, T0 + 11), 0);
	assert_int_equal(p->ev, PN_LINK_EV_DATA);
	assert_int_equal(p->out_len, strlen(frame));
	assert_memory_equal(p->out, frame, strlen(frame));
}

static void seal(struct pn_link *l, const char *frame, uint8_t *pkt, size_t *n)
{
	assert_int_equal(pn_link_seal(l, (const uint8_t *)frame, strlen(frame), T0 + 10, pkt,
				      PN_PKT_MAX, n),
			 0);
}

/* ---------------------------------------------------------------- link cases */

static void link_ik_roundtrip(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);

	do_hs1(p);
	/* IK: the responder is up after HS1, knows the initiator's static key, but has no
	 * proof yet that the initiator holds the transport keys. */
	assert_int_equal(p->b.state, PN_LINK_UP);
	assert_false(p->b.confirmed);
	assert_memory_equal(p->b.remote_static, p->ik.dh_pk, 32);
	assert_int_equal(p->b.remote_idx, INI_IDX);
	assert_int_equal(p->b.purpose, PN_PURPOSE_ATTACH);

	assert_int_equal(feed(p, &p->a, p->b.hs_pkt, p->b.hs_pkt_len, T0 + 2), 0);
	assert_int_equal(p->ev, PN_LINK_EV_UP);
	assert_int_equal(p->a.state, PN_LINK_UP);
	assert_true(p->a.confirmed);
	assert_int_equal(p->a.remote_idx, RESP_IDX);
	assert_memory_equal(p->a.remote_static, p->rk.dh_pk, 32);

	data_ok(p, &p->a, &p->b, "hello responder");
	assert_true(p->b.confirmed);
	data_ok(p, &p->b, &p->a, "hello initiator");
	data_ok(p, &p->a, &p->b, "again");
	data_ok(p, &p->b, &p->a, "");
	free(p);
}

static void link_xx_roundtrip(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_XX, PN_PURPOSE_E2E);
	struct pn_pkt_hdr h;

	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	parse(&h, p->a.hs_pkt, p->a.hs_pkt_len);
	assert_int_equal(h.pattern, PN_PATTERN_XX);
	/* XX message 1 is only e: nothing about the initiator travels in it. */
	assert_int_equal(p->a.hs_pkt_len, PN_HS1_HDR + PN_XX1_MIN);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), 0);
	assert_int_equal(p->b.state, PN_LINK_WAIT_HS3);
	assert_int_equal(p->b.peer_cert_len, 0);

	/* HS2 carries the responder's certificate; the initiator answers with HS3. */
	assert_int_equal(feed(p, &p->a, p->b.hs_pkt, p->b.hs_pkt_len, T0 + 2), 0);
	assert_int_equal(p->ev, PN_LINK_EV_UP);
	assert_int_equal(p->a.state, PN_LINK_UP);
	assert_false(p->a.confirmed);
	assert_int_equal(p->a.peer_cert_len, sizeof(p->resp_cert));
	assert_memory_equal(p->a.peer_cert, p->resp_cert, sizeof(p->resp_cert));
	assert_memory_equal(p->a.remote_static, p->rk.dh_pk, 32);
	parse(&h, p->a.hs_pkt, p->a.hs_pkt_len);
	assert_int_equal(h.type, PN_PKT_HS3);
	assert_int_equal(h.receiver_idx, RESP_IDX);

	/* HS3 carries the initiator's certificate. */
	assert_int_equal(feed(p, &p->b, p->a.hs_pkt, p->a.hs_pkt_len, T0 + 3), 0);
	assert_int_equal(p->ev, PN_LINK_EV_UP);
	assert_int_equal(p->b.state, PN_LINK_UP);
	assert_true(p->b.confirmed);
	assert_int_equal(p->b.peer_cert_len, sizeof(p->ini_cert));
	assert_memory_equal(p->b.peer_cert, p->ini_cert, sizeof(p->ini_cert));
	assert_memory_equal(p->b.remote_static, p->ik.dh_pk, 32);
	assert_true(p->b.peer_ts == INI_TS);

	data_ok(p, &p->b, &p->a, "from responder");
	assert_true(p->a.confirmed);
	data_ok(p, &p->a, &p->b, "from initiator");
	free(p);
}

static void link_peer_ts_and_cert(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_LOGIN);

	handshake(p);
	assert_true(p->b.peer_ts == INI_TS);
	assert_int_equal(p->b.peer_cert_len, sizeof(p->ini_cert));
	assert_memory_equal(p->b.peer_cert, p->ini_cert, sizeof(p->ini_cert));
	assert_true(p->a.peer_ts == RESP_TS);
	assert_int_equal(p->a.peer_cert_len, sizeof(p->resp_cert));
	assert_memory_equal(p->a.peer_cert, p->resp_cert, sizeof(p->resp_cert));
	free(p);

	/* No certificate: delivered as empty. */
	p = pair_new(PN_PATTERN_IK, PN_PURPOSE_LOGIN);
	p->pi.cert = NULL;
	p->pi.cert_len = 0;
	handshake(p);
	assert_int_equal(p->b.peer_cert_len, 0);
	assert_true(p->b.peer_ts == INI_TS);
	free(p);
}

static void link_data_replay_rejected(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t pkt[PN_PKT_MAX];
	size_t n;

	handshake(p);
	seal(&p->a, "once", pkt, &n);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 11), 0);
	assert_int_equal(p->ev, PN_LINK_EV_DATA);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 12), -EBADMSG);
	assert_int_equal(p->ev, PN_LINK_EV_NONE);
	assert_int_equal(p->out_len, 0);
	assert_true(p->b.rx_replay == 1);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 13), -EBADMSG);
	assert_true(p->b.rx_replay == 2);
	free(p);
}

static void link_data_out_of_order(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t pkt[3][PN_PKT_MAX];
	size_t n[3];
	static const int order[] = {2, 0, 1};

	handshake(p);
	seal(&p->a, "zero", pkt[0], &n[0]);
	seal(&p->a, "one", pkt[1], &n[1]);
	seal(&p->a, "two", pkt[2], &n[2]);
	for (int k = 0; k < 3; k++) {
		int i = order[k];

		assert_int_equal(feed(p, &p->b, pkt[i], n[i], T0 + 11), 0);
		assert_int_equal(p->ev, PN_LINK_EV_DATA);
		assert_int_equal(p->out_len, n[i] - PN_DATA_HDR - PN_TAG);
	}
	assert_true(p->b.rx_replay == 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(feed(p, &p->b, pkt[i], n[i], T0 + 12), -EBADMSG);
	assert_true(p->b.rx_replay == 3);
	free(p);
}

/* A counter more than the window behind the newest is refused even though it is new. */
static void link_data_too_old(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t old[PN_PKT_MAX], pkt[PN_PKT_MAX];
	size_t n_old, n;

	handshake(p);
	seal(&p->a, "old", old, &n_old);
	p->a.tx_ctr = PN_REPLAY_WINDOW + 1;
	seal(&p->a, "new", pkt, &n);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 11), 0);
	assert_int_equal(feed(p, &p->b, old, n_old, T0 + 12), -EBADMSG);
	assert_true(p->b.rx_replay == 1);
	free(p);
}

/* Altering any byte of a DATA packet (header = associated data, ciphertext, tag) gets it
 * dropped, and a dropped forgery does not use up its counter. */
static void link_data_tampered(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t pkt[PN_PKT_MAX], bad[PN_PKT_MAX];
	size_t n;
	uint64_t bad_count = 0;

	handshake(p);
	seal(&p->a, "tamper with me", pkt, &n);
	/* From byte 5: bytes 1..4 are the receiver index, refused before any crypto (see
	 * link_data_wrong_receiver). Byte 0 would change the packet type. */
	for (size_t i = 5; i < n; i++) {
		memcpy(bad, pkt, n);
		bad[i] ^= 0x20;
		if (feed(p, &p->b, bad, n, T0 + 11) != -EBADMSG)
			fail_msg("DATA with byte %zu altered was accepted", i);
		assert_int_equal(p->ev, PN_LINK_EV_NONE);
		bad_count++;
	}
	assert_true(p->b.rx_bad + p->b.rx_replay == bad_count);
	assert_false(p->b.confirmed);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 12), 0);
	assert_int_equal(p->ev, PN_LINK_EV_DATA);
	assert_true(p->b.confirmed);
	free(p);
}

/* A DATA packet correctly sealed under the right key, but addressed to another index:
 * only the index check can refuse it. */
static void link_data_wrong_receiver(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t pkt[PN_PKT_MAX];
	static const uint8_t frame[] = "misaddressed";
	struct pn_wr w;

	handshake(p);
	pn_wr_init(&w, pkt, sizeof(pkt));
	pn_wr_u8(&w, PN_PKT_DATA);
	pn_wr_u32(&w, RESP_IDX ^ 1);
	pn_wr_u64(&w, 0);
	assert_int_equal(pn_aead_seal(p->a.tx_key, 0, pkt, PN_DATA_HDR, frame, sizeof(frame),
				      pkt + PN_DATA_HDR),
			 0);
	assert_int_equal(feed(p, &p->b, pkt, PN_DATA_HDR + sizeof(frame) + PN_TAG, T0 + 11),
			 -EBADMSG);
	assert_true(p->b.rx_bad == 1);
	/* Control: the same construction with the right index is accepted. */
	pn_wr_init(&w, pkt, sizeof(pkt));
	pn_wr_u8(&w, PN_PKT_DATA);
	pn_wr_u32(&w, RESP_IDX);
	pn_wr_u64(&w, 0);
	assert_int_equal(pn_aead_seal(p->a.tx_key, 0, pkt, PN_DATA_HDR, frame, sizeof(frame),
				      pkt + PN_DATA_HDR),
			 0);
	assert_int_equal(feed(p, &p->b, pkt, PN_DATA_HDR + sizeof(frame) + PN_TAG, T0 + 12), 0);
	assert_memory_equal(p->out, frame, sizeof(frame));
	free(p);
}

/* Random bytes under a correct HS2 header (our index) must not kill the pending
 * handshake: the genuine HS2 arriving afterwards still completes it. */
static void check_forged_hs2(uint8_t pattern)
{
	struct pair *p = pair_new(pattern, PN_PURPOSE_ATTACH);
	uint8_t forged[PN_HS2_HDR + 200];
	struct pn_wr w;
	size_t lens[] = {PN_HS2_HDR + PN_IK2_MIN, PN_HS2_HDR + PN_XX2_MIN, sizeof(forged)};

	do_hs1(p);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		uint8_t seed[randombytes_SEEDBYTES] = {(uint8_t)k, pattern};

		/* Random-looking, but the same every run. */
		randombytes_buf_deterministic(forged, sizeof(forged), seed);
		pn_wr_init(&w, forged, sizeof(forged));
		pn_wr_u8(&w, PN_PKT_HS2);
		pn_wr_u32(&w, RESP_IDX);
		pn_wr_u32(&w, INI_IDX);
		assert_int_equal(feed(p, &p->a, forged, lens[k], T0 + 2), -EBADMSG);
		assert_int_equal(p->ev, PN_LINK_EV_NONE);
		assert_int_equal(p->a.state, PN_LINK_WAIT_HS2);
	}
	assert_true(p->a.rx_bad == 3);
	/* The genuine one, with the first 9 header bytes identical to the forgeries. */
	assert_int_equal(feed(p, &p->a, p->b.hs_pkt, p->b.hs_pkt_len, T0 + 3), 0);
	assert_int_equal(p->ev, PN_LINK_EV_UP);
	if (pattern == PN_PATTERN_XX)
		assert_int_equal(feed(p, &p->b, p->a.hs_pkt, p->a.hs_pkt_len, T0 + 4), 0);
	data_ok(p, &p->a, &p->b, "still works");
	data_ok(p, &p->b, &p->a, "both ways");
	free(p);
}

static void link_forged_hs2_ik(void **state)
{
	check_forged_hs2(PN_PATTERN_IK);
}

static void link_forged_hs2_xx(void **state)
{
	check_forged_hs2(PN_PATTERN_XX);
}

/* An HS2 for another index, or a second HS2 once up, is refused without effect. */
static void link_hs2_wrong_state_or_index(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t hs2[PN_PKT_MAX];
	size_t n;

	do_hs1(p);
	memcpy(hs2, p->b.hs_pkt, p->b.hs_pkt_len);
	n = p->b.hs_pkt_len;
	hs2[8] ^= 1; /* receiver index */
	assert_int_equal(feed(p, &p->a, hs2, n, T0 + 2), -EBADMSG);
	assert_int_equal(p->a.state, PN_LINK_WAIT_HS2);
	hs2[8] ^= 1;
	assert_int_equal(feed(p, &p->a, hs2, n, T0 + 3), 0);
	assert_int_equal(feed(p, &p->a, hs2, n, T0 + 4), -EBADMSG);
	assert_int_equal(p->a.state, PN_LINK_UP);
	data_ok(p, &p->a, &p->b, "unchanged");
	free(p);
}

static void link_seal_before_up(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_XX, PN_PURPOSE_ATTACH);
	uint8_t pkt[PN_PKT_MAX];
	size_t n;
	struct pn_link idle;

	memset(&idle, 0, sizeof(idle));
	assert_int_equal(pn_link_seal(&idle, (const uint8_t *)"x", 1, T0, pkt, sizeof(pkt), &n),
			 -EPROTO);
	do_hs1(p);
	assert_int_equal(pn_link_seal(&p->a, (const uint8_t *)"x", 1, T0, pkt, sizeof(pkt), &n),
			 -EPROTO);
	assert_int_equal(pn_link_seal(&p->b, (const uint8_t *)"x", 1, T0, pkt, sizeof(pkt), &n),
			 -EPROTO);
	free(p);
}

static void link_seal_oversize(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	static uint8_t frame[PN_FRAME_MAX + 1], pkt[PN_PKT_RX_MAX];
	size_t n;

	handshake(p);
	assert_int_equal(pn_link_seal(&p->a, frame, PN_FRAME_MAX + 1, T0, pkt, sizeof(pkt), &n),
			 -ENOSPC);
	/* The largest frame fits exactly in the largest packet, but not in one byte less. */
	assert_int_equal(pn_link_seal(&p->a, frame, PN_FRAME_MAX, T0, pkt, PN_PKT_MAX - 1, &n),
			 -ENOSPC);
	assert_int_equal(pn_link_seal(&p->a, frame, 10, T0, pkt, PN_DATA_HDR + 10 + PN_TAG - 1,
				      &n),
			 -ENOSPC);
	assert_true(p->a.tx_ctr == 0); /* refusals use no counter */
	assert_int_equal(pn_link_seal(&p->a, frame, PN_FRAME_MAX, T0, pkt, PN_PKT_MAX, &n), 0);
	assert_int_equal(n, PN_PKT_MAX);
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 1), 0);
	assert_int_equal(p->out_len, PN_FRAME_MAX);
	free(p);
}

/* The receiver's output buffer bounds what it decrypts. */
static void link_input_small_out(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	uint8_t pkt[PN_PKT_MAX], out[4];
	size_t n, out_len;
	struct pn_pkt_hdr h;
	enum pn_link_event ev;

	handshake(p);
	seal(&p->a, "longer than four", pkt, &n);
	parse(&h, pkt, n);
	assert_int_equal(pn_link_input(&p->b, &h, T0, out, sizeof(out), &out_len, &ev), -EBADMSG);
	/* Not committed: a big enough buffer still takes the same packet. */
	assert_int_equal(feed(p, &p->b, pkt, n, T0 + 1), 0);
	free(p);
}

/* The purpose is bound into the Noise prologue: an HS1 whose purpose byte was rewritten
 * in flight fails. With IK the responder notices at once (message 1 is authenticated); XX
 * message 1 has no MAC, so the mismatch surfaces when the initiator reads HS2. */
static void link_purpose_rewritten_ik(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_LOGIN);
	struct pn_pkt_hdr h;
	uint8_t hs1[PN_PKT_MAX];

	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	memcpy(hs1, p->a.hs_pkt, p->a.hs_pkt_len);
	hs1[2] = PN_PURPOSE_ATTACH;
	parse(&h, hs1, p->a.hs_pkt_len);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), -EBADMSG);
	assert_int_not_equal(p->b.state, PN_LINK_UP);
	/* Control: the untouched HS1 is accepted. */
	parse(&h, p->a.hs_pkt, p->a.hs_pkt_len);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), 0);
	assert_int_equal(p->b.purpose, PN_PURPOSE_LOGIN);
	free(p);
}

static void link_purpose_rewritten_xx(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_XX, PN_PURPOSE_LOGIN);
	struct pn_pkt_hdr h;
	uint8_t hs1[PN_PKT_MAX];

	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	memcpy(hs1, p->a.hs_pkt, p->a.hs_pkt_len);
	hs1[2] = PN_PURPOSE_E2E;
	parse(&h, hs1, p->a.hs_pkt_len);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), 0);
	assert_int_equal(p->b.purpose, PN_PURPOSE_E2E);
	assert_int_equal(feed(p, &p->a, p->b.hs_pkt, p->b.hs_pkt_len, T0 + 2), -EBADMSG);
	assert_int_not_equal(p->a.state, PN_LINK_UP);
	free(p);
}

/* An IK HS1 for a different responder key cannot be accepted. */
static void link_ik_wrong_responder(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);
	struct pn_keys other;
	struct pn_pkt_hdr h;

	seed_keys(&other, 0x55);
	p->pi.rs = other.dh_pk;
	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	parse(&h, p->a.hs_pkt, p->a.hs_pkt_len);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), -EBADMSG);
	free(p);
}

static void link_connect_bad_params(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_IK, PN_PURPOSE_ATTACH);

	p->pi.rs = NULL; /* IK needs the responder's key */
	assert_int_equal(pn_link_connect(&p->a, &p->pi), -EINVAL);
	p->pi.rs = p->rk.dh_pk;
	p->pi.pattern = 3;
	assert_int_equal(pn_link_connect(&p->a, &p->pi), -EINVAL);
	free(p);
}

/* An XX HS1 carrying bytes after e (a payload) is refused: XX message 1 has none. */
static void link_xx_hs1_with_payload(void **state)
{
	struct pair *p = pair_new(PN_PATTERN_XX, PN_PURPOSE_ATTACH);
	uint8_t hs1[PN_PKT_MAX];
	struct pn_pkt_hdr h;

	assert_int_equal(pn_link_connect(&p->a, &p->pi), 0);
	memcpy(hs1, p->a.hs_pkt, p->a.hs_pkt_len);
	memset(hs1 + p->a.hs_pkt_len, 0x5a, 8);
	parse(&h, hs1, p->a.hs_pkt_len + 8);
	assert_int_equal(pn_link_accept(&p->b, &p->pr, &h), -EBADMSG);
	free(p);
}

/* ---------------------------------------------------------------- ltab helpers */

/* Deterministic random source for the table's indices. With `cluster' set, the low bits
 * of every index are one of three values just below the table size, so probe chains are
 * long and wrap around the end of the array. */
struct rng {
	uint64_t s;
	uint32_t cluster_mask; /* 0 = plain */
};

static uint32_t rng_next(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (uint32_t)(r->s >> 11);
}

static void rng_random(void *ctx, void *buf, size_t len)
{
	struct rng *r = ctx;
	uint8_t *b = buf;

	if (len == 4 && r->cluster_mask) {
		uint32_t v = rng_next(r), low = r->cluster_mask - (rng_next(r) % 3);

		v = (v & ~r->cluster_mask) | low;
		memcpy(buf, &v, 4);
		return;
	}
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)rng_next(r);
}

static uint64_t rng_zero(void *ctx)
{
	return 0;
}

static struct pn_env rng_env(struct rng *r)
{
	return (struct pn_env){.ctx = r, .now_ms = rng_zero, .wall_s = rng_zero,
			       .random = rng_random};
}

/* Evictions and removals recorded by the table's callback. */
struct evlog {
	uint32_t idx[64];
	size_t n;
};

static void evlog_cb(void *arg, struct pn_lent *e)
{
	struct evlog *l = arg;

	if (l->n < sizeof(l->idx) / sizeof(l->idx[0]))
		l->idx[l->n] = e->link.local_idx;
	l->n++;
}

/* Structural invariant of linear probing without tombstones: between an entry's home slot
 * and its actual slot every slot is occupied, and count matches. */
static void ltab_check_invariant(const struct pn_ltab *t)
{
	uint32_t used = 0;

	for (uint32_t s = 0; s < t->cap; s++) {
		const struct pn_lent *e = t->ents[s];

		if (!e)
			continue;
		used++;
		assert_int_not_equal(e->link.local_idx, 0);
		for (uint32_t h = e->link.local_idx & (t->cap - 1); h != s; h = (h + 1) & (t->cap - 1))
			if (!t->ents[h])
				fail_msg("hole at slot %u before entry %08x at slot %u", h,
					 e->link.local_idx, s);
	}
	assert_int_equal(used, t->count);
}

/* The reference model: a plain array of live indices. */
struct ref {
	uint32_t idx[1024];
	size_t n;
};

static void ref_del_at(struct ref *r, size_t i)
{
	r->idx[i] = r->idx[--r->n];
}

static bool ref_del(struct ref *r, uint32_t idx)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->idx[i] == idx) {
			ref_del_at(r, i);
			return true;
		}
	}
	return false;
}

/* Random alloc/remove against the reference; after every op each live index is found with
 * its own payload (so entries moved whole) and evicted ones are gone. */
static void ltab_random_ops(uint32_t want_cap, uint32_t cluster, uint64_t seed, int ops)
{
	struct pn_ltab t;
	struct rng r = {seed, 0};
	struct pn_env env;
	struct ref *ref = calloc(1, sizeof(*ref));
	struct evlog *ev = calloc(1, sizeof(*ev));
	struct rng pick = {seed ^ 0x9e3779b97f4a7c15ull, 0};

	assert_non_null(ref);
	assert_non_null(ev);
	env = rng_env(&r);
	assert_int_equal(pn_ltab_init(&t, want_cap), 0);
	r.cluster_mask = cluster ? t.cap - 1 : 0;
	t.evict_cb = evlog_cb;
	t.evict_arg = ev;
	for (int op = 0; op < ops; op++) {
		bool insert = ref->n == 0 || rng_next(&pick) % 100 < 55;

		ev->n = 0;
		if (insert) {
			uint32_t idx = 0;
			bool full = t.count >= t.cap / 2;
			struct pn_lent *e = pn_ltab_alloc(&t, &env, &idx);

			assert_non_null(e);
			assert_int_not_equal(idx, 0);
			assert_true(e->used);
			assert_int_equal(e->link.local_idx, idx);
			/* An eviction happens exactly when the table was at its limit. */
			assert_int_equal(ev->n, full ? 1 : 0);
			if (full)
				assert_true(ref_del(ref, ev->idx[0]));
			e->user = (void *)(uintptr_t)(idx ^ 0xa5a5a5a5u);
			e->link.remote_idx = ~idx;
			e->last_active = (uint64_t)op;
			assert_true(ref->n < sizeof(ref->idx) / sizeof(ref->idx[0]));
			ref->idx[ref->n++] = idx;
		} else {
			size_t i = rng_next(&pick) % ref->n;
			struct pn_lent *e = pn_ltab_find(&t, ref->idx[i]);

			assert_non_null(e);
			pn_ltab_remove(&t, e);
			assert_int_equal(ev->n, 1);
			assert_int_equal(ev->idx[0], ref->idx[i]);
			assert_null(pn_ltab_find(&t, ref->idx[i]));
			ref_del_at(ref, i);
		}
		assert_int_equal(t.count, ref->n);
		for (size_t i = 0; i < ref->n; i++) {
			struct pn_lent *e = pn_ltab_find(&t, ref->idx[i]);

			if (!e)
				fail_msg("op %d: index %08x lost", op, ref->idx[i]);
			assert_int_equal(e->link.local_idx, ref->idx[i]);
			assert_ptr_equal(e->user, (void *)(uintptr_t)(ref->idx[i] ^ 0xa5a5a5a5u));
			assert_int_equal(e->link.remote_idx, ~ref->idx[i]);
		}
		if (op % 16 == 0)
			ltab_check_invariant(&t);
	}
	ltab_check_invariant(&t);
	t.evict_cb = NULL;
	pn_ltab_fini(&t);
	free(ref);
	free(ev);
}

/* ---------------------------------------------------------------- ltab cases */

static void ltab_random_vs_reference(void **state)
{
	ltab_random_ops(200, 0, 0x1234567887654321ull, 10000);
}

static void ltab_random_vs_reference_clustered(void **state)
{
	ltab_random_ops(30, 1, 0xdeadbeefcafef00dull, 10000);
}

static void ltab_alloc_many_find_remove(void **state)
{
	struct pn_ltab t;
	struct rng r = {42, 0};
	struct pn_env env = rng_env(&r);
	uint32_t idx[500];

	assert_int_equal(pn_ltab_init(&t, 500), 0);
	assert_true(t.cap >= 1000);
	assert_int_equal(t.cap & (t.cap - 1), 0);
	for (int i = 0; i < 500; i++) {
		struct pn_lent *e = pn_ltab_alloc(&t, &env, &idx[i]);

		assert_non_null(e);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(idx[i], idx[j]);
	}
	assert_int_equal(t.count, 500);
	for (int i = 0; i < 500; i++)
		assert_int_equal(pn_ltab_find(&t, idx[i])->link.local_idx, idx[i]);
	assert_null(pn_ltab_find(&t, 0));
	for (int i = 0; i < 500; i += 2)
		pn_ltab_remove(&t, pn_ltab_find(&t, idx[i]));
	assert_int_equal(t.count, 250);
	for (int i = 0; i < 500; i++) {
		if (i % 2)
			assert_non_null(pn_ltab_find(&t, idx[i]));
		else
			assert_null(pn_ltab_find(&t, idx[i]));
	}
	ltab_check_invariant(&t);
	pn_ltab_fini(&t);
	assert_null(t.ents);
}

/* Full table: an unconfirmed handshake goes first even when a confirmed link is idler;
 * among equals the least recently active goes. */
static void ltab_evicts_unconfirmed_then_lru(void **state)
{
	struct pn_ltab t;
	struct rng r = {7, 0};
	struct pn_env env = rng_env(&r);
	struct evlog ev = {.n = 0};
	uint32_t idx[64], limit, extra;
	struct pn_lent *e;

	assert_int_equal(pn_ltab_init(&t, 8), 0);
	limit = t.cap / 2;
	assert_true(limit <= 64);
	t.evict_cb = evlog_cb;
	t.evict_arg = &ev;
	for (uint32_t i = 0; i < limit; i++) {
		e = pn_ltab_alloc(&t, &env, &idx[i]);
		e->link.confirmed = true;
		e->last_active = 100 + i;
	}
	/* Two handshakes pending, the later one older. */
	pn_ltab_find(&t, idx[3])->link.confirmed = false;
	pn_ltab_find(&t, idx[3])->last_active = 500;
	pn_ltab_find(&t, idx[5])->link.confirmed = false;
	pn_ltab_find(&t, idx[5])->last_active = 400;
	assert_int_equal(ev.n, 0);

	assert_non_null(pn_ltab_alloc(&t, &env, &extra));
	assert_int_equal(ev.n, 1);
	assert_int_equal(ev.idx[0], idx[5]);
	pn_ltab_find(&t, extra)->link.confirmed = true;
	pn_ltab_find(&t, extra)->last_active = 1000;

	assert_non_null(pn_ltab_alloc(&t, &env, &extra));
	assert_int_equal(ev.idx[1], idx[3]);
	pn_ltab_find(&t, extra)->link.confirmed = true;
	pn_ltab_find(&t, extra)->last_active = 1001;

	/* All confirmed now: the least recently active, idx[0] (100), then idx[1]. */
	assert_non_null(pn_ltab_alloc(&t, &env, &extra));
	assert_int_equal(ev.idx[2], idx[0]);
	pn_ltab_find(&t, extra)->link.confirmed = true;
	pn_ltab_find(&t, extra)->last_active = 1002;
	assert_non_null(pn_ltab_alloc(&t, &env, &extra));
	assert_int_equal(ev.idx[3], idx[1]);
	assert_int_equal(t.count, limit);
	assert_null(pn_ltab_find(&t, idx[0]));
	assert_non_null(pn_ltab_find(&t, idx[2]));
	ltab_check_invariant(&t);
	t.evict_cb = NULL;
	pn_ltab_fini(&t);
}

static void ltab_expire(void **state)
{
	struct pn_ltab t;
	struct rng r = {9, 0};
	struct pn_env env = rng_env(&r);
	uint32_t conf, pend, conf2;
	struct pn_lent *e;

	assert_int_equal(pn_ltab_init(&t, 16), 0);
	assert_true(pn_ltab_next_expiry(&t, 1000, 100) == UINT64_MAX);
	e = pn_ltab_alloc(&t, &env, &conf);
	e->link.confirmed = true;
	e->last_active = 50;
	e = pn_ltab_alloc(&t, &env, &pend);
	e->last_active = 60;
	e = pn_ltab_alloc(&t, &env, &conf2);
	e->link.confirmed = true;
	e->last_active = 500;

	/* Pending entries live pending_ms (100), confirmed ones idle_ms (1000). */
	assert_true(pn_ltab_next_expiry(&t, 1000, 100) == 160);
	pn_ltab_expire(&t, 159, 1000, 100);
	assert_int_equal(t.count, 3);
	pn_ltab_expire(&t, 160, 1000, 100);
	assert_int_equal(t.count, 2);
	assert_null(pn_ltab_find(&t, pend));
	assert_true(pn_ltab_next_expiry(&t, 1000, 100) == 1050);
	pn_ltab_expire(&t, 1049, 1000, 100);
	assert_non_null(pn_ltab_find(&t, conf));
	pn_ltab_expire(&t, 1050, 1000, 100);
	assert_null(pn_ltab_find(&t, conf));
	assert_non_null(pn_ltab_find(&t, conf2));
	pn_ltab_expire(&t, 5000, 1000, 100);
	assert_int_equal(t.count, 0);
	assert_true(pn_ltab_next_expiry(&t, 1000, 100) == UINT64_MAX);
	pn_ltab_fini(&t);
}

/* Expiry of many entries in long chains (removal shifts entries behind the scan). */
static void ltab_expire_clustered(void **state)
{
	struct pn_ltab t;
	struct rng r = {11, 0};
	struct pn_env env = rng_env(&r);
	uint32_t idx[16];

	assert_int_equal(pn_ltab_init(&t, 16), 0);
	r.cluster_mask = t.cap - 1;
	for (int i = 0; i < 16; i++) {
		struct pn_lent *e = pn_ltab_alloc(&t, &env, &idx[i]);

		e->link.confirmed = true;
		e->last_active = i % 2 ? 10 : 1000;
	}
	pn_ltab_expire(&t, 100, 50, 50);
	assert_int_equal(t.count, 8);
	for (int i = 0; i < 16; i++) {
		if (i % 2)
			assert_null(pn_ltab_find(&t, idx[i]));
		else
			assert_non_null(pn_ltab_find(&t, idx[i]));
	}
	ltab_check_invariant(&t);
	pn_ltab_fini(&t);
}

static void ltab_find_pending(void **state)
{
	struct pn_ltab t;
	struct rng r = {13, 0};
	struct pn_env env = rng_env(&r);
	struct pn_addr a, a_port, b;
	uint32_t i1, i2;
	struct pn_lent *e;

	assert_int_equal(pn_addr_parse(&a, "198.18.0.5:4000"), 0);
	assert_int_equal(pn_addr_parse(&a_port, "198.18.0.5:4001"), 0);
	assert_int_equal(pn_addr_parse(&b, "198.18.0.6:4000"), 0);
	assert_int_equal(pn_ltab_init(&t, 16), 0);
	e = pn_ltab_alloc(&t, &env, &i1);
	e->addr = a;
	e->link.remote_idx = 777;
	e = pn_ltab_alloc(&t, &env, &i2);
	e->addr = b;
	e->link.remote_idx = 777;

	e = pn_ltab_find_pending(&t, &a, 777);
	assert_non_null(e);
	assert_int_equal(e->link.local_idx, i1);
	assert_int_equal(pn_ltab_find_pending(&t, &b, 777)->link.local_idx, i2);
	assert_null(pn_ltab_find_pending(&t, &a, 778));
	assert_null(pn_ltab_find_pending(&t, &a_port, 777));
	/* Once confirmed it is no longer a pending handshake. */
	pn_ltab_find(&t, i1)->link.confirmed = true;
	assert_null(pn_ltab_find_pending(&t, &a, 777));
	pn_ltab_fini(&t);
}

/* Tearing the table down hands every entry to the eviction callback (owners free their
 * per-link data there) and wipes it. */
static void ltab_fini_evicts_all(void **state)
{
	struct pn_ltab t;
	struct rng r = {17, 0};
	struct pn_env env = rng_env(&r);
	struct evlog ev = {.n = 0};
	uint32_t idx[16];

	assert_int_equal(pn_ltab_init(&t, 16), 0);
	r.cluster_mask = t.cap - 1;
	t.evict_cb = evlog_cb;
	t.evict_arg = &ev;
	for (int i = 0; i < 16; i++)
		assert_non_null(pn_ltab_alloc(&t, &env, &idx[i]));
	assert_int_equal(ev.n, 0);
	pn_ltab_fini(&t);
	assert_int_equal(ev.n, 16);
	for (int i = 0; i < 16; i++) {
		bool seen = false;

		for (size_t j = 0; j < ev.n; j++)
			seen = seen || ev.idx[j] == idx[i];
		if (!seen)
			fail_msg("entry %08x never reached evict_cb during fini", idx[i]);
	}
}

static int group_setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(link_ik_roundtrip),
		cmocka_unit_test(link_xx_roundtrip),
		cmocka_unit_test(link_peer_ts_and_cert),
		cmocka_unit_test(link_data_replay_rejected),
		cmocka_unit_test(link_data_out_of_order),
		cmocka_unit_test(link_data_too_old),
		cmocka_unit_test(link_data_tampered),
		cmocka_unit_test(link_data_wrong_receiver),
		cmocka_unit_test(link_forged_hs2_ik),
		cmocka_unit_test(link_forged_hs2_xx),
		cmocka_unit_test(link_hs2_wrong_state_or_index),
		cmocka_unit_test(link_seal_before_up),
		cmocka_unit_test(link_seal_oversize),
		cmocka_unit_test(link_input_small_out),
		cmocka_unit_test(link_purpose_rewritten_ik),
		cmocka_unit_test(link_purpose_rewritten_xx),
		cmocka_unit_test(link_ik_wrong_responder),
		cmocka_unit_test(link_connect_bad_params),
		cmocka_unit_test(link_xx_hs1_with_payload),
		cmocka_unit_test(ltab_random_vs_reference),
		cmocka_unit_test(ltab_random_vs_reference_clustered),
		cmocka_unit_test(ltab_alloc_many_find_remove),
		cmocka_unit_test(ltab_evicts_unconfirmed_then_lru),
		cmocka_unit_test(ltab_expire),
		cmocka_unit_test(ltab_expire_clustered),
		cmocka_unit_test(ltab_find_pending),
		cmocka_unit_test(ltab_fini_evicts_all),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
