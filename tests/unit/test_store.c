/* Unit tests for the two SQLite stores: the login server's account store (src/login) and
 * the client's local store (src/im). Most cases run on ":memory:"; the file cases use a
 * fresh mkdtemp directory each and remove it afterwards. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "base/log.h"
#include "im/store.h"
#include "login/store.h"

/* A syntactically plausible Argon2id string; the store never parses it. */
#define HASH_A "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
#define HASH_B "$argon2id$v=19$m=65536,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNob3RoZXJoYXNo"

static const uint8_t dev1[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t dev2[16] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};

/* ---- helpers ---- */

struct tmpdir {
	char dir[64];
	char db[128];
};

static void tmpdir_make(struct tmpdir *t)
{
	strcpy(t->dir, "/tmp/pn-store-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->db, sizeof(t->db), "%s/test.db", t->dir);
}

static void tmpdir_remove(struct tmpdir *t)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char p[160];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", t->db, suffixes[i]);
		unlink(p);
	}
	assert_int_equal(rmdir(t->dir), 0);
}

/* Reads PRAGMA journal_mode through a separate connection, as another process would. */
static void assert_journal_mode_wal(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void assert_mode_0600(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* Captures log lines so a test can check what was (and was not) said. */
struct log_capture {
	char text[4096];
	size_t len;
};

static void capture_cb(void *arg, enum pn_log_level lvl, const char *msg)
{
	struct log_capture *c = arg;
	int n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s\n", msg);

	if (n > 0 && (size_t)n < sizeof(c->text) - c->len)
		c->len += (size_t)n;
}

static void acct_open_mem(struct pn_acct_store **s)
{
	assert_int_equal(pn_acct_store_open(s, ":memory:"), 0);
	assert_non_null(*s);
}

static void cstore_open_mem(struct pn_cstore **s)
{
	assert_int_equal(pn_cstore_open(s, ":memory:"), 0);
	assert_non_null(*s);
}

static void fill_key(uint8_t k[32], uint8_t v)
{
	memset(k, v, 32);
}

static void make_msg(struct pn_msg_row *m, unsigned n, const char *peer, enum pn_msg_dir dir,
		     enum pn_msg_state st, uint64_t sent_at, const char *text)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%032x", n);
	snprintf(m->peer, sizeof(m->peer), "%s", peer);
	m->dir = dir;
	m->state = st;
	m->sent_at = sent_at;
	m->updated_at = sent_at;
	snprintf(m->text, sizeof(m->text), "%s", text);
}

/* Collects message rows (ids and texts) seen by a list callback. */
struct msg_seen {
	unsigned n;
	unsigned stop_after; /* 0: never stop */
	char ids[16][PN_MSG_ID_HEX + 1];
	char texts[16][32];
};

static int msg_seen_cb(void *arg, const struct pn_msg_row *m)
{
	struct msg_seen *c = arg;

	if (c->n < 16) {
		snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", m->id);
		snprintf(c->texts[c->n], sizeof(c->texts[0]), "%.31s", m->text);
	}
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 1 : 0;
}

/* ---- login account store ---- */

static void acct_create_and_get_user(void **state)
{
	struct pn_acct_store *s;
	char hash[256];
	uint64_t n = 99;

	acct_open_mem(&s);
	assert_int_equal(pn_acct_store_count_users(s, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_create_user(s, "bob", HASH_B, 1001), 0);
	assert_int_equal(pn_acct_store_get_pwhash(s, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, HASH_A);
	assert_int_equal(pn_acct_store_get_pwhash(s, "bob", hash, sizeof(hash)), 0);
	assert_string_equal(hash, HASH_B);
	assert_int_equal(pn_acct_store_count_users(s, &n), 0);
	assert_int_equal(n, 2);
	pn_acct_store_free(s);
}

static void acct_duplicate_user_eexist(void **state)
{
	struct pn_acct_store *s;
	char hash[256];
	uint64_t n;

	acct_open_mem(&s);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_B, 1001), -EEXIST);
	/* The first registration's hash is untouched. */
	assert_int_equal(pn_acct_store_get_pwhash(s, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, HASH_A);
	assert_int_equal(pn_acct_store_count_users(s, &n), 0);
	assert_int_equal(n, 1);
	pn_acct_store_free(s);
}

static void acct_unknown_user_enoent(void **state)
{
	struct pn_acct_store *s;
	uint8_t k[32];
	char hash[256];

	acct_open_mem(&s);
	fill_key(k, 7);
	assert_int_equal(pn_acct_store_get_pwhash(s, "nobody", hash, sizeof(hash)), -ENOENT);
	assert_int_equal(pn_acct_store_upsert_device(s, "nobody", dev1, k, k, "phone", 5),
			 -ENOENT);
	assert_int_equal(pn_acct_store_get_device(s, "nobody", dev1, NULL, NULL), -ENOENT);
	assert_int_equal(pn_acct_store_revoke_device(s, "nobody", dev1, 5), -ENOENT);
	pn_acct_store_free(s);
}

static void acct_pwhash_small_buffer_enospc(void **state)
{
	struct pn_acct_store *s;
	char hash[sizeof(HASH_A)];

	acct_open_mem(&s);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	/* Exactly room for the string and its NUL works; one byte less does not. */
	assert_int_equal(pn_acct_store_get_pwhash(s, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, HASH_A);
	assert_int_equal(pn_acct_store_get_pwhash(s, "alice", hash, sizeof(hash) - 1), -ENOSPC);
	pn_acct_store_free(s);
}

static void acct_rejects_bad_input(void **state)
{
	struct pn_acct_store *s;
	char longname[40];
	char hash[256];
	char longdev[80];
	uint8_t k[32];

	acct_open_mem(&s);
	fill_key(k, 1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(longdev, 'd', sizeof(longdev) - 1);
	longdev[sizeof(longdev) - 1] = '\0';
	assert_int_equal(pn_acct_store_open(NULL, ":memory:"), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(NULL, "a", HASH_A, 1), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, NULL, HASH_A, 1), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, "", HASH_A, 1), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, longname, HASH_A, 1), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, "a", NULL, 1), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, "a", HASH_A, UINT64_MAX), -EINVAL);
	assert_int_equal(pn_acct_store_get_pwhash(s, longname, hash, sizeof(hash)), -EINVAL);
	assert_int_equal(pn_acct_store_create_user(s, "a", HASH_A, 1), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "a", NULL, k, k, "x", 1), -EINVAL);
	assert_int_equal(pn_acct_store_upsert_device(s, "a", dev1, k, k, NULL, 1), -EINVAL);
	assert_int_equal(pn_acct_store_upsert_device(s, "a", dev1, k, k, longdev, 1), -EINVAL);
	assert_int_equal(pn_acct_store_count_users(s, NULL), -EINVAL);
	pn_acct_store_free(s);
}

