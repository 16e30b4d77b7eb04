/* Unit tests for the directory record store (src/overlay/recstore: sequence rules, the
 * per-user device cap, expiry) and the network file (src/node/network.c: save/load round
 * trip and every error message, which must quote what was wrong). File cases run in a
 * fresh mkdtemp directory each and remove it afterwards. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/addr.h"
#include "overlay/recstore.h"

static const uint8_t test_hash_key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
#include "parley/network.h"
#include "wire/wire.h"

/* ---------------------------------------------------------------- recstore helpers */

/* A record as the store sees it: it never re-verifies, so only the fields it keys on
 * matter (username, device id, seq, expires) and the bytes it copies. */
static void rec(struct pn_record *r, const char *user, uint8_t dev, uint64_t seq, uint64_t exp)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->cert.name, user);
	memset(r->cert.device_id, dev, sizeof(r->cert.device_id));
	r->seq = seq;
	r->expires = exp;
}

/* Bytes distinct per (device, seq), so a get can tell which version it returned. */
static size_t rec_bytes(uint8_t *out, uint8_t dev, uint64_t seq)
{
	size_t n = 10 + dev;

	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(dev * 31 + seq * 7 + i);
	return n;
}

static int put(struct pn_recstore *rs, const char *user, uint8_t dev, uint64_t seq, uint64_t exp)
{
	struct pn_record r;
	uint8_t b[64];
	size_t n = rec_bytes(b, dev, seq);

	rec(&r, user, dev, seq, exp);
	return pn_recstore_put(rs, &r, b, n);
}

/* What a get returned, in callback order. */
struct seen {
	unsigned n;
	uint8_t dev[PN_RECSTORE_MAX_DEVICES + 1];
	uint64_t seq[PN_RECSTORE_MAX_DEVICES + 1];
	bool bytes_ok;
};

static void seen_cb(void *arg, const struct pn_stored_rec *r)
{
	struct seen *s = arg;
	uint8_t want[64];
	size_t n;

	assert_true(s->n <= PN_RECSTORE_MAX_DEVICES);
	s->dev[s->n] = r->device_id[0];
	s->seq[s->n] = r->seq;
	n = rec_bytes(want, r->device_id[0], r->seq);
	if (r->len != n || memcmp(r->bytes, want, n) != 0)
		s->bytes_ok = false;
	s->n++;
}

static struct seen get(struct pn_recstore *rs, const char *user, uint64_t now)
{
	struct seen s = {.n = 0, .bytes_ok = true};
	int n = pn_recstore_get(rs, user, now, seen_cb, &s);

	assert_int_equal(n, (int)s.n);
	assert_true(s.bytes_ok);
	return s;
}

static bool seen_has(const struct seen *s, uint8_t dev, uint64_t seq)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->dev[i] == dev && s->seq[i] == seq)
			return true;
	return false;
}

/* ---------------------------------------------------------------- recstore cases */

static void recstore_put_get(void **state)
{
	struct pn_recstore *rs = NULL;
	struct seen s;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	assert_int_equal(pn_recstore_count(rs), 0);
	assert_int_equal(pn_recstore_get(rs, "alice", 100, seen_cb, NULL), 0);
	assert_int_equal(put(rs, "alice", 1, 5, 1000), 0);
	assert_int_equal(put(rs, "alice", 2, 1, 1000), 0);
	assert_int_equal(put(rs, "bob", 1, 9, 1000), 0);
	assert_int_equal(pn_recstore_count(rs), 3);

	s = get(rs, "alice", 100);
	assert_int_equal(s.n, 2);
	assert_true(seen_has(&s, 1, 5));
	assert_true(seen_has(&s, 2, 1));
	s = get(rs, "bob", 100);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, 1, 9));
	assert_int_equal(get(rs, "carol", 100).n, 0);
	assert_int_equal(get(rs, "alic", 100).n, 0);
	/* A NULL callback still counts. */
	assert_int_equal(pn_recstore_get(rs, "alice", 100, NULL, NULL), 2);
	pn_recstore_free(rs);
	pn_recstore_free(NULL);
}

