/* SQLite plumbing shared by the stores. See db.h for the contract. */
#include "base/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

enum db_limits {
	DB_BUSY_TIMEOUT_MS = 5000,
};

int pn_db_fail(const struct pn_db *db, const char *what)
{
	int rc = sqlite3_extended_errcode(db->conn) & 0xff;

	pn_err("%s %s: %s failed: %s", db->spec->label, db->path, what, sqlite3_errmsg(db->conn));
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

void pn_db_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int pn_db_step(const struct pn_db *db, sqlite3_stmt *st, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return pn_db_fail(db, what);
	return 0;
}

int pn_db_step_write(const struct pn_db *db, sqlite3_stmt *st, const char *what,
		     int if_unchanged)
{
	int err = pn_db_step(db, st, what);

	if (!err && sqlite3_changes(db->conn) == 0)
		err = if_unchanged;
	return err;
}

int pn_db_step_row(const struct pn_db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return pn_db_fail(db, what);
}

int pn_db_step_next(const struct pn_db *db, sqlite3_stmt *st, const char *what)
{
	int err = pn_db_step_row(db, st, what);

	if (err == -ENOENT)
		return 0;
	return err ? err : 1;
}

int pn_db_bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
	return sqlite3_bind_text(st, i, s, (int)len, SQLITE_STATIC);
}

int pn_db_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
	/* bind_blob with a NULL pointer would bind SQL NULL, not an empty value. */
	if (!len)
		return sqlite3_bind_zeroblob(st, i, 0);
	return sqlite3_bind_blob(st, i, p, (int)len, SQLITE_STATIC);
}

int pn_db_bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

size_t pn_db_text_len(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, max + 1);
	return n > max ? 0 : n;
}

bool pn_db_u64_ok(uint64_t v)
{
	return v <= (uint64_t)INT64_MAX;
}

/* Creates the file with mode 0600 before SQLite sees it, because SQLite would create it
 * 0644 (minus umask) and gives its -wal and -shm files the database's mode. An existing
 * file readable by others is tightened: the stores hold every user's password hash (login)
 * and the device's private key seed (client). */
static int create_private_file(const char *label, const char *path)
{
	struct stat st;
	int fd, err = 0;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		pn_err("%s %s: cannot open: %s", label, path, strerror(errno));
		return -EIO;
	}
	if (fstat(fd, &st) < 0) {
		pn_err("%s %s: cannot stat: %s", label, path, strerror(errno));
		err = -EIO;
		goto out;
	}
	if (st.st_mode & 077) {
		pn_warn("%s %s: mode was %03o, setting 0600", label, path,
			(unsigned)(st.st_mode & 0777));
		if (fchmod(fd, 0600) < 0) {
			pn_err("%s %s: cannot chmod 0600: %s", label, path, strerror(errno));
			err = -EIO;
			goto out;
		}
	}
out:
	close(fd);
	return err;
}

static int exec_sql(const struct pn_db *db, const char *sql, const char *what)
{
	if (sqlite3_exec(db->conn, sql, NULL, NULL, NULL) != SQLITE_OK)
		return pn_db_fail(db, what);
	return 0;
}

/* WAL lets readers (the login server answering a login, the client's UI) go on while a
 * write is in progress. ":memory:" answers "memory" and stays so, which is fine; on a file
 * anything but "wal" is worth a warning: the filesystem cannot share memory between
 * connections (e.g. some network mounts). */
static int enable_wal(const struct pn_db *db, bool in_memory)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int err = 0;

	if (sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode = WAL", -1, &st, NULL) !=
	    SQLITE_OK) {
		err = pn_db_fail(db, "preparing journal_mode");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		err = pn_db_fail(db, "setting journal_mode=WAL");
		goto out;
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	if (!in_memory && (!mode || strcmp(mode, "wal") != 0))
		pn_warn("%s %s: journal_mode is %s, not wal", db->spec->label, db->path,
			mode ? mode : "(null)");
out:
	sqlite3_finalize(st);
	return err;
}

static int read_schema_version(const struct pn_db *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int err = 0;

	if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		err = pn_db_fail(db, "reading user_version");
		goto out;
	}
	*version = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return err;
}

static int init_schema(const struct pn_db *db)
{
	const struct pn_db_spec *spec = db->spec;
	char sql[64];
	int version = 0, err;

	err = read_schema_version(db, &version);
	if (err)
		return err;
	/* An older program must not write into tables whose meaning it does not know. */
	if (version > spec->schema_version) {
		pn_err("%s %s: schema version %d is newer than this program's %d", spec->label,
		       db->path, version, spec->schema_version);
		return -EIO;
	}
	err = exec_sql(db, "BEGIN IMMEDIATE", "beginning schema transaction");
	if (err)
		return err;
	err = exec_sql(db, spec->schema_sql, "creating tables");
	if (err)
		goto out;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", spec->schema_version);
	err = exec_sql(db, sql, "setting user_version");
	if (err)
		goto out;
	err = exec_sql(db, "COMMIT", "committing schema");
out:
	if (err)
		sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

static int prepare_all(struct pn_db *db)
{
	const struct pn_db_spec *spec = db->spec;

	db->st = calloc((size_t)spec->stmt_count, sizeof(*db->st));
	if (!db->st)
		return -ENOMEM;
	for (int i = 0; i < spec->stmt_count; i++) {
		if (sqlite3_prepare_v3(db->conn, spec->stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &db->st[i], NULL) != SQLITE_OK)
			return pn_db_fail(db, "preparing statements");
	}
	return 0;
}

int pn_db_open(struct pn_db *db, const char *path, const struct pn_db_spec *spec)
{
	bool in_memory;
	int err = 0;

	if (!db || !path || !path[0] || !spec || spec->stmt_count < 1)
		return -EINVAL;
	memset(db, 0, sizeof(*db));
	db->spec = spec;
	in_memory = strcmp(path, ":memory:") == 0;
	db->path = strdup(path);
	if (!db->path) {
		err = -ENOMEM;
		goto out;
	}
	if (!in_memory) {
		err = create_private_file(spec->label, path);
		if (err)
			goto out;
	}
	if (sqlite3_open_v2(path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		err = db->conn ? pn_db_fail(db, "opening") : -ENOMEM;
		goto out;
	}
	sqlite3_extended_result_codes(db->conn, 1);
	sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS);
	err = enable_wal(db, in_memory);
	if (err)
		goto out;
	err = exec_sql(db, spec->pragma_sql, spec->pragma_what);
	if (err)
		goto out;
	err = init_schema(db);
	if (err)
		goto out;
	err = prepare_all(db);
out:
	if (err)
		pn_db_close(db);
	return err;
}

void pn_db_close(struct pn_db *db)
{
	if (!db)
		return;
	if (db->st) {
		for (int i = 0; i < db->spec->stmt_count; i++)
			sqlite3_finalize(db->st[i]);
	}
	/* sqlite3_close (not _v2) so that a leaked statement shows up as an error here. */
	if (db->conn && sqlite3_close(db->conn) != SQLITE_OK)
		pn_err("%s %s: close failed: %s", db->spec->label, db->path,
		       sqlite3_errmsg(db->conn));
	free(db->st);
	free(db->path);
	memset(db, 0, sizeof(*db));
}