static void acct_device_upsert_get(void **state)
{
	struct pn_acct_store *s;
	uint8_t sk[32], dk[32], got_s[32], got_d[32];

	acct_open_mem(&s);
	fill_key(sk, 0xaa);
	fill_key(dk, 0xbb);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, got_s, got_d), -ENOENT);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, sk, dk, "laptop", 1001), 0);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, got_s, got_d), 0);
	assert_memory_equal(got_s, sk, 32);
	assert_memory_equal(got_d, dk, 32);
	/* The out pointers are optional. */
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, NULL, NULL), 0);
	/* Refreshing the same device is fine, even under a new name. */
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, sk, dk, "work", 2000), 0);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev2, NULL, NULL), -ENOENT);
	pn_acct_store_free(s);
}

static void acct_device_new_keys_eperm(void **state)
{
	struct pn_acct_store *s;
	uint8_t sk[32], dk[32], other[32], got_s[32];

	acct_open_mem(&s);
	fill_key(sk, 0xaa);
	fill_key(dk, 0xbb);
	fill_key(other, 0xcc);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, sk, dk, "laptop", 1001), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, other, dk, "x", 1002), -EPERM);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, sk, other, "x", 1002), -EPERM);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, got_s, NULL), 0);
	assert_memory_equal(got_s, sk, 32);
	pn_acct_store_free(s);
}

static void acct_device_of_other_user_eperm(void **state)
{
	struct pn_acct_store *s;
	uint8_t k[32];

	acct_open_mem(&s);
	fill_key(k, 3);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_create_user(s, "bob", HASH_B, 1000), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, k, k, "phone", 1001), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "bob", dev1, k, k, "phone", 1002), -EPERM);
	/* Bob neither sees nor can revoke alice's device. */
	assert_int_equal(pn_acct_store_get_device(s, "bob", dev1, NULL, NULL), -ENOENT);
	assert_int_equal(pn_acct_store_revoke_device(s, "bob", dev1, 1003), -ENOENT);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, NULL, NULL), 0);
	pn_acct_store_free(s);
}

static void acct_device_revoked_stays_revoked(void **state)
{
	struct pn_acct_store *s;
	uint8_t k[32], got[32];

	acct_open_mem(&s);
	fill_key(k, 4);
	memset(got, 0x5a, sizeof(got));
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, k, k, "phone", 1001), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev2, k, k, "tablet", 1001), 0);
	assert_int_equal(pn_acct_store_revoke_device(s, "alice", dev1, 1002), 0);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, got, NULL), -EACCES);
	/* Keys are not handed out for a revoked device. */
	assert_int_equal(got[0], 0x5a);
	/* Registering again does not bring it back; revoking again is harmless. */
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, k, k, "phone", 1003),
			 -EACCES);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, NULL, NULL), -EACCES);
	assert_int_equal(pn_acct_store_revoke_device(s, "alice", dev1, 1004), 0);
	/* The other device is unaffected; an unknown one is -ENOENT. */
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev2, NULL, NULL), 0);
	assert_int_equal(pn_acct_store_revoke_device(s, "alice", (const uint8_t[16]){9}, 1005),
			 -ENOENT);
	pn_acct_store_free(s);
}

static void acct_reopen_keeps_data(void **state)
{
	struct pn_acct_store *s;
	struct tmpdir t;
	uint8_t k[32];
	char hash[256];
	uint64_t n;

	tmpdir_make(&t);
	fill_key(k, 8);
	assert_int_equal(pn_acct_store_open(&s, t.db), 0);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_upsert_device(s, "alice", dev1, k, k, "phone", 1001), 0);
	assert_int_equal(pn_acct_store_revoke_device(s, "alice", dev1, 1002), 0);
	pn_acct_store_free(s);

	assert_int_equal(pn_acct_store_open(&s, t.db), 0);
	assert_int_equal(pn_acct_store_count_users(s, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pn_acct_store_get_pwhash(s, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, HASH_A);
	assert_int_equal(pn_acct_store_get_device(s, "alice", dev1, NULL, NULL), -EACCES);
	pn_acct_store_free(s);
	tmpdir_remove(&t);
}

static void acct_file_mode_0600(void **state)
{
	struct pn_acct_store *s;
	struct tmpdir t;
	mode_t old = umask(0); /* the store must not rely on the umask */

	tmpdir_make(&t);
	assert_int_equal(pn_acct_store_open(&s, t.db), 0);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_mode_0600(t.db);
	pn_acct_store_free(s);
	umask(old);
	tmpdir_remove(&t);
}

static void acct_journal_mode_wal(void **state)
{
	struct pn_acct_store *s;
	struct tmpdir t;

	tmpdir_make(&t);
	assert_int_equal(pn_acct_store_open(&s, t.db), 0);
	assert_journal_mode_wal(t.db);
	pn_acct_store_free(s);
	tmpdir_remove(&t);
}

static void acct_open_failure_logs_path(void **state)
{
	struct pn_acct_store *s = NULL;
	struct log_capture c = {0};
	const char *path = "/nonexistent-pn-dir/accounts.db";

	pn_log_set_sink(capture_cb, &c);
	assert_int_equal(pn_acct_store_open(&s, path), -EIO);
	pn_log_set_sink(NULL, NULL);
	assert_null(s);
	assert_non_null(strstr(c.text, path));
}

/* ---- login account store: profiles ---- */

static void put_profile(struct pn_acct_store *s, const char *user, bool searchable,
			const char *name, const char *city, const char *country, const char *langs)
{
	struct pn_acct_profile p;

	memset(&p, 0, sizeof(p));
	p.searchable = searchable;
	snprintf(p.display_name, sizeof(p.display_name), "%s", name);
	snprintf(p.city, sizeof(p.city), "%s", city);
	snprintf(p.country, sizeof(p.country), "%s", country);
	snprintf(p.languages, sizeof(p.languages), "%s", langs);
	assert_int_equal(pn_acct_store_set_profile(s, user, &p, 2000), 0);
}

/* Collects the usernames a search returned, in order, joined by spaces. */
struct found {
	char names[256];
	unsigned n, stop_after;
};

static int found_cb(void *arg, const struct pn_acct_profile *p)
{
	struct found *f = arg;
	size_t l = strlen(f->names);

	assert_true(p->searchable);
	snprintf(f->names + l, sizeof(f->names) - l, "%s%s", l ? " " : "", p->username);
	f->n++;
	return f->stop_after && f->n >= f->stop_after ? 1 : 0;
}

/* Searches and returns who was found ("" for nobody); the call itself must succeed. */
static const char *search(struct pn_acct_store *s, const char *text, struct found *f)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(pn_acct_store_search_profiles(s, text, 50, found_cb, f), 0);
	return f->names;
}

