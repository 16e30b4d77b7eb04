/* The client's local store on SQLite. See store.h for the contract.
 *
 * One connection, every statement prepared at open and reset (and its bindings cleared)
 * before each function returns, so no call leaves a read transaction open to stall WAL
 * checkpoints. Buffers are bound with SQLITE_STATIC for the same reason the reset matters:
 * they only need to live for the call, and SQLite then keeps no private copy of a key-value
 * secret in its heap. Values are never logged: the key-value table holds the device seed. */
#include "im/store.h"
#include "im/group.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "base/db.h"
#include "base/hex.h"
#include "base/log.h"

enum cstore_consts {
	CSTORE_SCHEMA_VERSION = 2, /* 2: the group tables (a version 1 file gains them on open) */
	CSTORE_HOST_KEY_LEN = 32,
	CSTORE_STATE_TRIES = 3,
};

/* messages.seq is the local arrival order and the FTS rowid; the 32-hex-digit id is the
 * network-wide identity used for deduplication. messages_fts is an external-content FTS5
 * index: it stores only the index, the text lives once in messages, and the triggers keep
 * the two in step (state updates do not touch it: the update trigger fires on text only).
 * The pending index is partial and keyed by sent_at alone so that moving a message from
 * QUEUED to SENT does not move its index entry. */
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS kv ("
	" key TEXT PRIMARY KEY,"
	" value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS contacts ("
	" username TEXT PRIMARY KEY,"
	" added_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS messages ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE CHECK (length(id) = 32),"
	" peer TEXT NOT NULL,"
	" dir INTEGER NOT NULL CHECK (dir IN (0, 1)),"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 7),"
	" sent_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" text TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS messages_by_peer ON messages(peer, sent_at);"
	"CREATE INDEX IF NOT EXISTS messages_pending ON messages(sent_at)"
	" WHERE dir = 1 AND state IN (0, 1);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5("
	" text, content = 'messages', content_rowid = 'seq',"
	" tokenize = 'unicode61 remove_diacritics 2');"
	"CREATE TRIGGER IF NOT EXISTS messages_fts_ins AFTER INSERT ON messages BEGIN"
	" INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS messages_fts_del AFTER DELETE ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, text)"
	"  VALUES ('delete', old.seq, old.text);"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS messages_fts_upd AFTER UPDATE OF text ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, text)"
	"  VALUES ('delete', old.seq, old.text);"
	" INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);"
	" END;"
	"CREATE TABLE IF NOT EXISTS hosts ("
	" addr TEXT PRIMARY KEY,"
	" key BLOB NOT NULL CHECK (length(key) = 32),"
	" last_seen INTEGER NOT NULL,"
	" rtt_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS hosts_by_last_seen ON hosts(last_seen);"
	"CREATE TABLE IF NOT EXISTS contact_rel ("
	" username TEXT PRIMARY KEY,"
	" kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
	" note TEXT NOT NULL,"
	" at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS calls ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE CHECK (length(id) = 32),"
	" peer TEXT NOT NULL,"
	" outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),"
	" started_at INTEGER NOT NULL,"
	" answered_at INTEGER NOT NULL,"
	" ended_at INTEGER NOT NULL,"
	" reason TEXT NOT NULL,"
	" mos REAL NOT NULL);"
	/* group chats (schema 2) */
	"CREATE TABLE IF NOT EXISTS groups ("
	" gid TEXT PRIMARY KEY CHECK (length(gid) = 32),"
	" name TEXT NOT NULL,"
	" admin TEXT NOT NULL,"
	" version INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS group_members ("
	" gid TEXT NOT NULL REFERENCES groups (gid) ON DELETE CASCADE,"
	" username TEXT NOT NULL,"
	" PRIMARY KEY (gid, username)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS group_msgs ("
	" id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
	" gid TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS group_msgs_by_gid ON group_msgs(gid);"
	"CREATE TABLE IF NOT EXISTS group_rcpts ("
	" id TEXT NOT NULL,"
	" member TEXT NOT NULL,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 2),"
	" PRIMARY KEY (id, member)) WITHOUT ROWID;"
	/* Messages from users who are not our contacts wait here, out of the history, until
	 * the user is accepted (then they move to messages) or declined/blocked (deleted). */
	"CREATE TABLE IF NOT EXISTS held ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE CHECK (length(id) = 32),"
	" peer TEXT NOT NULL,"
	" sent_at INTEGER NOT NULL,"
	" received_at INTEGER NOT NULL,"
	" text TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS held_by_peer ON held(peer, seq);"
	/* The last change to each contact made on any device of the account (for syncing the
	 * contact list between them: the newest change wins). */
	"CREATE TABLE IF NOT EXISTS contact_sync ("
	" username TEXT PRIMARY KEY,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),"
	" at INTEGER NOT NULL) WITHOUT ROWID;"
	/* Revocation notices we know (signed by the root): devices we refuse. */
	"CREATE TABLE IF NOT EXISTS revoked ("
	" device_id BLOB PRIMARY KEY CHECK (length(device_id) = 16),"
	" username TEXT NOT NULL,"
	" revoked_at INTEGER NOT NULL,"
	" notice BLOB NOT NULL) WITHOUT ROWID;";

#define MSG_COLS "m.id, m.peer, m.dir, m.state, m.sent_at, m.updated_at, m.text"

