/* Unit tests for src/crypto: the Noise engine against the published cacophony vectors,
 * handshake failure cases, transport AEAD, replay window, key derivation, certificates. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "base/hex.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "crypto/noise.h"
#include "crypto/replay.h"

#ifndef PN_SOURCE_ROOT
#define PN_SOURCE_ROOT "."
#endif

#define VECTORS_REL "/tests/vectors/noise-25519-chachapoly-blake2b.json"

enum { BUF = 1024 };

/* ---------------------------------------------------------------- helpers */

/* Decodes a hex string into out[cap]; fails the test on bad hex or overflow. */
static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n;

	assert_non_null(hex);
	n = strlen(hex);
	assert_int_equal(n % 2, 0);
	assert_true(n / 2 <= cap);
	if (n)
		assert_int_equal(pn_hex_decode(out, n / 2, hex), 0);
	return n / 2;
}

/* Loads the vector file: the path beside the source root first, then $PN_VECTORS. A
 * missing file fails the test — a vector test that silently skips proves nothing. */
static json_t *vectors_load(void)
{
	const char *paths[2] = {PN_SOURCE_ROOT VECTORS_REL, getenv("PN_VECTORS")};
	json_error_t jerr;

	for (int i = 0; i < 2; i++) {
		json_t *root;

		if (!paths[i])
			continue;
		root = json_load_file(paths[i], 0, &jerr);
		if (root)
			return root;
	}
	fail_msg("Noise test vectors not found at `%s' nor $PN_VECTORS (`%s')",
		 PN_SOURCE_ROOT VECTORS_REL, paths[1] ? paths[1] : "(unset)");
	return NULL;
}

/* Optional hex field of a vector: returns its length, or -1 when absent. */
static int vec_hex(json_t *v, const char *key, uint8_t *out, size_t cap)
{
	json_t *f = json_object_get(v, key);

	if (!f)
		return -1;
	assert_true(json_is_string(f));
	return (int)unhex(out, cap, json_string_value(f));
}

/* Number of handshake messages: 1 for one-way patterns, 3 for X? (the initiator's static
 * travels in a third message), else 2. */
static int pattern_len(const char *pattern)
{
	if (strlen(pattern) == 1)
		return 1;
	return pattern[0] == 'X' ? 3 : 2;
}

/* Runs one vector message by message: every handshake message is written by one side and
 * compared to the vector, then read by the other and its payload compared; the final
 * handshake hash is compared on both sides; after the split the transport messages are
 * checked the same way (all initiator -> responder for one-way patterns, else alternating). */
static void run_vector(const char *pattern)
{
	char name[64];
	json_t *root = vectors_load(), *vecs, *v = NULL, *msgs;
	uint8_t prologue_i[BUF], prologue_r[BUF], s_i[32], s_r[32], e_i[32], e_r[32];
	uint8_t rs_i[32], rs_r[32], hash[64], payload[BUF], expect[BUF], out[BUF], got[BUF];
	int pl_i, pl_r, has_s_i, has_s_r, has_e_r, has_rs_i, has_rs_r;
	struct pn_noise_hs ini, res;
	struct pn_noise_cipher i_send, i_recv, r_send, r_recv;
	bool one_way = strlen(pattern) == 1, split = false;
	size_t n_hs = 0;

	snprintf(name, sizeof(name), "Noise_%s_25519_ChaChaPoly_BLAKE2b", pattern);
	vecs = json_object_get(root, "vectors");
	assert_true(json_is_array(vecs));
	for (size_t i = 0; i < json_array_size(vecs); i++) {
		json_t *pn = json_object_get(json_array_get(vecs, i), "protocol_name");
		if (json_is_string(pn) && strcmp(json_string_value(pn), name) == 0) {
			v = json_array_get(vecs, i);
			break;
		}
	}
	if (!v)
		fail_msg("vector `%s' missing from the vector file", name);

	pl_i = vec_hex(v, "init_prologue", prologue_i, sizeof(prologue_i));
	pl_r = vec_hex(v, "resp_prologue", prologue_r, sizeof(prologue_r));
	has_s_i = vec_hex(v, "init_static", s_i, 32) == 32;
	has_s_r = vec_hex(v, "resp_static", s_r, 32) == 32;
	assert_int_equal(vec_hex(v, "init_ephemeral", e_i, 32), 32);
	has_e_r = vec_hex(v, "resp_ephemeral", e_r, 32) == 32;
	has_rs_i = vec_hex(v, "init_remote_static", rs_i, 32) == 32;
	has_rs_r = vec_hex(v, "resp_remote_static", rs_r, 32) == 32;
	assert_true(pl_i >= 0 && pl_r >= 0);

	assert_int_equal(pn_noise_hs_init(&ini, pattern, true, prologue_i, (size_t)pl_i,
					  has_s_i ? s_i : NULL, has_rs_i ? rs_i : NULL, e_i),
			 0);
	assert_int_equal(pn_noise_hs_init(&res, pattern, false, prologue_r, (size_t)pl_r,
					  has_s_r ? s_r : NULL, NULL, has_e_r ? e_r : NULL),
			 0);
	if (has_rs_r)
		assert_int_equal(pn_noise_hs_set_remote_initiator_static(&res, rs_r), 0);

	msgs = json_object_get(v, "messages");
	assert_true(json_is_array(msgs));
	assert_true(json_array_size(msgs) > (size_t)pattern_len(pattern));
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i);
		size_t pl = unhex(payload, sizeof(payload),
				  json_string_value(json_object_get(m, "payload")));
		size_t el = unhex(expect, sizeof(expect),
				  json_string_value(json_object_get(m, "ciphertext")));
		bool from_init = one_way || i % 2 == 0;
		size_t out_len = 0, got_len = 0;

		if (!split) {
			struct pn_noise_hs *tx = from_init ? &ini : &res;
			struct pn_noise_hs *rx = from_init ? &res : &ini;

			assert_true(pn_noise_hs_my_turn(tx));
			assert_false(pn_noise_hs_my_turn(rx));
			assert_int_equal(pn_noise_hs_write(tx, payload, pl, out, sizeof(out), &out_len), 0);
			assert_int_equal(out_len, el);
			assert_memory_equal(out, expect, el);
			assert_int_equal(pn_noise_hs_read(rx, out, out_len, got, sizeof(got), &got_len), 0);
			assert_int_equal(got_len, pl);
			assert_memory_equal(got, payload, pl);
			n_hs++;
			if (pn_noise_hs_is_done(&ini)) {
				assert_true(pn_noise_hs_is_done(&res));
				assert_int_equal(n_hs, pattern_len(pattern));
				assert_int_equal(vec_hex(v, "handshake_hash", hash, 64), 64);
				assert_memory_equal(pn_noise_hs_hash(&ini), hash, 64);
				assert_memory_equal(pn_noise_hs_hash(&res), hash, 64);
				/* Both sides know each other's statics where the pattern has them. */
				if (has_s_r)
					assert_non_null(pn_noise_hs_remote_static(&ini));
				if (has_s_i && !one_way)
					assert_non_null(pn_noise_hs_remote_static(&res));
				assert_int_equal(pn_noise_hs_split(&ini, &i_send, &i_recv), 0);
				assert_int_equal(pn_noise_hs_split(&res, &r_send, &r_recv), 0);
				/* h stays readable after the split, for channel binding. */
				assert_memory_equal(pn_noise_hs_hash(&ini), hash, 64);
				split = true;
			}
			continue;
		}
		{
			struct pn_noise_cipher *tx = from_init ? &i_send : &r_send;
			struct pn_noise_cipher *rx = from_init ? &r_recv : &i_recv;

			assert_int_equal(el, pl + PN_NOISE_TAGLEN);
			assert_int_equal(pn_noise_cipher_encrypt(tx, NULL, 0, payload, pl, out), 0);
			assert_memory_equal(out, expect, el);
			assert_int_equal(pn_noise_cipher_decrypt(rx, NULL, 0, out, el, got), 0);
			assert_memory_equal(got, payload, pl);
		}
	}
	assert_true(split);
	pn_noise_hs_wipe(&ini);
	pn_noise_hs_wipe(&res);
	json_decref(root);
}

