/* SQLite plumbing shared by the stores (src/login/store.c, src/im/store.c): opening a
 * private database file, the connection settings, schema versioning, statements prepared
 * once, and logging a failure with the store's name, its path and SQLite's explanation.
 *
 * Every log line starts with the store's label and path ("client store /x/parley.db: ...").
 * Errors are negative errnos: -ENOMEM when SQLite ran out of memory, -EIO for any other
 * SQLite failure (already logged), -ENOENT, -EEXIST as the step helpers say. */
#ifndef PARLEY_BASE_DB_H
#define PARLEY_BASE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* What a store is: static, outlives every struct pn_db opened with it. */
struct pn_db_spec {
	const char *label;	     /* names the store in log lines: "account store" */
	int schema_version;	     /* user_version; a newer file is refused */
	const char *schema_sql;	     /* idempotent CREATE ... IF NOT EXISTS */
	const char *pragma_sql;	     /* run on every open, before the schema */
	const char *pragma_what;     /* says what pragma_sql does, for its error log */
	const char *const *stmt_sql; /* prepared at open, indexed like st */
	int stmt_count;
};

struct pn_db {
	sqlite3 *conn;
	sqlite3_stmt **st; /* spec->stmt_count prepared statements */
	char *path;	   /* for log messages */
	const struct pn_db_spec *spec;
};

/* Opens (creating it with mode 0600) the database at path, or an in-memory one for
 * ":memory:", brings its schema up to spec->schema_version and prepares every statement.
 * On failure db is left zeroed: 0, -EINVAL, -ENOMEM, -EIO (logged). */
int pn_db_open(struct pn_db *db, const char *path, const struct pn_db_spec *spec);
/* Finalizes the statements and closes the connection; accepts a zeroed db. */
void pn_db_close(struct pn_db *db);

/* Logs "<label> <path>: <what> failed: <sqlite message>" and returns -ENOMEM or -EIO. */
int pn_db_fail(const struct pn_db *db, const char *what);

/* Resets st and clears its bindings: every use of a statement ends with this, so none
 * holds a read transaction open or points at the caller's buffers after the call. */
void pn_db_done(sqlite3_stmt *st);

/* Steps a statement that returns no rows: 0, or -EIO/-ENOMEM (logged). */
int pn_db_step(const struct pn_db *db, sqlite3_stmt *st, const char *what);
/* Steps a statement that writes: as pn_db_step, and if_unchanged when no row changed
 * (-EEXIST after an ON CONFLICT DO NOTHING, -ENOENT after a DELETE). */
int pn_db_step_write(const struct pn_db *db, sqlite3_stmt *st, const char *what,
		     int if_unchanged);
/* Steps to the first row: 0 with a row to read, -ENOENT without, -EIO/-ENOMEM (logged). */
int pn_db_step_row(const struct pn_db *db, sqlite3_stmt *st, const char *what);
/* Steps through rows: 1 with a row to read, 0 at the end, -EIO/-ENOMEM (logged). */
int pn_db_step_next(const struct pn_db *db, sqlite3_stmt *st, const char *what);

/* Binders return an SQLite result code, SQLITE_OK being 0, so that a list of bindings
 * (sqlite3_bind_int among them) is checked with one `||` chain. Buffers are bound
 * SQLITE_STATIC: they must live until pn_db_done, and SQLite then keeps no copy of them. */
int pn_db_bind_text(sqlite3_stmt *st, int i, const char *s, size_t len);
/* A zero-length blob binds as an empty value, never as SQL NULL, whatever p is. */
int pn_db_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len);
/* v must pass pn_db_u64_ok. */
int pn_db_bind_u64(sqlite3_stmt *st, int i, uint64_t v);

/* Length of s if it is 1..max bytes long, else 0 (the caller turns that into -EINVAL). */
size_t pn_db_text_len(const char *s, size_t max);
/* Whether v fits an SQLite INTEGER, which is signed. */
bool pn_db_u64_ok(uint64_t v);

#endif