enum cstore_stmt {
	ST_KV_GET,
	ST_KV_SET,
	ST_KV_DEL,
	ST_CONTACT_ADD,
	ST_CONTACT_REMOVE,
	ST_CONTACT_HAS,
	ST_CONTACT_LIST,
	ST_MSG_INSERT,
	ST_MSG_GET_STATE,
	ST_MSG_SET_STATE,
	ST_MSG_GET,
	ST_MSG_LIST,
	ST_MSG_PENDING,
	ST_MSG_SEARCH,
	ST_HOST_UPSERT,
	ST_HOST_EVICT,
	ST_HOST_LIST,
	ST_CALL_INSERT,
	ST_CALL_LIST,
	ST_REL_SET,
	ST_REL_GET,
	ST_REL_DEL,
	ST_REL_LIST,
	ST_MSG_SINCE,
	ST_CSYNC_SET,
	ST_CSYNC_LIST,
	ST_REVOKED_ADD,
	ST_REVOKED_HAS,
	ST_REVOKED_LIST,
	ST_HELD_ADD,
	ST_HELD_COUNT,
	ST_HELD_COUNT_ALL,
	ST_HELD_LIST,
	ST_HELD_DROP,
	ST_GROUP_PUT,
	ST_GROUP_CLEAR,
	ST_GROUP_MEMBER_ADD,
	ST_GROUP_GET,
	ST_GROUP_MEMBERS,
	ST_GROUP_LIST,
	ST_GROUP_MSG_ADD,
	ST_GROUP_MSG_GID,
	ST_GROUP_MSG_LIST,
	ST_RCPT_SET,
	ST_RCPT_GET,
	ST_RCPT_COUNT,
	ST_RCPT_PENDING,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
	[ST_KV_SET] = "INSERT INTO kv (key, value) VALUES (?1, ?2)"
		      " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[ST_KV_DEL] = "DELETE FROM kv WHERE key = ?1",
	[ST_CONTACT_ADD] = "INSERT INTO contacts (username, added_at) VALUES (?1, ?2)"
			   " ON CONFLICT (username) DO NOTHING",
	[ST_CONTACT_REMOVE] = "DELETE FROM contacts WHERE username = ?1",
	[ST_CONTACT_HAS] = "SELECT 1 FROM contacts WHERE username = ?1",
	[ST_CONTACT_LIST] = "SELECT username, added_at FROM contacts ORDER BY username",
	[ST_MSG_INSERT] = "INSERT INTO messages (id, peer, dir, state, sent_at, updated_at, text)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
	[ST_MSG_GET_STATE] = "SELECT dir, state FROM messages WHERE id = ?1",
	/* Compare-and-set on the state read just before, so a concurrent writer cannot make
	 * us move a state backwards. */
	[ST_MSG_SET_STATE] = "UPDATE messages SET state = ?2, updated_at = ?3"
			     " WHERE id = ?1 AND state = ?4",
	[ST_MSG_GET] = "SELECT " MSG_COLS " FROM messages m WHERE m.id = ?1",
	[ST_MSG_LIST] = "SELECT * FROM (SELECT " MSG_COLS ", m.seq AS seq FROM messages m"
			" WHERE m.peer = ?1 AND NOT EXISTS (SELECT 1 FROM group_msgs g"
			" WHERE g.id = m.id) ORDER BY m.sent_at DESC, m.seq DESC LIMIT ?2)"
			" ORDER BY sent_at, seq",
	[ST_MSG_PENDING] = "SELECT " MSG_COLS " FROM messages m"
			   " WHERE m.dir = 1 AND m.state IN (0, 1, 6)"
			   " ORDER BY m.sent_at, m.seq LIMIT ?1",
	[ST_MSG_SEARCH] = "SELECT " MSG_COLS " FROM messages_fts"
			  " JOIN messages m ON m.seq = messages_fts.rowid"
			  " WHERE messages_fts MATCH ?1"
			  " ORDER BY m.sent_at DESC, m.seq DESC LIMIT ?2",
	/* Older news about a host (a stale supernode list) does not overwrite newer. */
	[ST_HOST_UPSERT] = "INSERT INTO hosts (addr, key, last_seen, rtt_ms)"
			   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (addr) DO UPDATE SET"
			   " key = excluded.key, last_seen = excluded.last_seen,"
			   " rtt_ms = excluded.rtt_ms"
			   " WHERE excluded.last_seen >= hosts.last_seen",
	[ST_HOST_EVICT] = "DELETE FROM hosts WHERE addr IN (SELECT addr FROM hosts"
			  " ORDER BY last_seen, addr"
			  " LIMIT max(0, (SELECT count(*) FROM hosts) - ?1))",
	[ST_HOST_LIST] = "SELECT addr, key, last_seen, rtt_ms FROM hosts"
			 " ORDER BY last_seen DESC, addr",
	[ST_CALL_INSERT] = "INSERT INTO calls (id, peer, outgoing, started_at, answered_at,"
			   " ended_at, reason, mos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
			   " ON CONFLICT (id) DO NOTHING",
	[ST_REL_SET] = "INSERT INTO contact_rel (username, kind, note, at) VALUES (?1, ?2, ?3, ?4)"
		       " ON CONFLICT (username) DO UPDATE SET kind = excluded.kind,"
		       " note = excluded.note, at = excluded.at",
	[ST_REL_GET] = "SELECT kind, note, at FROM contact_rel WHERE username = ?1",
	[ST_REL_DEL] = "DELETE FROM contact_rel WHERE username = ?1",
	[ST_REL_LIST] = "SELECT username, kind, note, at FROM contact_rel ORDER BY at, username",
	/* group messages stay out of the history transfer: a new device would show them as
	 * one-to-one messages (HIST carries no group id yet) */
	[ST_MSG_SINCE] = "SELECT " MSG_COLS ", m.seq FROM messages m WHERE m.seq > ?1"
			 " AND NOT EXISTS (SELECT 1 FROM group_msgs g WHERE g.id = m.id)"
			 " ORDER BY m.seq LIMIT ?2",
	[ST_CSYNC_SET] = "INSERT INTO contact_sync (username, state, at) VALUES (?1, ?2, ?3)"
			 " ON CONFLICT (username) DO UPDATE SET state = excluded.state, at = excluded.at"
			 " WHERE excluded.at > contact_sync.at",
	[ST_CSYNC_LIST] = "SELECT username, state, at FROM contact_sync ORDER BY username",
	[ST_REVOKED_ADD] = "INSERT INTO revoked (device_id, username, revoked_at, notice)"
			   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device_id) DO NOTHING",
	[ST_REVOKED_HAS] = "SELECT 1 FROM revoked WHERE device_id = ?1",
	[ST_REVOKED_LIST] = "SELECT notice FROM revoked WHERE username = ?1 AND revoked_at >= ?2"
			    " ORDER BY revoked_at",
	[ST_HELD_ADD] = "INSERT INTO held (id, peer, sent_at, received_at, text)"
			 " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
	[ST_HELD_COUNT] = "SELECT count(*) FROM held WHERE peer = ?1",
	[ST_HELD_COUNT_ALL] = "SELECT count(*) FROM held",
	[ST_HELD_LIST] = "SELECT id, peer, 0, 5, sent_at, received_at, text FROM held"
			 " WHERE peer = ?1 ORDER BY seq",
	[ST_HELD_DROP] = "DELETE FROM held WHERE peer = ?1",
	[ST_GROUP_PUT] = "INSERT INTO groups (gid, name, admin, version, updated_at)"
			 " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (gid) DO UPDATE SET"
			 " name = excluded.name, admin = excluded.admin,"
			 " version = excluded.version, updated_at = excluded.updated_at",
	[ST_GROUP_CLEAR] = "DELETE FROM group_members WHERE gid = ?1",
	[ST_GROUP_MEMBER_ADD] = "INSERT INTO group_members (gid, username) VALUES (?1, ?2)",
	[ST_GROUP_GET] = "SELECT gid, name, admin, version FROM groups WHERE gid = ?1",
	[ST_GROUP_MEMBERS] = "SELECT username FROM group_members WHERE gid = ?1"
			     " ORDER BY username",
	[ST_GROUP_LIST] = "SELECT gid, name, admin, version FROM groups ORDER BY gid",
	[ST_GROUP_MSG_ADD] = "INSERT INTO group_msgs (id, gid) VALUES (?1, ?2)"
			     " ON CONFLICT (id) DO NOTHING",
	[ST_GROUP_MSG_GID] = "SELECT gid FROM group_msgs WHERE id = ?1",
	[ST_GROUP_MSG_LIST] = "SELECT * FROM (SELECT " MSG_COLS " FROM messages m"
			      " JOIN group_msgs g ON g.id = m.id WHERE g.gid = ?1"
			      " ORDER BY m.sent_at DESC, m.id DESC LIMIT ?2) ORDER BY sent_at, id",
	[ST_RCPT_SET] = "INSERT INTO group_rcpts (id, member, state) VALUES (?1, ?2, ?3)"
			" ON CONFLICT (id, member) DO UPDATE SET state = excluded.state"
			" WHERE excluded.state > group_rcpts.state",
	[ST_RCPT_GET] = "SELECT state FROM group_rcpts WHERE id = ?1 AND member = ?2",
	[ST_RCPT_COUNT] = "SELECT count(*), coalesce(sum(state >= 1), 0), coalesce(sum(state = 2), 0)"
			  " FROM group_rcpts WHERE id = ?1",
	[ST_RCPT_PENDING] = "SELECT member FROM group_rcpts WHERE id = ?1 AND state = 0"
			    " ORDER BY member",
	[ST_CALL_LIST] = "SELECT * FROM (SELECT id, peer, outgoing, started_at, answered_at,"
			 " ended_at, reason, mos, seq FROM calls ORDER BY seq DESC LIMIT ?1)"
			 " ORDER BY seq",
};

