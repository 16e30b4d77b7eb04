/* Unit tests for group chats: the state and its rules (src/im/group.c), the three frames,
 * snapshot reassembly, the protocol test vector (docs/PROTOCOL.md §7.4) and the group
 * tables of the client store (src/im/store.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/hex.h"
#include "im/group.h"
#include "im/store.h"
#include "wire/wire.h"

static struct pn_group *group_new(const char *name, const char *admin, unsigned n_extra)
{
	struct pn_group *g = calloc(1, sizeof(*g));
	char u[16];

	assert_non_null(g);
	for (int i = 0; i < PN_GROUP_ID_LEN; i++)
		g->id[i] = (uint8_t)(0xa0 + i);
	strcpy(g->name, name);
	strcpy(g->admin, admin);
	g->version = 1;
	assert_int_equal(pn_group_add(g, admin), 0);
	for (unsigned i = 0; i < n_extra; i++) {
		snprintf(u, sizeof(u), "user%03u", i);
		assert_int_equal(pn_group_add(g, u), 0);
	}
	return g;
}

/* ---- state ---- */

static void test_members_sorted_unique(void **state)
{
	struct pn_group *g = group_new("g", "mike", 0);

	(void)state;
	assert_int_equal(pn_group_add(g, "zoe"), 0);
	assert_int_equal(pn_group_add(g, "alice"), 0);
	assert_int_equal(pn_group_add(g, "bob"), 0);
	assert_int_equal(pn_group_add(g, "bob"), -EEXIST);
	assert_int_equal(pn_group_add(g, "Bad Name"), -EINVAL);
	assert_int_equal(g->n, 4);
	assert_string_equal(g->members[0], "alice");
	assert_string_equal(g->members[1], "bob");
	assert_string_equal(g->members[2], "mike");
	assert_string_equal(g->members[3], "zoe");
	assert_true(pn_group_has(g, "zoe"));
	assert_false(pn_group_has(g, "zo"));
	assert_int_equal(pn_group_remove(g, "bob"), 0);
	assert_int_equal(pn_group_remove(g, "bob"), -ENOENT);
	assert_string_equal(g->members[1], "mike");
	assert_int_equal(pn_group_check(g), 0);
	free(g);
}

static void test_group_full(void **state)
{
	struct pn_group *g = group_new("big", "admin", PN_GROUP_MEMBERS_MAX - 1);

	(void)state;
	assert_int_equal(g->n, PN_GROUP_MEMBERS_MAX);
	assert_int_equal(pn_group_add(g, "onemore"), -ENOSPC);
	assert_int_equal(pn_group_check(g), 0);
	free(g);
}

static void test_check(void **state)
{
	struct pn_group *g = group_new("ok", "admin", 3);

	(void)state;
	assert_int_equal(pn_group_check(g), 0);
	strcpy(g->name, "");
	assert_int_equal(pn_group_check(g), -EBADMSG);
	strcpy(g->name, "tab\there");
	assert_int_equal(pn_group_check(g), -EBADMSG);
	strcpy(g->name, "bad \xc3\x28 utf-8");
	assert_int_equal(pn_group_check(g), -EBADMSG);
	strcpy(g->name, "Z\xc3\xbcrich team");
	assert_int_equal(pn_group_check(g), 0);
	strcpy(g->name, "ok");
	strcpy(g->admin, "nobody");
	assert_int_equal(pn_group_check(g), -EBADMSG); /* the admin is not a member */
	strcpy(g->admin, "admin");
	strcpy(g->members[1], "aaa"); /* out of order */
	assert_int_equal(pn_group_check(g), -EBADMSG);
	g->n = 0; /* the last member left */
	assert_int_equal(pn_group_check(g), 0);
	free(g);
}

