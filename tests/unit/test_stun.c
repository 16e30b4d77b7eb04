/* Unit tests for src/nat/stun: the RFC 5769 sample messages (request, IPv4 and IPv6
 * responses), our own requests and answers round-tripped, and malformed input of every
 * kind (truncations, bad lengths, wrong cookie, bad FINGERPRINT, attributes overrunning
 * the message). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/addr.h"
#include "nat/stun.h"

/* RFC 5769 section 2.1: a Binding request with SOFTWARE "STUN test client", PRIORITY,
 * ICE-CONTROLLED, USERNAME "evtj:h6vY", MESSAGE-INTEGRITY and FINGERPRINT. */
static const uint8_t rfc5769_req[108] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01,
	0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10,
	0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
	0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
	0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
	0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
	0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
	0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
	0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 section 2.2: success response, XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
static const uint8_t rfc5769_resp4[80] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01,
	0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b,
	0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
	0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
	0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 section 2.3: success response, XOR-MAPPED-ADDRESS
 * [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc5769_resp6[92] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01,
	0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b,
	0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
	0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
	0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1,
	0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const uint8_t rfc5769_tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
					0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

static void addr_is(const struct pn_addr *a, const char *want)
{
	char s[PN_ADDR_STRLEN];

	assert_non_null(a);
	assert_string_equal(pn_addr_str(a, s), want);
}

/* ---------------------------------------------------------------- RFC 5769 */

static void rfc5769_request(void **state)
{
	struct pn_stun_msg m;

	assert_true(pn_stun_is_msg(rfc5769_req, sizeof(rfc5769_req)));
	assert_int_equal(pn_stun_parse(&m, rfc5769_req, sizeof(rfc5769_req)), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_REQUEST);
	assert_memory_equal(m.tid, rfc5769_tid, 12);
	assert_true(m.fingerprint);
	/* PRIORITY (0x0024) is ICE's, comprehension-required, and not ours */
	assert_int_equal(m.n_unknown, 1);
	assert_int_equal(m.unknown[0], 0x0024);
}

static void rfc5769_response_ipv4(void **state)
{
	struct pn_stun_msg m;

	assert_int_equal(pn_stun_parse_response(&m, rfc5769_resp4, sizeof(rfc5769_resp4),
						rfc5769_tid), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_SUCCESS);
	assert_true(m.fingerprint);
	addr_is(pn_stun_mapped(&m), "192.0.2.1:32853");
}

static void rfc5769_response_ipv6(void **state)
{
	struct pn_stun_msg m;

	assert_int_equal(pn_stun_parse_response(&m, rfc5769_resp6, sizeof(rfc5769_resp6),
						rfc5769_tid), 0);
	addr_is(pn_stun_mapped(&m), "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

static void rfc5769_wrong_tid_is_not_ours(void **state)
{
	struct pn_stun_msg m;
	uint8_t tid[12];

	memcpy(tid, rfc5769_tid, 12);
	tid[11] ^= 1;
	assert_int_equal(pn_stun_parse_response(&m, rfc5769_resp4, sizeof(rfc5769_resp4), tid),
			 -ENOMSG);
	/* a request is not a response either */
	assert_int_equal(pn_stun_parse_response(&m, rfc5769_req, sizeof(rfc5769_req),
						rfc5769_tid), -ENOMSG);
}

/* A single-bit flip never yields a message that still claims a valid FINGERPRINT: it is
 * rejected, or (a flip in the FINGERPRINT's own type, or a length that swallows it) the
 * FINGERPRINT is no longer seen. FINGERPRINT tells STUN apart from other protocols'
 * packets; it is no protection against tampering. */
static void rfc5769_any_bit_flip_rejected(void **state)
{
	uint8_t b[sizeof(rfc5769_resp4)];
	struct pn_stun_msg m;
	unsigned rejected = 0;

	for (size_t i = 0; i < sizeof(b) * 8; i++) {
		memcpy(b, rfc5769_resp4, sizeof(b));
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (pn_stun_parse(&m, b, sizeof(b)) == -EBADMSG)
			rejected++;
		else
			assert_false(m.fingerprint);
	}
	assert_true(rejected >= sizeof(b) * 8 - 17);
}

/* ---------------------------------------------------------------- header */

static void truncations_rejected(void **state)
{
	struct pn_stun_msg m;

	for (size_t n = 0; n < sizeof(rfc5769_resp4); n++) {
		assert_false(pn_stun_is_msg(rfc5769_resp4, n));
		assert_int_equal(pn_stun_parse(&m, rfc5769_resp4, n), -EBADMSG);
	}
	assert_false(pn_stun_is_msg(NULL, 0));
}

static void wrong_cookie_rejected(void **state)
{
	uint8_t b[sizeof(rfc5769_resp4)];
	struct pn_stun_msg m;

	memcpy(b, rfc5769_resp4, sizeof(b));
	b[7] = 0x43;
	assert_false(pn_stun_is_msg(b, sizeof(b)));
	assert_int_equal(pn_stun_parse(&m, b, sizeof(b)), -EBADMSG);
}

static void top_bits_rejected(void **state)
{
	uint8_t b[20] = {0x40, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};

	assert_false(pn_stun_is_msg(b, sizeof(b)));
	b[0] = 0x80;
	assert_false(pn_stun_is_msg(b, sizeof(b)));
	b[0] = 0x00;
	assert_true(pn_stun_is_msg(b, sizeof(b)));
}

static void bad_lengths_rejected(void **state)
{
	uint8_t b[64];
	struct pn_stun_msg m;

	memset(b, 0, sizeof(b));
	b[1] = 0x01;
	b[4] = 0x21, b[5] = 0x12, b[6] = 0xa4, b[7] = 0x42;
	/* header length not a multiple of 4 */
	b[3] = 2;
	assert_false(pn_stun_is_msg(b, 22));
	/* header length larger / smaller than the datagram */
	b[3] = 8;
	assert_false(pn_stun_is_msg(b, 24));
	assert_false(pn_stun_is_msg(b, 32));
	assert_true(pn_stun_is_msg(b, 28));
	/* an attribute whose length runs past the message */
	b[20] = 0x80, b[21] = 0x22, b[22] = 0x00, b[23] = 0x05; /* SOFTWARE, 5 (+3 pad) > 4 */
	assert_int_equal(pn_stun_parse(&m, b, 28), -EBADMSG);
	b[23] = 0x04;
	assert_int_equal(pn_stun_parse(&m, b, 28), 0);
	/* a dangling 2-byte attribute header cannot happen (length % 4), but 4 bytes of
	 * header with no room for the value can */
	b[23] = 0x08;
	assert_int_equal(pn_stun_parse(&m, b, 28), -EBADMSG);
}

static void address_attribute_lengths_checked(void **state)
{
	/* Binding success with an XOR-MAPPED-ADDRESS of family 1 but 20-byte value */
	uint8_t b[20 + 4 + 20];
	struct pn_stun_msg m;

	memset(b, 0, sizeof(b));
	b[0] = 0x01, b[1] = 0x01, b[3] = 24;
	b[4] = 0x21, b[5] = 0x12, b[6] = 0xa4, b[7] = 0x42;
	b[20] = 0x00, b[21] = 0x20, b[23] = 20;
	b[25] = 1;
	assert_int_equal(pn_stun_parse(&m, b, sizeof(b)), -EBADMSG);
	b[25] = 2; /* IPv6 with 20 bytes: right */
	assert_int_equal(pn_stun_parse(&m, b, sizeof(b)), 0);
	b[25] = 3; /* unknown family */
	assert_int_equal(pn_stun_parse(&m, b, sizeof(b)), -EBADMSG);
}

/* Independent CRC-32 (ISO-HDLC) for building messages by hand. */
static uint32_t test_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
	}
	return ~c;
}

static void fingerprint_must_be_last(void **state)
{
	/* header | FINGERPRINT (correct for this header length) | SOFTWARE "abcd" */
	uint8_t b[20 + 8 + 8] = {0x00, 0x01, 0x00, 16, 0x21, 0x12, 0xa4, 0x42};
	struct pn_stun_msg m;
	uint32_t fp;

	b[20] = 0x80, b[21] = 0x28, b[23] = 4;
	fp = test_crc32(b, 20) ^ 0x5354554e;
	b[24] = (uint8_t)(fp >> 24), b[25] = (uint8_t)(fp >> 16);
	b[26] = (uint8_t)(fp >> 8), b[27] = (uint8_t)fp;
	memcpy(b + 28, "\x80\x22\x00\x04" "abcd", 8);
	assert_int_equal(pn_stun_parse(&m, b, sizeof(b)), -EBADMSG);
	/* the same FINGERPRINT as the last attribute (length 8) is fine */
	b[3] = 8;
	fp = test_crc32(b, 20) ^ 0x5354554e;
	b[24] = (uint8_t)(fp >> 24), b[25] = (uint8_t)(fp >> 16);
	b[26] = (uint8_t)(fp >> 8), b[27] = (uint8_t)fp;
	assert_int_equal(pn_stun_parse(&m, b, 28), 0);
	assert_true(m.fingerprint);
}

/* ---------------------------------------------------------------- our requests */

static void request_plain(void **state)
{
	struct pn_stun_req_opts o = {.fingerprint = false};
	uint8_t b[64];
	size_t n;
	struct pn_stun_msg m;

	memset(o.tid, 0x5a, 12);
	assert_int_equal(pn_stun_build_request(b, sizeof(b), &n, &o), 0);
	assert_int_equal(n, 20);
	assert_true(pn_stun_is_msg(b, n));
	assert_int_equal(pn_stun_parse(&m, b, n), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_REQUEST);
	assert_false(m.fingerprint);
	assert_int_equal(pn_stun_build_request(b, 19, &n, &o), -ENOSPC);
}

static void request_fingerprint_and_padding(void **state)
{
	struct pn_stun_req_opts o = {.fingerprint = true};
	uint8_t b[PN_STUN_PAD_MAX + 64];
	size_t n;
	struct pn_stun_msg m;

	memset(o.tid, 0xa5, 12);
	for (size_t pad = 0; pad <= 200; pad++) {
		o.pad_to = pad;
		assert_int_equal(pn_stun_build_request(b, sizeof(b), &n, &o), 0);
		assert_true(n >= pad);
		assert_true(n < (pad > 28 ? pad : 28) + 8); /* at most a header + round-up over */
		assert_int_equal(n % 4, 0);
		assert_int_equal(pn_stun_parse(&m, b, n), 0);
		assert_true(m.fingerprint);
		assert_int_equal(m.n_unknown, 0); /* PADDING is known */
		/* the codec's table CRC agrees with the bitwise one here */
		uint32_t fp = test_crc32(b, n - 8) ^ 0x5354554e;
		assert_int_equal(b[n - 4], (uint8_t)(fp >> 24));
		assert_int_equal(b[n - 3], (uint8_t)(fp >> 16));
		assert_int_equal(b[n - 2], (uint8_t)(fp >> 8));
		assert_int_equal(b[n - 1], (uint8_t)fp);
	}
	o.pad_to = PN_STUN_PAD_MAX;
	assert_int_equal(pn_stun_build_request(b, sizeof(b), &n, &o), 0);
	assert_true(n >= PN_STUN_PAD_MAX);
	o.pad_to = PN_STUN_PAD_MAX + 1;
	assert_int_equal(pn_stun_build_request(b, sizeof(b), &n, &o), -EINVAL);
	o.pad_to = 100;
	assert_int_equal(pn_stun_build_request(b, 99, &n, &o), -ENOSPC);
}

/* ---------------------------------------------------------------- answers */

static void answer_round_trip(const char *from_s, bool fp, size_t want_len)
{
	struct pn_stun_req_opts o = {.fingerprint = fp};
	struct pn_addr from;
	uint8_t req[64], ans[PN_STUN_ANSWER_MAX];
	size_t rn, an;
	struct pn_stun_msg m;
	char s[PN_ADDR_STRLEN];

	assert_int_equal(pn_addr_parse(&from, from_s), 0);
	for (int i = 0; i < 12; i++)
		o.tid[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &rn, &o), 0);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, req, rn, &from), 0);
	assert_int_equal(an, want_len);
	assert_int_equal(pn_stun_parse_response(&m, ans, an, o.tid), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_SUCCESS);
	assert_int_equal(m.fingerprint, fp);
	assert_string_equal(pn_addr_str(pn_stun_mapped(&m), s), from_s);
	assert_int_equal(m.mapped.family, 0); /* only the XOR form is sent */
}