/* alice (searchable), bob (hidden), carol (searchable), all with accounts. */
static void profiles_fixture(struct pn_acct_store **s)
{
	acct_open_mem(s);
	assert_int_equal(pn_acct_store_create_user(*s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_create_user(*s, "bob", HASH_B, 1000), 0);
	assert_int_equal(pn_acct_store_create_user(*s, "carol", HASH_B, 1000), 0);
	put_profile(*s, "alice", true, "Alice Smith", "Z\xc3\xbcrich", "CH", "de,en");
	put_profile(*s, "bob", false, "Bob Smith", "Bern", "CH", "de");
	put_profile(*s, "carol", true, "Carol Jones", "Lyon", "FR", "fr,en");
}

static void acct_profile_set_get(void **state)
{
	struct pn_acct_store *s;
	struct pn_acct_profile p;

	acct_open_mem(&s);
	assert_int_equal(pn_acct_store_create_user(s, "alice", HASH_A, 1000), 0);
	assert_int_equal(pn_acct_store_get_profile(s, "alice", &p), -ENOENT);
	put_profile(s, "alice", true, "Alice Smith", "Z\xc3\xbcrich", "CH", "de,en");
	assert_int_equal(pn_acct_store_get_profile(s, "alice", &p), 0);
	assert_string_equal(p.username, "alice");
	assert_string_equal(p.display_name, "Alice Smith");
	assert_string_equal(p.city, "Z\xc3\xbcrich");
	assert_string_equal(p.country, "CH");
	assert_string_equal(p.languages, "de,en");
	assert_true(p.searchable);
	/* Setting again replaces every field, empty ones included. */
	put_profile(s, "alice", false, "A. S.", "", "", "");
	assert_int_equal(pn_acct_store_get_profile(s, "alice", &p), 0);
	assert_string_equal(p.display_name, "A. S.");
	assert_string_equal(p.city, "");
	assert_false(p.searchable);
	/* No account, no profile. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(pn_acct_store_set_profile(s, "nobody", &p, 1), -ENOENT);
	assert_int_equal(pn_acct_store_get_profile(s, "nobody", &p), -ENOENT);
	pn_acct_store_free(s);
}

static void acct_profile_search_finds_searchable(void **state)
{
	struct pn_acct_store *s;
	struct found f;

	profiles_fixture(&s);
	assert_string_equal(search(s, "smith", &f), "alice");       /* bob is hidden */
	assert_string_equal(search(s, "john smith", &f), "");       /* every word must match */
	assert_string_equal(search(s, "alice smith", &f), "alice");
	assert_string_equal(search(s, "SMITH", &f), "alice");       /* case folded */
	assert_string_equal(search(s, "smi", &f), "alice");         /* words are prefixes */
	assert_string_equal(search(s, "zurich", &f), "alice");      /* diacritics removed */
	assert_string_equal(search(s, "z\xc3\xbcrich", &f), "alice");
	assert_string_equal(search(s, "Z\xc3\x9cRICH", &f), "alice");
	assert_string_equal(search(s, "ch", &f), "alice");          /* country; bob hidden */
	assert_string_equal(search(s, "fr", &f), "carol");          /* country and language */
	assert_string_equal(search(s, "en", &f), "alice carol");    /* a language, by username */
	assert_string_equal(search(s, "caro", &f), "carol");        /* username */
	assert_string_equal(search(s, "bern", &f), "");
	assert_string_equal(search(s, "bob", &f), "");
	pn_acct_store_free(s);
}

static void acct_profile_hidden_never_returned(void **state)
{
	struct pn_acct_store *s;
	struct found f;

	profiles_fixture(&s);
	/* alice hides her profile: gone from every search */
	put_profile(s, "alice", false, "Alice Smith", "Z\xc3\xbcrich", "CH", "de,en");
	assert_string_equal(search(s, "smith", &f), "");
	assert_string_equal(search(s, "alice", &f), "");
	/* bob publishes his: found */
	put_profile(s, "bob", true, "Bob Smith", "Bern", "CH", "de");
	assert_string_equal(search(s, "smith", &f), "bob");
	/* a searchable profile that changes leaves no trace of its old words */
	put_profile(s, "bob", true, "Robert Smith", "Basel", "CH", "de");
	assert_string_equal(search(s, "bern", &f), "");
	assert_string_equal(search(s, "basel robert", &f), "bob");
	/* and alice, searchable again, is back */
	put_profile(s, "alice", true, "Alice Smith", "Gen\xc3\xa8ve", "CH", "fr");
	assert_string_equal(search(s, "smith", &f), "alice bob");
	assert_string_equal(search(s, "geneve", &f), "alice");
	assert_string_equal(search(s, "zurich", &f), "");
	pn_acct_store_free(s);
}

/* FTS5 syntax in user text is just text: never an error, never a way around the rules. */
static void acct_profile_search_fts_syntax_safe(void **state)
{
	static const char *const queries[] = {
		"\"", "\"\"", "*", "AND", "OR", "NOT", "(", ")", "smith AND", "AND smith",
		"smith OR bob", "NOT smith", "(smith", "smith)", "NEAR(smith alice)", "\"smith",
		"smi*", "display_name:smith", "username:bob", "{city}: bern", "^smith", "-smith",
		"+", "'", "smith\"*", "   ", "\xe2\x80\x94", ":", "a:b:c", "\"\" \"\"",
	};
	struct pn_acct_store *s;
	struct found f;

	profiles_fixture(&s);
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		search(s, queries[i], &f);
		/* nothing can reveal bob's hidden profile */
		assert_null(strstr(f.names, "bob"));
	}
	/* Quoted words still find what they say: quotes, stars and brackets are dropped by
	 * the tokenizer inside the quoted word. */
	assert_string_equal(search(s, "\"smith\"", &f), "alice");
	assert_string_equal(search(s, "smith*", &f), "alice");
	assert_string_equal(search(s, "(smith)", &f), "alice");
	assert_string_equal(search(s, "smith AND", &f), "");  /* "and" is a word like any */
	assert_string_equal(search(s, "OR", &f), "");
	/* a column filter is no filter: "username:bob" is the words username and bob */
	assert_string_equal(search(s, "username:bob", &f), "");
	pn_acct_store_free(s);
}

static void acct_profile_search_limit_and_stop(void **state)
{
	struct pn_acct_store *s;
	struct found f;

	profiles_fixture(&s);
	memset(&f, 0, sizeof(f));
	assert_int_equal(pn_acct_store_search_profiles(s, "en", 1, found_cb, &f), 0);
	assert_int_equal(f.n, 1);
	memset(&f, 0, sizeof(f));
	f.stop_after = 1;
	assert_int_equal(pn_acct_store_search_profiles(s, "en", 50, found_cb, &f), 0);
	assert_int_equal(f.n, 1); /* the callback stopped the walk */
	/* words after the eighth are ignored rather than refused */
	assert_string_equal(search(s, "a b c d e f g h smith", &f), "");
	assert_string_equal(search(s, "smith smith smith smith smith smith smith smith xyz",
				   &f), "alice");
	pn_acct_store_free(s);
}