static const struct pn_db_spec cstore_db = {
	.label = "client store",
	.schema_version = CSTORE_SCHEMA_VERSION,
	.schema_sql = schema_sql,
	/* secure_delete: a deleted key-value secret or message is overwritten in the file
	 * rather than left in a free page. */
	.pragma_sql = "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON",
	.pragma_what = "setting pragmas",
	.stmt_sql = stmt_sql,
	.stmt_count = ST_COUNT,
};

struct pn_cstore {
	struct pn_db db;
};

static const char *const state_names[] = {
	[PN_MSG_QUEUED] = "queued", [PN_MSG_SENT] = "sent",	[PN_MSG_DELIVERED] = "delivered",
	[PN_MSG_READ] = "read",	    [PN_MSG_FAILED] = "failed", [PN_MSG_RECEIVED] = "received",
	[PN_MSG_STORED] = "stored", [PN_MSG_EXPIRED] = "expired",
};

const char *pn_msg_state_name(enum pn_msg_state st)
{
	if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[st];
}

/* Position of a state in its direction's order, or -1 if it does not belong to it.
 * Outgoing: queued < sent < stored < failed = expired < delivered < read. FAILED and
 * EXPIRED sit below DELIVERED because a receipt that arrives after we gave up is the
 * truth; nothing fails once delivered.
 * Incoming: received < read. */
static int state_rank(enum pn_msg_dir dir, enum pn_msg_state st)
{
	static const int out_rank[] = {
		[PN_MSG_QUEUED] = 0, [PN_MSG_SENT] = 1, [PN_MSG_STORED] = 2, [PN_MSG_FAILED] = 3,
		[PN_MSG_EXPIRED] = 3, [PN_MSG_DELIVERED] = 4, [PN_MSG_READ] = 5,
		[PN_MSG_RECEIVED] = -1,
	};

	if ((unsigned)st > PN_MSG_EXPIRED)
		return -1;
	if (dir == PN_MSG_OUT)
		return out_rank[st];
	if (dir == PN_MSG_IN)
		return st == PN_MSG_RECEIVED ? 0 : st == PN_MSG_READ ? 1 : -1;
	return -1;
}

/* Copies a 32-hex-digit id into out in lower case (the form pn_hex_encode writes), so
 * that an upper-case id from an API caller still finds and deduplicates the same row. */
static int norm_id(const char *id, char out[PN_MSG_ID_HEX + 1])
{
	if (!id || strnlen(id, PN_MSG_ID_HEX + 1) != PN_MSG_ID_HEX)
		return -EINVAL;
	for (int i = 0; i < PN_MSG_ID_HEX; i++) {
		char c = id[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
		out[i] = c;
	}
	out[PN_MSG_ID_HEX] = '\0';
	return 0;
}

/* Copies a text column into out[cap]; a value that does not fit means the file was not
 * written by us (the inserts check every length), so it is an I/O error, not truncation. */
static int col_str(const struct pn_cstore *s, sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!p || n + 1 > cap) {
		pn_err("client store %s: column %s is missing or longer than %zu bytes", s->db.path,
		       sqlite3_column_name(st, col), cap - 1);
		return -EIO;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int read_msg(const struct pn_cstore *s, sqlite3_stmt *st, struct pn_msg_row *m)
{
	int err;

	err = col_str(s, st, 0, m->id, sizeof(m->id));
	if (err)
		return err;
	err = col_str(s, st, 1, m->peer, sizeof(m->peer));
	if (err)
		return err;
	m->dir = (enum pn_msg_dir)sqlite3_column_int(st, 2);
	m->state = (enum pn_msg_state)sqlite3_column_int(st, 3);
	m->sent_at = (uint64_t)sqlite3_column_int64(st, 4);
	m->updated_at = (uint64_t)sqlite3_column_int64(st, 5);
	return col_str(s, st, 6, m->text, sizeof(m->text));
}

/* Steps a bound message query, handing each row to cb. A cb that returns non-zero stops
 * the walk; a negative value is passed back as the result. When query_syntax is set, a
 * plain SQLITE_ERROR is the FTS5 parser rejecting the caller's query: -EINVAL. */
static int each_msg(struct pn_cstore *s, sqlite3_stmt *st, const char *what, bool query_syntax,
		    int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	struct pn_msg_row m;
	int err = 0, rc, r;

	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			if (query_syntax && (rc & 0xff) == SQLITE_ERROR) {
				/* Quotes part of the query, so debug only: it is what the user
				 * searched their history for. */
				pn_dbg("client store %s: search query rejected: %s", s->db.path,
				       sqlite3_errmsg(s->db.conn));
				err = -EINVAL;
			} else {
				err = pn_db_fail(&s->db, what);
			}
			goto out;
		}
		memset(&m, 0, sizeof(m));
		err = read_msg(s, st, &m);
		if (err)
			goto out;
		r = cb(arg, &m);
		if (r) {
			err = r < 0 ? r : 0;
			goto out;
		}
	}
out:
	pn_db_done(st);
	return err;
}

/* Files made before the mailbox states (stored, expired) have a CHECK on messages.state
 * that refuses them: rebuild that table once (same rows, same seq, so the full-text index
 * still matches), then recreate its indexes and triggers from the schema. */