static void answer_ipv4(void **state)
{
	answer_round_trip("198.18.0.7:40000", false, 32);
	answer_round_trip("198.18.0.7:40000", true, 40);
}

static void answer_ipv6(void **state)
{
	answer_round_trip("[2001:db8::7]:1", false, 44);
	answer_round_trip("[2001:db8:ffff::1:2]:65535", true, 52);
}

static void answer_unknown_attribute_420(void **state)
{
	struct pn_addr from;
	uint8_t ans[PN_STUN_ANSWER_MAX];
	size_t an;
	struct pn_stun_msg m;

	assert_int_equal(pn_addr_parse(&from, "192.0.2.1:32853"), 0);
	/* the RFC 5769 request carries PRIORITY, which we do not know */
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, rfc5769_req, sizeof(rfc5769_req),
					&from), 0);
	assert_int_equal(pn_stun_parse_response(&m, ans, an, rfc5769_tid), 0);
	assert_int_equal(m.type, PN_STUN_BINDING_ERROR);
	assert_int_equal(m.error_code, 420);
	assert_string_equal(m.reason, "Unknown Attribute");
	assert_int_equal(m.n_err_unknown, 1);
	assert_int_equal(m.err_unknown[0], 0x0024);
	assert_true(m.fingerprint);
}