static void acct_profile_rejects_bad_input(void **state)
{
	struct pn_acct_store *s;
	struct pn_acct_profile p;
	struct found f;
	char q[300];

	profiles_fixture(&s);
	memset(&p, 0, sizeof(p));
	assert_int_equal(pn_acct_store_set_profile(NULL, "alice", &p, 1), -EINVAL);
	assert_int_equal(pn_acct_store_set_profile(s, NULL, &p, 1), -EINVAL);
	assert_int_equal(pn_acct_store_set_profile(s, "alice", NULL, 1), -EINVAL);
	assert_int_equal(pn_acct_store_set_profile(s, "alice", &p, UINT64_MAX), -EINVAL);
	memset(p.display_name, 'x', sizeof(p.display_name)); /* unterminated */
	assert_int_equal(pn_acct_store_set_profile(s, "alice", &p, 1), -EINVAL);
	assert_int_equal(pn_acct_store_get_profile(s, "alice", NULL), -EINVAL);
	memset(&f, 0, sizeof(f));
	assert_int_equal(pn_acct_store_search_profiles(s, NULL, 5, found_cb, &f), -EINVAL);
	assert_int_equal(pn_acct_store_search_profiles(s, "x", 0, found_cb, &f), -EINVAL);
	assert_int_equal(pn_acct_store_search_profiles(s, "x", 1001, found_cb, &f), -EINVAL);
	assert_int_equal(pn_acct_store_search_profiles(s, "x", 5, NULL, &f), -EINVAL);
	memset(q, 'a', sizeof(q) - 1);
	q[sizeof(q) - 1] = 0;
	assert_int_equal(pn_acct_store_search_profiles(s, q, 5, found_cb, &f), -EINVAL);
	/* the failed writes changed nothing */
	assert_string_equal(search(s, "smith", &f), "alice");
	pn_acct_store_free(s);
}

/* A version 1 file (before profiles) gains the profile tables when it is opened. */
static void acct_profile_v1_file_upgraded(void **state)
{
	struct tmpdir t;
	struct pn_acct_store *s = NULL;
	sqlite3 *db = NULL;
	struct found f;

	tmpdir_make(&t);
	assert_int_equal(sqlite3_open(t.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT"
				      " NULL UNIQUE, pwhash TEXT NOT NULL, created_at INTEGER NOT"
				      " NULL); INSERT INTO users VALUES (1, 'alice', 'h', 1);"
				      " PRAGMA user_version = 1;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(pn_acct_store_open(&s, t.db), 0);
	put_profile(s, "alice", true, "Alice Smith", "", "", "");
	assert_string_equal(search(s, "smith", &f), "alice");
	pn_acct_store_free(s);
	tmpdir_remove(&t);
}

/* ---- client store: key-value ---- */

static void kv_set_get(void **state)
{
	struct pn_cstore *s;
	uint8_t seed[32], got[64];
	size_t len = 0;

	cstore_open_mem(&s);
	fill_key(seed, 0x42);
	assert_int_equal(pn_cstore_kv_get(s, "device_seed", got, sizeof(got), &len), -ENOENT);
	assert_int_equal(pn_cstore_kv_set(s, "device_seed", seed, sizeof(seed)), 0);
	assert_int_equal(pn_cstore_kv_get(s, "device_seed", got, sizeof(got), &len), 0);
	assert_int_equal(len, sizeof(seed));
	assert_memory_equal(got, seed, sizeof(seed));
	/* An empty value is a value, not an absence. */
	assert_int_equal(pn_cstore_kv_set(s, "empty", "", 0), 0);
	assert_int_equal(pn_cstore_kv_get(s, "empty", got, sizeof(got), &len), 0);
	assert_int_equal(len, 0);
	pn_cstore_free(s);
}

static void kv_overwrite(void **state)
{
	struct pn_cstore *s;
	char got[32];
	size_t len;

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_kv_set(s, "username", "alice-long-name", 15), 0);
	assert_int_equal(pn_cstore_kv_set(s, "username", "bob", 3), 0);
	assert_int_equal(pn_cstore_kv_get(s, "username", got, sizeof(got), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "bob", 3);
	pn_cstore_free(s);
}

static void kv_del(void **state)
{
	struct pn_cstore *s;
	char got[8];

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_kv_set(s, "k", "v", 1), 0);
	assert_int_equal(pn_cstore_kv_del(s, "k"), 0);
	assert_int_equal(pn_cstore_kv_get(s, "k", got, sizeof(got), NULL), -ENOENT);
	assert_int_equal(pn_cstore_kv_del(s, "k"), -ENOENT);
	pn_cstore_free(s);
}

static void kv_small_buffer_enospc(void **state)
{
	struct pn_cstore *s;
	char got[4];
	size_t len = 0;

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_kv_set(s, "cert", "0123456789", 10), 0);
	assert_int_equal(pn_cstore_kv_get(s, "cert", got, sizeof(got), &len), -ENOSPC);
	assert_int_equal(len, 10); /* tells the caller how much to allocate */
	assert_int_equal(pn_cstore_kv_get(s, "cert", NULL, 0, &len), -ENOSPC);
	assert_int_equal(len, 10);
	pn_cstore_free(s);
}

static void kv_rejects_bad_input(void **state)
{
	struct pn_cstore *s;
	char longkey[PN_KV_KEY_MAX + 2];
	char got[4];

	cstore_open_mem(&s);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(pn_cstore_kv_set(s, longkey, "v", 1), -EINVAL);
	assert_int_equal(pn_cstore_kv_set(s, "", "v", 1), -EINVAL);
	assert_int_equal(pn_cstore_kv_set(s, NULL, "v", 1), -EINVAL);
	assert_int_equal(pn_cstore_kv_set(s, "k", NULL, 1), -EINVAL);
	assert_int_equal(pn_cstore_kv_set(s, "k", "v", (size_t)PN_KV_VALUE_MAX + 1), -EINVAL);
	assert_int_equal(pn_cstore_kv_get(s, "k", NULL, sizeof(got), NULL), -EINVAL);
	assert_int_equal(pn_cstore_kv_del(NULL, "k"), -EINVAL);
	pn_cstore_free(s);
}

/* ---- client store: contacts ---- */

struct contact_seen {
	unsigned n;
	unsigned stop_after;
	char names[8][PN_USERNAME_MAX + 1];
};

