/* History-transfer frames (src/im/histsync): the documented test vector, round trips,
 * chunk filling, and rejection of every kind of malformed frame. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/hex.h"
#include "im/histsync.h"
#include "wire/wire.h"

/* docs/PROTOCOL.md §3.7: chunk 7, last, one incoming message and one contact */
static const char vector_hex[] =
	"4c" "00000007" "01" "02"
	"01" "000102030405060708090a0b0c0d0e0f" "00" "05" "0000019abac40580" "03626f62"
	"0002" "6869"
	"02" "056361726f6c" "0000000069255f00";

static void fill_vector_items(struct pn_hist_item it[2])
{
	memset(it, 0, 2 * sizeof(*it));
	it[0].kind = PN_HIST_ITEM_MSG;
	strcpy(it[0].msg.id, "000102030405060708090a0b0c0d0e0f");
	it[0].msg.dir = PN_MSG_IN;
	it[0].msg.state = PN_MSG_RECEIVED;
	it[0].msg.sent_at = 1764070000000ull;
	strcpy(it[0].msg.peer, "bob");
	strcpy(it[0].msg.text, "hi");
	it[1].kind = PN_HIST_ITEM_CONTACT;
	strcpy(it[1].msg.peer, "carol");
	it[1].msg.sent_at = 1764056832;
}

static void encode_matches_vector(void **state)
{
	struct pn_hist_item it[2];
	struct pn_hist_wr hw;
	uint8_t buf[256], want[256];
	size_t n, wn = strlen(vector_hex) / 2;

	(void)state;
	assert_int_equal(pn_hex_decode(want, wn, vector_hex), 0);
	fill_vector_items(it);
	pn_hist_begin(&hw, buf, sizeof(buf), 7);
	assert_true(pn_hist_add(&hw, &it[0]));
	assert_true(pn_hist_add(&hw, &it[1]));
	n = pn_hist_finish(&hw, true);
	assert_int_equal(n, wn);
	assert_memory_equal(buf, want, wn);
}

struct seen {
	unsigned n;
	struct pn_hist_item it[4];
};

static int seen_cb(void *arg, const struct pn_hist_item *it)
{
	struct seen *s = arg;
	if (s->n < 4)
		s->it[s->n] = *it;
	s->n++;
	return 0;
}

static void decode_vector(void **state)
{
	uint8_t f[256];
	size_t n = strlen(vector_hex) / 2;
	struct seen *s = calloc(1, sizeof(*s));
	uint32_t seq;
	bool last;

	(void)state;
	assert_int_equal(pn_hex_decode(f, n, vector_hex), 0);
	assert_int_equal(pn_hist_decode(f, n, &seq, &last, seen_cb, s), 0);
	assert_int_equal(seq, 7);
	assert_true(last);
	assert_int_equal(s->n, 2);
	assert_int_equal(s->it[0].kind, PN_HIST_ITEM_MSG);
	assert_string_equal(s->it[0].msg.id, "000102030405060708090a0b0c0d0e0f");
	assert_string_equal(s->it[0].msg.peer, "bob");
	assert_string_equal(s->it[0].msg.text, "hi");
	assert_int_equal(s->it[0].msg.state, PN_MSG_RECEIVED);
	assert_int_equal(s->it[1].kind, PN_HIST_ITEM_CONTACT);
	assert_string_equal(s->it[1].msg.peer, "carol");
	assert_int_equal(s->it[1].msg.sent_at, 1764056832);
	free(s);
}

/* Every truncation and every single-byte change that makes the frame invalid is refused
 * before any item reaches the callback. */
