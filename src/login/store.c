/* The login server's account store on SQLite. See store.h for the contract.
 *
 * One connection per store, all statements prepared at open and reset after every use, so
 * a call never leaves a statement holding a read transaction open (which would stall WAL
 * checkpoints). Text and blobs are bound with SQLITE_STATIC: the caller's buffers outlive
 * the statement because every function resets and clears bindings before it returns, and
 * SQLite then never makes its own copy of a password hash. */
#include "login/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "base/db.h"
#include "base/log.h"

enum acct_limits {
	ACCT_SCHEMA_VERSION = 2, /* 2: profiles (created on open of a version 1 file) */
	ACCT_USERNAME_MAX = 32,
	ACCT_PWHASH_MAX = crypto_pwhash_STRBYTES - 1, /* the string, without its NUL */
	ACCT_DEVICE_NAME_MAX = 64,
	ACCT_DEVICE_ID_LEN = 16,
	ACCT_KEY_LEN = 32,
};

/* Devices belong to users by rowid so that a username never needs to be repeated; a
 * device id is globally unique because certificates name it without the user. revoked_at
 * is NULL while the device may log in. */
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS users ("
	" id INTEGER PRIMARY KEY,"
	" username TEXT NOT NULL UNIQUE,"
	" pwhash TEXT NOT NULL,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS devices ("
	" device_id BLOB PRIMARY KEY CHECK (length(device_id) = 16),"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" sign_pk BLOB NOT NULL CHECK (length(sign_pk) = 32),"
	" dh_pk BLOB NOT NULL CHECK (length(dh_pk) = 32),"
	" name TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL,"
	" revoked_at INTEGER) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS devices_by_user ON devices(user_id);"
	/* Profiles: username is repeated here so that the index triggers never need the
	 * users row (a cascade may already have removed it). profiles_fts is an
	 * external-content FTS5 index over profiles that holds only the searchable rows:
	 * the triggers add a row when it is (or becomes) searchable and remove it with its
	 * old values when it stops being so, changes or goes. The update trigger does both
	 * in one body so the delete always runs before the insert. */
	"CREATE TABLE IF NOT EXISTS profiles ("
	" user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
	" username TEXT NOT NULL,"
	" searchable INTEGER NOT NULL CHECK (searchable IN (0, 1)),"
	" display_name TEXT NOT NULL,"
	" city TEXT NOT NULL,"
	" country TEXT NOT NULL,"
	" languages TEXT NOT NULL,"
	" updated_at INTEGER NOT NULL);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS profiles_fts USING fts5("
	" username, display_name, city, country, languages,"
	" content = 'profiles', content_rowid = 'user_id',"
	" tokenize = 'unicode61 remove_diacritics 2');"
	"CREATE TRIGGER IF NOT EXISTS profiles_fts_ins AFTER INSERT ON profiles"
	" WHEN new.searchable BEGIN"
	" INSERT INTO profiles_fts (rowid, username, display_name, city, country, languages)"
	"  VALUES (new.user_id, new.username, new.display_name, new.city, new.country,"
	"  new.languages);"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS profiles_fts_del AFTER DELETE ON profiles"
	" WHEN old.searchable BEGIN"
	" INSERT INTO profiles_fts (profiles_fts, rowid, username, display_name, city, country,"
	"  languages) VALUES ('delete', old.user_id, old.username, old.display_name, old.city,"
	"  old.country, old.languages);"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS profiles_fts_upd AFTER UPDATE ON profiles BEGIN"
	" INSERT INTO profiles_fts (profiles_fts, rowid, username, display_name, city, country,"
	"  languages) SELECT 'delete', old.user_id, old.username, old.display_name, old.city,"
	"  old.country, old.languages WHERE old.searchable;"
	" INSERT INTO profiles_fts (rowid, username, display_name, city, country, languages)"
	"  SELECT new.user_id, new.username, new.display_name, new.city, new.country,"
	"  new.languages WHERE new.searchable;"
	" END;";

enum acct_stmt {
	ST_CREATE_USER,
	ST_GET_PWHASH,
	ST_GET_USER_ID,
	ST_UPSERT_DEVICE,
	ST_GET_DEVICE_ANY,
	ST_GET_DEVICE,
	ST_REVOKE_DEVICE,
	ST_LIST_DEVICES,
	ST_COUNT_USERS,
	ST_SET_PROFILE,
	ST_GET_PROFILE,
	ST_SEARCH_PROFILES,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_CREATE_USER] = "INSERT INTO users (username, pwhash, created_at) VALUES (?1, ?2, ?3)"
			   " ON CONFLICT (username) DO NOTHING",
	[ST_GET_PWHASH] = "SELECT pwhash FROM users WHERE username = ?1",
	[ST_GET_USER_ID] = "SELECT id FROM users WHERE username = ?1",
	/* Refreshes only a live device of the same user with the same keys; anything else
	 * leaves the row alone and the caller finds out why with ST_GET_DEVICE_ANY. Doing the
	 * check inside the statement keeps it atomic against another writer. */
	[ST_UPSERT_DEVICE] =
		"INSERT INTO devices (device_id, user_id, sign_pk, dh_pk, name, created_at,"
		" last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
		" ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,"
		" name = excluded.name"
		" WHERE devices.user_id = excluded.user_id AND devices.revoked_at IS NULL"
		" AND devices.sign_pk = excluded.sign_pk AND devices.dh_pk = excluded.dh_pk",
	[ST_GET_DEVICE_ANY] = "SELECT user_id, revoked_at IS NOT NULL, sign_pk, dh_pk"
			      " FROM devices WHERE device_id = ?1",
	[ST_GET_DEVICE] = "SELECT d.revoked_at IS NOT NULL, d.sign_pk, d.dh_pk"
			  " FROM devices d JOIN users u ON u.id = d.user_id"
			  " WHERE d.device_id = ?1 AND u.username = ?2",
	/* The first revocation time is kept: revoking twice is not a new event. */
	[ST_REVOKE_DEVICE] = "UPDATE devices SET revoked_at = ?3 WHERE device_id = ?1"
			     " AND revoked_at IS NULL"
			     " AND user_id = (SELECT id FROM users WHERE username = ?2)",
	[ST_LIST_DEVICES] = "SELECT d.device_id, d.name, d.created_at, d.last_seen,"
			    " coalesce(d.revoked_at, 0) FROM devices d JOIN users u ON u.id = d.user_id"
			    " WHERE u.username = ?1 ORDER BY d.created_at, d.device_id",
	[ST_COUNT_USERS] = "SELECT count(*) FROM users",
	/* No row inserted or updated means no such user. */
	[ST_SET_PROFILE] =
		"INSERT INTO profiles (user_id, username, searchable, display_name, city, country,"
		" languages, updated_at) SELECT id, username, ?2, ?3, ?4, ?5, ?6, ?7 FROM users"
		" WHERE username = ?1"
		" ON CONFLICT (user_id) DO UPDATE SET searchable = excluded.searchable,"
		" display_name = excluded.display_name, city = excluded.city,"
		" country = excluded.country, languages = excluded.languages,"
		" updated_at = excluded.updated_at",
	[ST_GET_PROFILE] = "SELECT p.username, p.searchable, p.display_name, p.city, p.country,"
			   " p.languages FROM profiles p JOIN users u ON u.id = p.user_id"
			   " WHERE u.username = ?1",
	/* The index holds only searchable rows; the searchable test is a second guard
	 * should the index ever be rebuilt from the whole table. */
	[ST_SEARCH_PROFILES] =
		"SELECT p.username, p.searchable, p.display_name, p.city, p.country, p.languages"
		" FROM profiles_fts f JOIN profiles p ON p.user_id = f.rowid"
		" WHERE profiles_fts MATCH ?1 AND p.searchable = 1"
		" ORDER BY f.rank, p.username LIMIT ?2",
};