static int contact_seen_cb(void *arg, const struct pn_contact_row *r)
{
	struct contact_seen *c = arg;

	if (c->n < 8)
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s", r->username);
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 1 : 0;
}

static int contact_fail_cb(void *arg, const struct pn_contact_row *r)
{
	return -ECANCELED;
}

static void contact_add_has(void **state)
{
	struct pn_cstore *s;

	cstore_open_mem(&s);
	assert_false(pn_cstore_contact_has(s, "bob"));
	assert_int_equal(pn_cstore_contact_add(s, "bob", 100), 0);
	assert_true(pn_cstore_contact_has(s, "bob"));
	assert_false(pn_cstore_contact_has(s, "Bob"));
	pn_cstore_free(s);
}

static void contact_add_duplicate_eexist(void **state)
{
	struct pn_cstore *s;

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 100), 0);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 200), -EEXIST);
	pn_cstore_free(s);
}

static void contact_remove(void **state)
{
	struct pn_cstore *s;

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 100), 0);
	assert_int_equal(pn_cstore_contact_remove(s, "bob"), 0);
	assert_false(pn_cstore_contact_has(s, "bob"));
	assert_int_equal(pn_cstore_contact_remove(s, "bob"), -ENOENT);
	pn_cstore_free(s);
}

static void contact_list_order(void **state)
{
	struct pn_cstore *s;
	struct contact_seen c = {0};

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_contact_add(s, "carol", 1), 0);
	assert_int_equal(pn_cstore_contact_add(s, "alice", 2), 0);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 3), 0);
	assert_int_equal(pn_cstore_contact_list(s, contact_seen_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.names[0], "alice");
	assert_string_equal(c.names[1], "bob");
	assert_string_equal(c.names[2], "carol");
	pn_cstore_free(s);
}

static void contact_list_stops_early(void **state)
{
	struct pn_cstore *s;
	struct contact_seen c = {.stop_after = 2};

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_contact_add(s, "carol", 1), 0);
	assert_int_equal(pn_cstore_contact_add(s, "alice", 2), 0);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 3), 0);
	assert_int_equal(pn_cstore_contact_list(s, contact_seen_cb, &c), 0);
	assert_int_equal(c.n, 2);
	/* A negative cb result is passed back, and the statement is left reusable. */
	assert_int_equal(pn_cstore_contact_list(s, contact_fail_cb, NULL), -ECANCELED);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_contact_list(s, contact_seen_cb, &c), 0);
	assert_int_equal(c.n, 3);
	pn_cstore_free(s);
}

/* ---- client store: messages ---- */

static void msg_insert_get(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m, got;

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_QUEUED, 5000, "hello bob");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_get(s, m.id, &got), 0);
	assert_string_equal(got.id, m.id);
	assert_string_equal(got.peer, "bob");
	assert_int_equal(got.dir, PN_MSG_OUT);
	assert_int_equal(got.state, PN_MSG_QUEUED);
	assert_true(got.sent_at == 5000);
	assert_true(got.updated_at == 5000);
	assert_string_equal(got.text, "hello bob");
	assert_int_equal(pn_cstore_msg_get(s, "ffffffffffffffffffffffffffffffff", &got), -ENOENT);
	pn_cstore_free(s);
}

static void msg_insert_dedup_eexist(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m, got;

	cstore_open_mem(&s);
	make_msg(&m, 0xabc, "bob", PN_MSG_IN, PN_MSG_RECEIVED, 5000, "first copy");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	snprintf(m.text, sizeof(m.text), "second copy");
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EEXIST);
	/* An upper-case spelling of the same id is the same message. */
	for (char *p = m.id; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EEXIST);
	assert_int_equal(pn_cstore_msg_get(s, m.id, &got), 0);
	assert_string_equal(got.text, "first copy");
	pn_cstore_free(s);
}

/* Held messages (requests from strangers): deduplicated, counted per peer and overall,
 * listed oldest first as received rows, kept out of the history, dropped per peer. */
static void held_add_count_list_drop(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen seen = {0};
	unsigned n = 99;

	cstore_open_mem(&s);
	make_msg(&m, 1, "carol", PN_MSG_IN, PN_MSG_RECEIVED, 9000, "second by time, first in");
	assert_int_equal(pn_cstore_held_add(s, &m), 0);
	assert_int_equal(pn_cstore_held_add(s, &m), -EEXIST);
	make_msg(&m, 2, "carol", PN_MSG_IN, PN_MSG_RECEIVED, 1000, "second in");
	assert_int_equal(pn_cstore_held_add(s, &m), 0);
	make_msg(&m, 3, "dave", PN_MSG_IN, PN_MSG_RECEIVED, 1000, "from dave");
	assert_int_equal(pn_cstore_held_add(s, &m), 0);
	assert_int_equal(pn_cstore_held_count(s, "carol", &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(pn_cstore_held_count(s, NULL, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(pn_cstore_held_count(s, "erin", &n), 0);
	assert_int_equal(n, 0);
	/* not in the history */
	assert_int_equal(pn_cstore_msg_list(s, "carol", 10, msg_seen_cb, &seen), 0);
	assert_int_equal(seen.n, 0);
	/* arrival order, as incoming received rows */
	assert_int_equal(pn_cstore_held_list(s, "carol", msg_seen_cb, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.texts[0], "second by time, first in");
	assert_string_equal(seen.texts[1], "second in");
	assert_int_equal(pn_cstore_held_drop(s, "carol"), 0);
	assert_int_equal(pn_cstore_held_count(s, "carol", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pn_cstore_held_count(s, NULL, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pn_cstore_held_drop(s, "carol"), 0);
	/* bad input */
	m.peer[0] = 0;
	assert_int_equal(pn_cstore_held_add(s, &m), -EINVAL);
	assert_int_equal(pn_cstore_held_count(s, "", &n), -EINVAL);
	pn_cstore_free(s);
}

static void msg_rejects_bad_input(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_SENT, 1, "x");
	m.id[5] = 'g';
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_SENT, 1, "x");
	m.id[31] = '\0';
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	make_msg(&m, 1, "", PN_MSG_OUT, PN_MSG_SENT, 1, "x");
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	/* Text filling the whole array has no NUL: over the limit. */
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_SENT, 1, "x");
	memset(m.text, 'a', sizeof(m.text));
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	m.text[PN_MSG_TEXT_MAX] = '\0'; /* exactly the limit is fine */
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	/* A state of the other direction. */
	make_msg(&m, 2, "bob", PN_MSG_IN, PN_MSG_DELIVERED, 1, "x");
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	make_msg(&m, 3, "bob", PN_MSG_OUT, PN_MSG_RECEIVED, 1, "x");
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EINVAL);
	assert_int_equal(pn_cstore_msg_insert(s, NULL), -EINVAL);
	pn_cstore_free(s);
}

static void msg_state_advances(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m, got;

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "hi");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_SENT, 1100), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_DELIVERED, 1200), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_READ, 1300), 0);
	assert_int_equal(pn_cstore_msg_get(s, m.id, &got), 0);
	assert_int_equal(got.state, PN_MSG_READ);
	assert_true(got.updated_at == 1300);
	assert_true(got.sent_at == 1000);
	/* A late delivery receipt after we gave up wins over FAILED. */
	make_msg(&m, 2, "bob", PN_MSG_OUT, PN_MSG_SENT, 1000, "hi again");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_FAILED, 1100), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_DELIVERED, 1200), 0);
	/* Incoming: received -> read. */
	make_msg(&m, 3, "bob", PN_MSG_IN, PN_MSG_RECEIVED, 1000, "yo");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_READ, 1100), 0);
	pn_cstore_free(s);
}