static void test_judge_invitation(void **state)
{
	struct pn_group *g = group_new("g", "alice", 0);

	(void)state;
	pn_group_add(g, "bob");
	/* from a contact who is the admin: taken */
	assert_int_equal(pn_group_judge_state(NULL, g, "alice", "bob", true), PN_GROUP_ACCEPT);
	/* from a stranger: refused (group invitations are not a way around contacts) */
	assert_int_equal(pn_group_judge_state(NULL, g, "alice", "bob", false), PN_GROUP_REFUSE);
	/* from our own other device: taken */
	strcpy(g->admin, "bob");
	assert_int_equal(pn_group_judge_state(NULL, g, "bob", "bob", false), PN_GROUP_ACCEPT);
	/* naming an admin other than the sender: refused */
	assert_int_equal(pn_group_judge_state(NULL, g, "alice", "bob", true), PN_GROUP_REFUSE);
	/* a group that does not list us: nothing to do, acknowledged */
	strcpy(g->admin, "alice");
	assert_int_equal(pn_group_judge_state(NULL, g, "alice", "carol", true), PN_GROUP_STALE);
	free(g);
}

static void test_judge_update(void **state)
{
	struct pn_group *local = group_new("g", "alice", 0), *in;

	(void)state;
	pn_group_add(local, "bob");
	pn_group_add(local, "carol");
	in = calloc(1, sizeof(*in));
	*in = *local;
	in->version = 2;
	strcpy(in->name, "renamed");
	assert_int_equal(pn_group_judge_state(local, in, "alice", "bob", false), PN_GROUP_ACCEPT);
	/* only the admin changes a group, whatever the contacts */
	assert_int_equal(pn_group_judge_state(local, in, "carol", "bob", true), PN_GROUP_REFUSE);
	/* older or equal versions: nothing new */
	in->version = 1;
	assert_int_equal(pn_group_judge_state(local, in, "alice", "bob", false), PN_GROUP_STALE);
	/* the admin hands the role on: the new admin is then the one to obey */
	in->version = 3;
	strcpy(in->admin, "carol");
	assert_int_equal(pn_group_judge_state(local, in, "alice", "bob", false), PN_GROUP_ACCEPT);
	*local = *in;
	in->version = 4;
	assert_int_equal(pn_group_judge_state(local, in, "alice", "bob", false), PN_GROUP_REFUSE);
	assert_int_equal(pn_group_judge_state(local, in, "carol", "bob", false), PN_GROUP_ACCEPT);
	free(in);
	free(local);
}

static void test_may_post_and_leave(void **state)
{
	struct pn_group *g = group_new("g", "alice", 0);

	(void)state;
	pn_group_add(g, "bob");
	assert_true(pn_group_may_post(g, "bob", "alice"));
	assert_false(pn_group_may_post(g, "bob", "mallory"));
	assert_false(pn_group_may_post(NULL, "bob", "alice"));
	assert_false(pn_group_may_post(g, "carol", "alice")); /* we are not in it (any more) */
	assert_int_equal(pn_group_judge_leave(g, "bob"), PN_GROUP_ACCEPT);
	assert_int_equal(pn_group_judge_leave(g, "alice"), PN_GROUP_REFUSE); /* admin */
	assert_int_equal(pn_group_judge_leave(g, "carol"), PN_GROUP_STALE);
	assert_int_equal(pn_group_judge_leave(NULL, "bob"), PN_GROUP_REFUSE);
	free(g);
}

/* ---- frames ---- */

