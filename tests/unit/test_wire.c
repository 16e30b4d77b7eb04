/* Unit tests for src/wire: packet header parsing and its per-type size rules, username
 * rules, and the signed reachability record (round trip, every forgery we can think of,
 * and a fixed test vector mirrored in docs/PROTOCOL.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/hex.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "wire/wire.h"

/* ---------------------------------------------------------------- packets */

/* Smallest valid packet of each kind: header plus the smallest Noise message. */
enum {
	MIN_HS1_IK = PN_HS1_HDR + PN_IK1_MIN,
	MIN_HS1_XX = PN_HS1_HDR + PN_XX1_MIN,
	MIN_HS2 = PN_HS2_HDR + PN_IK2_MIN,
	MIN_HS3 = PN_HS3_HDR + PN_XX3_MIN,
	MIN_DATA = PN_DATA_HDR + PN_TAG,
};

/* Fills buf[len] with a header of the given type and a patterned body. */
static void pkt_fill(uint8_t *buf, size_t len, uint8_t type, uint8_t pattern, uint8_t purpose)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(0xa0 + i);
	buf[0] = type;
	if (type == PN_PKT_HS1) {
		buf[1] = pattern;
		buf[2] = purpose;
	}
}

static void check_min_size(uint8_t type, uint8_t pattern, size_t min, size_t hdr)
{
	uint8_t buf[PN_PKT_RX_MAX];
	struct pn_pkt_hdr h;

	pkt_fill(buf, min, type, pattern, PN_PURPOSE_ATTACH);
	assert_int_equal(pn_pkt_parse(&h, buf, min), 0);
	assert_int_equal(h.type, type);
	assert_ptr_equal(h.body, buf + hdr);
	assert_int_equal(h.body_len, min - hdr);
	assert_int_equal(pn_pkt_parse(&h, buf, min - 1), -EBADMSG);
}

static void pkt_hs1_ik_min_size(void **state)
{
	check_min_size(PN_PKT_HS1, PN_PATTERN_IK, MIN_HS1_IK, PN_HS1_HDR);
}

static void pkt_hs1_xx_min_size(void **state)
{
	check_min_size(PN_PKT_HS1, PN_PATTERN_XX, MIN_HS1_XX, PN_HS1_HDR);
}

static void pkt_hs2_min_size(void **state)
{
	check_min_size(PN_PKT_HS2, 0, MIN_HS2, PN_HS2_HDR);
}

static void pkt_hs3_min_size(void **state)
{
	check_min_size(PN_PKT_HS3, 0, MIN_HS3, PN_HS3_HDR);
}

static void pkt_data_min_size(void **state)
{
	check_min_size(PN_PKT_DATA, 0, MIN_DATA, PN_DATA_HDR);
}

/* RESET has one exact size: neither shorter nor longer. */
static void pkt_reset_exact_size(void **state)
{
	uint8_t buf[PN_RESET_LEN + 1] = {PN_PKT_RESET, 0x0a, 0x0b, 0x0c, 0x0d, 0xee};
	struct pn_pkt_hdr h;

	assert_int_equal(pn_pkt_parse(&h, buf, PN_RESET_LEN), 0);
	assert_int_equal(h.type, PN_PKT_RESET);
	assert_int_equal(h.receiver_idx, 0x0a0b0c0d);
	assert_int_equal(h.body_len, 0);
	assert_int_equal(pn_pkt_parse(&h, buf, PN_RESET_LEN - 1), -EBADMSG);
	assert_int_equal(pn_pkt_parse(&h, buf, PN_RESET_LEN + 1), -EBADMSG);
}