static void msg_state_never_backwards(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m, got;

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "hi");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_READ, 1100), 0);
	/* Receipts arriving out of order do not undo READ. */
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_DELIVERED, 1200), -EALREADY);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_SENT, 1200), -EALREADY);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_FAILED, 1200), -EALREADY);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_READ, 1200), -EALREADY);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_RECEIVED, 1200), -EINVAL);
	assert_int_equal(pn_cstore_msg_get(s, m.id, &got), 0);
	assert_int_equal(got.state, PN_MSG_READ);
	assert_true(got.updated_at == 1100);
	/* Nothing fails once delivered. */
	make_msg(&m, 2, "bob", PN_MSG_OUT, PN_MSG_DELIVERED, 1000, "x");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_FAILED, 1100), -EALREADY);
	/* Incoming read stays read. */
	make_msg(&m, 3, "bob", PN_MSG_IN, PN_MSG_READ, 1000, "y");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_RECEIVED, 1100), -EALREADY);
	pn_cstore_free(s);
}

static void msg_state_unknown_enoent(void **state)
{
	struct pn_cstore *s;

	cstore_open_mem(&s);
	assert_int_equal(pn_cstore_msg_set_state(s, "0123456789abcdef0123456789abcdef",
						 PN_MSG_SENT, 1), -ENOENT);
	assert_int_equal(pn_cstore_msg_set_state(s, "xyz", PN_MSG_SENT, 1), -EINVAL);
	assert_int_equal(pn_cstore_msg_set_state(s, "0123456789abcdef0123456789abcdef",
						 (enum pn_msg_state)9, 1), -EINVAL);
	pn_cstore_free(s);
}

static void msg_list_last_n_oldest_first(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};
	char text[16];

	cstore_open_mem(&s);
	/* Inserted out of order: the list follows sent_at, not arrival. */
	static const unsigned order[] = {3, 1, 5, 2, 4};
	for (unsigned i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "m%u", order[i]);
		make_msg(&m, order[i], "bob", PN_MSG_IN, PN_MSG_RECEIVED, 1000 + order[i], text);
		assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	}
	make_msg(&m, 100, "carol", PN_MSG_IN, PN_MSG_RECEIVED, 9999, "other chat");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);

	assert_int_equal(pn_cstore_msg_list(s, "bob", 3, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.texts[0], "m3");
	assert_string_equal(c.texts[1], "m4");
	assert_string_equal(c.texts[2], "m5");

	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_list(s, "bob", 100, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.texts[0], "m1");
	assert_string_equal(c.texts[4], "m5");

	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_list(s, "dave", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 0);
	pn_cstore_free(s);
}

static void msg_pending_list(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_SENT, 3000, "sent");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 2, "carol", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "queued");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 3, "bob", PN_MSG_OUT, PN_MSG_DELIVERED, 500, "delivered");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 4, "bob", PN_MSG_OUT, PN_MSG_FAILED, 600, "failed");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 5, "bob", PN_MSG_IN, PN_MSG_RECEIVED, 700, "incoming");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 6, "dave", PN_MSG_OUT, PN_MSG_QUEUED, 2000, "queued2");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);

	assert_int_equal(pn_cstore_msg_pending(s, 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.texts[0], "queued");
	assert_string_equal(c.texts[1], "queued2");
	assert_string_equal(c.texts[2], "sent");

	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_pending(s, 2, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 2);

	/* Delivered messages leave the list. */
	make_msg(&m, 2, "carol", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "queued");
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_DELIVERED, 4000), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_pending(s, 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.texts[0], "queued2");
	pn_cstore_free(s);
}

static void msg_search_finds_words(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_IN, PN_MSG_RECEIVED, 1000, "Lunch at the café tomorrow?");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 2, "bob", PN_MSG_OUT, PN_MSG_SENT, 2000, "Sure, lunch sounds good");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_msg(&m, 3, "carol", PN_MSG_IN, PN_MSG_RECEIVED, 3000, "The report is ready");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);

	/* Case-insensitive, newest first. */
	assert_int_equal(pn_cstore_msg_search(s, "LUNCH", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.texts[0], "Sure, lunch sounds good");
	/* Diacritics are folded. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "cafe", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "00000000000000000000000000000001");
	/* Phrases and boolean operators; no match is 0 rows, not an error. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "\"report is ready\"", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "lunch NOT sure", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "dinner", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 0);
	/* limit applies. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "lunch", 1, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	pn_cstore_free(s);
}

static void msg_search_state_change_keeps_index(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "pineapple pizza");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_SENT, 1100), 0);
	assert_int_equal(pn_cstore_msg_search(s, "pineapple", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.texts[0], "pineapple pizza");
	pn_cstore_free(s);
}

static void msg_search_malformed_einval(void **state)
{
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};
	char longq[PN_SEARCH_QUERY_MAX + 2];

	cstore_open_mem(&s);
	make_msg(&m, 1, "bob", PN_MSG_IN, PN_MSG_RECEIVED, 1000, "hello world");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	assert_int_equal(pn_cstore_msg_search(s, "\"unbalanced", 10, msg_seen_cb, &c), -EINVAL);
	assert_int_equal(pn_cstore_msg_search(s, "hello AND", 10, msg_seen_cb, &c), -EINVAL);
	assert_int_equal(pn_cstore_msg_search(s, "(hello", 10, msg_seen_cb, &c), -EINVAL);
	assert_int_equal(pn_cstore_msg_search(s, "nosuchcolumn: hello", 10, msg_seen_cb, &c),
			 -EINVAL);
	assert_int_equal(pn_cstore_msg_search(s, "", 10, msg_seen_cb, &c), -EINVAL);
	memset(longq, 'a', sizeof(longq) - 1);
	longq[sizeof(longq) - 1] = '\0';
	assert_int_equal(pn_cstore_msg_search(s, longq, 10, msg_seen_cb, &c), -EINVAL);
	assert_int_equal(c.n, 0);
	/* The statement is usable again after a rejected query. */
	assert_int_equal(pn_cstore_msg_search(s, "hello", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	pn_cstore_free(s);
}

static void msg_state_names(void **state)
{
	assert_string_equal(pn_msg_state_name(PN_MSG_QUEUED), "queued");
	assert_string_equal(pn_msg_state_name(PN_MSG_DELIVERED), "delivered");
	assert_string_equal(pn_msg_state_name(PN_MSG_RECEIVED), "received");
	assert_string_equal(pn_msg_state_name((enum pn_msg_state)42), "unknown");
}

/* ---- client store: host cache ---- */

struct host_seen {
	unsigned n;
	bool has_addr0;
	bool has_new;
	uint64_t min_seen;
	uint8_t first_key0;
	uint32_t first_rtt;
};

static int host_seen_cb(void *arg, const struct pn_host_row *h)
{
	struct host_seen *c = arg;

	if (c->n == 0) {
		c->min_seen = h->last_seen;
		c->first_key0 = h->key[0];
		c->first_rtt = h->rtt_ms;
	}
	if (h->last_seen < c->min_seen)
		c->min_seen = h->last_seen;
	if (strcmp(h->addr, "198.18.0.0:7700") == 0)
		c->has_addr0 = true;
	if (strcmp(h->addr, "198.18.9.9:7700") == 0)
		c->has_new = true;
	c->n++;
	return 0;
}

static void make_host(struct pn_host_row *h, unsigned i, uint64_t last_seen)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->addr, sizeof(h->addr), "198.18.%u.%u:7700", i / 256, i % 256);
	fill_key(h->key, (uint8_t)i);
	h->last_seen = last_seen;
	h->rtt_ms = 10 + i;
}