static const struct pn_db_spec acct_db = {
	.label = "account store",
	.schema_version = ACCT_SCHEMA_VERSION,
	.schema_sql = schema_sql,
	.pragma_sql = "PRAGMA foreign_keys = ON",
	.pragma_what = "enabling foreign keys",
	.stmt_sql = stmt_sql,
	.stmt_count = ST_COUNT,
};

struct pn_acct_store {
	struct pn_db db;
};

int pn_acct_store_open(struct pn_acct_store **out, const char *path)
{
	struct pn_acct_store *s;
	int err;

	if (!out || !path || !path[0])
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = pn_db_open(&s->db, path, &acct_db);
	if (err) {
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

void pn_acct_store_free(struct pn_acct_store *s)
{
	if (!s)
		return;
	pn_db_close(&s->db);
	free(s);
}

int pn_acct_store_create_user(struct pn_acct_store *s, const char *username,
			      const char *pwhash, uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen, hlen;
	int err;

	if (!s)
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	hlen = pn_db_text_len(pwhash, ACCT_PWHASH_MAX);
	if (!ulen || !hlen || !pn_db_u64_ok(now_s))
		return -EINVAL;
	st = s->db.st[ST_CREATE_USER];
	if (pn_db_bind_text(st, 1, username, ulen) || pn_db_bind_text(st, 2, pwhash, hlen) ||
	    pn_db_bind_u64(st, 3, now_s))
		err = pn_db_fail(&s->db, "binding new user");
	else
		err = pn_db_step_write(&s->db, st, "inserting user", -EEXIST);
	pn_db_done(st);
	return err;
}

int pn_acct_store_get_pwhash(struct pn_acct_store *s, const char *username, char *out,
			     size_t cap)
{
	sqlite3_stmt *st;
	const char *text;
	size_t ulen, n;
	int err;

	if (!s || !out)
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_GET_PWHASH];
	if (pn_db_bind_text(st, 1, username, ulen)) {
		err = pn_db_fail(&s->db, "binding username");
		goto out;
	}
	err = pn_db_step_row(&s->db, st, "reading password hash");
	if (err)
		goto out;
	text = (const char *)sqlite3_column_text(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	if (!text) {
		err = pn_db_fail(&s->db, "reading password hash");
		goto out;
	}
	if (n + 1 > cap) {
		err = -ENOSPC;
		goto out;
	}
	memcpy(out, text, n);
	out[n] = '\0';
out:
	pn_db_done(st);
	return err;
}

/* Finds the rowid of username: 0, -ENOENT, -EIO. */
static int user_id(struct pn_acct_store *s, const char *username, size_t ulen, int64_t *id)
{
	sqlite3_stmt *st = s->db.st[ST_GET_USER_ID];
	int err;

	if (pn_db_bind_text(st, 1, username, ulen))
		err = pn_db_fail(&s->db, "binding username");
	else
		err = pn_db_step_row(&s->db, st, "looking up user");
	if (!err)
		*id = sqlite3_column_int64(st, 0);
	pn_db_done(st);
	return err;
}

/* After an upsert changed nothing: says why the existing row was left alone. */
static int explain_device_conflict(struct pn_acct_store *s, const uint8_t device_id[16],
				   int64_t uid, const uint8_t sign_pk[32], const uint8_t dh_pk[32])
{
	sqlite3_stmt *st = s->db.st[ST_GET_DEVICE_ANY];
	int err;

	if (pn_db_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN)) {
		err = pn_db_fail(&s->db, "binding device id");
		goto out;
	}
	err = pn_db_step_row(&s->db, st, "reading device");
	if (err == -ENOENT) {
		/* Deleted between the two statements by another writer; retrying is the fix. */
		pn_warn("account store %s: device vanished during upsert", s->db.path);
		err = -EIO;
	}
	if (err)
		goto out;
	if (sqlite3_column_int64(st, 0) != uid) {
		err = -EPERM;
		goto out;
	}
	if (sqlite3_column_int(st, 1)) {
		err = -EACCES;
		goto out;
	}
	/* Same user, live device, so the keys differ: a device's keys are what its
	 * certificates vouch for and are never replaced under the same id. */
	if (sqlite3_column_bytes(st, 2) != ACCT_KEY_LEN ||
	    sqlite3_column_bytes(st, 3) != ACCT_KEY_LEN ||
	    memcmp(sqlite3_column_blob(st, 2), sign_pk, ACCT_KEY_LEN) != 0 ||
	    memcmp(sqlite3_column_blob(st, 3), dh_pk, ACCT_KEY_LEN) != 0) {
		err = -EPERM;
		goto out;
	}
	pn_warn("account store %s: device upsert changed no row for no known reason",
		s->db.path);
	err = -EIO;
out:
	pn_db_done(st);
	return err;
}

int pn_acct_store_upsert_device(struct pn_acct_store *s, const char *username,
				const uint8_t device_id[16], const uint8_t sign_pk[32],
				const uint8_t dh_pk[32], const char *device_name, uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen, nlen;
	bool changed = false;
	int64_t uid;
	int err;

	if (!s || !device_id || !sign_pk || !dh_pk || !device_name || !pn_db_u64_ok(now_s))
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	nlen = strnlen(device_name, ACCT_DEVICE_NAME_MAX + 1);
	if (nlen > ACCT_DEVICE_NAME_MAX)
		return -EINVAL;
	err = user_id(s, username, ulen, &uid);
	if (err)
		return err;
	st = s->db.st[ST_UPSERT_DEVICE];
	if (pn_db_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN) ||
	    sqlite3_bind_int64(st, 2, uid) || pn_db_bind_blob(st, 3, sign_pk, ACCT_KEY_LEN) ||
	    pn_db_bind_blob(st, 4, dh_pk, ACCT_KEY_LEN) ||
	    pn_db_bind_text(st, 5, device_name, nlen) || pn_db_bind_u64(st, 6, now_s)) {
		err = pn_db_fail(&s->db, "binding device");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		/* The user was deleted between the lookup and the insert. */
		if (sqlite3_extended_errcode(s->db.conn) == SQLITE_CONSTRAINT_FOREIGNKEY)
			err = -ENOENT;
		else
			err = pn_db_fail(&s->db, "upserting device");
		goto out;
	}
	changed = sqlite3_changes(s->db.conn) != 0;
out:
	pn_db_done(st);
	if (!err && !changed)
		err = explain_device_conflict(s, device_id, uid, sign_pk, dh_pk);
	return err;
}