/* The header fields come out in network byte order. */
static void pkt_header_fields(void **state)
{
	uint8_t buf[PN_PKT_RX_MAX];
	struct pn_pkt_hdr h;

	pkt_fill(buf, MIN_HS1_IK, PN_PKT_HS1, PN_PATTERN_IK, PN_PURPOSE_E2E);
	memcpy(buf + 3, "\x01\x02\x03\x04", 4);
	assert_int_equal(pn_pkt_parse(&h, buf, MIN_HS1_IK), 0);
	assert_int_equal(h.pattern, PN_PATTERN_IK);
	assert_int_equal(h.purpose, PN_PURPOSE_E2E);
	assert_int_equal(h.sender_idx, 0x01020304);

	pkt_fill(buf, MIN_HS2, PN_PKT_HS2, 0, 0);
	memcpy(buf + 1, "\x11\x12\x13\x14\x21\x22\x23\x24", 8);
	assert_int_equal(pn_pkt_parse(&h, buf, MIN_HS2), 0);
	assert_int_equal(h.sender_idx, 0x11121314);
	assert_int_equal(h.receiver_idx, 0x21222324);

	pkt_fill(buf, MIN_HS3, PN_PKT_HS3, 0, 0);
	memcpy(buf + 1, "\x31\x32\x33\x34", 4);
	assert_int_equal(pn_pkt_parse(&h, buf, MIN_HS3), 0);
	assert_int_equal(h.receiver_idx, 0x31323334);

	pkt_fill(buf, MIN_DATA, PN_PKT_DATA, 0, 0);
	memcpy(buf + 1, "\x41\x42\x43\x44\x01\x02\x03\x04\x05\x06\x07\x08", 12);
	assert_int_equal(pn_pkt_parse(&h, buf, MIN_DATA), 0);
	assert_int_equal(h.receiver_idx, 0x41424344);
	assert_true(h.counter == 0x0102030405060708ull);
}

static void pkt_unknown_type(void **state)
{
	static const uint8_t types[] = {0, PN_PKT_RESET + 1, 0x10, 0x7f, 0xff};
	uint8_t buf[256];
	struct pn_pkt_hdr h;

	for (size_t i = 0; i < sizeof(types); i++) {
		pkt_fill(buf, sizeof(buf), types[i], PN_PATTERN_IK, PN_PURPOSE_LOGIN);
		assert_int_equal(pn_pkt_parse(&h, buf, sizeof(buf)), -EBADMSG);
	}
	assert_int_equal(pn_pkt_parse(&h, buf, 0), -EBADMSG);
}

static void pkt_hs1_bad_pattern(void **state)
{
	static const uint8_t bad[] = {0, 3, 0xff};
	uint8_t buf[512];
	struct pn_pkt_hdr h;

	for (size_t i = 0; i < sizeof(bad); i++) {
		pkt_fill(buf, sizeof(buf), PN_PKT_HS1, bad[i], PN_PURPOSE_LOGIN);
		assert_int_equal(pn_pkt_parse(&h, buf, sizeof(buf)), -EBADMSG);
	}
	pkt_fill(buf, sizeof(buf), PN_PKT_HS1, PN_PATTERN_XX, PN_PURPOSE_LOGIN);
	assert_int_equal(pn_pkt_parse(&h, buf, sizeof(buf)), 0);
}

static void pkt_hs1_bad_purpose(void **state)
{
	static const uint8_t bad[] = {0, PN_PURPOSE_OVERLAY + 1, 0xff};
	uint8_t buf[256];
	struct pn_pkt_hdr h;

	for (size_t i = 0; i < sizeof(bad); i++) {
		pkt_fill(buf, sizeof(buf), PN_PKT_HS1, PN_PATTERN_IK, bad[i]);
		assert_int_equal(pn_pkt_parse(&h, buf, sizeof(buf)), -EBADMSG);
	}
	for (uint8_t p = PN_PURPOSE_LOGIN; p <= PN_PURPOSE_OVERLAY; p++) {
		pkt_fill(buf, sizeof(buf), PN_PKT_HS1, PN_PATTERN_IK, p);
		assert_int_equal(pn_pkt_parse(&h, buf, sizeof(buf)), 0);
	}
}

static void pkt_rx_max(void **state)
{
	static uint8_t buf[PN_PKT_RX_MAX + 1];
	struct pn_pkt_hdr h;

	pkt_fill(buf, sizeof(buf), PN_PKT_DATA, 0, 0);
	assert_int_equal(pn_pkt_parse(&h, buf, PN_PKT_RX_MAX), 0);
	assert_int_equal(h.body_len, PN_PKT_RX_MAX - PN_DATA_HDR);
	assert_int_equal(pn_pkt_parse(&h, buf, PN_PKT_RX_MAX + 1), -EBADMSG);
}

/* ---------------------------------------------------------------- usernames */