static int migrate_states(struct pn_cstore *s)
{
	sqlite3_stmt *st = NULL;
	bool old = false;
	char *err = NULL;

	if (sqlite3_prepare_v2(s->db.conn, "SELECT sql FROM sqlite_master WHERE name = 'messages'",
			       -1, &st, NULL) != SQLITE_OK)
		return pn_db_fail(&s->db, "reading the messages schema");
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		old = strstr((const char *)sqlite3_column_text(st, 0), "BETWEEN 0 AND 5") != NULL;
	sqlite3_finalize(st);
	if (!old)
		return 0;
	if (sqlite3_exec(s->db.conn,
			 "BEGIN IMMEDIATE;"
			 "CREATE TABLE messages_v2 ("
			 " seq INTEGER PRIMARY KEY,"
			 " id TEXT NOT NULL UNIQUE CHECK (length(id) = 32),"
			 " peer TEXT NOT NULL,"
			 " dir INTEGER NOT NULL CHECK (dir IN (0, 1)),"
			 " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 7),"
			 " sent_at INTEGER NOT NULL,"
			 " updated_at INTEGER NOT NULL,"
			 " text TEXT NOT NULL);"
			 "INSERT INTO messages_v2 SELECT seq, id, peer, dir, state, sent_at, updated_at,"
			 " text FROM messages;"
			 "DROP TABLE messages;"
			 "ALTER TABLE messages_v2 RENAME TO messages;",
			 NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(s->db.conn, cstore_db.schema_sql, NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(s->db.conn, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
		sqlite3_free(err);
		sqlite3_exec(s->db.conn, "ROLLBACK", NULL, NULL, NULL);
		return pn_db_fail(&s->db, "migrating messages to the mailbox states");
	}
	return 0;
}

int pn_cstore_open(struct pn_cstore **out, const char *path)
{
	struct pn_cstore *s;
	int err;

	if (!out || !path || !path[0])
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = pn_db_open(&s->db, path, &cstore_db);
	if (err) {
		free(s);
		return err;
	}
	err = migrate_states(s);
	if (err) {
		pn_cstore_free(s);
		return err;
	}
	*out = s;
	return 0;
}

void pn_cstore_free(struct pn_cstore *s)
{
	if (!s)
		return;
	pn_db_close(&s->db);
	free(s);
}

int pn_cstore_kv_get(struct pn_cstore *s, const char *key, void *buf, size_t cap, size_t *len)
{
	sqlite3_stmt *st;
	const void *p;
	size_t klen, n;
	int err;

	if (!s || (!buf && cap))
		return -EINVAL;
	klen = pn_db_text_len(key, PN_KV_KEY_MAX);
	if (!klen)
		return -EINVAL;
	st = s->db.st[ST_KV_GET];
	if (pn_db_bind_text(st, 1, key, klen)) {
		err = pn_db_fail(&s->db, "binding key");
		goto out;
	}
	err = pn_db_step_row(&s->db, st, "reading setting");
	if (err)
		goto out;
	p = sqlite3_column_blob(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	if (len)
		*len = n;
	if (n > cap) {
		err = -ENOSPC;
		goto out;
	}
	/* An empty blob comes back as NULL. */
	if (n)
		memcpy(buf, p, n);
out:
	pn_db_done(st);
	return err;
}

int pn_cstore_kv_set(struct pn_cstore *s, const char *key, const void *buf, size_t len)
{
	sqlite3_stmt *st;
	size_t klen;
	int err;

	if (!s || (!buf && len) || len > PN_KV_VALUE_MAX)
		return -EINVAL;
	klen = pn_db_text_len(key, PN_KV_KEY_MAX);
	if (!klen)
		return -EINVAL;
	st = s->db.st[ST_KV_SET];
	if (pn_db_bind_text(st, 1, key, klen) || pn_db_bind_blob(st, 2, buf, len))
		err = pn_db_fail(&s->db, "binding setting");
	else
		err = pn_db_step(&s->db, st, "writing setting");
	pn_db_done(st);
	return err;
}

int pn_cstore_kv_del(struct pn_cstore *s, const char *key)
{
	sqlite3_stmt *st;
	size_t klen;
	int err;

	if (!s)
		return -EINVAL;
	klen = pn_db_text_len(key, PN_KV_KEY_MAX);
	if (!klen)
		return -EINVAL;
	st = s->db.st[ST_KV_DEL];
	if (pn_db_bind_text(st, 1, key, klen))
		err = pn_db_fail(&s->db, "binding key");
	else
		err = pn_db_step_write(&s->db, st, "deleting setting", -ENOENT);
	pn_db_done(st);
	return err;
}

int pn_cstore_contact_add(struct pn_cstore *s, const char *username, uint64_t now_s)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !pn_db_u64_ok(now_s))
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_CONTACT_ADD];
	if (pn_db_bind_text(st, 1, username, ulen) || pn_db_bind_u64(st, 2, now_s))
		err = pn_db_fail(&s->db, "binding contact");
	else
		err = pn_db_step_write(&s->db, st, "adding contact", -EEXIST);
	pn_db_done(st);
	return err;
}

int pn_cstore_contact_remove(struct pn_cstore *s, const char *username)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s)
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_CONTACT_REMOVE];
	if (pn_db_bind_text(st, 1, username, ulen))
		err = pn_db_fail(&s->db, "binding contact");
	else
		err = pn_db_step_write(&s->db, st, "removing contact", -ENOENT);
	pn_db_done(st);
	return err;
}

bool pn_cstore_contact_has(struct pn_cstore *s, const char *username)
{
	sqlite3_stmt *st;
	bool found = false;
	size_t ulen;

	if (!s)
		return false;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return false;
	st = s->db.st[ST_CONTACT_HAS];
	if (pn_db_bind_text(st, 1, username, ulen))
		pn_db_fail(&s->db, "binding contact");
	else
		found = pn_db_step_row(&s->db, st, "looking up contact") == 0;
	pn_db_done(st);
	return found;
}

