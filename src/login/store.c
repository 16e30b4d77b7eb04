/* The login server's account store on SQLite. See store.h for the contract.
 *
 * One connection per store, all statements prepared at open and reset after every use, so
 * a call never leaves a statement holding a read transaction open (which would stall WAL
 * checkpoints). Text and blobs are bound with SQLITE_STATIC: the caller's buffers outlive
 * the statement because every function resets and clears bindings before it returns, and
 * SQLite then never makes its own copy of a password hash. */
#include "login/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "base/log.h"

enum acct_limits {
	ACCT_SCHEMA_VERSION = 1,
	ACCT_BUSY_TIMEOUT_MS = 5000,
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
	"CREATE INDEX IF NOT EXISTS devices_by_user ON devices(user_id);";

enum acct_stmt {
	ST_CREATE_USER,
	ST_GET_PWHASH,
	ST_GET_USER_ID,
	ST_UPSERT_DEVICE,
	ST_GET_DEVICE_ANY,
	ST_GET_DEVICE,
	ST_REVOKE_DEVICE,
	ST_COUNT_USERS,
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
	[ST_COUNT_USERS] = "SELECT count(*) FROM users",
};

struct pn_acct_store {
	sqlite3 *db;
	char *path; /* for log messages */
	sqlite3_stmt *st[ST_COUNT];
};

/* Logs what failed with SQLite's own explanation and maps the result to an errno. */
static int db_fail(const struct pn_acct_store *s, const char *what)
{
	int rc = sqlite3_extended_errcode(s->db) & 0xff;

	pn_err("account store %s: %s failed: %s", s->path, what, sqlite3_errmsg(s->db));
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Length of s if it is 1..max bytes long, else 0 (the caller turns that into -EINVAL). */
static size_t str_len_ok(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, max + 1);
	return n > max ? 0 : n;
}

static bool time_ok(uint64_t t)
{
	return t <= (uint64_t)INT64_MAX;
}

/* Creates the file with mode 0600 before SQLite sees it, because SQLite would create it
 * 0644 (minus umask) and gives its -wal and -shm files the database's mode. An existing
 * file readable by others is tightened: it holds every user's password hash. */
static int create_private_file(const char *path)
{
	struct stat st;
	int fd, err = 0;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		pn_err("account store %s: cannot open: %s", path, strerror(errno));
		return -EIO;
	}
	if (fstat(fd, &st) < 0) {
		pn_err("account store %s: cannot stat: %s", path, strerror(errno));
		err = -EIO;
		goto out;
	}
	if (st.st_mode & 077) {
		pn_warn("account store %s: mode was %03o, setting 0600", path,
			(unsigned)(st.st_mode & 0777));
		if (fchmod(fd, 0600) < 0) {
			pn_err("account store %s: cannot chmod 0600: %s", path, strerror(errno));
			err = -EIO;
			goto out;
		}
	}
out:
	close(fd);
	return err;
}

static int exec_sql(struct pn_acct_store *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, what);
	return 0;
}

/* WAL lets the server read while a registration writes. It is refused for ":memory:"
 * (which reports "memory"), which is fine; on a file anything but "wal" is worth a warning
 * since it means the filesystem cannot share memory between connections. */
static int enable_wal(struct pn_acct_store *s, bool in_memory)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int err = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
		err = db_fail(s, "preparing journal_mode");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		err = db_fail(s, "setting journal_mode=WAL");
		goto out;
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	if (!in_memory && (!mode || strcmp(mode, "wal") != 0))
		pn_warn("account store %s: journal_mode is %s, not wal", s->path,
			mode ? mode : "(null)");
out:
	sqlite3_finalize(st);
	return err;
}

static int read_schema_version(struct pn_acct_store *s, int *version)
{
	sqlite3_stmt *st = NULL;
	int err = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		err = db_fail(s, "reading user_version");
		goto out;
	}
	*version = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return err;
}