static void answer_other_method_400(void **state)
{
	/* method 0x003 (Allocate, TURN) request, no attributes */
	uint8_t req[20] = {0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6,
			   7, 8, 9, 10, 11, 12};
	uint8_t ans[PN_STUN_ANSWER_MAX];
	size_t an;
	struct pn_stun_msg m;
	struct pn_addr from;

	assert_int_equal(pn_addr_parse(&from, "198.18.0.1:1"), 0);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, req, sizeof(req), &from), 0);
	assert_int_equal(pn_stun_parse(&m, ans, an), 0);
	assert_int_equal(m.type, 0x0113);
	assert_int_equal(m.error_code, 400);
}

static void answer_not_for_responses_or_indications(void **state)
{
	uint8_t ind[20] = {0x00, 0x11, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
	uint8_t ans[PN_STUN_ANSWER_MAX];
	size_t an;
	struct pn_addr from;

	assert_int_equal(pn_addr_parse(&from, "198.18.0.1:1"), 0);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, ind, sizeof(ind), &from), -ENOMSG);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, rfc5769_resp4,
					sizeof(rfc5769_resp4), &from), -ENOMSG);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, ind, 19, &from), -EBADMSG);
}

/* The vector of docs/PROTOCOL.md section 9: our padded request and the supernode's
 * answer, byte for byte (cross-checked with Python's zlib.crc32 and a hand XOR). */