/* holds: true only for the exact bytes stored for that (user, device). */
static void recstore_holds(void **state)
{
	struct pn_recstore *rs = NULL;
	uint8_t b[64], dev[16];
	size_t n;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	memset(dev, 1, sizeof(dev));
	n = rec_bytes(b, 1, 5);
	assert_false(pn_recstore_holds(rs, "alice", dev, b, n));
	assert_int_equal(put(rs, "alice", 1, 5, 1000), 0);
	assert_true(pn_recstore_holds(rs, "alice", dev, b, n));
	assert_false(pn_recstore_holds(rs, "alice", dev, b, n - 1));
	assert_false(pn_recstore_holds(rs, "bob", dev, b, n));
	b[n - 1] ^= 1;
	assert_false(pn_recstore_holds(rs, "alice", dev, b, n));
	b[n - 1] ^= 1;
	memset(dev, 2, sizeof(dev));
	assert_false(pn_recstore_holds(rs, "alice", dev, b, n));
	/* a newer seq replaces the bytes: the old ones are no longer held */
	memset(dev, 1, sizeof(dev));
	assert_int_equal(put(rs, "alice", 1, 6, 1000), 0);
	assert_false(pn_recstore_holds(rs, "alice", dev, b, n));
	n = rec_bytes(b, 1, 6);
	assert_true(pn_recstore_holds(rs, "alice", dev, b, n));
	pn_recstore_free(rs);
}

static void recstore_seq_rules(void **state)
{
	struct pn_recstore *rs = NULL;
	struct seen s;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	assert_int_equal(put(rs, "alice", 1, 5, 1000), 0);
	assert_int_equal(put(rs, "alice", 1, 5, 2000), -ESTALE);
	assert_int_equal(put(rs, "alice", 1, 4, 2000), -ESTALE);
	assert_int_equal(put(rs, "alice", 1, 0, 2000), -ESTALE);
	s = get(rs, "alice", 100);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, 1, 5));
	/* A stale put left the stored expiry alone: the record is gone after 1000. */
	assert_int_equal(get(rs, "alice", 1001).n, 0);

	assert_int_equal(put(rs, "alice", 1, 6, 2000), 0);
	s = get(rs, "alice", 1500);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, 1, 6));
	assert_int_equal(pn_recstore_count(rs), 1);
	/* The rule is per device: another device of the user starts its own sequence. */
	assert_int_equal(put(rs, "alice", 2, 1, 2000), 0);
	assert_int_equal(put(rs, "alice", 1, UINT64_MAX, 2000), 0);
	assert_int_equal(put(rs, "alice", 1, UINT64_MAX, 3000), -ESTALE);
	assert_int_equal(pn_recstore_count(rs), 2);
	pn_recstore_free(rs);
}

static void recstore_device_cap(void **state)
{
	struct pn_recstore *rs = NULL;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	for (uint8_t d = 1; d <= PN_RECSTORE_MAX_DEVICES; d++)
		assert_int_equal(put(rs, "alice", d, 1, 1000), 0);
	assert_int_equal(put(rs, "alice", PN_RECSTORE_MAX_DEVICES + 1, 1, 1000), -ENOSPC);
	assert_int_equal(pn_recstore_count(rs), PN_RECSTORE_MAX_DEVICES);
	/* Updating a device already stored is still allowed; other users are unaffected. */
	assert_int_equal(put(rs, "alice", 1, 2, 1000), 0);
	assert_int_equal(put(rs, "bob", PN_RECSTORE_MAX_DEVICES + 1, 1, 1000), 0);
	assert_int_equal(get(rs, "alice", 0).n, PN_RECSTORE_MAX_DEVICES);
	/* Removing one makes room. */
	{
		uint8_t id[16];

		memset(id, 3, sizeof(id));
		pn_recstore_del(rs, "alice", id);
	}
	assert_int_equal(put(rs, "alice", PN_RECSTORE_MAX_DEVICES + 1, 1, 1000), 0);
	assert_int_equal(pn_recstore_count(rs), PN_RECSTORE_MAX_DEVICES + 1);
	pn_recstore_free(rs);
}