#define VECTOR_TEST(p)                         \
	static void vector_##p(void **state)   \
	{                                      \
		run_vector(#p);                \
	}
VECTOR_TEST(NN)
VECTOR_TEST(NK)
VECTOR_TEST(NX)
VECTOR_TEST(XN)
VECTOR_TEST(XK)
VECTOR_TEST(XX)
VECTOR_TEST(KN)
VECTOR_TEST(KK)
VECTOR_TEST(KX)
VECTOR_TEST(IN)
VECTOR_TEST(IK)
VECTOR_TEST(IX)
VECTOR_TEST(N)
VECTOR_TEST(K)
VECTOR_TEST(X)

/* Every non-PSK, non-deferred vector in the file is one the engine supports, so the
 * per-pattern tests above cover the whole file's relevant subset. */
static void vectors_all_supported_covered(void **state)
{
	static const char *const supported[] = {"NN", "NK", "NX", "XN", "XK", "XX", "KN", "KK",
						"KX", "IN", "IK", "IX", "N",  "K",  "X"};
	json_t *root = vectors_load(), *vecs = json_object_get(root, "vectors");
	int found = 0;

	for (size_t i = 0; i < json_array_size(vecs); i++) {
		const char *pn = json_string_value(
			json_object_get(json_array_get(vecs, i), "protocol_name"));
		char pat[16];
		const char *us;
		struct pn_noise_hs hs;
		uint8_t k[32] = {9};
		bool known = false;

		assert_non_null(pn);
		assert_int_equal(strncmp(pn, "Noise_", 6), 0);
		us = strchr(pn + 6, '_');
		assert_non_null(us);
		assert_true((size_t)(us - (pn + 6)) < sizeof(pat));
		memcpy(pat, pn + 6, (size_t)(us - (pn + 6)));
		pat[us - (pn + 6)] = 0;
		for (size_t j = 0; j < sizeof(supported) / sizeof(supported[0]); j++)
			known |= strcmp(pat, supported[j]) == 0;
		if (known) {
			found++;
			continue;
		}
		/* psk and deferred (…1) patterns must be refused, not half-run. */
		assert_true(strstr(pat, "psk") || strchr(pat, '1'));
		assert_int_equal(pn_noise_hs_init(&hs, pat, true, NULL, 0, k, k, k), -EINVAL);
	}
	assert_int_equal(found, 15);
	json_decref(root);
}

/* ---------------------------------------------------------------- handshakes */

struct pair {
	struct pn_keys ik, rk; /* initiator and responder identities */
	struct pn_noise_hs ini, res;
};

static void seed_keys(struct pn_keys *k, uint8_t byte)
{
	uint8_t seed[PN_SEED];

	memset(seed, byte, sizeof(seed));
	assert_int_equal(pn_keys_from_seed(k, seed), 0);
}

static void pair_init(struct pair *p, const char *pattern, const uint8_t *rs_for_init)
{
	uint8_t e1[32], e2[32];
	static const uint8_t prologue[] = "parley test";

	seed_keys(&p->ik, 0x11);
	seed_keys(&p->rk, 0x22);
	memset(e1, 0x33, sizeof(e1));
	memset(e2, 0x44, sizeof(e2));
	assert_int_equal(pn_noise_hs_init(&p->ini, pattern, true, prologue, sizeof(prologue),
					  p->ik.dh_sk, rs_for_init, e1),
			 0);
	assert_int_equal(pn_noise_hs_init(&p->res, pattern, false, prologue, sizeof(prologue),
					  p->rk.dh_sk, NULL, e2),
			 0);
}

/* Runs the handshake to completion and checks the transport keys pair up. */
static void pair_finish(struct pair *p)
{
	uint8_t msg[BUF], pt[BUF], ct[BUF];
	size_t n, m;
	struct pn_noise_cipher is, ir, rs, rr;

	while (!pn_noise_hs_is_done(&p->ini) || !pn_noise_hs_is_done(&p->res)) {
		struct pn_noise_hs *tx = pn_noise_hs_my_turn(&p->ini) ? &p->ini : &p->res;
		struct pn_noise_hs *rx = tx == &p->ini ? &p->res : &p->ini;

		assert_true(pn_noise_hs_my_turn(tx));
		assert_int_equal(pn_noise_hs_write(tx, (const uint8_t *)"hi", 2, msg, sizeof(msg), &n), 0);
		assert_int_equal(pn_noise_hs_read(rx, msg, n, pt, sizeof(pt), &m), 0);
		assert_int_equal(m, 2);
		assert_memory_equal(pt, "hi", 2);
	}
	assert_memory_equal(pn_noise_hs_hash(&p->ini), pn_noise_hs_hash(&p->res), 64);
	assert_memory_equal(pn_noise_hs_remote_static(&p->ini), p->rk.dh_pk, 32);
	assert_memory_equal(pn_noise_hs_remote_static(&p->res), p->ik.dh_pk, 32);
	assert_int_equal(pn_noise_hs_split(&p->ini, &is, &ir), 0);
	assert_int_equal(pn_noise_hs_split(&p->res, &rs, &rr), 0);
	assert_int_equal(pn_noise_cipher_encrypt(&is, NULL, 0, (const uint8_t *)"ping", 4, ct), 0);
	assert_int_equal(pn_noise_cipher_decrypt(&rr, NULL, 0, ct, 4 + 16, pt), 0);
	assert_memory_equal(pt, "ping", 4);
	assert_int_equal(pn_noise_cipher_encrypt(&rs, NULL, 0, (const uint8_t *)"pong", 4, ct), 0);
	assert_int_equal(pn_noise_cipher_decrypt(&ir, NULL, 0, ct, 4 + 16, pt), 0);
	assert_memory_equal(pt, "pong", 4);
	/* The two directions use different keys. */
	assert_memory_not_equal(is.k, ir.k, 32);
}

static void noise_ik_roundtrip(void **state)
{
	struct pair p;

	seed_keys(&p.rk, 0x22);
	pair_init(&p, "IK", p.rk.dh_pk);
	pair_finish(&p);
}

static void noise_xx_roundtrip(void **state)
{
	struct pair p;

	pair_init(&p, "XX", NULL);
	assert_null(pn_noise_hs_remote_static(&p.ini));
	pair_finish(&p);
}

/* Produces IK message 1 from a fresh pair into msg. */
static size_t ik_msg1(struct pair *p, uint8_t *msg, size_t cap)
{
	size_t n;

	seed_keys(&p->rk, 0x22);
	pair_init(p, "IK", p->rk.dh_pk);
	assert_int_equal(pn_noise_hs_write(&p->ini, (const uint8_t *)"hello", 5, msg, cap, &n), 0);
	return n;
}

static void noise_tampered_ik_msg1_rejected(void **state)
{
	struct pair p;
	uint8_t msg[BUF], bad[BUF], pt[BUF];
	size_t n = ik_msg1(&p, msg, sizeof(msg)), m;

	assert_int_equal(n, 32 + 48 + 5 + 16);
	for (size_t i = 0; i < n; i++) {
		struct pair q;

		ik_msg1(&q, bad, sizeof(bad));
		bad[i] ^= 0x01;
		assert_int_equal(pn_noise_hs_read(&q.res, bad, n, pt, sizeof(pt), &m), -EBADMSG);
		assert_true(q.res.failed);
		/* A failed handshake stays failed: even the genuine message is refused now. */
		assert_int_equal(pn_noise_hs_read(&q.res, msg, n, pt, sizeof(pt), &m), -EPROTO);
		assert_false(pn_noise_hs_my_turn(&q.res));
	}
}

static void noise_tampered_xx_msg2_rejected(void **state)
{
	uint8_t m1[BUF], m2[BUF], pt[BUF];
	size_t n1, n2, m;

	for (size_t i = 0;; i++) {
		struct pair p;

		pair_init(&p, "XX", NULL);
		assert_int_equal(pn_noise_hs_write(&p.ini, NULL, 0, m1, sizeof(m1), &n1), 0);
		assert_int_equal(pn_noise_hs_read(&p.res, m1, n1, pt, sizeof(pt), &m), 0);
		assert_int_equal(pn_noise_hs_write(&p.res, (const uint8_t *)"x", 1, m2, sizeof(m2), &n2), 0);
		assert_int_equal(n2, 32 + 48 + 1 + 16);
		if (i == n2)
			break;
		m2[i] ^= 0x80;
		assert_int_equal(pn_noise_hs_read(&p.ini, m2, n2, pt, sizeof(pt), &m), -EBADMSG);
		assert_true(p.ini.failed);
	}
}

static void noise_truncated_and_oversized_rejected(void **state)
{
	struct pair p;
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	n = ik_msg1(&p, msg, sizeof(msg));
	for (size_t len = 0; len < n; len++) {
		struct pair q;

		ik_msg1(&q, msg, sizeof(msg));
		assert_int_equal(pn_noise_hs_read(&q.res, msg, len, pt, sizeof(pt), &m), -EBADMSG);
	}
	ik_msg1(&p, msg, sizeof(msg));
	assert_int_equal(pn_noise_hs_read(&p.res, msg, (size_t)PN_NOISE_MAX_MSG + 1, pt, sizeof(pt),
					  &m),
			 -EBADMSG);
}

static void noise_ik_wrong_responder_static_fails(void **state)
{
	struct pair p;
	struct pn_keys other;
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	seed_keys(&other, 0x99);
	pair_init(&p, "IK", other.dh_pk); /* initiator believes the responder is "other" */
	assert_int_equal(pn_noise_hs_write(&p.ini, (const uint8_t *)"secret", 6, msg, sizeof(msg), &n), 0);
	assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, sizeof(pt), &m), -EBADMSG);
	assert_true(p.res.failed);
}