static int init_schema(struct pn_acct_store *s)
{
	char sql[64];
	int version, err;

	err = read_schema_version(s, &version);
	if (err)
		return err;
	/* An older program must not write into tables whose meaning it does not know. */
	if (version > ACCT_SCHEMA_VERSION) {
		pn_err("account store %s: schema version %d is newer than this program's %d",
		       s->path, version, ACCT_SCHEMA_VERSION);
		return -EIO;
	}
	err = exec_sql(s, "BEGIN IMMEDIATE", "beginning schema transaction");
	if (err)
		return err;
	err = exec_sql(s, schema_sql, "creating tables");
	if (err)
		goto out;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", ACCT_SCHEMA_VERSION);
	err = exec_sql(s, sql, "setting user_version");
	if (err)
		goto out;
	err = exec_sql(s, "COMMIT", "committing schema");
out:
	if (err)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

int pn_acct_store_open(struct pn_acct_store **out, const char *path)
{
	struct pn_acct_store *s = NULL;
	bool in_memory;
	int err = 0;

	if (!out || !path || !path[0])
		return -EINVAL;
	in_memory = strcmp(path, ":memory:") == 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->path = strdup(path);
	if (!s->path) {
		err = -ENOMEM;
		goto out;
	}
	if (!in_memory) {
		err = create_private_file(path);
		if (err)
			goto out;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		if (!s->db) {
			err = -ENOMEM;
			goto out;
		}
		err = db_fail(s, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, ACCT_BUSY_TIMEOUT_MS);
	err = enable_wal(s, in_memory);
	if (err)
		goto out;
	err = exec_sql(s, "PRAGMA foreign_keys = ON", "enabling foreign keys");
	if (err)
		goto out;
	err = init_schema(s);
	if (err)
		goto out;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
				       NULL) != SQLITE_OK) {
			err = db_fail(s, "preparing statements");
			goto out;
		}
	}
	*out = s;
	s = NULL;
out:
	pn_acct_store_free(s);
	return err;
}

void pn_acct_store_free(struct pn_acct_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	/* sqlite3_close (not _v2) so that a leaked statement shows up as an error here. */
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		pn_err("account store %s: close failed: %s", s->path, sqlite3_errmsg(s->db));
	free(s->path);
	free(s);
}

int pn_acct_store_create_user(struct pn_acct_store *s, const char *username,
			      const char *pwhash, uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen, hlen;
	int err = 0;

	if (!s)
		return -EINVAL;
	ulen = str_len_ok(username, ACCT_USERNAME_MAX);
	hlen = str_len_ok(pwhash, ACCT_PWHASH_MAX);
	if (!ulen || !hlen || !time_ok(now_s))
		return -EINVAL;
	st = s->st[ST_CREATE_USER];
	if (sqlite3_bind_text(st, 1, username, (int)ulen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, pwhash, (int)hlen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)now_s) != SQLITE_OK) {
		err = db_fail(s, "binding new user");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		err = db_fail(s, "inserting user");
		goto out;
	}
	if (sqlite3_changes(s->db) == 0)
		err = -EEXIST;
out:
	stmt_done(st);
	return err;
}

int pn_acct_store_get_pwhash(struct pn_acct_store *s, const char *username, char *out,
			     size_t cap)
{
	sqlite3_stmt *st;
	const char *text;
	size_t ulen, n;
	int err = 0, rc;

	if (!s || !out)
		return -EINVAL;
	ulen = str_len_ok(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->st[ST_GET_PWHASH];
	if (sqlite3_bind_text(st, 1, username, (int)ulen, SQLITE_STATIC) != SQLITE_OK) {
		err = db_fail(s, "binding username");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err = db_fail(s, "reading password hash");
		goto out;
	}
	text = (const char *)sqlite3_column_text(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	if (!text) {
		err = db_fail(s, "reading password hash");
		goto out;
	}
	if (n + 1 > cap) {
		err = -ENOSPC;
		goto out;
	}
	memcpy(out, text, n);
	out[n] = '\0';
out:
	stmt_done(st);
	return err;
}

/* Finds the rowid of username: 0, -ENOENT, -EIO. */
static int user_id(struct pn_acct_store *s, const char *username, size_t ulen, int64_t *id)
{
	sqlite3_stmt *st = s->st[ST_GET_USER_ID];
	int err = 0, rc;

	if (sqlite3_bind_text(st, 1, username, (int)ulen, SQLITE_STATIC) != SQLITE_OK) {
		err = db_fail(s, "binding username");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err = db_fail(s, "looking up user");
		goto out;
	}
	*id = sqlite3_column_int64(st, 0);
out:
	stmt_done(st);
	return err;
}

/* After an upsert changed nothing: says why the existing row was left alone. */
static int explain_device_conflict(struct pn_acct_store *s, const uint8_t device_id[16],
				   int64_t uid, const uint8_t sign_pk[32], const uint8_t dh_pk[32])
{
	sqlite3_stmt *st = s->st[ST_GET_DEVICE_ANY];
	int err = 0, rc;

	if (sqlite3_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN, SQLITE_STATIC) != SQLITE_OK) {
		err = db_fail(s, "binding device id");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		/* Deleted between the two statements by another writer; retrying is the fix. */
		pn_warn("account store %s: device vanished during upsert", s->path);
		err = -EIO;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err = db_fail(s, "reading device");
		goto out;
	}
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
	pn_warn("account store %s: device upsert changed no row for no known reason", s->path);
	err = -EIO;
out:
	stmt_done(st);
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
	int err, rc;

	if (!s || !device_id || !sign_pk || !dh_pk || !device_name || !time_ok(now_s))
		return -EINVAL;
	ulen = str_len_ok(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	nlen = strnlen(device_name, ACCT_DEVICE_NAME_MAX + 1);
	if (nlen > ACCT_DEVICE_NAME_MAX)
		return -EINVAL;
	err = user_id(s, username, ulen, &uid);
	if (err)
		return err;
	st = s->st[ST_UPSERT_DEVICE];
	if (sqlite3_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, uid) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 3, sign_pk, ACCT_KEY_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 4, dh_pk, ACCT_KEY_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, device_name, (int)nlen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, (sqlite3_int64)now_s) != SQLITE_OK) {
		err = db_fail(s, "binding device");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		/* The user was deleted between the lookup and the insert. */
		if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
			err = -ENOENT;
		else
			err = db_fail(s, "upserting device");
		goto out;
	}
	changed = sqlite3_changes(s->db) != 0;
out:
	stmt_done(st);
	if (!err && !changed)
		err = explain_device_conflict(s, device_id, uid, sign_pk, dh_pk);
	return err;
}