static void recstore_put_too_long(void **state)
{
	struct pn_recstore *rs = NULL;
	struct pn_record r;
	static uint8_t big[PN_REC_MAX + 1];

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	rec(&r, "alice", 1, 1, 1000);
	assert_int_equal(pn_recstore_put(rs, &r, big, sizeof(big)), -EINVAL);
	assert_int_equal(pn_recstore_put(rs, &r, big, PN_REC_MAX), 0);
	assert_int_equal(pn_recstore_count(rs), 1);
	pn_recstore_free(rs);
}

static void recstore_expiry_skip_on_get(void **state)
{
	struct pn_recstore *rs = NULL;
	struct seen s;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	assert_int_equal(put(rs, "alice", 1, 1, 1000), 0);
	assert_int_equal(put(rs, "alice", 2, 1, 2000), 0);
	assert_int_equal(get(rs, "alice", 1000).n, 2); /* valid through its expiry second */
	s = get(rs, "alice", 1001);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, 2, 1));
	assert_int_equal(get(rs, "alice", 2001).n, 0);
	/* Skipped, not removed. */
	assert_int_equal(pn_recstore_count(rs), 2);
	pn_recstore_free(rs);
}

static void recstore_expire_removes(void **state)
{
	struct pn_recstore *rs = NULL;
	char name[16];
	struct seen s;

	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	/* Many users (several share hash buckets' neighbourhood), each with a mix. */
	for (int u = 0; u < 300; u++) {
		snprintf(name, sizeof(name), "user%d", u);
		assert_int_equal(put(rs, name, 1, 1, 500), 0);
		if (u % 2)
			assert_int_equal(put(rs, name, 2, 1, 1500), 0);
		if (u % 3 == 0)
			assert_int_equal(put(rs, name, 3, 1, 400), 0);
	}
	assert_int_equal(pn_recstore_count(rs), 300 + 150 + 100);
	pn_recstore_expire(rs, 500);
	assert_int_equal(pn_recstore_count(rs), 300 + 150);
	pn_recstore_expire(rs, 501);
	assert_int_equal(pn_recstore_count(rs), 150);
	for (int u = 0; u < 300; u++) {
		snprintf(name, sizeof(name), "user%d", u);
		s = get(rs, name, 0);
		assert_int_equal(s.n, u % 2 ? 1 : 0);
		if (u % 2)
			assert_true(seen_has(&s, 2, 1));
	}
	/* A user emptied by expiry takes new records again from any seq. */
	assert_int_equal(put(rs, "user0", 1, 1, 5000), 0);
	pn_recstore_expire(rs, 10000);
	assert_int_equal(pn_recstore_count(rs), 0);
	pn_recstore_free(rs);
}

static void recstore_del(void **state)
{
	struct pn_recstore *rs = NULL;
	uint8_t id1[16], id2[16], id9[16];
	struct seen s;

	memset(id1, 1, sizeof(id1));
	memset(id2, 2, sizeof(id2));
	memset(id9, 9, sizeof(id9));
	assert_int_equal(pn_recstore_new(&rs, test_hash_key), 0);
	assert_int_equal(put(rs, "alice", 1, 3, 1000), 0);
	assert_int_equal(put(rs, "alice", 2, 3, 1000), 0);
	pn_recstore_del(rs, "alice", id9);
	pn_recstore_del(rs, "nobody", id1);
	assert_int_equal(pn_recstore_count(rs), 2);
	pn_recstore_del(rs, "alice", id1);
	assert_int_equal(pn_recstore_count(rs), 1);
	s = get(rs, "alice", 0);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, 2, 3));
	/* After a delete the device's sequence is forgotten: a supernode may drop, and the
	 * device republishes from whatever seq it has. */
	assert_int_equal(put(rs, "alice", 1, 1, 1000), 0);
	pn_recstore_del(rs, "alice", id1);
	pn_recstore_del(rs, "alice", id2);
	assert_int_equal(pn_recstore_count(rs), 0);
	assert_int_equal(get(rs, "alice", 0).n, 0);
	pn_recstore_del(rs, "alice", id2);
	assert_int_equal(pn_recstore_count(rs), 0);
	pn_recstore_free(rs);
}

/* ---------------------------------------------------------------- network file helpers */

struct tmpdir {
	char dir[64];
	char file[128];
};