int pn_cstore_contact_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_contact_row *r),
			   void *arg)
{
	struct pn_contact_row r;
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_CONTACT_LIST];
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing contacts");
		if (err <= 0)
			break;
		memset(&r, 0, sizeof(r));
		err = col_str(s, st, 0, r.username, sizeof(r.username));
		if (err)
			break;
		r.added_at = (uint64_t)sqlite3_column_int64(st, 1);
		ret = cb(arg, &r);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_msg_insert(struct pn_cstore *s, const struct pn_msg_row *m)
{
	char id[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	size_t plen, tlen;
	int err;

	if (!s || !m || norm_id(m->id, id) < 0)
		return -EINVAL;
	plen = pn_db_text_len(m->peer, PN_USERNAME_MAX);
	tlen = strnlen(m->text, sizeof(m->text));
	if (!plen || tlen > PN_MSG_TEXT_MAX || state_rank(m->dir, m->state) < 0 ||
	    !pn_db_u64_ok(m->sent_at) || !pn_db_u64_ok(m->updated_at))
		return -EINVAL;
	st = s->db.st[ST_MSG_INSERT];
	/* ON CONFLICT DO NOTHING: a duplicate is an expected event (fan-out, mailbox and
	 * direct copies of one message), so -EEXIST and not an error worth a log line. */
	if (pn_db_bind_text(st, 1, id, PN_MSG_ID_HEX) || pn_db_bind_text(st, 2, m->peer, plen) ||
	    sqlite3_bind_int(st, 3, (int)m->dir) || sqlite3_bind_int(st, 4, (int)m->state) ||
	    pn_db_bind_u64(st, 5, m->sent_at) || pn_db_bind_u64(st, 6, m->updated_at) ||
	    pn_db_bind_text(st, 7, m->text, tlen))
		err = pn_db_fail(&s->db, "binding message");
	else
		err = pn_db_step_write(&s->db, st, "inserting message", -EEXIST);
	pn_db_done(st);
	return err;
}

/* Reads the direction and state of message id: 0, -ENOENT, -EIO. */
static int msg_get_state(struct pn_cstore *s, const char *id, enum pn_msg_dir *dir,
			 enum pn_msg_state *state)
{
	sqlite3_stmt *st = s->db.st[ST_MSG_GET_STATE];
	int err;

	if (pn_db_bind_text(st, 1, id, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding message id");
	else
		err = pn_db_step_row(&s->db, st, "reading message state");
	if (!err) {
		*dir = (enum pn_msg_dir)sqlite3_column_int(st, 0);
		*state = (enum pn_msg_state)sqlite3_column_int(st, 1);
	}
	pn_db_done(st);
	return err;
}

/* One compare-and-set attempt; *changed tells whether the row still had state old. */
static int msg_cas_state(struct pn_cstore *s, const char *id, enum pn_msg_state old,
			 enum pn_msg_state st_new, uint64_t now_ms, bool *changed)
{
	sqlite3_stmt *st = s->db.st[ST_MSG_SET_STATE];
	int err;

	if (pn_db_bind_text(st, 1, id, PN_MSG_ID_HEX) || sqlite3_bind_int(st, 2, (int)st_new) ||
	    pn_db_bind_u64(st, 3, now_ms) || sqlite3_bind_int(st, 4, (int)old))
		err = pn_db_fail(&s->db, "binding message state");
	else
		err = pn_db_step(&s->db, st, "updating message state");
	if (!err)
		*changed = sqlite3_changes(s->db.conn) != 0;
	pn_db_done(st);
	return err;
}

int pn_cstore_msg_set_state(struct pn_cstore *s, const char *id, enum pn_msg_state st,
			    uint64_t now_ms)
{
	char nid[PN_MSG_ID_HEX + 1];
	enum pn_msg_state cur;
	enum pn_msg_dir dir;
	bool changed = false;
	int err = 0, rank;

	if (!s || norm_id(id, nid) < 0 || (unsigned)st > PN_MSG_EXPIRED || !pn_db_u64_ok(now_ms))
		return -EINVAL;
	/* Another connection (a second process on the same file) could change the state
	 * between our read and our write; the compare-and-set notices and we decide again. */
	for (int i = 0; i < CSTORE_STATE_TRIES && !changed; i++) {
		err = msg_get_state(s, nid, &dir, &cur);
		if (err)
			goto out;
		rank = state_rank(dir, st);
		if (rank < 0) {
			err = -EINVAL;
			goto out;
		}
		/* SENT -> QUEUED is the one step back: a message whose recipient stayed
		 * unreachable waits for a slow retry, and the history must say so. */
		if (rank <= state_rank(dir, cur) &&
		    !(dir == PN_MSG_OUT && cur == PN_MSG_SENT && st == PN_MSG_QUEUED)) {
			err = -EALREADY;
			goto out;
		}
		err = msg_cas_state(s, nid, cur, st, now_ms, &changed);
		if (err)
			goto out;
	}
	if (!changed) {
		pn_warn("client store %s: state of message %s kept changing under us", s->db.path,
			nid);
		err = -EIO;
	}
out:
	return err;
}

int pn_cstore_msg_get(struct pn_cstore *s, const char *id, struct pn_msg_row *out)
{
	char nid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !out || norm_id(id, nid) < 0)
		return -EINVAL;
	st = s->db.st[ST_MSG_GET];
	if (pn_db_bind_text(st, 1, nid, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding message id");
	else
		err = pn_db_step_row(&s->db, st, "reading message");
	if (!err) {
		memset(out, 0, sizeof(*out));
		err = read_msg(s, st, out);
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_msg_list(struct pn_cstore *s, const char *peer, unsigned limit,
		       int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	sqlite3_stmt *st;
	size_t plen;

	if (!s || !cb)
		return -EINVAL;
	plen = pn_db_text_len(peer, PN_USERNAME_MAX);
	if (!plen)
		return -EINVAL;
	st = s->db.st[ST_MSG_LIST];
	if (pn_db_bind_text(st, 1, peer, plen) || pn_db_bind_u64(st, 2, limit)) {
		pn_db_done(st);
		return pn_db_fail(&s->db, "binding message list");
	}
	return each_msg(s, st, "listing messages", false, cb, arg);
}

int pn_cstore_msg_pending(struct pn_cstore *s, unsigned limit,
			  int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	sqlite3_stmt *st;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_MSG_PENDING];
	if (pn_db_bind_u64(st, 1, limit)) {
		pn_db_done(st);
		return pn_db_fail(&s->db, "binding pending list");
	}
	return each_msg(s, st, "listing pending messages", false, cb, arg);
}

int pn_cstore_msg_search(struct pn_cstore *s, const char *query, unsigned limit,
			 int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	sqlite3_stmt *st;
	size_t qlen;

	if (!s || !cb)
		return -EINVAL;
	qlen = pn_db_text_len(query, PN_SEARCH_QUERY_MAX);
	if (!qlen)
		return -EINVAL;
	st = s->db.st[ST_MSG_SEARCH];
	if (pn_db_bind_text(st, 1, query, qlen) || pn_db_bind_u64(st, 2, limit)) {
		pn_db_done(st);
		return pn_db_fail(&s->db, "binding search");
	}
	return each_msg(s, st, "searching messages", true, cb, arg);
}

int pn_cstore_host_upsert(struct pn_cstore *s, const struct pn_host_row *h)
{
	sqlite3_stmt *st;
	size_t alen;
	int err;

	if (!s || !h || !pn_db_u64_ok(h->last_seen))
		return -EINVAL;
	alen = pn_db_text_len(h->addr, sizeof(h->addr) - 1);
	if (!alen)
		return -EINVAL;
	st = s->db.st[ST_HOST_UPSERT];
	if (pn_db_bind_text(st, 1, h->addr, alen) ||
	    pn_db_bind_blob(st, 2, h->key, CSTORE_HOST_KEY_LEN) ||
	    pn_db_bind_u64(st, 3, h->last_seen) || pn_db_bind_u64(st, 4, h->rtt_ms))
		err = pn_db_fail(&s->db, "binding host");
	else
		err = pn_db_step(&s->db, st, "writing host");
	pn_db_done(st);
	if (err)
		return err;
	/* Evicting after every insert keeps the table at the cap; if we crash in between,
	 * the next upsert removes the surplus too. The new row itself goes if it is the
	 * oldest, which is the rule. */
	st = s->db.st[ST_HOST_EVICT];
	if (sqlite3_bind_int(st, 1, PN_HOST_CACHE_MAX))
		err = pn_db_fail(&s->db, "binding host eviction");
	else
		err = pn_db_step(&s->db, st, "evicting hosts");
	pn_db_done(st);
	return err;
}

int pn_cstore_host_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_host_row *h),
			void *arg)
{
	struct pn_host_row h;
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_HOST_LIST];
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing hosts");
		if (err <= 0)
			break;
		memset(&h, 0, sizeof(h));
		err = col_str(s, st, 0, h.addr, sizeof(h.addr));
		if (err)
			break;
		if (sqlite3_column_bytes(st, 1) != CSTORE_HOST_KEY_LEN) {
			pn_err("client store %s: host %s has a key of the wrong size", s->db.path,
			       h.addr);
			err = -EIO;
			break;
		}
		memcpy(h.key, sqlite3_column_blob(st, 1), CSTORE_HOST_KEY_LEN);
		h.last_seen = (uint64_t)sqlite3_column_int64(st, 2);
		h.rtt_ms = (uint32_t)sqlite3_column_int64(st, 3);
		ret = cb(arg, &h);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_call_insert(struct pn_cstore *s, const struct pn_call_row *c)
{
	sqlite3_stmt *st;
	size_t plen, rlen;
	int err;

	if (!s || !c || strlen(c->id) != PN_MSG_ID_HEX || !pn_db_u64_ok(c->started_at) ||
	    !pn_db_u64_ok(c->answered_at) || !pn_db_u64_ok(c->ended_at))
		return -EINVAL;
	plen = pn_db_text_len(c->peer, sizeof(c->peer) - 1);
	rlen = pn_db_text_len(c->reason, sizeof(c->reason) - 1);
	if (!plen || !rlen)
		return -EINVAL;
	st = s->db.st[ST_CALL_INSERT];
	if (pn_db_bind_text(st, 1, c->id, PN_MSG_ID_HEX) || pn_db_bind_text(st, 2, c->peer, plen) ||
	    sqlite3_bind_int(st, 3, c->outgoing ? 1 : 0) || pn_db_bind_u64(st, 4, c->started_at) ||
	    pn_db_bind_u64(st, 5, c->answered_at) || pn_db_bind_u64(st, 6, c->ended_at) ||
	    pn_db_bind_text(st, 7, c->reason, rlen) || sqlite3_bind_double(st, 8, c->mos))
		err = pn_db_fail(&s->db, "binding call");
	else
		err = pn_db_step(&s->db, st, "writing call");
	pn_db_done(st);
	return err;
}

int pn_cstore_call_list(struct pn_cstore *s, unsigned limit,
			int (*cb)(void *arg, const struct pn_call_row *c), void *arg)
{
	struct pn_call_row c;
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb || limit == 0)
		return -EINVAL;
	st = s->db.st[ST_CALL_LIST];
	if (sqlite3_bind_int(st, 1, (int)limit)) {
		err = pn_db_fail(&s->db, "binding call list");
		pn_db_done(st);
		return err;
	}
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing calls");
		if (err <= 0)
			break;
		memset(&c, 0, sizeof(c));
		err = col_str(s, st, 0, c.id, sizeof(c.id));
		if (!err)
			err = col_str(s, st, 1, c.peer, sizeof(c.peer));
		if (!err)
			err = col_str(s, st, 6, c.reason, sizeof(c.reason));
		if (err)
			break;
		c.outgoing = sqlite3_column_int(st, 2) != 0;
		c.started_at = (uint64_t)sqlite3_column_int64(st, 3);
		c.answered_at = (uint64_t)sqlite3_column_int64(st, 4);
		c.ended_at = (uint64_t)sqlite3_column_int64(st, 5);
		c.mos = sqlite3_column_double(st, 7);
		ret = cb(arg, &c);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_rel_set(struct pn_cstore *s, const char *username, enum pn_rel_kind kind,
		      const char *note, uint64_t at)
{
	sqlite3_stmt *st;
	size_t ulen, nlen;
	int err;

	if (!s || !note || kind < PN_REL_REQUEST_IN || kind > PN_REL_BLOCKED || !pn_db_u64_ok(at))
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	nlen = strlen(note);
	if (!ulen || nlen > PN_REL_NOTE_MAX)
		return -EINVAL;
	st = s->db.st[ST_REL_SET];
	if (pn_db_bind_text(st, 1, username, ulen) || sqlite3_bind_int(st, 2, (int)kind) ||
	    sqlite3_bind_text(st, 3, note, (int)nlen, SQLITE_STATIC) || pn_db_bind_u64(st, 4, at))
		err = pn_db_fail(&s->db, "binding contact relation");
	else
		err = pn_db_step(&s->db, st, "writing contact relation");
	pn_db_done(st);
	return err;
}

int pn_cstore_rel_get(struct pn_cstore *s, const char *username, struct pn_rel_row *out)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !out)
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_REL_GET];
	if (pn_db_bind_text(st, 1, username, ulen)) {
		err = pn_db_fail(&s->db, "binding contact relation");
	} else {
		err = pn_db_step_row(&s->db, st, "reading contact relation");
		if (err == 0) {
			memset(out, 0, sizeof(*out));
			memcpy(out->username, username, ulen);
			out->kind = (enum pn_rel_kind)sqlite3_column_int(st, 0);
			err = col_str(s, st, 1, out->note, sizeof(out->note));
			out->at = (uint64_t)sqlite3_column_int64(st, 2);
		}
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_rel_del(struct pn_cstore *s, const char *username)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s)
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_REL_DEL];
	if (pn_db_bind_text(st, 1, username, ulen))
		err = pn_db_fail(&s->db, "binding contact relation");
	else
		err = pn_db_step_write(&s->db, st, "deleting contact relation", -ENOENT);
	pn_db_done(st);
	return err;
}