static void host_cache_cap_evicts_oldest(void **state)
{
	struct pn_cstore *s;
	struct pn_host_row h;
	struct host_seen c = {0};

	cstore_open_mem(&s);
	/* Host i was last seen at 1000 + i: host 0 is the oldest. */
	for (unsigned i = 0; i < PN_HOST_CACHE_MAX; i++) {
		make_host(&h, i, 1000 + i);
		assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	}
	assert_int_equal(pn_cstore_host_list(s, host_seen_cb, &c), 0);
	assert_int_equal(c.n, PN_HOST_CACHE_MAX);
	assert_true(c.has_addr0);

	make_host(&h, 9 * 256 + 9, 5000);
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_host_list(s, host_seen_cb, &c), 0);
	assert_int_equal(c.n, PN_HOST_CACHE_MAX);
	assert_false(c.has_addr0);
	assert_true(c.has_new);
	assert_true(c.min_seen == 1001);
	/* Most recently seen first. */
	assert_int_equal(c.first_key0, (uint8_t)(9 * 256 + 9));

	/* A host older than everything cached is evicted at once. */
	make_host(&h, 0, 1);
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_host_list(s, host_seen_cb, &c), 0);
	assert_int_equal(c.n, PN_HOST_CACHE_MAX);
	assert_false(c.has_addr0);
	pn_cstore_free(s);
}