static void noise_low_order_ephemeral_rejected(void **state)
{
	/* Curve25519 points of small order: 0 and 1 give an all-zero shared secret. */
	static const uint8_t low[2][32] = {{0}, {1}};
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	for (int j = 0; j < 2; j++) {
		struct pair p;

		/* IK: es is computed while reading message 1. */
		n = ik_msg1(&p, msg, sizeof(msg));
		memcpy(msg, low[j], 32);
		assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, sizeof(pt), &m), -EBADMSG);
		assert_true(p.res.failed);

		/* XX: message 1 has no DH, so the bad key surfaces when ee is computed. */
		pair_init(&p, "XX", NULL);
		assert_int_equal(pn_noise_hs_write(&p.ini, NULL, 0, msg, sizeof(msg), &n), 0);
		memcpy(msg, low[j], 32);
		assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, sizeof(pt), &m), 0);
		assert_int_equal(pn_noise_hs_write(&p.res, NULL, 0, msg, sizeof(msg), &n), -EBADMSG);
		assert_true(p.res.failed);
	}
}

static void noise_turns_enforced(void **state)
{
	struct pair p;
	struct pn_noise_cipher a, b;
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	seed_keys(&p.rk, 0x22);
	pair_init(&p, "IK", p.rk.dh_pk);
	assert_int_equal(pn_noise_hs_write(&p.res, NULL, 0, msg, sizeof(msg), &n), -EPROTO);
	assert_int_equal(pn_noise_hs_read(&p.ini, msg, 48, pt, sizeof(pt), &m), -EPROTO);
	assert_int_equal(pn_noise_hs_split(&p.ini, &a, &b), -EPROTO);
	assert_false(p.ini.failed); /* refusing an out-of-turn call does not poison the state */
	pair_finish(&p);
	assert_int_equal(pn_noise_hs_write(&p.ini, NULL, 0, msg, sizeof(msg), &n), -EPROTO);
	assert_int_equal(pn_noise_hs_read(&p.res, msg, 48, pt, sizeof(pt), &m), -EPROTO);
	assert_int_equal(pn_noise_hs_split(&p.ini, &a, &b), -EPROTO); /* only once */
}