int pn_cstore_rel_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_rel_row *r),
		       void *arg)
{
	struct pn_rel_row r;
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_REL_LIST];
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing contact relations");
		if (err <= 0)
			break;
		memset(&r, 0, sizeof(r));
		err = col_str(s, st, 0, r.username, sizeof(r.username));
		if (!err)
			err = col_str(s, st, 2, r.note, sizeof(r.note));
		if (err)
			break;
		r.kind = (enum pn_rel_kind)sqlite3_column_int(st, 1);
		r.at = (uint64_t)sqlite3_column_int64(st, 3);
		ret = cb(arg, &r);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}

/* ---- held messages (from non-contacts) ----------------------------------------------- */

int pn_cstore_held_add(struct pn_cstore *s, const struct pn_msg_row *m)
{
	char id[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	size_t plen, tlen;
	int err;

	if (!s || !m || norm_id(m->id, id) < 0)
		return -EINVAL;
	plen = pn_db_text_len(m->peer, PN_USERNAME_MAX);
	tlen = strnlen(m->text, sizeof(m->text));
	if (!plen || tlen > PN_MSG_TEXT_MAX || !pn_db_u64_ok(m->sent_at) ||
	    !pn_db_u64_ok(m->updated_at))
		return -EINVAL;
	st = s->db.st[ST_HELD_ADD];
	if (pn_db_bind_text(st, 1, id, PN_MSG_ID_HEX) || pn_db_bind_text(st, 2, m->peer, plen) ||
	    pn_db_bind_u64(st, 3, m->sent_at) || pn_db_bind_u64(st, 4, m->updated_at) ||
	    pn_db_bind_text(st, 5, m->text, tlen))
		err = pn_db_fail(&s->db, "binding held message");
	else
		err = pn_db_step_write(&s->db, st, "holding message", -EEXIST);
	pn_db_done(st);
	return err;
}

int pn_cstore_held_count(struct pn_cstore *s, const char *peer, unsigned *n)
{
	sqlite3_stmt *st;
	size_t plen = 0;
	int err;

	if (!s || !n)
		return -EINVAL;
	if (peer) {
		plen = pn_db_text_len(peer, PN_USERNAME_MAX);
		if (!plen)
			return -EINVAL;
	}
	st = s->db.st[peer ? ST_HELD_COUNT : ST_HELD_COUNT_ALL];
	if (peer && pn_db_bind_text(st, 1, peer, plen))
		err = pn_db_fail(&s->db, "binding held count");
	else
		err = pn_db_step_row(&s->db, st, "counting held messages");
	if (!err)
		*n = (unsigned)sqlite3_column_int64(st, 0);
	pn_db_done(st);
	return err;
}

int pn_cstore_held_list(struct pn_cstore *s, const char *peer,
			int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	sqlite3_stmt *st;
	size_t plen;

	if (!s || !cb)
		return -EINVAL;
	plen = pn_db_text_len(peer, PN_USERNAME_MAX);
	if (!plen)
		return -EINVAL;
	st = s->db.st[ST_HELD_LIST];
	if (pn_db_bind_text(st, 1, peer, plen)) {
		pn_db_done(st);
		return pn_db_fail(&s->db, "binding held list");
	}
	return each_msg(s, st, "listing held messages", false, cb, arg);
}

int pn_cstore_held_drop(struct pn_cstore *s, const char *peer)
{
	sqlite3_stmt *st;
	size_t plen;
	int err;

	if (!s)
		return -EINVAL;
	plen = pn_db_text_len(peer, PN_USERNAME_MAX);
	if (!plen)
		return -EINVAL;
	st = s->db.st[ST_HELD_DROP];
	if (pn_db_bind_text(st, 1, peer, plen))
		err = pn_db_fail(&s->db, "binding held drop");
	else
		err = pn_db_step(&s->db, st, "dropping held messages");
	pn_db_done(st);
	return err;
}

int pn_cstore_msg_since(struct pn_cstore *s, uint64_t after, unsigned limit,
			int (*cb)(void *arg, uint64_t seq, const struct pn_msg_row *m), void *arg)
{
	struct pn_msg_row *m;
	sqlite3_stmt *st;
	int err = 0, rc, r;

	if (!s || !cb || !pn_db_u64_ok(after))
		return -EINVAL;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	st = s->db.st[ST_MSG_SINCE];
	if (pn_db_bind_u64(st, 1, after) || pn_db_bind_u64(st, 2, limit)) {
		err = pn_db_fail(&s->db, "binding message walk");
		goto out;
	}
	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			err = pn_db_fail(&s->db, "walking messages");
			break;
		}
		memset(m, 0, sizeof(*m));
		err = read_msg(s, st, m);
		if (err)
			break;
		r = cb(arg, (uint64_t)sqlite3_column_int64(st, 7), m);
		if (r) {
			err = r < 0 ? r : 0;
			break;
		}
	}