static void host_upsert_updates(void **state)
{
	struct pn_cstore *s;
	struct pn_host_row h;
	struct host_seen c = {0};

	cstore_open_mem(&s);
	make_host(&h, 1, 100);
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	h.last_seen = 200;
	h.rtt_ms = 77;
	fill_key(h.key, 0xee);
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	/* Older news is ignored. */
	h.last_seen = 150;
	h.rtt_ms = 999;
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	assert_int_equal(pn_cstore_host_list(s, host_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_true(c.min_seen == 200);
	assert_int_equal(c.first_rtt, 77);
	assert_int_equal(c.first_key0, 0xee);
	/* An address without a NUL inside the array is rejected. */
	memset(h.addr, '1', sizeof(h.addr));
	assert_int_equal(pn_cstore_host_upsert(s, &h), -EINVAL);
	pn_cstore_free(s);
}

/* ---- client store: files ---- */

static void cstore_reopen_keeps_data(void **state)
{
	struct pn_cstore *s;
	struct tmpdir t;
	struct pn_msg_row m;
	struct pn_host_row h;
	struct msg_seen c = {0};
	struct host_seen hc = {0};
	char got[16];
	size_t len;

	tmpdir_make(&t);
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_int_equal(pn_cstore_kv_set(s, "username", "alice", 5), 0);
	assert_int_equal(pn_cstore_contact_add(s, "bob", 100), 0);
	make_msg(&m, 1, "bob", PN_MSG_OUT, PN_MSG_QUEUED, 1000, "persistent words");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	make_host(&h, 1, 100);
	assert_int_equal(pn_cstore_host_upsert(s, &h), 0);
	pn_cstore_free(s);

	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_int_equal(pn_cstore_kv_get(s, "username", got, sizeof(got), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(got, "alice", 5);
	assert_true(pn_cstore_contact_has(s, "bob"));
	assert_int_equal(pn_cstore_msg_insert(s, &m), -EEXIST);
	assert_int_equal(pn_cstore_msg_search(s, "persistent", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(pn_cstore_host_list(s, host_seen_cb, &hc), 0);
	assert_int_equal(hc.n, 1);
	pn_cstore_free(s);
	tmpdir_remove(&t);
}

static void cstore_file_mode_0600(void **state)
{
	struct pn_cstore *s;
	struct tmpdir t;
	char wal[160];
	mode_t old = umask(0); /* the store must not rely on the umask */

	tmpdir_make(&t);
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_int_equal(pn_cstore_kv_set(s, "device_seed", "0123456789abcdef", 16), 0);
	assert_mode_0600(t.db);
	/* SQLite gives the WAL the database's mode; it holds the same secrets. */
	snprintf(wal, sizeof(wal), "%s-wal", t.db);
	assert_mode_0600(wal);
	pn_cstore_free(s);
	umask(old);
	tmpdir_remove(&t);
}

static void cstore_existing_file_tightened(void **state)
{
	struct pn_cstore *s;
	struct tmpdir t;
	FILE *f;

	tmpdir_make(&t);
	f = fopen(t.db, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(t.db, 0644), 0);
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_mode_0600(t.db);
	pn_cstore_free(s);
	tmpdir_remove(&t);
}

static void cstore_journal_mode_wal(void **state)
{
	struct pn_cstore *s;
	struct tmpdir t;

	tmpdir_make(&t);
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_journal_mode_wal(t.db);
	pn_cstore_free(s);
	tmpdir_remove(&t);
}

static void cstore_open_failure_logs_path(void **state)
{
	struct pn_cstore *s = NULL;
	struct log_capture c = {0};
	const char *path = "/nonexistent-pn-dir/parley.db";

	pn_log_set_sink(capture_cb, &c);
	assert_int_equal(pn_cstore_open(&s, path), -EIO);
	pn_log_set_sink(NULL, NULL);
	assert_null(s);
	assert_non_null(strstr(c.text, path));
	assert_int_equal(pn_cstore_open(&s, NULL), -EINVAL);
	assert_int_equal(pn_cstore_open(&s, ""), -EINVAL);
}

/* A file that is not a database makes open fail with the path in the log. */
static void cstore_open_garbage_eio(void **state)
{
	struct pn_cstore *s = NULL;
	struct log_capture c = {0};
	struct tmpdir t;
	FILE *f;

	tmpdir_make(&t);
	f = fopen(t.db, "w");
	assert_non_null(f);
	for (int i = 0; i < 512; i++)
		fputs("not a database ", f);
	fclose(f);
	pn_log_set_sink(capture_cb, &c);
	assert_int_equal(pn_cstore_open(&s, t.db), -EIO);
	pn_log_set_sink(NULL, NULL);
	assert_null(s);
	assert_non_null(strstr(c.text, t.db));
	tmpdir_remove(&t);
}

/* A database made before the mailbox states (messages.state CHECK 0..5) is migrated on
 * open: its rows, ids and full-text index stay, and "stored"/"expired" can be set. */
static void msg_states_migrated_from_old_files(void **state)
{
	struct tmpdir t;
	struct pn_cstore *s;
	struct pn_msg_row m;
	struct msg_seen c = {0};
	sqlite3 *db;

	(void)state;
	tmpdir_make(&t);
	assert_int_equal(sqlite3_open(t.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE messages (seq INTEGER PRIMARY KEY,"
		" id TEXT NOT NULL UNIQUE CHECK (length(id) = 32), peer TEXT NOT NULL,"
		" dir INTEGER NOT NULL CHECK (dir IN (0, 1)),"
		" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
		" sent_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, text TEXT NOT NULL);"
		"CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages',"
		" content_rowid = 'seq', tokenize = 'unicode61 remove_diacritics 2');"
		"INSERT INTO messages VALUES (7, '0000000000000000000000000000000a', 'bob', 1, 1,"
		" 1000, 1000, 'written before mailboxes');"
		"INSERT INTO messages_fts (rowid, text) VALUES (7, 'written before mailboxes');"
		"PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_int_equal(pn_cstore_msg_get(s, "0000000000000000000000000000000a", &m), 0);
	assert_string_equal(m.text, "written before mailboxes");
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_STORED, 2000), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_SENT, 2001), -EALREADY);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_EXPIRED, 3000), 0);
	assert_int_equal(pn_cstore_msg_set_state(s, m.id, PN_MSG_DELIVERED, 4000), 0);
	assert_int_equal(pn_cstore_msg_search(s, "mailboxes", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	/* new rows go on after the old seq, and reach the index through the new triggers */
	make_msg(&m, 2, "bob", PN_MSG_OUT, PN_MSG_SENT, 5000, "after the migration");
	assert_int_equal(pn_cstore_msg_insert(s, &m), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pn_cstore_msg_search(s, "migration", 10, msg_seen_cb, &c), 0);
	assert_int_equal(c.n, 1);
	pn_cstore_free(s);
	/* opening again does not migrate again */
	assert_int_equal(pn_cstore_open(&s, t.db), 0);
	assert_int_equal(pn_cstore_msg_get(s, "0000000000000000000000000000000a", &m), 0);
	assert_int_equal(m.state, PN_MSG_DELIVERED);
	pn_cstore_free(s);
	tmpdir_remove(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(acct_create_and_get_user),
		cmocka_unit_test(msg_states_migrated_from_old_files),
		cmocka_unit_test(acct_duplicate_user_eexist),
		cmocka_unit_test(acct_unknown_user_enoent),
		cmocka_unit_test(acct_pwhash_small_buffer_enospc),
		cmocka_unit_test(acct_rejects_bad_input),
		cmocka_unit_test(acct_device_upsert_get),
		cmocka_unit_test(acct_device_new_keys_eperm),
		cmocka_unit_test(acct_device_of_other_user_eperm),
		cmocka_unit_test(acct_device_revoked_stays_revoked),
		cmocka_unit_test(acct_reopen_keeps_data),
		cmocka_unit_test(acct_file_mode_0600),
		cmocka_unit_test(acct_journal_mode_wal),
		cmocka_unit_test(acct_open_failure_logs_path),
		cmocka_unit_test(acct_profile_set_get),
		cmocka_unit_test(acct_profile_search_finds_searchable),
		cmocka_unit_test(acct_profile_hidden_never_returned),
		cmocka_unit_test(acct_profile_search_fts_syntax_safe),
		cmocka_unit_test(acct_profile_search_limit_and_stop),
		cmocka_unit_test(acct_profile_rejects_bad_input),
		cmocka_unit_test(acct_profile_v1_file_upgraded),
		cmocka_unit_test(kv_set_get),
		cmocka_unit_test(kv_overwrite),
		cmocka_unit_test(kv_del),
		cmocka_unit_test(kv_small_buffer_enospc),
		cmocka_unit_test(kv_rejects_bad_input),
		cmocka_unit_test(contact_add_has),
		cmocka_unit_test(contact_add_duplicate_eexist),
		cmocka_unit_test(contact_remove),
		cmocka_unit_test(contact_list_order),
		cmocka_unit_test(contact_list_stops_early),
		cmocka_unit_test(msg_insert_get),
		cmocka_unit_test(msg_insert_dedup_eexist),
		cmocka_unit_test(msg_rejects_bad_input),
		cmocka_unit_test(msg_state_advances),
		cmocka_unit_test(msg_state_never_backwards),
		cmocka_unit_test(msg_state_unknown_enoent),
		cmocka_unit_test(msg_list_last_n_oldest_first),
		cmocka_unit_test(msg_pending_list),
		cmocka_unit_test(msg_search_finds_words),
		cmocka_unit_test(msg_search_state_change_keeps_index),
		cmocka_unit_test(msg_search_malformed_einval),
		cmocka_unit_test(held_add_count_list_drop),
		cmocka_unit_test(msg_state_names),
		cmocka_unit_test(host_cache_cap_evicts_oldest),
		cmocka_unit_test(host_upsert_updates),
		cmocka_unit_test(cstore_reopen_keeps_data),
		cmocka_unit_test(cstore_file_mode_0600),
		cmocka_unit_test(cstore_existing_file_tightened),
		cmocka_unit_test(cstore_journal_mode_wal),
		cmocka_unit_test(cstore_open_failure_logs_path),
		cmocka_unit_test(cstore_open_garbage_eio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