static void parley_test_vector(void **state)
{
	static const uint8_t want_req[40] = {
		0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04,
		0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x00, 0x26, 0x00, 0x08,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x28, 0x00, 0x04,
		0xb1, 0xeb, 0x00, 0xd1,
	};
	static const uint8_t want_ans[40] = {
		0x01, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04,
		0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x00, 0x20, 0x00, 0x08,
		0x00, 0x01, 0xbd, 0x51, 0xe7, 0x00, 0xa4, 0x24, 0x80, 0x28, 0x00, 0x04,
		0x10, 0x14, 0xc6, 0xe1,
	};
	struct pn_stun_req_opts o = {.fingerprint = true, .pad_to = 40};
	uint8_t req[64], ans[PN_STUN_ANSWER_MAX];
	size_t rn, an;
	struct pn_addr from;

	for (int i = 0; i < 12; i++)
		o.tid[i] = (uint8_t)(i + 1);
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &rn, &o), 0);
	assert_int_equal(rn, sizeof(want_req));
	assert_memory_equal(req, want_req, rn);
	assert_int_equal(pn_addr_parse(&from, "198.18.0.102:40003"), 0);
	assert_int_equal(pn_stun_answer(ans, sizeof(ans), &an, req, rn, &from), 0);
	assert_int_equal(an, sizeof(want_ans));
	assert_memory_equal(ans, want_ans, an);
}