static void tmpdir_make(struct tmpdir *t)
{
	strcpy(t->dir, "/tmp/pn-net-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->file, sizeof(t->file), "%s/network.conf", t->dir);
}

static void tmpdir_remove(struct tmpdir *t)
{
	char tmp[160];

	unlink(t->file);
	snprintf(tmp, sizeof(tmp), "%s.tmp", t->file);
	unlink(tmp);
	assert_int_equal(rmdir(t->dir), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

#define ROOT_HEX "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
#define KEY_HEX "9cdadc2a98a05e24edc2048752bdbc7ba3bfbba905d25b3b05f3e462d40abf28"
#define GOOD_HEAD                                 \
	"version = 1\n"                           \
	"name = demo\n"                           \
	"root_key = " ROOT_HEX "\n"               \
	"login = 198.18.0.1:7700 " KEY_HEX "\n"

/* Loads text; expects rc, and (for errors) a message that contains each of the given
 * fragments. */
static void load_expect(const char *text, int want_rc, const char *frag1, const char *frag2)
{
	struct tmpdir t;
	struct pn_network n;
	char err[512] = "";
	int rc;

	tmpdir_make(&t);
	write_file(t.file, text);
	rc = pn_network_load(&n, t.file, err, sizeof(err));
	tmpdir_remove(&t);
	if (rc != want_rc)
		fail_msg("load returned %d, want %d (message `%s')", rc, want_rc, err);
	if (frag1 && !strstr(err, frag1))
		fail_msg("message `%s' does not contain `%s'", err, frag1);
	if (frag2 && !strstr(err, frag2))
		fail_msg("message `%s' does not contain `%s'", err, frag2);
}

/* ---------------------------------------------------------------- network file cases */

static void network_roundtrip(void **state)
{
	struct tmpdir t;
	struct pn_network n, m;
	char err[256] = "";

	memset(&n, 0, sizeof(n));
	strcpy(n.name, "roundtrip-net");
	for (int i = 0; i < 32; i++)
		n.root_pk[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pn_addr_parse(&n.login.addr, "198.18.0.1:7700"), 0);
	memset(n.login.key, 0xab, 32);
	n.login.has_key = true;
	assert_int_equal(pn_addr_parse(&n.supernodes[0].addr, "198.18.0.2:7701"), 0);
	memset(n.supernodes[0].key, 0x03, 32);
	n.supernodes[0].has_key = true;
	assert_int_equal(pn_addr_parse(&n.supernodes[1].addr, "[2001:db8::7]:7702"), 0);
	n.supernodes[1].has_key = false;
	n.n_supernodes = 2;
	n.open_policy = true;

	tmpdir_make(&t);
	assert_int_equal(pn_network_save(&n, t.file), 0);
	assert_int_equal(access(t.file, R_OK), 0);
	assert_int_equal(pn_network_load(&m, t.file, err, sizeof(err)), 0);
	assert_string_equal(m.name, n.name);
	assert_memory_equal(m.root_pk, n.root_pk, 32);
	assert_true(pn_addr_eq(&m.login.addr, &n.login.addr));
	assert_true(m.login.has_key);
	assert_memory_equal(m.login.key, n.login.key, 32);
	assert_int_equal(m.n_supernodes, 2);
	assert_true(pn_addr_eq(&m.supernodes[0].addr, &n.supernodes[0].addr));
	assert_true(m.supernodes[0].has_key);
	assert_memory_equal(m.supernodes[0].key, n.supernodes[0].key, 32);
	assert_true(pn_addr_eq(&m.supernodes[1].addr, &n.supernodes[1].addr));
	assert_false(m.supernodes[1].has_key);
	assert_true(m.open_policy);
	/* Nothing else differs either. */
	assert_memory_equal(&m, &n, sizeof(m));

	/* Saving again over an existing file replaces it. */
	n.open_policy = false;
	n.n_supernodes = 0;
	assert_int_equal(pn_network_save(&n, t.file), 0);
	assert_int_equal(pn_network_load(&m, t.file, err, sizeof(err)), 0);
	assert_false(m.open_policy);
	assert_int_equal(m.n_supernodes, 0);
	tmpdir_remove(&t);
}

static void network_load_hand_written(void **state)
{
	struct tmpdir t;
	struct pn_network n;
	char err[256] = "";

	tmpdir_make(&t);
	write_file(t.file, "# a comment\n"
			   "\n"
			   "   version=1   \n"
			   "name = demo\r\n"
			   "\troot_key =\t" ROOT_HEX "\n"
			   "login = 198.18.0.1:7700    " KEY_HEX "  \n"
			   "supernode = 198.18.0.2:7701\n"
			   "supernode = [::1]:7702 " KEY_HEX "\n"
			   "policy = enrolled\n");
	assert_int_equal(pn_network_load(&n, t.file, err, sizeof(err)), 0);
	assert_string_equal(n.name, "demo");
	assert_int_equal(n.root_pk[0], 0x8a);
	assert_int_equal(n.root_pk[31], 0x5c);
	assert_int_equal(n.login.addr.port, 7700);
	assert_true(n.login.has_key);
	assert_int_equal(n.login.key[0], 0x9c);
	assert_int_equal(n.n_supernodes, 2);
	assert_false(n.supernodes[0].has_key);
	assert_int_equal(n.supernodes[0].addr.port, 7701);
	assert_true(n.supernodes[1].has_key);
	assert_int_equal(n.supernodes[1].addr.family, PN_AF_INET6);
	assert_false(n.open_policy);
	tmpdir_remove(&t);
}

static void network_supernode_without_key(void **state)
{
	struct tmpdir t;
	struct pn_network n;
	char err[256] = "";

	tmpdir_make(&t);
	write_file(t.file, GOOD_HEAD "supernode = 198.18.0.9:7701\n");
	assert_int_equal(pn_network_load(&n, t.file, err, sizeof(err)), 0);
	assert_int_equal(n.n_supernodes, 1);
	assert_false(n.supernodes[0].has_key);
	assert_int_equal(n.supernodes[0].addr.port, 7701);
	assert_int_equal(n.supernodes[0].addr.ip[3], 9);
	for (int i = 0; i < 32; i++)
		assert_int_equal(n.supernodes[0].key[i], 0);
	tmpdir_remove(&t);
}

static void network_err_unknown_key(void **state)
{
	load_expect(GOOD_HEAD "colour = blue\n", -EINVAL, ":5:", "`colour'");
}

static void network_err_bad_hex(void **state)
{
	load_expect("version = 1\nroot_key = 8a88e3zz\nlogin = 198.18.0.1:7700 " KEY_HEX "\n",
		    -EINVAL, ":2:", "`8a88e3zz'");
	/* 63 digits */
	load_expect("root_key = " ROOT_HEX "\nroot_key = " KEY_HEX "0\n", -EINVAL, ":2:",
		    "`" KEY_HEX "0'");
	load_expect("root_key = " ROOT_HEX "\nlogin = 198.18.0.1:7700 xyz\n", -EINVAL, ":2:",
		    "HEXKEY");
	load_expect(GOOD_HEAD "supernode = 198.18.0.2:7701 00ff\n", -EINVAL, ":5:", "HEXKEY");
}

/* A bad login or supernode line is quoted whole, key included: the key is what is wrong
 * in `ADDR:PORT badkey', so a message quoting only `ADDR:PORT' misleads. */
static void network_err_peer_quotes_whole_value(void **state)
{
	load_expect("root_key = " ROOT_HEX "\nlogin = 198.18.0.1:7700 xyz\n", -EINVAL, ":2:",
		    "`198.18.0.1:7700 xyz'");
	load_expect(GOOD_HEAD "supernode = 198.18.0.2:7701 00ff\n", -EINVAL, ":5:",
		    "`198.18.0.2:7701 00ff'");
	load_expect("root_key = " ROOT_HEX "\nlogin = ::1:7700 " KEY_HEX "\n", -EINVAL, ":2:",
		    "`::1:7700 " KEY_HEX "'");
}

static void network_err_missing_root_key(void **state)
{
	load_expect("version = 1\nlogin = 198.18.0.1:7700 " KEY_HEX "\n", -EINVAL,
		    "missing root_key", NULL);
	load_expect("", -EINVAL, "missing root_key", NULL);
}

static void network_err_missing_login(void **state)
{
	load_expect("version = 1\nroot_key = " ROOT_HEX "\n", -EINVAL, "missing login", NULL);
	/* login is the one peer whose key is required */
	load_expect("root_key = " ROOT_HEX "\nlogin = 198.18.0.1:7700\n", -EINVAL, ":2:",
		    "`198.18.0.1:7700'");
}

static void network_err_too_many_supernodes(void **state)
{
	char text[4096];
	size_t off = 0;

	off += (size_t)snprintf(text + off, sizeof(text) - off, "%s", GOOD_HEAD);
	for (int i = 0; i < PN_NET_MAX_SUPERNODES; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
					"supernode = 198.18.1.%d:7701\n", i + 1);
	load_expect(text, 0, NULL, NULL);
	snprintf(text + off, sizeof(text) - off, "supernode = 198.18.2.1:7701\n");
	/* The 17th supernode is on line 4 + 16 + 1. */
	load_expect(text, -EINVAL, ":21:", "more than 16 supernodes");
}

static void network_err_bad_address(void **state)
{
	load_expect(GOOD_HEAD "supernode = 198.18.0:7701\n", -EINVAL, ":5:", "`198.18.0:7701'");
	load_expect(GOOD_HEAD "supernode = 198.18.0.2:77011\n", -EINVAL, ":5:",
		    "`198.18.0.2:77011'");
	load_expect(GOOD_HEAD "supernode = example.org:7701\n", -EINVAL, ":5:",
		    "`example.org:7701'");
	load_expect(GOOD_HEAD "supernode = 198.18.0.2\n", -EINVAL, ":5:", "`198.18.0.2'");
	load_expect(GOOD_HEAD "supernode = ::1:7702\n", -EINVAL, ":5:", "`::1:7702'");
}

static void network_err_unsupported_version(void **state)
{
	load_expect("version = 2\n" "root_key = " ROOT_HEX "\n", -EINVAL, ":1:", "`2'");
	load_expect(GOOD_HEAD "version = 1.0\n", -EINVAL, ":5:", "`1.0'");
}

static void network_err_other_lines(void **state)
{
	load_expect(GOOD_HEAD "just some words\n", -EINVAL, ":5:", "`just some words'");
	load_expect(GOOD_HEAD "policy = closed\n", -EINVAL, ":5:", "`closed'");
	load_expect("name = "
		    "0123456789012345678901234567890123456789012345678901234567890123456789\n",
		    -EINVAL, ":1:", "name too long");
}

/* A comment longer than the reader's line buffer is still one comment: its tail must not
 * be read as a line of its own. */
static void network_long_comment_line(void **state)
{
	char text[2048];
	size_t off;

	off = (size_t)snprintf(text, sizeof(text), "# ");
	memset(text + off, 'x', 700);
	off += 700;
	snprintf(text + off, sizeof(text) - off, " = y\n%s", GOOD_HEAD);
	load_expect(text, 0, NULL, NULL);
}

static void network_err_missing_file(void **state)
{
	struct pn_network n;
	char err[256] = "";

	assert_int_equal(pn_network_load(&n, "/nonexistent/pn-net.conf", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "`/nonexistent/pn-net.conf'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(recstore_put_get),
		cmocka_unit_test(recstore_holds),
		cmocka_unit_test(recstore_seq_rules),
		cmocka_unit_test(recstore_device_cap),
		cmocka_unit_test(recstore_put_too_long),
		cmocka_unit_test(recstore_expiry_skip_on_get),
		cmocka_unit_test(recstore_expire_removes),
		cmocka_unit_test(recstore_del),
		cmocka_unit_test(network_roundtrip),
		cmocka_unit_test(network_load_hand_written),
		cmocka_unit_test(network_supernode_without_key),
		cmocka_unit_test(network_err_unknown_key),
		cmocka_unit_test(network_err_bad_hex),
		cmocka_unit_test(network_err_peer_quotes_whole_value),
		cmocka_unit_test(network_err_missing_root_key),
		cmocka_unit_test(network_err_missing_login),
		cmocka_unit_test(network_err_too_many_supernodes),
		cmocka_unit_test(network_err_bad_address),
		cmocka_unit_test(network_err_unsupported_version),
		cmocka_unit_test(network_err_other_lines),
		cmocka_unit_test(network_long_comment_line),
		cmocka_unit_test(network_err_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