static void noise_bad_init_rejected(void **state)
{
	struct pn_noise_hs hs;
	uint8_t k[32] = {7};

	assert_int_equal(pn_noise_hs_init(&hs, "ZZ", true, NULL, 0, k, k, k), -EINVAL);
	assert_int_equal(pn_noise_hs_init(&hs, "", true, NULL, 0, k, k, k), -EINVAL);
	assert_int_equal(pn_noise_hs_init(&hs, "XXpsk3", true, NULL, 0, k, NULL, k), -EINVAL);
	assert_int_equal(pn_noise_hs_init(&hs, "IK", true, NULL, 0, k, NULL, k), -EINVAL); /* rs */
	assert_int_equal(pn_noise_hs_init(&hs, "IK", true, NULL, 0, NULL, k, k), -EINVAL); /* s */
	assert_int_equal(pn_noise_hs_init(&hs, "IK", true, NULL, 0, k, k, NULL), -EINVAL); /* e */
	assert_int_equal(pn_noise_hs_init(&hs, "XX", true, NULL, 0, k, k, k), -EINVAL); /* stray rs */
	assert_int_equal(pn_noise_hs_init(&hs, "XX", false, NULL, 0, NULL, NULL, k), -EINVAL);
	assert_int_equal(pn_noise_hs_init(&hs, "NN", true, NULL, 5, NULL, NULL, k), -EINVAL);
	assert_int_equal(pn_noise_hs_init(&hs, "N", false, NULL, 0, k, NULL, NULL), 0);
	assert_int_equal(pn_noise_hs_set_remote_initiator_static(&hs, k), -EINVAL); /* not K* */
}

static void noise_kk_responder_needs_initiator_static(void **state)
{
	struct pair p;
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	seed_keys(&p.rk, 0x22);
	pair_init(&p, "KK", p.rk.dh_pk);
	assert_int_equal(pn_noise_hs_write(&p.ini, NULL, 0, msg, sizeof(msg), &n), 0);
	/* The pre-message is missing: reading is out of order, not a forgery. */
	assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, sizeof(pt), &m), -EPROTO);
	assert_int_equal(pn_noise_hs_set_remote_initiator_static(&p.res, p.ik.dh_pk), 0);
	assert_int_equal(pn_noise_hs_set_remote_initiator_static(&p.res, p.ik.dh_pk), -EINVAL);
	assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, sizeof(pt), &m), 0);
	assert_int_equal(m, 0);
}

static void noise_small_buffers_leave_state_intact(void **state)
{
	struct pair p;
	uint8_t msg[BUF], pt[BUF];
	size_t n, m;

	seed_keys(&p.rk, 0x22);
	pair_init(&p, "IK", p.rk.dh_pk);
	assert_int_equal(pn_noise_hs_write(&p.ini, pt, 10, msg, 32 + 48 + 10 + 16 - 1, &n), -ENOSPC);
	assert_false(p.ini.failed);
	memset(pt, 'a', 10);
	assert_int_equal(pn_noise_hs_write(&p.ini, pt, 10, msg, 32 + 48 + 10 + 16, &n), 0);
	assert_int_equal(pn_noise_hs_read(&p.res, msg, n, pt, 9, &m), -ENOSPC);
}

static void noise_oversized_payload_rejected(void **state)
{
	struct pair p;
	uint8_t *big = calloc(1, PN_NOISE_MAX_MSG);
	uint8_t *msg = calloc(1, 2 * PN_NOISE_MAX_MSG);
	size_t n;

	assert_non_null(big);
	assert_non_null(msg);
	pair_init(&p, "XX", NULL);
	/* A Noise message is at most 65535 bytes including e (32 bytes here). */
	assert_int_equal(pn_noise_hs_write(&p.ini, big, PN_NOISE_MAX_MSG - 32 + 1, msg,
					   2 * PN_NOISE_MAX_MSG, &n),
			 -EINVAL);
	assert_int_equal(pn_noise_hs_write(&p.ini, big, PN_NOISE_MAX_MSG - 32, msg,
					   2 * PN_NOISE_MAX_MSG, &n),
			 0);
	assert_int_equal(n, PN_NOISE_MAX_MSG);
	free(big);
	free(msg);
}

/* ---------------------------------------------------------------- transport AEAD */

static void aead_seal_open_roundtrip(void **state)
{
	uint8_t key[32], pt[1200], ct[1200 + 16], back[1200];
	static const uint8_t ad[] = "header";

	memset(key, 0x5a, sizeof(key));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	assert_int_equal(pn_aead_seal(key, 42, ad, sizeof(ad), pt, sizeof(pt), ct), 0);
	assert_int_equal(pn_aead_open(key, 42, ad, sizeof(ad), ct, sizeof(ct), back), 0);
	assert_memory_equal(back, pt, sizeof(pt));
	/* Empty plaintext still carries a tag. */
	assert_int_equal(pn_aead_seal(key, 0, NULL, 0, NULL, 0, ct), 0);
	assert_int_equal(pn_aead_open(key, 0, NULL, 0, ct, 16, back), 0);
	assert_int_equal(pn_aead_open(key, 0, NULL, 0, ct, 15, back), -EBADMSG);
	assert_int_equal(pn_aead_seal(key, UINT64_MAX, NULL, 0, pt, 1, ct), -EOVERFLOW);
}