int pn_acct_store_get_device(struct pn_acct_store *s, const char *username,
			     const uint8_t device_id[16], uint8_t sign_pk[32], uint8_t dh_pk[32])
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !device_id)
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_GET_DEVICE];
	if (pn_db_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN) ||
	    pn_db_bind_text(st, 2, username, ulen)) {
		err = pn_db_fail(&s->db, "binding device lookup");
		goto out;
	}
	err = pn_db_step_row(&s->db, st, "reading device");
	if (err)
		goto out;
	if (sqlite3_column_int(st, 0)) {
		err = -EACCES;
		goto out;
	}
	if (sqlite3_column_bytes(st, 1) != ACCT_KEY_LEN ||
	    sqlite3_column_bytes(st, 2) != ACCT_KEY_LEN) {
		pn_err("account store %s: device row has keys of the wrong size", s->db.path);
		err = -EIO;
		goto out;
	}
	if (sign_pk)
		memcpy(sign_pk, sqlite3_column_blob(st, 1), ACCT_KEY_LEN);
	if (dh_pk)
		memcpy(dh_pk, sqlite3_column_blob(st, 2), ACCT_KEY_LEN);
out:
	pn_db_done(st);
	return err;
}

/* After a revocation changed nothing: the device is not this user's (-ENOENT), or it was
 * already revoked, which is success. */