out:
	pn_db_done(st);
	free(m);
	return err;
}

/* ---- revoked devices ---------------------------------------------------------------- */

int pn_cstore_revoked_add(struct pn_cstore *s, const uint8_t device_id[16], const char *username,
			  uint64_t revoked_at, const uint8_t *notice, size_t len)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || !device_id || !notice || !len || len > 1024 || !pn_db_u64_ok(revoked_at))
		return -EINVAL;
	ulen = pn_db_text_len(username, 64);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_REVOKED_ADD];
	if (sqlite3_bind_blob(st, 1, device_id, 16, SQLITE_STATIC) ||
	    pn_db_bind_text(st, 2, username, ulen) || pn_db_bind_u64(st, 3, revoked_at) ||
	    sqlite3_bind_blob(st, 4, notice, (int)len, SQLITE_STATIC))
		err = pn_db_fail(&s->db, "binding revocation");
	else
		err = pn_db_step_write(&s->db, st, "storing revocation", -EEXIST);
	pn_db_done(st);
	return err;
}

bool pn_cstore_revoked_has(struct pn_cstore *s, const uint8_t device_id[16])
{
	sqlite3_stmt *st;
	int err;

	if (!s || !device_id)
		return false;
	st = s->db.st[ST_REVOKED_HAS];
	if (sqlite3_bind_blob(st, 1, device_id, 16, SQLITE_STATIC))
		err = pn_db_fail(&s->db, "binding revocation");
	else
		err = pn_db_step_row(&s->db, st, "reading revocation");
	pn_db_done(st);
	return err == 0;
}

int pn_cstore_revoked_list(struct pn_cstore *s, const char *username, uint64_t since,
			   int (*cb)(void *arg, const uint8_t *notice, size_t len), void *arg)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err, ret;

	if (!s || !cb || !pn_db_u64_ok(since))
		return -EINVAL;
	ulen = pn_db_text_len(username, 64);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_REVOKED_LIST];
	if (pn_db_bind_text(st, 1, username, ulen) || pn_db_bind_u64(st, 2, since)) {
		pn_db_done(st);
		return pn_db_fail(&s->db, "binding revocation list");
	}
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing revocations");
		if (err <= 0)
			break;
		ret = cb(arg, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}

/* ---- group chats ---------------------------------------------------------------------- */

static int exec_simple(struct pn_cstore *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db.conn, sql, NULL, NULL, NULL) != SQLITE_OK)
		return pn_db_fail(&s->db, what);
	return 0;
}