static void aead_tamper_rejected(void **state)
{
	uint8_t key[32], pt[100], ct[116], bad[116], back[100];
	static const uint8_t ad[] = "hdr";
	uint8_t ad2[sizeof(ad)];

	memset(key, 7, sizeof(key));
	memset(pt, 'p', sizeof(pt));
	assert_int_equal(pn_aead_seal(key, 9, ad, sizeof(ad), pt, sizeof(pt), ct), 0);
	for (size_t i = 0; i < sizeof(ct); i++) {
		memcpy(bad, ct, sizeof(ct));
		bad[i] ^= 0x04;
		assert_int_equal(pn_aead_open(key, 9, ad, sizeof(ad), bad, sizeof(bad), back), -EBADMSG);
	}
	memcpy(ad2, ad, sizeof(ad));
	ad2[0] ^= 1;
	assert_int_equal(pn_aead_open(key, 9, ad2, sizeof(ad2), ct, sizeof(ct), back), -EBADMSG);
	assert_int_equal(pn_aead_open(key, 10, ad, sizeof(ad), ct, sizeof(ct), back), -EBADMSG);
	key[31] ^= 1;
	assert_int_equal(pn_aead_open(key, 9, ad, sizeof(ad), ct, sizeof(ct), back), -EBADMSG);
}

/* The nonce rule written out: 4 zero bytes then the counter little-endian — and the
 * implicit-counter cipher must agree with the explicit-counter one. */