/* ---------------------------------------------------------------- serve */

struct sent {
	int n;
	size_t len;
	uint8_t buf[PN_STUN_ANSWER_MAX];
	struct pn_addr to;
};

static int cap_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	struct sent *s = ctx;

	s->n++;
	s->to = *to;
	assert_true(len <= sizeof(s->buf));
	memcpy(s->buf, buf, len);
	s->len = len;
	return 0;
}

static void serve_needs_padding(void **state)
{
	struct sent s = {0};
	struct pn_env env = {.ctx = &s, .send = cap_send};
	struct pn_stun_req_opts o = {.fingerprint = true};
	struct pn_addr from;
	uint8_t req[128];
	size_t rn;
	struct pn_stun_msg m;

	assert_int_equal(pn_addr_parse(&from, "[2001:db8::2]:5000"), 0);
	memset(o.tid, 3, 12);
	/* 28-byte request, 52-byte answer: dropped */
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &rn, &o), 0);
	assert_int_equal(pn_stun_serve(&env, &from, req, rn), -EMSGSIZE);
	assert_int_equal(s.n, 0);
	/* one byte short of the answer still dropped: padded to 48 < 52 */
	o.pad_to = 48;
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &rn, &o), 0);
	assert_int_equal(rn, 48);
	assert_int_equal(pn_stun_serve(&env, &from, req, rn), -EMSGSIZE);
	/* padded to the answer's size: answered, never with more than it got */
	o.pad_to = 52;
	assert_int_equal(pn_stun_build_request(req, sizeof(req), &rn, &o), 0);
	assert_int_equal(pn_stun_serve(&env, &from, req, rn), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.len <= rn);
	assert_true(pn_addr_eq(&s.to, &from));
	assert_int_equal(pn_stun_parse_response(&m, s.buf, s.len, o.tid), 0);
	assert_true(pn_addr_eq(pn_stun_mapped(&m), &from));
}

static void serve_tiny_request_dropped(void **state)
{
	struct sent s = {0};
	struct pn_env env = {.ctx = &s, .send = cap_send};
	uint8_t req[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
	struct pn_addr from;

	assert_int_equal(pn_addr_parse(&from, "198.18.0.9:9"), 0);
	assert_int_equal(pn_stun_serve(&env, &from, req, sizeof(req)), -EMSGSIZE);
	assert_int_equal(pn_stun_serve(&env, &from, req, 19), -EBADMSG);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc5769_request),
		cmocka_unit_test(rfc5769_response_ipv4),
		cmocka_unit_test(rfc5769_response_ipv6),
		cmocka_unit_test(rfc5769_wrong_tid_is_not_ours),
		cmocka_unit_test(rfc5769_any_bit_flip_rejected),
		cmocka_unit_test(truncations_rejected),
		cmocka_unit_test(wrong_cookie_rejected),
		cmocka_unit_test(top_bits_rejected),
		cmocka_unit_test(bad_lengths_rejected),
		cmocka_unit_test(address_attribute_lengths_checked),
		cmocka_unit_test(fingerprint_must_be_last),
		cmocka_unit_test(request_plain),
		cmocka_unit_test(request_fingerprint_and_padding),
		cmocka_unit_test(answer_ipv4),
		cmocka_unit_test(answer_ipv6),
		cmocka_unit_test(answer_unknown_attribute_420),
		cmocka_unit_test(answer_other_method_400),
		cmocka_unit_test(answer_not_for_responses_or_indications),
		cmocka_unit_test(parley_test_vector),
		cmocka_unit_test(serve_needs_padding),
		cmocka_unit_test(serve_tiny_request_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