/* Profile field rules (docs/PROTOCOL.md 3.1, PROFILE_SET). */
static void profile_fields_table(void **state)
{
	static const struct {
		const char *name, *city, *country, *langs;
		int ok;
	} cases[] = {
		{"Alice Smith", "Z\xc3\xbcrich", "CH", "de,en", 1},
		{"", "", "", "", 1},                      /* everything empty is a profile */
		{"\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x8d", "", "", "zh", 1}, /* CJK */
		{"\xf0\x9f\x98\x80", "", "", "", 1},      /* U+1F600 */
		{"a\nb", "", "", "", 0},                  /* control characters */
		{"a\x7f", "", "", "", 0},
		{"", "\t", "", "", 0},
		{"\xc3", "", "", "", 0},                  /* truncated sequence */
		{"\xc0\xaf", "", "", "", 0},              /* overlong '/' */
		{"\xed\xa0\x80", "", "", "", 0},          /* a surrogate */
		{"\xf4\x90\x80\x80", "", "", "", 0},      /* above U+10FFFF */
		{"", "", "ch", "", 0},                    /* country: upper case */
		{"", "", "CHE", "", 0},
		{"", "", "C", "", 0},
		{"", "", "", "EN", 0},                    /* languages: lower case */
		{"", "", "", "en,", 0},
		{"", "", "", ",en", 0},
		{"", "", "", "en de", 0},
		{"", "", "", "eng", 0},
		{"", "", "", "en,de,fr,it,rm,es,pt,nl,sv,no,d", 0},
		{"", "", "", "en,de,fr,it,rm,es,pt,nl,sv,no,da", 1}, /* 32 bytes */
		{"", "", "", "en,de,fr,it,rm,es,pt,nl,sv,no,da,fi", 0},
	};
	char long_name[PN_PROFILE_NAME_MAX + 2];
	const char *why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = pn_profile_valid(cases[i].name, cases[i].city, cases[i].country,
					  cases[i].langs, &why);
		if ((rc == 0) != cases[i].ok)
			fail_msg("case %zu: rc %d", i, rc);
		if (!cases[i].ok)
			assert_non_null(why);
	}
	memset(long_name, 'x', sizeof(long_name) - 2);
	long_name[sizeof(long_name) - 2] = 0;
	assert_int_equal(pn_profile_valid(long_name, "", "", "", NULL), 0);   /* 64 */
	strcat(long_name, "x");
	assert_int_equal(pn_profile_valid(long_name, "", "", "", &why), -EINVAL); /* 65 */
	assert_non_null(strstr(why, "display name"));
	assert_int_equal(pn_profile_valid(NULL, "", "", "", NULL), -EINVAL);
}

static void username_table(void **state)
{
	static const struct {
		const char *name;
		int ok;
	} cases[] = {
		{"abc", 1},
		{"alice", 1},
		{"a.b", 1},
		{"a_b", 1},
		{"a-b", 1},
		{"a12", 1},
		{"z9-._", 1},
		{"abcdefghijklmnopqrstuvwxyz012345", 1},  /* 32 */
		{"ab", 0},                                /* 2 */
		{"abcdefghijklmnopqrstuvwxyz0123456", 0}, /* 33 */
		{"", 0},
		{"a", 0},
		{"Alice", 0},
		{"aliCe", 0},
		{"1alice", 0},
		{"_alice", 0},
		{".alice", 0},
		{"-alice", 0},
		{"al ice", 0},
		{" alice", 0},
		{"alice ", 0},
		{"al\tice", 0},
		{"al@ice", 0},
		{"al/ice", 0},
		{"al+ice", 0},
		{"al\xc3\xa9ice", 0}, /* UTF-8 e-acute */
		{"\xc3\xa9lise", 0},
		{"ali\xe2\x80\x8b" "ce", 0}, /* zero-width space */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = pn_username_valid(cases[i].name);

		if (cases[i].ok && rc != 0)
			fail_msg("`%s' should be valid, got %d", cases[i].name, rc);
		if (!cases[i].ok && rc != -EINVAL)
			fail_msg("`%s' should be invalid, got %d", cases[i].name, rc);
	}
	assert_int_equal(pn_username_valid(NULL), -EINVAL);
}

/* ---------------------------------------------------------------- records */

enum {
	T_NB = 1700000000,
	T_NA = 1700086400,
	T_EXP = 1700003600,
	T_NOW = 1700001000,
};

/* The record test vector (docs/PROTOCOL.md, "Record test vector"). The signature is
 * Ed25519ph (RFC 8032, libsodium's multi-part crypto_sign_init/update/final), not pure
 * Ed25519: it was cross-checked with an independent Python Ed25519ph implementation. */