int pn_acct_store_get_device(struct pn_acct_store *s, const char *username,
			     const uint8_t device_id[16], uint8_t sign_pk[32], uint8_t dh_pk[32])
{
	sqlite3_stmt *st;
	size_t ulen;
	int err = 0, rc;

	if (!s || !device_id)
		return -EINVAL;
	ulen = str_len_ok(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->st[ST_GET_DEVICE];
	if (sqlite3_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, username, (int)ulen, SQLITE_STATIC) != SQLITE_OK) {
		err = db_fail(s, "binding device lookup");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err = db_fail(s, "reading device");
		goto out;
	}
	if (sqlite3_column_int(st, 0)) {
		err = -EACCES;
		goto out;
	}
	if (sqlite3_column_bytes(st, 1) != ACCT_KEY_LEN ||
	    sqlite3_column_bytes(st, 2) != ACCT_KEY_LEN) {
		pn_err("account store %s: device row has keys of the wrong size", s->path);
		err = -EIO;
		goto out;
	}
	if (sign_pk)
		memcpy(sign_pk, sqlite3_column_blob(st, 1), ACCT_KEY_LEN);
	if (dh_pk)
		memcpy(dh_pk, sqlite3_column_blob(st, 2), ACCT_KEY_LEN);
out:
	stmt_done(st);
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
		pn_warn("account store %s: revocation changed no row of a live device", s->path);
		return -EIO;
	}
	return err;
}

int pn_acct_store_revoke_device(struct pn_acct_store *s, const char *username,
				const uint8_t device_id[16], uint64_t now_s)
{
	sqlite3_stmt *st;
	bool changed = false;
	size_t ulen;
	int err = 0;

	if (!s || !device_id || !time_ok(now_s))
		return -EINVAL;
	ulen = str_len_ok(username, ACCT_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->st[ST_REVOKE_DEVICE];
	if (sqlite3_bind_blob(st, 1, device_id, ACCT_DEVICE_ID_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, username, (int)ulen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)now_s) != SQLITE_OK) {
		err = db_fail(s, "binding revocation");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		err = db_fail(s, "revoking device");
		goto out;
	}
	changed = sqlite3_changes(s->db) != 0;
out:
	stmt_done(st);
	if (!err && !changed)
		err = explain_no_revocation(s, username, device_id);
	return err;
}

int pn_acct_store_count_users(struct pn_acct_store *s, uint64_t *n)
{
	sqlite3_stmt *st;
	int err = 0;

	if (!s || !n)
		return -EINVAL;
	st = s->st[ST_COUNT_USERS];
	if (sqlite3_step(st) != SQLITE_ROW) {
		err = db_fail(s, "counting users");
		goto out;
	}
	*n = (uint64_t)sqlite3_column_int64(st, 0);
out:
	stmt_done(st);
	return err;
}