static int explain_no_revocation(struct pn_acct_store *s, const char *username,
				 const uint8_t device_id[16])
{
	int err = pn_acct_store_get_device(s, username, device_id, NULL, NULL);

	if (err == -EACCES)
		return 0;
	if (err == 0) {
		pn_warn("account store %s: revocation changed no row of a live device",
			s->db.path);
		return -EIO;
	}
	return err;
}

int pn_acct_store_revoke_device(struct pn_acct_store *s, const char *username,
				const uint8_t device_id[16], uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !device_id || !pn_db_u64_ok(now_s))
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_REVOKE_DEVICE];
	if (pn_db_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN) ||
	    pn_db_bind_text(st, 2, username, ulen) || pn_db_bind_u64(st, 3, now_s))
		err = pn_db_fail(&s->db, "binding revocation");
	else
		err = pn_db_step_write(&s->db, st, "revoking device", -ENOENT);
	pn_db_done(st);
	if (err == -ENOENT)
		err = explain_no_revocation(s, username, device_id);
	return err;
}

int pn_acct_store_count_users(struct pn_acct_store *s, uint64_t *n)
{
	sqlite3_stmt *st;
	int err = 0;

	if (!s || !n)
		return -EINVAL;
	st = s->db.st[ST_COUNT_USERS];
	if (sqlite3_step(st) != SQLITE_ROW)
		err = pn_db_fail(&s->db, "counting users");
	else
		*n = (uint64_t)sqlite3_column_int64(st, 0);
	pn_db_done(st);
	return err;
}