static void malformed_rejected_whole(void **state)
{
	uint8_t f[256], g[256];
	size_t n = strlen(vector_hex) / 2;
	struct seen *s = calloc(1, sizeof(*s));
	uint32_t seq;
	bool last;

	(void)state;
	assert_int_equal(pn_hex_decode(f, n, vector_hex), 0);
	for (size_t k = 0; k < n; k++) {
		s->n = 0;
		assert_int_equal(pn_hist_decode(f, k, &seq, &last, seen_cb, s), -EBADMSG);
		assert_int_equal(s->n, 0);
	}
	memcpy(g, f, n);
	g[n] = 0; /* trailing byte */
	assert_int_equal(pn_hist_decode(g, n + 1, &seq, &last, seen_cb, s), -EBADMSG);
	struct { size_t at; uint8_t v; } bad[] = {
		{0, 0x4d},  /* wrong type */
		{5, 0x02},  /* unknown flag */
		{6, 0x03},  /* one item more than there is */
		{7, 0x09},  /* unknown item kind */
		{24, 0x02}, /* direction 2 */
		{25, 0x01}, /* incoming but "sent" */
		{40, 'a'},  /* text with... */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(g, f, n);
		g[bad[i].at] = bad[i].v;
		if (bad[i].at == 40) {
			g[40] = 0; /* a NUL inside the text */
		}
		s->n = 0;
		assert_int_equal(pn_hist_decode(g, n, &seq, &last, seen_cb, s), -EBADMSG);
		assert_int_equal(s->n, 0);
	}
	/* a bad user name (upper case) inside the contact item */
	memcpy(g, f, n);
	g[n - 8 - 5] = 'C';
	assert_int_equal(pn_hist_decode(g, n, &seq, &last, NULL, NULL), -EBADMSG);
	free(s);
}

/* Items go in until the chunk is full; the one that does not fit leaves it unchanged. */
static void chunk_fills_and_refuses(void **state)
{
	struct pn_hist_item it;
	struct pn_hist_wr hw;
	uint8_t buf[PN_E2E_FRAME_MAX];
	unsigned added = 0;
	size_t before;

	(void)state;
	memset(&it, 0, sizeof(it));
	it.kind = PN_HIST_ITEM_MSG;
	strcpy(it.msg.id, "ffeeddccbbaa99887766554433221100");
	it.msg.dir = PN_MSG_OUT;
	it.msg.state = PN_MSG_DELIVERED;
	strcpy(it.msg.peer, "a-rather-long-user-name-32-bytes");
	memset(it.msg.text, 'z', 300);
	pn_hist_begin(&hw, buf, sizeof(buf), 0);
	while (pn_hist_add(&hw, &it))
		added++;
	assert_int_equal(added, 3); /* 7 + 3 x 362 bytes of PN_E2E_FRAME_MAX (1291) */
	before = hw.w.len;
	assert_false(pn_hist_add(&hw, &it));
	assert_int_equal(hw.w.len, before);
	/* the largest text still fits an empty chunk; a longer one is not carried */
	pn_hist_begin(&hw, buf, sizeof(buf), 1);
	memset(it.msg.text, 'z', PN_HIST_TEXT_MAX);
	assert_true(pn_hist_add(&hw, &it));
	pn_hist_begin(&hw, buf, sizeof(buf), 1);
	memset(it.msg.text, 'z', PN_HIST_TEXT_MAX + 1);
	assert_false(pn_hist_add(&hw, &it));
	/* an invalid item is refused */
	it.msg.text[10] = 0;
	it.msg.dir = PN_MSG_IN;
	it.msg.state = PN_MSG_SENT;
	assert_false(pn_hist_add(&hw, &it));
}

static void ack_round_trip(void **state)
{
	uint8_t a[5], b[6] = {0};
	uint32_t seq = 0;

	(void)state;
	assert_int_equal(pn_hist_ack_encode(a, 0x01020304), 5);
	assert_int_equal(a[0], PN_F_HIST_ACK);
	assert_int_equal(pn_hist_ack_decode(a, 5, &seq), 0);
	assert_int_equal(seq, 0x01020304);
	assert_int_equal(pn_hist_ack_decode(a, 4, &seq), -EBADMSG);
	memcpy(b, a, 5);
	assert_int_equal(pn_hist_ack_decode(b, 6, &seq), -EBADMSG);
	a[0] = PN_F_HIST;
	assert_int_equal(pn_hist_ack_decode(a, 5, &seq), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encode_matches_vector),
		cmocka_unit_test(decode_vector),
		cmocka_unit_test(malformed_rejected_whole),
		cmocka_unit_test(chunk_fills_and_refuses),
		cmocka_unit_test(ack_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