static const char record_vector_hex[] =
	"01" /* version */
	"00a8" /* cert length 168, then the certificate vector of docs/PROTOCOL.md */
	"010105616c696365c11ae4092c56101421f745612bdc6b51"
	"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
	"9cdadc2a98a05e24edc2048752bdbc7ba3bfbba905d25b3b05f3e462d40abf28"
	"000000006553f1000000000065554280"
	"7f07dfb794ef8e8cbfff4193de30ef010e0288b04c6fa4cee5e3f9884b598084"
	"c9a49480b66cde6f8269a377644ef532ac332c6f0a4e9c18df82a0637d41df0b"
	"0000000000000007" /* seq */
	"000000006553ff10" /* expires */
	"00000001" /* caps */
	"01" /* n */
	"04c61200021e15" /* 198.18.0.2:7701 */
	"0303030303030303030303030303030303030303030303030303030303030303" /* supernode key */
	"7067b9c2d2bfaea3bd9fb2954cc7a93f98ac42145b5d78c93be19ef6152edfdd" /* Ed25519ph signature */
	"744de6459e1109d2629966c29fa1768407d4d3213d5bc29233cfa1995a827007";

struct rec_fixture {
	struct pn_keys root, dev;
	struct pn_record r;
	uint8_t enc[PN_REC_MAX];
	size_t len;
};

static void seed_keys(struct pn_keys *k, uint8_t byte)
{
	uint8_t seed[PN_SEED];

	memset(seed, byte, sizeof(seed));
	assert_int_equal(pn_keys_from_seed(k, seed), 0);
}

/* A certificate for dev, signed by root. */
static void cert_for(struct pn_cert *c, const struct pn_keys *root, const struct pn_keys *dev,
		     uint8_t flags, uint64_t nb, uint64_t na)
{
	memset(c, 0, sizeof(*c));
	c->flags = flags;
	strcpy(c->name, "alice");
	memcpy(c->sign_pk, dev->sign_pk, PN_SIGN_PK);
	memcpy(c->dh_pk, dev->dh_pk, PN_DH_PK);
	c->not_before = nb;
	c->not_after = na;
	assert_int_equal(pn_cert_sign(c, root->sign_sk), 0);
}

/* The record fields of the vector, unsigned. */
static void rec_fields(struct rec_fixture *f)
{
	seed_keys(&f->root, 0x01);
	seed_keys(&f->dev, 0x02);
	memset(&f->r, 0, sizeof(f->r));
	cert_for(&f->r.cert, &f->root, &f->dev, PN_CERT_DEVICE, T_NB, T_NA);
	f->r.seq = 7;
	f->r.expires = T_EXP;
	f->r.caps = 1;
	f->r.n_sn = 1;
	assert_int_equal(pn_addr_parse(&f->r.sn_addr[0], "198.18.0.2:7701"), 0);
	memset(f->r.sn_key[0], 0x03, 32);
}

static void rec_encode(struct rec_fixture *f, const uint8_t *sign_sk)
{
	int n = pn_record_sign_encode(&f->r, sign_sk, f->enc, sizeof(f->enc));

	assert_true(n > 0);
	f->len = (size_t)n;
}

static void rec_make(struct rec_fixture *f)
{
	rec_fields(f);
	rec_encode(f, f->dev.sign_sk);
}

static void record_roundtrip(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_make(&f);
	assert_int_equal(f.len, 1 + 2 + 168 + 8 + 8 + 4 + 1 + 7 + 32 + 64);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), 0);
	assert_memory_equal(&d.cert, &f.r.cert, sizeof(d.cert));
	assert_true(d.seq == 7);
	assert_true(d.expires == T_EXP);
	assert_int_equal(d.caps, 1);
	assert_int_equal(d.n_sn, 1);
	assert_true(pn_addr_eq(&d.sn_addr[0], &f.r.sn_addr[0]));
	assert_memory_equal(d.sn_key[0], f.r.sn_key[0], 32);
	assert_memory_equal(d.sig, f.r.sig, 64);
}