static void aead_nonce_layout(void **state)
{
	uint8_t key[32], nonce[12] = {0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	uint8_t a[5 + 16], b[5 + 16], back[5];
	struct pn_noise_cipher c = {.n = 0x0102030405060708ull, .has_key = true};
	uint64_t ctr = 0x0102030405060708ull;

	memset(key, 3, sizeof(key));
	memcpy(c.k, key, sizeof(key));
	assert_int_equal(pn_aead_seal(key, ctr, NULL, 0, (const uint8_t *)"hello", 5, a), 0);
	crypto_aead_chacha20poly1305_ietf_encrypt(b, NULL, (const uint8_t *)"hello", 5, NULL, 0,
						  NULL, nonce, key);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(pn_noise_cipher_encrypt(&c, NULL, 0, (const uint8_t *)"hello", 5, b), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_true(c.n == ctr + 1);
	/* A failed decrypt does not advance the counter. */
	c.n = ctr;
	b[0] ^= 1;
	assert_int_equal(pn_noise_cipher_decrypt(&c, NULL, 0, b, sizeof(b), back), -EBADMSG);
	assert_true(c.n == ctr);
	assert_int_equal(pn_noise_cipher_decrypt(&c, NULL, 0, a, sizeof(a), back), 0);
	assert_true(c.n == ctr + 1);
	c.n = UINT64_MAX;
	assert_int_equal(pn_noise_cipher_encrypt(&c, NULL, 0, back, 5, b), -EOVERFLOW);
}

/* ---------------------------------------------------------------- replay window */

static void replay_in_order(void **state)
{
	struct pn_replay r;

	pn_replay_init(&r);
	for (uint64_t c = 0; c < 10000; c++) {
		assert_true(pn_replay_check(&r, c));
		assert_true(pn_replay_commit(&r, c));
		assert_false(pn_replay_check(&r, c));
	}
}

static void replay_out_of_order_within_window(void **state)
{
	struct pn_replay r;

	pn_replay_init(&r);
	assert_true(pn_replay_commit(&r, 3000));
	/* Every counter in the window below the top arrives late, in reverse: all accepted. */
	for (uint64_t c = 2999; c > 3000 - PN_REPLAY_WINDOW; c--)
		assert_true(pn_replay_commit(&r, c));
	assert_true(pn_replay_commit(&r, 3005));
	assert_true(pn_replay_commit(&r, 3002));
	assert_true(pn_replay_commit(&r, 3001));
	assert_false(pn_replay_commit(&r, 3002));
}

static void replay_duplicate_rejected(void **state)
{
	struct pn_replay r;

	pn_replay_init(&r);
	assert_true(pn_replay_commit(&r, 0));
	assert_false(pn_replay_commit(&r, 0));
	assert_true(pn_replay_commit(&r, 5));
	assert_true(pn_replay_commit(&r, 2));
	assert_false(pn_replay_commit(&r, 2));
	assert_false(pn_replay_commit(&r, 5));
	assert_false(pn_replay_check(&r, 5));
}

static void replay_too_old_rejected(void **state)
{
	struct pn_replay r;
	uint64_t top = 5000;

	pn_replay_init(&r);
	assert_true(pn_replay_commit(&r, top));
	/* Exactly WINDOW counters are tracked: top-2047 .. top. */
	assert_true(pn_replay_check(&r, top - (PN_REPLAY_WINDOW - 1)));
	assert_false(pn_replay_check(&r, top - PN_REPLAY_WINDOW));
	assert_false(pn_replay_commit(&r, top - PN_REPLAY_WINDOW));
	assert_false(pn_replay_commit(&r, 0));
	assert_true(pn_replay_commit(&r, top - (PN_REPLAY_WINDOW - 1)));
	assert_false(pn_replay_check(&r, UINT64_MAX)); /* reserved */
}

static void replay_large_jump(void **state)
{
	struct pn_replay r;

	pn_replay_init(&r);
	for (uint64_t c = 0; c < 100; c++)
		assert_true(pn_replay_commit(&r, c));
	/* A jump of more than the window forgets everything before it... */
	assert_true(pn_replay_commit(&r, 1000000));
	assert_false(pn_replay_check(&r, 50));
	/* ...and the stale bits of the ring must not make new counters look seen. */
	for (uint64_t c = 1000000 - PN_REPLAY_WINDOW + 1; c < 1000000; c++)
		assert_true(pn_replay_check(&r, c));
	/* A jump of less than the window keeps what is still inside it. */
	assert_true(pn_replay_commit(&r, 999000));
	assert_true(pn_replay_commit(&r, 1000500));
	assert_false(pn_replay_check(&r, 999000));
	assert_true(pn_replay_check(&r, 999001));
	assert_true(pn_replay_check(&r, 1000499));
	assert_true(pn_replay_commit(&r, UINT64_MAX - 1));
	assert_false(pn_replay_check(&r, UINT64_MAX - 1));
	assert_false(pn_replay_check(&r, 1000500));
}

static void replay_check_does_not_record(void **state)
{
	struct pn_replay r;

	pn_replay_init(&r);
	assert_true(pn_replay_check(&r, 7));
	assert_true(pn_replay_check(&r, 7));
	assert_true(r.top == 0);
	assert_true(pn_replay_commit(&r, 7));
	assert_false(pn_replay_check(&r, 7));
}

/* A random walk against the obvious model (a set of seen counters plus the window rule). */
static void replay_matches_model(void **state)
{
	enum { SPAN = 40000 };
	static bool seen[SPAN];
	struct pn_replay r;
	uint64_t highest = 0, x = 88172645463325252ull;
	bool any = false;

	memset(seen, 0, sizeof(seen));
	pn_replay_init(&r);
	for (int i = 0; i < 200000; i++) {
		uint64_t c;
		bool want;

		x ^= x << 13; /* xorshift64: deterministic */
		x ^= x >> 7;
		x ^= x << 17;
		if (x % 1000 == 0)
			c = highest + 3000; /* a jump past the whole window */
		else if (x % 2200 > highest + 64)
			c = x % 64;
		else
			c = highest + 64 - x % 2200; /* mostly late, sometimes ahead */
		want = !seen[c] && (!any || c + PN_REPLAY_WINDOW > highest);
		assert_int_equal(pn_replay_check(&r, c), want);
		assert_int_equal(pn_replay_commit(&r, c), want);
		if (want) {
			seen[c] = true;
			if (!any || c > highest)
				highest = c;
			any = true;
		}
		if (highest > SPAN - 4000)
			break;
	}
}

/* ---------------------------------------------------------------- keys */

static void keys_deterministic_from_seed(void **state)
{
	struct pn_keys a, b, c;
	uint8_t sig[PN_SIG], pk[32];

	seed_keys(&a, 0x02);
	seed_keys(&b, 0x02);
	seed_keys(&c, 0x03);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_memory_not_equal(a.sign_pk, c.sign_pk, PN_SIGN_PK);
	assert_memory_not_equal(a.dh_pk, c.dh_pk, PN_DH_PK);
	crypto_scalarmult_base(pk, a.dh_sk);
	assert_memory_equal(pk, a.dh_pk, 32);
	crypto_sign_detached(sig, NULL, (const uint8_t *)"m", 1, a.sign_sk);
	assert_int_equal(crypto_sign_verify_detached(sig, (const uint8_t *)"m", 1, a.sign_pk), 0);
	pn_keys_wipe(&a);
	assert_true(sodium_is_zero((const uint8_t *)&a, sizeof(a)));
	assert_int_equal(pn_keys_from_seed(&a, NULL), -EINVAL);
}

/* Pins the derivations to their definitions, so a change is caught, not silently shipped. */
static void keys_derivation_definition(void **state)
{
	struct pn_keys k;
	uint8_t in[PN_SEED + 2], h[64], id[PN_DEVICE_ID], h32[32];

	seed_keys(&k, 0x02);
	memcpy(in, k.seed, PN_SEED);
	memcpy(in + PN_SEED, "dh", 2);
	crypto_generichash_blake2b(h, 64, in, sizeof(in), NULL, 0);
	assert_memory_equal(k.dh_sk, h, 32);
	crypto_generichash_blake2b(h32, 32, k.sign_pk, 32, NULL, 0);
	pn_device_id(id, k.sign_pk);
	assert_memory_equal(id, h32, PN_DEVICE_ID);
}

static void keys_ct_eq(void **state)
{
	uint8_t a[32] = {1, 2, 3}, b[32] = {1, 2, 3};

	assert_true(pn_ct_eq(a, b, sizeof(a)));
	b[31] = 1;
	assert_false(pn_ct_eq(a, b, sizeof(a)));
	assert_true(pn_ct_eq(a, b, 31));
	assert_true(pn_ct_eq(a, b, 0));
}

/* ---------------------------------------------------------------- certificates */

enum { T_NB = 1700000000, T_NA = 1700086400, T_NOW = 1700040000 };

/* The documented vector (docs/PROTOCOL.md): root seed 32 x 0x01, device seed
 * 32 x 0x02, "alice", DEVICE, valid 1700000000..1700086400. */
static const char cert_vector_hex[] =
	"010105616c696365" /* version, flags, name */
	"c11ae4092c56101421f745612bdc6b51" /* device id */
	"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394" /* Ed25519 public key */
	"9cdadc2a98a05e24edc2048752bdbc7ba3bfbba905d25b3b05f3e462d40abf28" /* X25519 public key */
	"000000006553f1000000000065554280" /* not_before, not_after */
	"7f07dfb794ef8e8cbfff4193de30ef010e0288b04c6fa4cee5e3f9884b598084" /* signature */
	"c9a49480b66cde6f8269a377644ef532ac332c6f0a4e9c18df82a0637d41df0b";

struct cert_fixture {
	struct pn_keys root, dev;
	struct pn_cert c;
	uint8_t enc[PN_CERT_MAX];
	size_t len;
};

static void cert_make(struct cert_fixture *f)
{
	int n;

	seed_keys(&f->root, 0x01);
	seed_keys(&f->dev, 0x02);
	memset(&f->c, 0, sizeof(f->c));
	f->c.flags = PN_CERT_DEVICE;
	strcpy(f->c.name, "alice");
	memcpy(f->c.sign_pk, f->dev.sign_pk, PN_SIGN_PK);
	memcpy(f->c.dh_pk, f->dev.dh_pk, PN_DH_PK);
	f->c.not_before = T_NB;
	f->c.not_after = T_NA;
	assert_int_equal(pn_cert_sign(&f->c, f->root.sign_sk), 0);
	n = pn_cert_encode(&f->c, f->enc, sizeof(f->enc));
	assert_true(n > 0);
	f->len = (size_t)n;
}

static void cert_roundtrip(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;
	uint8_t again[PN_CERT_MAX];

	cert_make(&f);
	assert_int_equal(f.len, 1 + 1 + 1 + 5 + 16 + 32 + 32 + 8 + 8 + 64);
	assert_int_equal(pn_cert_decode(&d, f.enc, f.len), 0);
	assert_int_equal(d.version, 1);
	assert_string_equal(d.name, "alice");
	assert_memory_equal(&d, &f.c, sizeof(d));
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, PN_CERT_DEVICE), 0);
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), 0);
	/* Canonical: re-encoding gives the same bytes. */
	assert_int_equal(pn_cert_encode(&d, again, sizeof(again)), (int)f.len);
	assert_memory_equal(again, f.enc, f.len);
}

static void cert_test_vector(void **state)
{
	struct cert_fixture f;
	char hex[2 * PN_CERT_MAX + 1];

	cert_make(&f);
	/* The intermediate values listed beside the vector in the document. */
	pn_hex_encode(hex, sizeof(hex), f.root.sign_pk, PN_SIGN_PK);
	assert_string_equal(hex, "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c");
	pn_hex_encode(hex, sizeof(hex), f.dev.dh_sk, PN_DH_SK);
	assert_string_equal(hex, "675a0d9a28de4698f5b07c33aa0db6d9c7a3bdff7812cc440f0a616454a5ffdd");
	pn_hex_encode(hex, sizeof(hex), f.enc, f.len);
	assert_string_equal(hex, cert_vector_hex);
}