static void test_chat_roundtrip_and_rejects(void **state)
{
	struct pn_group_chat m = {.sent_at = 1795600000123ULL, .text = (const uint8_t *)"hello",
				  .text_len = 5}, d;
	uint8_t f[PN_FRAME_MAX], big[PN_GROUP_TEXT_MAX + 1];
	size_t len;

	(void)state;
	memset(m.msg_id, 0x11, 16);
	memset(m.gid, 0x22, 16);
	strcpy(m.from, "alice");
	assert_int_equal(pn_group_chat_encode(&m, f, sizeof(f), &len), 0);
	assert_int_equal(len, 1 + 16 + 16 + 8 + 1 + 5 + 2 + 5);
	assert_int_equal(pn_group_chat_decode(&d, f, len), 0);
	assert_memory_equal(d.msg_id, m.msg_id, 16);
	assert_memory_equal(d.gid, m.gid, 16);
	assert_int_equal(d.sent_at, m.sent_at);
	assert_string_equal(d.from, "alice");
	assert_int_equal(d.text_len, 5);
	assert_memory_equal(d.text, "hello", 5);
	/* every truncation fails, and so does a trailing byte */
	for (size_t k = 0; k < len; k++)
		assert_int_equal(pn_group_chat_decode(&d, f, k), -EBADMSG);
	f[len] = 0;
	assert_int_equal(pn_group_chat_decode(&d, f, len + 1), -EBADMSG);
	/* wrong type */
	f[0] = PN_F_CHAT;
	assert_int_equal(pn_group_chat_decode(&d, f, len), -EBADMSG);
	/* text too long, empty, or with a NUL, is refused on both sides */
	memset(big, 'x', sizeof(big));
	m.text = big;
	m.text_len = sizeof(big);
	assert_int_equal(pn_group_chat_encode(&m, f, sizeof(f), &len), -EINVAL);
	m.text_len = 0;
	assert_int_equal(pn_group_chat_encode(&m, f, sizeof(f), &len), -EINVAL);
	m.text = (const uint8_t *)"a\0b";
	m.text_len = 3;
	assert_int_equal(pn_group_chat_encode(&m, f, sizeof(f), &len), -EINVAL);
}

/* Encodes g in chunks of at most cap bytes; feeds them (in reverse order, one twice) to a
 * fresh assembler; the result must equal g. Returns the number of chunks. */
static unsigned roundtrip_state(const struct pn_group *g, size_t cap)
{
	static uint8_t frames[64][PN_FRAME_MAX];
	size_t lens[64];
	unsigned first = 0, nf = 0, next;
	uint8_t uid[16];
	struct pn_group_chunk *ck = malloc(sizeof(*ck));
	struct pn_group_asm *a = calloc(1, sizeof(*a));
	int rc = 0;

	assert_non_null(ck);
	assert_non_null(a);
	memset(uid, 0x5a, sizeof(uid));
	do {
		assert_true(nf < 64);
		assert_int_equal(pn_group_state_encode(g, uid, first, frames[nf], cap, &lens[nf], &next), 0);
		assert_true(lens[nf] <= cap);
		nf++;
		first = next;
	} while (first < g->n);
	for (unsigned i = nf; i-- > 0;) {
		assert_int_equal(pn_group_state_decode(ck, frames[i], lens[i]), 0);
		rc = pn_group_asm_add(a, ck);
		assert_int_equal(rc, i == 0 ? 1 : 0);
		if (i == nf - 1 && nf > 1) /* a repeated chunk changes nothing */
			assert_int_equal(pn_group_asm_add(a, ck), 0);
	}
	assert_int_equal(a->g.n, g->n);
	assert_int_equal(a->g.version, g->version);
	assert_string_equal(a->g.name, g->name);
	assert_string_equal(a->g.admin, g->admin);
	assert_memory_equal(a->g.id, g->id, 16);
	for (unsigned i = 0; i < g->n; i++)
		assert_string_equal(a->g.members[i], g->members[i]);
	free(ck);
	free(a);
	return nf;
}

static void test_state_chunks(void **state)
{
	struct pn_group *g = group_new("a group of many", "admin", 150);

	(void)state;
	/* 151 names of 7 or 5 bytes fit one frame */
	assert_int_equal(roundtrip_state(g, PN_FRAME_MAX), 1);
	assert_true(roundtrip_state(g, 200) > 5);
	free(g);
	/* 256 members of 32-byte names, in frames small enough to be relayed */
	g = group_new("full", "admin", 0);
	for (unsigned i = 1; i < PN_GROUP_MEMBERS_MAX; i++) {
		char u[40];
		snprintf(u, sizeof(u), "a-rather-long-user-name-%08u", i);
		assert_int_equal(strlen(u), 32);
		assert_int_equal(pn_group_add(g, u), 0);
	}
	assert_int_equal(roundtrip_state(g, PN_E2E_FRAME_MAX), 7); /* 39 names a frame */
	g->n = 1; /* only the admin */
	strcpy(g->members[0], "admin");
	assert_int_equal(roundtrip_state(g, PN_FRAME_MAX), 1);
	free(g);
}