/* Zero and PN_REC_MAX_SN supernodes, IPv6 among them, all round trip. */
static void record_roundtrip_sn_counts(void **state)
{
	static const char *addrs[PN_REC_MAX_SN] = {"198.18.0.2:7701", "[2001:db8::1]:7702",
						    "198.18.0.3:1", "[::1]:65535"};
	struct rec_fixture f;
	struct pn_record d;

	rec_fields(&f);
	f.r.n_sn = 0;
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), 0);
	assert_int_equal(d.n_sn, 0);

	f.r.n_sn = PN_REC_MAX_SN;
	for (int i = 0; i < PN_REC_MAX_SN; i++) {
		assert_int_equal(pn_addr_parse(&f.r.sn_addr[i], addrs[i]), 0);
		memset(f.r.sn_key[i], 0x30 + i, 32);
	}
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), 0);
	assert_int_equal(d.n_sn, PN_REC_MAX_SN);
	for (int i = 0; i < PN_REC_MAX_SN; i++) {
		assert_true(pn_addr_eq(&d.sn_addr[i], &f.r.sn_addr[i]));
		assert_memory_equal(d.sn_key[i], f.r.sn_key[i], 32);
	}
}

static void record_encode_errors(void **state)
{
	struct rec_fixture f;
	uint8_t small[PN_REC_MAX];

	rec_make(&f);
	/* One byte short of the whole record, and short of the signature alone. */
	assert_int_equal(pn_record_sign_encode(&f.r, f.dev.sign_sk, small, f.len - 1), -ENOSPC);
	assert_int_equal(pn_record_sign_encode(&f.r, f.dev.sign_sk, small, 10), -ENOSPC);
	assert_int_equal(pn_record_sign_encode(&f.r, f.dev.sign_sk, small, f.len), (int)f.len);
	f.r.n_sn = PN_REC_MAX_SN + 1;
	assert_int_equal(pn_record_sign_encode(&f.r, f.dev.sign_sk, small, sizeof(small)),
			 -EINVAL);
}

/* pn_record_decode_known: what decode_verify gives for bytes that verified, minus the
 * signature checks; the time checks still apply, and malformed bytes are still refused. */
static void record_decode_known(void **state)
{
	struct rec_fixture f;
	struct pn_record a, b;

	rec_make(&f);
	assert_int_equal(pn_record_decode_verify(&a, f.enc, f.len, f.root.sign_pk, T_NOW), 0);
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_NOW), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* same verdicts as decode_verify at each edge of time */
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_EXP + 1), -EKEYEXPIRED);
	assert_int_equal(pn_record_decode_verify(&a, f.enc, f.len, f.root.sign_pk, T_EXP + 1),
			 -EKEYEXPIRED);
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_NB - 1), -EKEYEXPIRED);
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_EXP), 0);
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_NB), 0);
	/* structure is still checked */
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len - 1, T_NOW), -EBADMSG);
	f.enc[0] = 2;
	assert_int_equal(pn_record_decode_known(&b, f.enc, f.len, T_NOW), -EBADMSG);
}

static void record_test_vector(void **state)
{
	struct rec_fixture f;
	char hex[2 * PN_REC_MAX + 1];

	rec_make(&f);
	pn_hex_encode(hex, sizeof(hex), f.enc, f.len);
	assert_string_equal(hex, record_vector_hex);
}

/* Every single-byte alteration, three ways, must be caught. */
static void record_flip_every_byte(void **state)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	struct rec_fixture f;
	struct pn_record d;
	uint8_t bad[PN_REC_MAX];

	rec_make(&f);
	for (size_t i = 0; i < f.len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			int rc;

			memcpy(bad, f.enc, f.len);
			bad[i] ^= masks[m];
			rc = pn_record_decode_verify(&d, bad, f.len, f.root.sign_pk, T_NOW);
			if (rc == 0)
				fail_msg("record with byte %zu ^ 0x%02x verified", i, masks[m]);
		}
	}
}

static void record_wrong_device_key(void **state)
{
	struct rec_fixture f;
	struct pn_keys other;
	struct pn_record d;

	rec_fields(&f);
	seed_keys(&other, 0x04);
	rec_encode(&f, other.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW),
			 -EBADMSG);
}

static void record_cert_from_other_root(void **state)
{
	struct rec_fixture f;
	struct pn_keys other_root;
	struct pn_record d;

	rec_fields(&f);
	seed_keys(&other_root, 0x05);
	cert_for(&f.r.cert, &other_root, &f.dev, PN_CERT_DEVICE, T_NB, T_NA);
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW),
			 -EBADMSG);
	/* The same bytes are fine for a member of the other network. */
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, other_root.sign_pk, T_NOW), 0);
}

static void record_expired(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_make(&f);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_EXP), 0);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_EXP + 1),
			 -EKEYEXPIRED);
}

static void record_cert_expired(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_fields(&f);
	f.r.expires = T_NA + 100000; /* the record outlives its certificate */
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NA), 0);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NA + 1),
			 -EKEYEXPIRED);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NB - 1),
			 -EKEYEXPIRED);
}