/* Revocation notice: root seed 32 x 0x01 revokes the vector's device (c11ae409...) of
 * "alice" at 1700050000 (docs/PROTOCOL.md §3.8). */
static const char revoke_vector_hex[] =
	"01" "c11ae4092c56101421f745612bdc6b51" "05616c696365" "000000006554b450"
	"849a7fad78f259313782344e03a3d220d4fda6d7f48dae20ca9627bd8ed1d600"
	"b6c9c6589d8c6d34e3a2f8187f418f1d30bfcbf0d59de69f02db5849424abe01";

static void revocation_vector_and_checks(void **state)
{
	struct cert_fixture f;
	struct pn_revocation rv, d;
	uint8_t enc[PN_REVOKE_MAX], bad[PN_REVOKE_MAX + 1];
	char hex[2 * PN_REVOKE_MAX + 1];
	struct pn_keys other;
	int n;

	cert_make(&f);
	memset(&rv, 0, sizeof(rv));
	memcpy(rv.device_id, f.c.device_id, 16);
	strcpy(rv.name, "alice");
	rv.revoked_at = 1700050000;
	assert_int_equal(pn_revocation_sign(&rv, f.root.sign_sk), 0);
	n = pn_revocation_encode(&rv, enc, sizeof(enc));
	assert_int_equal(n, 1 + 16 + 1 + 5 + 8 + 64);
	pn_hex_encode(hex, sizeof(hex), enc, (size_t)n);
	if (getenv("PRINT_VECTORS"))
		printf("revocation vector %s\n", hex);
	assert_string_equal(hex, revoke_vector_hex);
	assert_int_equal(pn_revocation_decode_verify(&d, enc, (size_t)n, f.root.sign_pk), 0);
	assert_memory_equal(d.device_id, rv.device_id, 16);
	assert_string_equal(d.name, "alice");
	assert_int_equal(d.revoked_at, 1700050000);
	/* another root's key, any flipped bit, truncation or a trailing byte: refused */
	seed_keys(&other, 0x09);
	assert_int_equal(pn_revocation_decode_verify(&d, enc, (size_t)n, other.sign_pk), -EBADMSG);
	for (int i = 0; i < n; i++) {
		memcpy(bad, enc, (size_t)n);
		bad[i] ^= 0x01;
		assert_int_equal(pn_revocation_decode_verify(&d, bad, (size_t)n, f.root.sign_pk), -EBADMSG);
		assert_int_equal(pn_revocation_decode_verify(&d, enc, (size_t)i, f.root.sign_pk), -EBADMSG);
	}
	memcpy(bad, enc, (size_t)n);
	bad[n] = 0;
	assert_int_equal(pn_revocation_decode_verify(&d, bad, (size_t)n + 1, f.root.sign_pk), -EBADMSG);
	/* a notice is not a certificate: the domains differ */
	assert_int_not_equal(pn_cert_decode(&f.c, enc, (size_t)n), 0);
	rv.name[0] = 0;
	assert_int_equal(pn_revocation_sign(&rv, f.root.sign_sk), -EINVAL);
}

static void cert_wrong_root(void **state)
{
	struct cert_fixture f;
	struct pn_keys other;
	struct pn_cert d;

	cert_make(&f);
	seed_keys(&other, 0x03);
	assert_int_equal(pn_cert_decode(&d, f.enc, f.len), 0);
	assert_int_equal(pn_cert_verify(&d, other.sign_pk, T_NOW, PN_CERT_DEVICE), -EBADMSG);
	/* Self-signed by the device: structurally fine, not trusted. */
	assert_int_equal(pn_cert_sign(&f.c, f.dev.sign_sk), 0);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NOW, PN_CERT_DEVICE), -EBADMSG);
}

static void cert_expired(void **state)
{
	struct cert_fixture f;

	cert_make(&f);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NA, PN_CERT_DEVICE), 0);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NA + 1, PN_CERT_DEVICE),
			 -EKEYEXPIRED);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, UINT64_MAX, PN_CERT_DEVICE),
			 -EKEYEXPIRED);
}

static void cert_not_yet_valid(void **state)
{
	struct cert_fixture f;

	cert_make(&f);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NB, PN_CERT_DEVICE), 0);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NB - 1, PN_CERT_DEVICE),
			 -EKEYEXPIRED);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, 0, PN_CERT_DEVICE), -EKEYEXPIRED);
}

static void cert_wrong_flags(void **state)
{
	struct cert_fixture f;

	cert_make(&f);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NOW, PN_CERT_SUPERNODE), -EPERM);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NOW, PN_CERT_LOGIN), -EPERM);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NOW,
					PN_CERT_DEVICE | PN_CERT_SUPERNODE),
			 -EPERM);
	/* A certificate with two roles satisfies either. */
	f.c.flags = PN_CERT_DEVICE | PN_CERT_SUPERNODE;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), 0);
	assert_int_equal(pn_cert_verify(&f.c, f.root.sign_pk, T_NOW, PN_CERT_SUPERNODE), 0);
}

/* Changing any signed field of a signed certificate breaks it. */
static void cert_altered_fields(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;

	cert_make(&f);
	d = f.c;
	strcpy(d.name, "alicf");
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	strcpy(d.name, "alice2");
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.flags |= PN_CERT_SUPERNODE;
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.dh_pk[0] ^= 1;
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.not_after += 1;
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.not_before -= 1;
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.sign_pk[5] ^= 1; /* device id no longer matches */
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
	d = f.c;
	d.version = 2;
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, 0), -EBADMSG);
}

/* Every single-byte change of the encoding is caught by decode or by verify. */
static void cert_every_byte_flip_rejected(void **state)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	struct cert_fixture f;

	cert_make(&f);
	for (size_t i = 0; i < f.len; i++) {
		for (size_t j = 0; j < sizeof(masks); j++) {
			uint8_t bad[PN_CERT_MAX];
			struct pn_cert d;
			int err;

			memcpy(bad, f.enc, f.len);
			bad[i] ^= masks[j];
			err = pn_cert_decode(&d, bad, f.len);
			if (err == 0)
				err = pn_cert_verify(&d, f.root.sign_pk, T_NOW, PN_CERT_DEVICE);
			if (err == 0)
				fail_msg("flip 0x%02x at byte %zu accepted", masks[j], i);
		}
	}
}