/* ---- profiles ---- */

static int bind_profile_text(sqlite3_stmt *st, int i, const char *v, size_t max)
{
	size_t n = v ? strnlen(v, max + 1) : max + 1;

	/* Empty fields are allowed here, unlike names. */
	if (n > max)
		return SQLITE_RANGE;
	return pn_db_bind_text(st, i, v, n);
}

int pn_acct_store_set_profile(struct pn_acct_store *s, const char *username,
			      const struct pn_acct_profile *p, uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !p || !pn_db_u64_ok(now_s))
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	if (strnlen(p->display_name, sizeof(p->display_name)) >= sizeof(p->display_name) ||
	    strnlen(p->city, sizeof(p->city)) >= sizeof(p->city) ||
	    strnlen(p->country, sizeof(p->country)) >= sizeof(p->country) ||
	    strnlen(p->languages, sizeof(p->languages)) >= sizeof(p->languages))
		return -EINVAL;
	st = s->db.st[ST_SET_PROFILE];
	if (pn_db_bind_text(st, 1, username, ulen) || sqlite3_bind_int(st, 2, p->searchable ? 1 : 0) ||
	    bind_profile_text(st, 3, p->display_name, PN_ACCT_PROFILE_TEXT_MAX) ||
	    bind_profile_text(st, 4, p->city, PN_ACCT_PROFILE_TEXT_MAX) ||
	    bind_profile_text(st, 5, p->country, PN_ACCT_PROFILE_COUNTRY_MAX) ||
	    bind_profile_text(st, 6, p->languages, PN_ACCT_PROFILE_LANGS_MAX) ||
	    pn_db_bind_u64(st, 7, now_s))
		err = pn_db_fail(&s->db, "binding profile");
	else
		err = pn_db_step_write(&s->db, st, "writing profile", -ENOENT);
	pn_db_done(st);
	return err;
}

/* Copies column i into out[cap]; a value that does not fit means a row written by
 * something else than this store: -EIO. */
static int profile_col(struct pn_acct_store *s, sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);

	if (!t || n >= cap) {
		pn_err("account store %s: profile column %d is missing or too long", s->db.path, i);
		return -EIO;
	}
	memcpy(out, t, n);
	out[n] = '\0';
	return 0;
}

static int read_profile(struct pn_acct_store *s, sqlite3_stmt *st, struct pn_acct_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->searchable = sqlite3_column_int(st, 1) != 0;
	if (profile_col(s, st, 0, p->username, sizeof(p->username)) ||
	    profile_col(s, st, 2, p->display_name, sizeof(p->display_name)) ||
	    profile_col(s, st, 3, p->city, sizeof(p->city)) ||
	    profile_col(s, st, 4, p->country, sizeof(p->country)) ||
	    profile_col(s, st, 5, p->languages, sizeof(p->languages)))
		return -EIO;
	return 0;
}

int pn_acct_store_get_profile(struct pn_acct_store *s, const char *username,
			      struct pn_acct_profile *out)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !out)
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_GET_PROFILE];
	if (pn_db_bind_text(st, 1, username, ulen))
		err = pn_db_fail(&s->db, "binding username");
	else
		err = pn_db_step_row(&s->db, st, "reading profile");
	if (!err)
		err = read_profile(s, st, out);
	pn_db_done(st);
	return err;
}

/* A word worth searching for has a letter or digit in it (any byte >= 0x80 counts: it is
 * part of a non-ASCII character, which the tokenizer decides about). Pure punctuation
 * would become an empty phrase. */
static bool word_has_content(const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
			return true;
	}
	return false;
}