static void record_non_device_cert(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_fields(&f);
	cert_for(&f.r.cert, &f.root, &f.dev, PN_CERT_SUPERNODE, T_NB, T_NA);
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), -EPERM);
	cert_for(&f.r.cert, &f.root, &f.dev, PN_CERT_LOGIN, T_NB, T_NA);
	rec_encode(&f, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), -EPERM);
}

/* A correctly signed record that claims PN_REC_MAX_SN + 1 supernodes: built by hand, since
 * the encoder refuses. Without the bound the decoder would overrun sn_addr[]. */
static void record_too_many_supernodes(void **state)
{
	static const char domain[] = "parley-record-v1";
	struct rec_fixture f;
	struct pn_record d;
	uint8_t cert[PN_CERT_MAX], buf[PN_REC_MAX + 128];
	struct pn_addr a;
	struct pn_wr w;
	crypto_sign_state st;
	int cl;

	rec_fields(&f);
	cl = pn_cert_encode(&f.r.cert, cert, sizeof(cert));
	assert_true(cl > 0);
	assert_int_equal(pn_addr_parse(&a, "198.18.0.2:7701"), 0);
	pn_wr_init(&w, buf, sizeof(buf));
	pn_wr_u8(&w, 1);
	pn_wr_vec16(&w, cert, (size_t)cl);
	pn_wr_u64(&w, 7);
	pn_wr_u64(&w, T_EXP);
	pn_wr_u32(&w, 1);
	pn_wr_u8(&w, PN_REC_MAX_SN + 1);
	for (int i = 0; i < PN_REC_MAX_SN + 1; i++) {
		pn_addr_write(&w, &a);
		pn_wr_bytes(&w, f.r.sn_key[0], 32);
	}
	assert_int_equal(w.err, 0);
	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)domain, sizeof(domain) - 1);
	crypto_sign_update(&st, buf, w.len);
	crypto_sign_final_create(&st, buf + w.len, NULL, f.dev.sign_sk);
	assert_int_equal(pn_record_decode_verify(&d, buf, w.len + 64, f.root.sign_pk, T_NOW),
			 -EBADMSG);
}

static void record_truncated(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_make(&f);
	for (size_t n = 0; n < f.len; n++) {
		int rc = pn_record_decode_verify(&d, f.enc, n, f.root.sign_pk, T_NOW);

		if (rc != -EBADMSG)
			fail_msg("record truncated to %zu bytes: got %d, want -EBADMSG", n, rc);
	}
}

static void record_trailing_bytes(void **state)
{
	struct rec_fixture f;
	struct pn_record d;

	rec_make(&f);
	f.enc[f.len] = 0;
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len + 1, f.root.sign_pk, T_NOW),
			 -EBADMSG);
	assert_int_equal(pn_record_decode_verify(&d, f.enc, f.len, f.root.sign_pk, T_NOW), 0);
}

static int group_setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pkt_hs1_ik_min_size),
		cmocka_unit_test(pkt_hs1_xx_min_size),
		cmocka_unit_test(pkt_hs2_min_size),
		cmocka_unit_test(pkt_hs3_min_size),
		cmocka_unit_test(pkt_data_min_size),
		cmocka_unit_test(pkt_reset_exact_size),
		cmocka_unit_test(pkt_header_fields),
		cmocka_unit_test(pkt_unknown_type),
		cmocka_unit_test(pkt_hs1_bad_pattern),
		cmocka_unit_test(pkt_hs1_bad_purpose),
		cmocka_unit_test(pkt_rx_max),
		cmocka_unit_test(username_table),
		cmocka_unit_test(profile_fields_table),
		cmocka_unit_test(record_roundtrip),
		cmocka_unit_test(record_roundtrip_sn_counts),
		cmocka_unit_test(record_encode_errors),
		cmocka_unit_test(record_test_vector),
		cmocka_unit_test(record_decode_known),
		cmocka_unit_test(record_flip_every_byte),
		cmocka_unit_test(record_wrong_device_key),
		cmocka_unit_test(record_cert_from_other_root),
		cmocka_unit_test(record_expired),
		cmocka_unit_test(record_cert_expired),
		cmocka_unit_test(record_non_device_cert),
		cmocka_unit_test(record_too_many_supernodes),
		cmocka_unit_test(record_truncated),
		cmocka_unit_test(record_trailing_bytes),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