static void test_state_rejects(void **state)
{
	struct pn_group *g = group_new("g", "admin", 3);
	struct pn_group_chunk *ck = malloc(sizeof(*ck)), *ck2 = malloc(sizeof(*ck2));
	struct pn_group_asm *a = calloc(1, sizeof(*a));
	uint8_t f[PN_FRAME_MAX], uid[16] = {1};
	size_t len;
	unsigned next;

	(void)state;
	assert_int_equal(pn_group_state_encode(g, uid, 0, f, sizeof(f), &len, &next), 0);
	for (size_t k = 0; k < len; k++)
		assert_int_equal(pn_group_state_decode(ck, f, k), -EBADMSG);
	/* total above the limit */
	{
		uint8_t t[PN_FRAME_MAX];
		size_t off = 1 + 16 + 16 + 4 + 1 + strlen(g->admin) + 1 + strlen(g->name);
		memcpy(t, f, len);
		t[off] = 0x01;
		t[off + 1] = 0x01; /* 257 */
		assert_int_equal(pn_group_state_decode(ck, t, len), -EBADMSG);
		/* members out of order: swap the first two names' first letters */
		memcpy(t, f, len);
		t[off + 5 + 1] = 'z';
		assert_int_equal(pn_group_state_decode(ck, t, len), -EBADMSG);
	}
	/* a chunk that contradicts an earlier one of the same update drops the assembly */
	g->n = 4;
	assert_int_equal(pn_group_state_encode(g, uid, 2, f, sizeof(f), &len, &next), 0);
	assert_int_equal(pn_group_state_decode(ck, f, len), 0);
	assert_int_equal(pn_group_asm_add(a, ck), 0);
	strcpy(g->name, "other");
	assert_int_equal(pn_group_state_encode(g, uid, 0, f, sizeof(f), &len, &next), 0);
	assert_int_equal(pn_group_state_decode(ck2, f, len), 0);
	assert_int_equal(pn_group_asm_add(a, ck2), -EBADMSG);
	assert_false(a->active);
	/* a complete list whose admin is missing is refused whole */
	{
		/* build a snapshot by hand that names an admin not listed */
		struct pn_wr w;
		uint8_t t[256];
		pn_wr_init(&w, t, sizeof(t));
		pn_wr_u8(&w, PN_F_GROUP_STATE);
		pn_wr_bytes(&w, uid, 16);
		pn_wr_bytes(&w, g->id, 16);
		pn_wr_u32(&w, 9);
		pn_wr_str8(&w, "ghost");
		pn_wr_str8(&w, "h");
		pn_wr_u16(&w, 1);
		pn_wr_u16(&w, 0);
		pn_wr_u8(&w, 1);
		pn_wr_str8(&w, "user000");
		assert_int_equal(pn_group_state_decode(ck, t, w.len), 0);
		memset(a, 0, sizeof(*a));
		assert_int_equal(pn_group_asm_add(a, ck), -EBADMSG);
	}
	free(ck);
	free(ck2);
	free(a);
	free(g);
}

static void test_leave_roundtrip(void **state)
{
	uint8_t uid[16], gid[16], u2[16], g2[16], f[64];
	size_t len;

	(void)state;
	memset(uid, 7, 16);
	memset(gid, 9, 16);
	assert_int_equal(pn_group_leave_encode(uid, gid, f, sizeof(f), &len), 0);
	assert_int_equal(len, 33);
	assert_int_equal(pn_group_leave_decode(u2, g2, f, len), 0);
	assert_memory_equal(u2, uid, 16);
	assert_memory_equal(g2, gid, 16);
	assert_int_equal(pn_group_leave_decode(u2, g2, f, len - 1), -EBADMSG);
	assert_int_equal(pn_group_leave_decode(u2, g2, f, len + 1), -EBADMSG);
	f[0] = PN_F_GROUP_CHAT;
	assert_int_equal(pn_group_leave_decode(u2, g2, f, len), -EBADMSG);
}