/* Turns user text into an FTS5 query that cannot be a syntax error: every word becomes a
 * quoted string (an embedded " doubled, which is FTS5's only escape inside a string)
 * followed by * for a prefix match; the words are joined by spaces, i.e. AND. Returns
 * the number of words written (0: nothing to search for). out must hold
 * 2 * PN_ACCT_QUERY_MAX + 4 * PN_ACCT_QUERY_TOKENS + 1 bytes. */
static unsigned fts_query(char *out, const char *text)
{
	unsigned words = 0;
	size_t o = 0;
	const char *p = text;

	while (*p && words < PN_ACCT_QUERY_TOKENS) {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' ||
		       *p == '\v')
			p++;
		n = strcspn(p, " \t\n\r\f\v");
		if (n && word_has_content(p, n)) {
			if (words)
				out[o++] = ' ';
			out[o++] = '"';
			for (size_t i = 0; i < n; i++) {
				if (p[i] == '"')
					out[o++] = '"';
				out[o++] = p[i];
			}
			out[o++] = '"';
			out[o++] = '*';
			words++;
		}
		p += n;
	}
	out[o] = '\0';
	return words;
}

int pn_acct_store_search_profiles(struct pn_acct_store *s, const char *text, unsigned limit,
				  int (*cb)(void *arg, const struct pn_acct_profile *p),
				  void *arg)
{
	char q[2 * PN_ACCT_QUERY_MAX + 4 * PN_ACCT_QUERY_TOKENS + 1];
	struct pn_acct_profile p;
	sqlite3_stmt *st;
	int err = 0, rc, r;

	if (!s || !text || !cb || limit < 1 || limit > 1000 ||
	    strnlen(text, PN_ACCT_QUERY_MAX + 1) > PN_ACCT_QUERY_MAX)
		return -EINVAL;
	if (fts_query(q, text) == 0)
		return 0;
	st = s->db.st[ST_SEARCH_PROFILES];
	if (pn_db_bind_text(st, 1, q, strlen(q)) || sqlite3_bind_int(st, 2, (int)limit)) {
		err = pn_db_fail(&s->db, "binding search");
		goto out;
	}
	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			if ((rc & 0xff) == SQLITE_ERROR) {
				/* The quoting above should make this impossible; should FTS5 still
				 * refuse the query, the user gets no results rather than an error.
				 * Debug only: the message quotes what someone searched for. */
				pn_dbg("account store %s: search query refused: %s", s->db.path,
				       sqlite3_errmsg(s->db.conn));
			} else {
				err = pn_db_fail(&s->db, "searching profiles");
			}
			goto out;
		}
		err = read_profile(s, st, &p);
		if (err)
			goto out;
		r = cb(arg, &p);
		if (r) {
			err = r < 0 ? r : 0;
			goto out;
		}
	}
out:
	pn_db_done(st);
	return err;
}

int pn_acct_store_list_devices(struct pn_acct_store *s, const char *username,
			       int (*cb)(void *arg, const struct pn_acct_device *d), void *arg)
{
	struct pn_acct_device d;
	sqlite3_stmt *st;
	size_t ulen;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	ulen = pn_db_text_len(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_LIST_DEVICES];
	if (pn_db_bind_text(st, 1, username, ulen)) {
		err = pn_db_fail(&s->db, "binding device list");
		pn_db_done(st);
		return err;
	}
	for (;;) {
		const unsigned char *name;
		err = pn_db_step_next(&s->db, st, "listing devices");
		if (err <= 0)
			break;
		memset(&d, 0, sizeof(d));
		if (sqlite3_column_bytes(st, 0) != ACCT_DEVICE_ID_LEN) {
			err = -EIO;
			break;
		}
		memcpy(d.device_id, sqlite3_column_blob(st, 0), ACCT_DEVICE_ID_LEN);
		name = sqlite3_column_text(st, 1);
		snprintf(d.name, sizeof(d.name), "%s", name ? (const char *)name : "");
		d.created_at = (uint64_t)sqlite3_column_int64(st, 2);
		d.last_seen = (uint64_t)sqlite3_column_int64(st, 3);
		d.revoked_at = (uint64_t)sqlite3_column_int64(st, 4);
		ret = cb(arg, &d);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}