int pn_cstore_group_put(struct pn_cstore *s, const struct pn_group *g, uint64_t now_ms)
{
	char gid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !g || pn_group_check(g) || !pn_db_u64_ok(now_ms))
		return -EINVAL;
	pn_hex_encode(gid, sizeof(gid), g->id, PN_GROUP_ID_LEN);
	/* one transaction: a crash never leaves half a member list */
	err = exec_simple(s, "BEGIN IMMEDIATE", "beginning group update");
	if (err)
		return err;
	st = s->db.st[ST_GROUP_PUT];
	if (pn_db_bind_text(st, 1, gid, PN_MSG_ID_HEX) ||
	    pn_db_bind_text(st, 2, g->name, strlen(g->name)) ||
	    pn_db_bind_text(st, 3, g->admin, strlen(g->admin)) ||
	    pn_db_bind_u64(st, 4, g->version) || pn_db_bind_u64(st, 5, now_ms))
		err = pn_db_fail(&s->db, "binding group");
	else
		err = pn_db_step(&s->db, st, "writing group");
	pn_db_done(st);
	if (err)
		goto out;
	st = s->db.st[ST_GROUP_CLEAR];
	if (pn_db_bind_text(st, 1, gid, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding group");
	else
		err = pn_db_step(&s->db, st, "clearing group members");
	pn_db_done(st);
	for (unsigned i = 0; !err && i < g->n; i++) {
		st = s->db.st[ST_GROUP_MEMBER_ADD];
		if (pn_db_bind_text(st, 1, gid, PN_MSG_ID_HEX) ||
		    pn_db_bind_text(st, 2, g->members[i], strlen(g->members[i])))
			err = pn_db_fail(&s->db, "binding group member");
		else
			err = pn_db_step(&s->db, st, "writing group member");
		pn_db_done(st);
	}
out:
	if (err) {
		sqlite3_exec(s->db.conn, "ROLLBACK", NULL, NULL, NULL);
		return err;
	}
	return exec_simple(s, "COMMIT", "committing group update");
}

/* Reads the group row st is on (gid, name, admin, version) and its members. */
static int read_group(struct pn_cstore *s, sqlite3_stmt *st, struct pn_group *g)
{
	char gid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *ms = s->db.st[ST_GROUP_MEMBERS];
	int err;

	memset(g, 0, sizeof(*g));
	err = col_str(s, st, 0, gid, sizeof(gid));
	if (!err && pn_hex_decode(g->id, PN_GROUP_ID_LEN, gid))
		err = -EIO;
	if (!err)
		err = col_str(s, st, 1, g->name, sizeof(g->name));
	if (!err)
		err = col_str(s, st, 2, g->admin, sizeof(g->admin));
	if (err)
		return err;
	g->version = (uint32_t)sqlite3_column_int64(st, 3);
	if (pn_db_bind_text(ms, 1, gid, PN_MSG_ID_HEX)) {
		err = pn_db_fail(&s->db, "binding group");
		goto out;
	}
	for (;;) {
		err = pn_db_step_next(&s->db, ms, "reading group members");
		if (err <= 0)
			break;
		if (g->n >= PN_GROUP_MEMBERS_MAX) {
			err = -EIO;
			break;
		}
		err = col_str(s, ms, 0, g->members[g->n], sizeof(g->members[0]));
		if (err)
			break;
		g->n++;
	}
out:
	pn_db_done(ms);
	return err;
}

int pn_cstore_group_get(struct pn_cstore *s, const uint8_t gid[16], struct pn_group *out)
{
	char hex[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !gid || !out)
		return -EINVAL;
	pn_hex_encode(hex, sizeof(hex), gid, PN_GROUP_ID_LEN);
	st = s->db.st[ST_GROUP_GET];
	if (pn_db_bind_text(st, 1, hex, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding group");
	else
		err = pn_db_step_row(&s->db, st, "reading group");
	if (!err)
		err = read_group(s, st, out);
	pn_db_done(st);
	return err;
}

int pn_cstore_group_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_group *g),
			 void *arg)
{
	struct pn_group *g;
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	st = s->db.st[ST_GROUP_LIST];
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing groups");
		if (err <= 0)
			break;
		err = read_group(s, st, g);
		if (err)
			break;
		ret = cb(arg, g);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	free(g);
	return err;
}

int pn_cstore_group_msg_add(struct pn_cstore *s, const char *id, const uint8_t gid[16])
{
	char nid[PN_MSG_ID_HEX + 1], hex[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !gid || norm_id(id, nid) < 0)
		return -EINVAL;
	pn_hex_encode(hex, sizeof(hex), gid, PN_GROUP_ID_LEN);
	st = s->db.st[ST_GROUP_MSG_ADD];
	if (pn_db_bind_text(st, 1, nid, PN_MSG_ID_HEX) || pn_db_bind_text(st, 2, hex, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding group message");
	else
		err = pn_db_step_write(&s->db, st, "writing group message", -EEXIST);
	pn_db_done(st);
	return err;
}

int pn_cstore_group_msg_gid(struct pn_cstore *s, const char *id, uint8_t gid[16])
{
	char nid[PN_MSG_ID_HEX + 1], hex[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !gid || norm_id(id, nid) < 0)
		return -EINVAL;
	st = s->db.st[ST_GROUP_MSG_GID];
	if (pn_db_bind_text(st, 1, nid, PN_MSG_ID_HEX))
		err = pn_db_fail(&s->db, "binding group message");
	else
		err = pn_db_step_row(&s->db, st, "reading group message");
	if (!err)
		err = col_str(s, st, 0, hex, sizeof(hex));
	if (!err && pn_hex_decode(gid, PN_GROUP_ID_LEN, hex))
		err = -EIO;
	pn_db_done(st);
	return err;
}

int pn_cstore_group_msg_list(struct pn_cstore *s, const uint8_t gid[16], unsigned limit,
			     int (*cb)(void *arg, const struct pn_msg_row *m), void *arg)
{
	char hex[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;

	if (!s || !gid || !cb)
		return -EINVAL;
	pn_hex_encode(hex, sizeof(hex), gid, PN_GROUP_ID_LEN);
	st = s->db.st[ST_GROUP_MSG_LIST];
	if (pn_db_bind_text(st, 1, hex, PN_MSG_ID_HEX) || sqlite3_bind_int64(st, 2, limit)) {
		int err = pn_db_fail(&s->db, "binding group history");
		pn_db_done(st);
		return err;
	}
	return each_msg(s, st, "listing group history", false, cb, arg);
}

static int bind_rcpt(struct pn_cstore *s, sqlite3_stmt *st, const char *id, const char *member,
		     char nid[PN_MSG_ID_HEX + 1])
{
	size_t mlen;

	if (norm_id(id, nid) < 0)
		return -EINVAL;
	mlen = member ? pn_db_text_len(member, PN_USERNAME_MAX) : 0;
	if (member && !mlen)
		return -EINVAL;
	if (pn_db_bind_text(st, 1, nid, PN_MSG_ID_HEX) ||
	    (member && pn_db_bind_text(st, 2, member, mlen)))
		return pn_db_fail(&s->db, "binding group receipt");
	return 0;
}

int pn_cstore_group_rcpt_set(struct pn_cstore *s, const char *id, const char *member,
			     enum pn_rcpt_state rs)
{
	char nid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !member || (unsigned)rs > PN_RCPT_READ)
		return -EINVAL;
	st = s->db.st[ST_RCPT_SET];
	err = bind_rcpt(s, st, id, member, nid);
	if (!err && sqlite3_bind_int(st, 3, (int)rs))
		err = pn_db_fail(&s->db, "binding group receipt");
	if (!err)
		err = pn_db_step(&s->db, st, "writing group receipt");
	pn_db_done(st);
	return err;
}

int pn_cstore_group_rcpt_get(struct pn_cstore *s, const char *id, const char *member,
			     enum pn_rcpt_state *rs)
{
	char nid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !member || !rs)
		return -EINVAL;
	st = s->db.st[ST_RCPT_GET];
	err = bind_rcpt(s, st, id, member, nid);
	if (!err)
		err = pn_db_step_row(&s->db, st, "reading group receipt");
	if (!err)
		*rs = (enum pn_rcpt_state)sqlite3_column_int(st, 0);
	pn_db_done(st);
	return err;
}

int pn_cstore_group_rcpt_count(struct pn_cstore *s, const char *id, unsigned *total,
			       unsigned *delivered, unsigned *read)
{
	char nid[PN_MSG_ID_HEX + 1];
	sqlite3_stmt *st;
	int err;

	if (!s || !total || !delivered || !read)
		return -EINVAL;
	st = s->db.st[ST_RCPT_COUNT];
	err = bind_rcpt(s, st, id, NULL, nid);
	if (!err)
		err = pn_db_step_row(&s->db, st, "counting group receipts");
	if (!err) {
		*total = (unsigned)sqlite3_column_int(st, 0);
		*delivered = (unsigned)sqlite3_column_int(st, 1);
		*read = (unsigned)sqlite3_column_int(st, 2);
	}
	pn_db_done(st);
	return err;
}

int pn_cstore_group_rcpt_pending(struct pn_cstore *s, const char *id,
				 int (*cb)(void *arg, const char *member), void *arg)
{
	char nid[PN_MSG_ID_HEX + 1], member[PN_USERNAME_MAX + 1];
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_RCPT_PENDING];
	err = bind_rcpt(s, st, id, NULL, nid);
	while (!err) {
		err = pn_db_step_next(&s->db, st, "listing group receipts");
		if (err <= 0)
			break;
		err = col_str(s, st, 0, member, sizeof(member));
		if (err)
			break;
		ret = cb(arg, member);
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}
/* ---- contact-list sync ---------------------------------------------------------------- */

int pn_cstore_csync_set(struct pn_cstore *s, const char *username, int state, uint64_t at)
{
	sqlite3_stmt *st;
	size_t ulen;
	int err;

	if (!s || state < 1 || state > 3 || !pn_db_u64_ok(at))
		return -EINVAL;
	ulen = pn_db_text_len(username, PN_USERNAME_MAX);
	if (!ulen)
		return -EINVAL;
	st = s->db.st[ST_CSYNC_SET];
	if (pn_db_bind_text(st, 1, username, ulen) || sqlite3_bind_int(st, 2, state) ||
	    pn_db_bind_u64(st, 3, at))
		err = pn_db_fail(&s->db, "binding contact sync");
	else
		err = pn_db_step(&s->db, st, "writing contact sync");
	if (!err && sqlite3_changes(s->db.conn) == 0)
		err = -EALREADY;
	pn_db_done(st);
	return err;
}

int pn_cstore_csync_list(struct pn_cstore *s,
			 int (*cb)(void *arg, const char *username, int state, uint64_t at), void *arg)
{
	char user[PN_USERNAME_MAX + 1];
	sqlite3_stmt *st;
	int err, ret;

	if (!s || !cb)
		return -EINVAL;
	st = s->db.st[ST_CSYNC_LIST];
	for (;;) {
		err = pn_db_step_next(&s->db, st, "listing contact sync");
		if (err <= 0)
			break;
		err = col_str(s, st, 0, user, sizeof(user));
		if (err)
			break;
		ret = cb(arg, user, sqlite3_column_int(st, 1), (uint64_t)sqlite3_column_int64(st, 2));
		if (ret) {
			err = ret < 0 ? ret : 0;
			break;
		}
	}
	pn_db_done(st);
	return err;
}