/* docs/PROTOCOL.md §7.4: the bytes there must be what the encoders write. */
static void test_vectors(void **state)
{
	static const char chat_hex[] =
		"48" "000102030405060708090a0b0c0d0e0f" "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
		"000001a21219a47b" "05616c696365" "0002" "6869";
	static const char state_hex[] =
		"49" "101112131415161718191a1b1c1d1e1f" "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
		"00000002" "05616c696365" "047465616d" "0003" "0000" "03"
		"05616c696365" "03626f62" "056361726f6c";
	static const char leave_hex[] =
		"4a" "202122232425262728292a2b2c2d2e2f" "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
	struct pn_group *g = group_new("team", "alice", 0);
	struct pn_group_chat m = {.sent_at = 1795600000123ULL, .text = (const uint8_t *)"hi",
				  .text_len = 2};
	uint8_t f[PN_FRAME_MAX], uid[16];
	char hex[2 * PN_FRAME_MAX + 1];
	size_t len;
	unsigned next;

	(void)state;
	for (int i = 0; i < 16; i++)
		m.msg_id[i] = (uint8_t)i;
	memcpy(m.gid, g->id, 16);
	strcpy(m.from, "alice");
	assert_int_equal(pn_group_chat_encode(&m, f, sizeof(f), &len), 0);
	assert_string_equal(pn_hex_encode(hex, sizeof(hex), f, len), chat_hex);
	pn_group_add(g, "bob");
	pn_group_add(g, "carol");
	g->version = 2;
	for (int i = 0; i < 16; i++)
		uid[i] = (uint8_t)(0x10 + i);
	assert_int_equal(pn_group_state_encode(g, uid, 0, f, sizeof(f), &len, &next), 0);
	assert_int_equal(next, 3);
	assert_string_equal(pn_hex_encode(hex, sizeof(hex), f, len), state_hex);
	for (int i = 0; i < 16; i++)
		uid[i] = (uint8_t)(0x20 + i);
	assert_int_equal(pn_group_leave_encode(uid, g->id, f, sizeof(f), &len), 0);
	assert_string_equal(pn_hex_encode(hex, sizeof(hex), f, len), leave_hex);
	free(g);
}

/* ---- store ---- */

static int list_cb(void *arg, const struct pn_group *g)
{
	(*(unsigned *)arg) += g->n;
	return 0;
}

static int hist_cb(void *arg, const struct pn_msg_row *m)
{
	char *order = arg;
	size_t l = strlen(order);
	snprintf(order + l, 64 - l, "%s", m->text);
	return 0;
}

static int pend_cb(void *arg, const char *member)
{
	char *s = arg;
	strcat(s, member);
	strcat(s, ",");
	return 0;
}