static void cert_truncated_rejected(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;

	cert_make(&f);
	memset(&d, 0xaa, sizeof(d));
	for (size_t len = 0; len < f.len; len++)
		assert_int_equal(pn_cert_decode(&d, f.enc, len), -EBADMSG);
	assert_int_equal(pn_cert_decode(&d, NULL, 0), -EBADMSG);
	/* A failed decode leaves the output untouched. */
	assert_int_equal(d.version, 0xaa);
}

static void cert_trailing_bytes_rejected(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;
	uint8_t big[PN_CERT_MAX + 8] = {0};

	cert_make(&f);
	memcpy(big, f.enc, f.len);
	for (size_t extra = 1; extra <= 8; extra++)
		assert_int_equal(pn_cert_decode(&d, big, f.len + extra), -EBADMSG);
}

static void cert_bad_structure_rejected(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;
	uint8_t bad[PN_CERT_MAX];

	cert_make(&f);
	memcpy(bad, f.enc, f.len);
	bad[0] = 2; /* version */
	assert_int_equal(pn_cert_decode(&d, bad, f.len), -EBADMSG);
	memcpy(bad, f.enc, f.len);
	bad[1] = 0; /* no role */
	assert_int_equal(pn_cert_decode(&d, bad, f.len), -EBADMSG);
	memcpy(bad, f.enc, f.len);
	bad[1] = 8; /* unknown flag */
	assert_int_equal(pn_cert_decode(&d, bad, f.len), -EBADMSG);
	memcpy(bad, f.enc, f.len);
	bad[3 + 2] = 0; /* NUL inside the name */
	assert_int_equal(pn_cert_decode(&d, bad, f.len), -EBADMSG);
	memcpy(bad, f.enc, f.len);
	bad[3 + 5 + 3] ^= 1; /* device id does not match sign_pk */
	assert_int_equal(pn_cert_decode(&d, bad, f.len), -EBADMSG);
}

static void cert_name_limits(void **state)
{
	struct cert_fixture f;
	struct pn_cert d;
	uint8_t enc[PN_CERT_MAX];
	int n;

	cert_make(&f);
	memset(f.c.name, 'n', PN_CERT_NAME_MAX);
	f.c.name[PN_CERT_NAME_MAX] = 0;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), 0);
	n = pn_cert_encode(&f.c, enc, sizeof(enc));
	assert_int_equal(n, PN_CERT_MAX);
	assert_int_equal(pn_cert_encode(&f.c, enc, PN_CERT_MAX - 1), -ENOSPC);
	assert_int_equal(pn_cert_decode(&d, enc, (size_t)n), 0);
	assert_int_equal(pn_cert_verify(&d, f.root.sign_pk, T_NOW, PN_CERT_DEVICE), 0);
	f.c.name[0] = 0;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), -EINVAL);
	cert_make(&f);
	memset(f.c.name, 'n', sizeof(f.c.name)); /* 65 bytes, unterminated */
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), -EINVAL);
	assert_int_equal(pn_cert_encode(&f.c, enc, sizeof(enc)), -EINVAL);
}

static void cert_sign_rejects_bad_fields(void **state)
{
	struct cert_fixture f;

	cert_make(&f);
	f.c.not_after = f.c.not_before;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), -EINVAL);
	cert_make(&f);
	f.c.flags = 0;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), -EINVAL);
	cert_make(&f);
	f.c.flags = 0x10;
	assert_int_equal(pn_cert_sign(&f.c, f.root.sign_sk), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vector_NN),
		cmocka_unit_test(vector_NK),
		cmocka_unit_test(vector_NX),
		cmocka_unit_test(vector_XN),
		cmocka_unit_test(vector_XK),
		cmocka_unit_test(vector_XX),
		cmocka_unit_test(vector_KN),
		cmocka_unit_test(vector_KK),
		cmocka_unit_test(vector_KX),
		cmocka_unit_test(vector_IN),
		cmocka_unit_test(vector_IK),
		cmocka_unit_test(vector_IX),
		cmocka_unit_test(vector_N),
		cmocka_unit_test(vector_K),
		cmocka_unit_test(vector_X),
		cmocka_unit_test(vectors_all_supported_covered),
		cmocka_unit_test(noise_ik_roundtrip),
		cmocka_unit_test(noise_xx_roundtrip),
		cmocka_unit_test(noise_tampered_ik_msg1_rejected),
		cmocka_unit_test(noise_tampered_xx_msg2_rejected),
		cmocka_unit_test(noise_truncated_and_oversized_rejected),
		cmocka_unit_test(noise_ik_wrong_responder_static_fails),
		cmocka_unit_test(noise_low_order_ephemeral_rejected),
		cmocka_unit_test(noise_turns_enforced),
		cmocka_unit_test(noise_bad_init_rejected),
		cmocka_unit_test(noise_kk_responder_needs_initiator_static),
		cmocka_unit_test(noise_small_buffers_leave_state_intact),
		cmocka_unit_test(noise_oversized_payload_rejected),
		cmocka_unit_test(aead_seal_open_roundtrip),
		cmocka_unit_test(aead_tamper_rejected),
		cmocka_unit_test(aead_nonce_layout),
		cmocka_unit_test(replay_in_order),
		cmocka_unit_test(replay_out_of_order_within_window),
		cmocka_unit_test(replay_duplicate_rejected),
		cmocka_unit_test(replay_too_old_rejected),
		cmocka_unit_test(replay_large_jump),
		cmocka_unit_test(replay_check_does_not_record),
		cmocka_unit_test(replay_matches_model),
		cmocka_unit_test(keys_deterministic_from_seed),
		cmocka_unit_test(keys_derivation_definition),
		cmocka_unit_test(keys_ct_eq),
		cmocka_unit_test(cert_roundtrip),
		cmocka_unit_test(cert_test_vector),
		cmocka_unit_test(revocation_vector_and_checks),
		cmocka_unit_test(cert_wrong_root),
		cmocka_unit_test(cert_expired),
		cmocka_unit_test(cert_not_yet_valid),
		cmocka_unit_test(cert_wrong_flags),
		cmocka_unit_test(cert_altered_fields),
		cmocka_unit_test(cert_every_byte_flip_rejected),
		cmocka_unit_test(cert_truncated_rejected),
		cmocka_unit_test(cert_trailing_bytes_rejected),
		cmocka_unit_test(cert_bad_structure_rejected),
		cmocka_unit_test(cert_name_limits),
		cmocka_unit_test(cert_sign_rejects_bad_fields),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