static void test_store_groups(void **state)
{
	struct pn_cstore *s;
	struct pn_group *g = group_new("team", "alice", 0), *back = calloc(1, sizeof(*back));
	struct pn_msg_row row;
	uint8_t gid[16];
	unsigned total, dl, rd, sum = 0;
	enum pn_rcpt_state rs;
	char order[64] = "", pend[64] = "";

	(void)state;
	assert_int_equal(pn_cstore_open(&s, ":memory:"), 0);
	pn_group_add(g, "bob");
	pn_group_add(g, "carol");
	assert_int_equal(pn_cstore_group_get(s, g->id, back), -ENOENT);
	assert_int_equal(pn_cstore_group_put(s, g, 1000), 0);
	assert_int_equal(pn_cstore_group_get(s, g->id, back), 0);
	assert_int_equal(back->n, 3);
	assert_string_equal(back->members[2], "carol");
	/* a new version replaces the member list whole */
	pn_group_remove(g, "bob");
	g->version = 2;
	strcpy(g->name, "renamed");
	assert_int_equal(pn_cstore_group_put(s, g, 2000), 0);
	assert_int_equal(pn_cstore_group_get(s, g->id, back), 0);
	assert_int_equal(back->n, 2);
	assert_int_equal(back->version, 2);
	assert_string_equal(back->name, "renamed");
	assert_false(pn_group_has(back, "bob"));
	assert_int_equal(pn_cstore_group_list(s, list_cb, &sum), 0);
	assert_int_equal(sum, 2);
	/* an invalid group is not stored */
	strcpy(g->admin, "ghost");
	assert_int_equal(pn_cstore_group_put(s, g, 3000), -EINVAL);
	strcpy(g->admin, "alice");

	/* group messages: the same sent_at is ordered by id, so every device agrees */
	memset(&row, 0, sizeof(row));
	row.dir = PN_MSG_IN;
	row.state = PN_MSG_RECEIVED;
	row.sent_at = 5000;
	row.updated_at = 5000;
	strcpy(row.peer, "bob");
	strcpy(row.id, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	strcpy(row.text, "second");
	assert_int_equal(pn_cstore_msg_insert(s, &row), 0);
	assert_int_equal(pn_cstore_group_msg_add(s, row.id, g->id), 0);
	assert_int_equal(pn_cstore_group_msg_add(s, row.id, g->id), -EEXIST);
	strcpy(row.id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	strcpy(row.text, "first");
	row.dir = PN_MSG_OUT;
	row.state = PN_MSG_SENT;
	strcpy(row.peer, "alice");
	assert_int_equal(pn_cstore_msg_insert(s, &row), 0);
	assert_int_equal(pn_cstore_group_msg_add(s, row.id, g->id), 0);
	assert_int_equal(pn_cstore_group_msg_list(s, g->id, 10, hist_cb, order), 0);
	assert_string_equal(order, "firstsecond");
	assert_int_equal(pn_cstore_group_msg_gid(s, row.id, gid), 0);
	assert_memory_equal(gid, g->id, 16);
	/* group messages stay out of the one-to-one history */
	order[0] = 0;
	assert_int_equal(pn_cstore_msg_list(s, "bob", 10, hist_cb, order), 0);
	assert_string_equal(order, "");

	/* receipts: counts, advancing only, pending list */
	assert_int_equal(pn_cstore_group_rcpt_set(s, row.id, "bob", PN_RCPT_PENDING), 0);
	assert_int_equal(pn_cstore_group_rcpt_set(s, row.id, "carol", PN_RCPT_PENDING), 0);
	assert_int_equal(pn_cstore_group_rcpt_count(s, row.id, &total, &dl, &rd), 0);
	assert_int_equal(total, 2);
	assert_int_equal(dl, 0);
	assert_int_equal(pn_cstore_group_rcpt_set(s, row.id, "bob", PN_RCPT_READ), 0);
	assert_int_equal(pn_cstore_group_rcpt_set(s, row.id, "bob", PN_RCPT_DELIVERED), 0);
	assert_int_equal(pn_cstore_group_rcpt_get(s, row.id, "bob", &rs), 0);
	assert_int_equal(rs, PN_RCPT_READ);
	assert_int_equal(pn_cstore_group_rcpt_get(s, row.id, "dave", &rs), -ENOENT);
	assert_int_equal(pn_cstore_group_rcpt_count(s, row.id, &total, &dl, &rd), 0);
	assert_int_equal(dl, 1);
	assert_int_equal(rd, 1);
	assert_int_equal(pn_cstore_group_rcpt_pending(s, row.id, pend_cb, pend), 0);
	assert_string_equal(pend, "carol,");
	pn_cstore_free(s);
	free(back);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_members_sorted_unique),
		cmocka_unit_test(test_group_full),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_judge_invitation),
		cmocka_unit_test(test_judge_update),
		cmocka_unit_test(test_may_post_and_leave),
		cmocka_unit_test(test_chat_roundtrip_and_rejects),
		cmocka_unit_test(test_state_chunks),
		cmocka_unit_test(test_state_rejects),
		cmocka_unit_test(test_leave_roundtrip),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_store_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
