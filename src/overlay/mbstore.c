/* The supernode's mailbox entries (see mbstore.h). Mailboxes hang off 256 hash chains by
 * owner; entries of one mailbox are a list in arrival order, which is the order a fetch
 * returns them in. */
#include "overlay/mbstore.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/db.h"

enum { MBS_BUCKETS = 256 };

struct mbs_ent {
	struct mbs_ent *next;
	struct pn_mbs_entry e;
	char sender[65];
	uint8_t *buf;
	uint8_t pass[PN_MBS_PASS_LEN];
};

struct mbs_tomb {
	uint8_t id[16];
	uint64_t until;
};

struct mbs_box {
	struct mbs_box *next;
	char owner[65];
	struct mbs_ent *head, **tail;
	size_t n_contact, n_req, bytes_contact;
	struct mbs_tomb *tombs;
	size_t n_tombs;
	struct { uint8_t dev[16], pk[32], raw[255]; uint8_t raw_len; } certs[PN_MBS_OWNER_CERTS];
	unsigned n_certs;
	struct { uint8_t dev[16]; uint64_t ts; } acks[PN_MBS_OWNER_CERTS];
	unsigned n_acks;
};

struct pn_mbstore {
	struct mbs_box *b[MBS_BUCKETS];
	struct pn_mbs_stats st;
	struct pn_db db;  /* write-through copy, when persistent */
	bool persistent, loading;
};

/* ---- the SQLite copy (pn_mbstore_open_db) ---- */

enum { ST_ENT_PUT, ST_ENT_DEL, ST_ENT_EXPIRE, ST_ENT_ALL, ST_TOMB_PUT, ST_TOMB_EXPIRE, ST_TOMB_ALL,
       ST_OWNER_PUT, ST_OWNER_ALL, ST_MBS_COUNT };

static const char mbs_schema[] =
	"CREATE TABLE IF NOT EXISTS entries ("
	" seq INTEGER PRIMARY KEY, owner TEXT NOT NULL, id BLOB NOT NULL, to_dev BLOB NOT NULL,"
	" expires INTEGER NOT NULL, contact INTEGER NOT NULL, sender TEXT NOT NULL,"
	" env BLOB NOT NULL, pass BLOB, UNIQUE (owner, id));"
	"CREATE TABLE IF NOT EXISTS tombs ("
	" owner TEXT NOT NULL, id BLOB NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (owner, id))"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS owners ("
	" owner TEXT NOT NULL, dev BLOB NOT NULL, pk BLOB NOT NULL, cert BLOB,"
	" PRIMARY KEY (owner, dev)) WITHOUT ROWID;";

static const char *const mbs_stmts[] = {
	[ST_ENT_PUT] = "INSERT OR IGNORE INTO entries (owner, id, to_dev, expires, contact, sender,"
		       " env, pass) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_ENT_DEL] = "DELETE FROM entries WHERE owner = ?1 AND id = ?2",
	[ST_ENT_EXPIRE] = "DELETE FROM entries WHERE expires <= ?1",
	[ST_ENT_ALL] = "SELECT owner, id, to_dev, expires, contact, sender, env, pass FROM entries"
		       " ORDER BY seq",
	[ST_TOMB_PUT] = "INSERT OR REPLACE INTO tombs (owner, id, until) VALUES (?1, ?2, ?3)",
	[ST_TOMB_EXPIRE] = "DELETE FROM tombs WHERE until <= ?1",
	[ST_TOMB_ALL] = "SELECT owner, id, until FROM tombs",
	[ST_OWNER_PUT] = "INSERT OR REPLACE INTO owners (owner, dev, pk, cert) VALUES (?1, ?2, ?3, ?4)",
	[ST_OWNER_ALL] = "SELECT owner, dev, pk, cert FROM owners",
};

static const struct pn_db_spec mbs_db = {
	.label = "mailbox store",
	.schema_version = 1,
	.schema_sql = mbs_schema,
	/* a crash loses at most the last commits before a checkpoint, never the file */
	.pragma_sql = "PRAGMA synchronous = NORMAL",
	.pragma_what = "setting pragmas",
	.stmt_sql = mbs_stmts,
	.stmt_count = ST_MBS_COUNT,
};

/* Runs statement i with the bindings done by the caller; failures are logged by pn_db. */
static void db_run(struct pn_mbstore *s, int i, const char *what)
{
	pn_db_step(&s->db, s->db.st[i], what);
	pn_db_done(s->db.st[i]);
}

static void db_entry_put(struct pn_mbstore *s, const char *owner, const struct pn_mbs_entry *e,
			 const char *sender)
{
	sqlite3_stmt *st;

	if (!s->persistent || s->loading)
		return;
	st = s->db.st[ST_ENT_PUT];
	if (pn_db_bind_text(st, 1, owner, strlen(owner)) || pn_db_bind_blob(st, 2, e->id, 16) ||
	    pn_db_bind_blob(st, 3, e->to_dev, 16) || pn_db_bind_u64(st, 4, e->expires) ||
	    sqlite3_bind_int(st, 5, e->contact) || pn_db_bind_text(st, 6, sender, strlen(sender)) ||
	    pn_db_bind_blob(st, 7, e->env, e->len) ||
	    (e->pass ? pn_db_bind_blob(st, 8, e->pass, PN_MBS_PASS_LEN) : sqlite3_bind_null(st, 8))) {
		pn_db_done(st);
		return;
	}
	db_run(s, ST_ENT_PUT, "storing a mailbox entry");
}

static void db_entry_del(struct pn_mbstore *s, const char *owner, const uint8_t id[16])
{
	sqlite3_stmt *st;

	if (!s->persistent)
		return;
	st = s->db.st[ST_ENT_DEL];
	if (pn_db_bind_text(st, 1, owner, strlen(owner)) || pn_db_bind_blob(st, 2, id, 16)) {
		pn_db_done(st);
		return;
	}
	db_run(s, ST_ENT_DEL, "deleting a mailbox entry");
}

static void db_tomb_put(struct pn_mbstore *s, const char *owner, const uint8_t id[16], uint64_t until)
{
	sqlite3_stmt *st;

	if (!s->persistent || s->loading || !pn_db_u64_ok(until))
		return;
	st = s->db.st[ST_TOMB_PUT];
	if (pn_db_bind_text(st, 1, owner, strlen(owner)) || pn_db_bind_blob(st, 2, id, 16) ||
	    pn_db_bind_u64(st, 3, until)) {
		pn_db_done(st);
		return;
	}
	db_run(s, ST_TOMB_PUT, "storing a tombstone");
}

static void db_owner_put(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			 const uint8_t pk[32], const uint8_t *cert, size_t cert_len)
{
	sqlite3_stmt *st;

	if (!s->persistent || s->loading)
		return;
	st = s->db.st[ST_OWNER_PUT];
	if (pn_db_bind_text(st, 1, owner, strlen(owner)) || pn_db_bind_blob(st, 2, dev, 16) ||
	    pn_db_bind_blob(st, 3, pk, 32) ||
	    (cert ? pn_db_bind_blob(st, 4, cert, cert_len) : sqlite3_bind_null(st, 4))) {
		pn_db_done(st);
		return;
	}
	db_run(s, ST_OWNER_PUT, "storing an owner key");
}

static unsigned bucket_of(const char *owner)
{
	uint8_t h[8];

	crypto_generichash(h, sizeof(h), (const uint8_t *)owner, strlen(owner), NULL, 0);
	return h[0];
}

static struct mbs_box *box_get(struct pn_mbstore *s, const char *owner, bool create)
{
	unsigned b = bucket_of(owner);
	struct mbs_box *x;

	for (x = s->b[b]; x; x = x->next)
		if (strcmp(x->owner, owner) == 0)
			return x;
	if (!create || strlen(owner) >= sizeof(x->owner))
		return NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	strcpy(x->owner, owner);
	x->tail = &x->head;
	x->next = s->b[b];
	s->b[b] = x;
	s->st.mailboxes++;
	return x;
}

int pn_mbstore_new(struct pn_mbstore **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void ent_free(struct mbs_ent *e)
{
	free(e->buf);
	free(e);
}

void pn_mbstore_free(struct pn_mbstore *s)
{
	if (!s)
		return;
	if (s->persistent)
		pn_db_close(&s->db);
	for (unsigned i = 0; i < MBS_BUCKETS; i++) {
		while (s->b[i]) {
			struct mbs_box *x = s->b[i];
			s->b[i] = x->next;
			while (x->head) {
				struct mbs_ent *e = x->head;
				x->head = e->next;
				ent_free(e);
			}
			free(x->tombs);
			free(x);
		}
	}
	free(s);
}

static bool tombed(const struct mbs_box *x, const uint8_t id[16])
{
	for (size_t i = 0; i < x->n_tombs; i++)
		if (memcmp(x->tombs[i].id, id, 16) == 0)
			return true;
	return false;
}

int pn_mbstore_put(struct pn_mbstore *s, const char *owner, const struct pn_mbs_entry *e,
		   const char *sender, uint64_t now_s)
{
	struct mbs_box *x;
	struct mbs_ent *n;
	size_t from_sender = 0;

	if (e->expires <= now_s)
		return -ESTALE;
	x = box_get(s, owner, true);
	if (!x)
		return -ENOMEM;
	if (tombed(x, e->id)) {
		s->st.tomb_refused++;
		return -ESTALE;
	}
	for (struct mbs_ent *o = x->head; o; o = o->next) {
		if (memcmp(o->e.id, e->id, 16) == 0) {
			s->st.duplicates++;
			return -EEXIST;
		}
		if (!o->e.contact && strcmp(o->sender, sender) == 0)
			from_sender++;
	}
	if (e->contact ? x->n_contact >= PN_MBS_CONTACT_MAX ||
				 x->bytes_contact + e->len > PN_MBS_CONTACT_BYTES
		       : x->n_req >= PN_MBS_REQ_MAX || from_sender >= PN_MBS_REQ_PER_SENDER) {
		s->st.quota_refused++;
		return -EDQUOT;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->buf = malloc(e->len))) {
		free(n);
		return -ENOMEM;
	}
	memcpy(n->buf, e->env, e->len);
	n->e = *e;
	n->e.env = n->buf;
	if (e->pass) {
		memcpy(n->pass, e->pass, PN_MBS_PASS_LEN);
		n->e.pass = n->pass;
	}
	snprintf(n->sender, sizeof(n->sender), "%s", sender);
	*x->tail = n;
	x->tail = &n->next;
	if (e->contact) {
		x->n_contact++;
		x->bytes_contact += e->len;
	} else {
		x->n_req++;
	}
	s->st.entries++;
	s->st.bytes += e->len;
	s->st.stored++;
	db_entry_put(s, owner, e, sender);
	return 0;
}

size_t pn_mbstore_get(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      uint64_t now_s, size_t max,
		      int (*cb)(void *arg, const struct pn_mbs_entry *e), void *arg)
{
	struct mbs_box *x = box_get(s, owner, false);
	size_t n = 0;

	for (struct mbs_ent *o = x ? x->head : NULL; o && n < max; o = o->next) {
		if (o->e.expires <= now_s || memcmp(o->e.to_dev, dev, 16) != 0)
			continue;
		n++;
		if (cb(arg, &o->e))
			break;
	}
	return n;
}

size_t pn_mbstore_entries(struct pn_mbstore *s, const char *owner)
{
	struct mbs_box *x = box_get(s, owner, false);

	return x ? x->n_contact + x->n_req : 0;
}

size_t pn_mbstore_count_for(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			    uint64_t now_s)
{
	struct mbs_box *x = box_get(s, owner, false);
	size_t n = 0;

	for (struct mbs_ent *o = x ? x->head : NULL; o; o = o->next)
		if (o->e.expires > now_s && memcmp(o->e.to_dev, dev, 16) == 0)
			n++;
	return n;
}

static void unlink_ent(struct pn_mbstore *s, struct mbs_box *x, struct mbs_ent **pp)
{
	struct mbs_ent *o = *pp;

	db_entry_del(s, x->owner, o->e.id);
	*pp = o->next;
	if (x->tail == &o->next)
		x->tail = pp;
	if (o->e.contact) {
		x->n_contact--;
		x->bytes_contact -= o->e.len;
	} else {
		x->n_req--;
	}
	s->st.entries--;
	s->st.bytes -= o->e.len;
	ent_free(o);
}

static void tomb_add(struct pn_mbstore *s, struct mbs_box *x, const uint8_t id[16],
		     uint64_t until)
{
	if (tombed(x, id))
		return;
	db_tomb_put(s, x->owner, id, until);
	if (x->n_tombs >= PN_MBS_TOMBS) {
		/* full: forget the oldest (a resurrected entry is deduplicated by the
		 * recipient and acknowledged again) */
		memmove(x->tombs, x->tombs + 1, (x->n_tombs - 1) * sizeof(*x->tombs));
		x->n_tombs--;
	}
	if (x->n_tombs % 64 == 0) {
		struct mbs_tomb *t = realloc(x->tombs, (x->n_tombs + 64) * sizeof(*t));
		if (!t)
			return;
		x->tombs = t;
	}
	memcpy(x->tombs[x->n_tombs].id, id, 16);
	x->tombs[x->n_tombs++].until = until;
}

size_t pn_mbstore_del(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      const uint8_t (*ids)[16], size_t n, uint64_t keep_until_s)
{
	struct mbs_box *x = box_get(s, owner, true);
	size_t done = 0;

	if (!x)
		return 0;
	for (size_t i = 0; i < n; i++) {
		bool ours = true;
		for (struct mbs_ent **pp = &x->head; *pp; pp = &(*pp)->next) {
			if (memcmp((*pp)->e.id, ids[i], 16) != 0)
				continue;
			ours = memcmp((*pp)->e.to_dev, dev, 16) == 0;
			if (ours) {
				unlink_ent(s, x, pp);
				done++;
			}
			break;
		}
		if (ours) /* also when not held here yet: a late replica must not store it */
			tomb_add(s, x, ids[i], keep_until_s);
	}
	s->st.deleted += done;
	return done;
}

int pn_mbstore_ack_ts(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      uint64_t ts)
{
	struct mbs_box *x = box_get(s, owner, true);
	unsigned i;

	if (!x)
		return -ENOMEM;
	for (i = 0; i < x->n_acks; i++)
		if (memcmp(x->acks[i].dev, dev, 16) == 0)
			break;
	if (i == x->n_acks) {
		if (x->n_acks == PN_MBS_OWNER_CERTS)
			i = 0; /* forget the first device's; its next ack is newer anyway */
		else
			x->n_acks++;
		memcpy(x->acks[i].dev, dev, 16);
		x->acks[i].ts = 0;
	}
	if (ts <= x->acks[i].ts)
		return -EALREADY;
	x->acks[i].ts = ts;
	return 0;
}

size_t pn_mbstore_expire(struct pn_mbstore *s, uint64_t now_s)
{
	size_t n = 0;

	for (unsigned b = 0; b < MBS_BUCKETS; b++) {
		for (struct mbs_box *x = s->b[b]; x; x = x->next) {
			size_t k = 0;
			for (struct mbs_ent **pp = &x->head; *pp;) {
				if ((*pp)->e.expires <= now_s) {
					unlink_ent(s, x, pp);
					n++;
				} else {
					pp = &(*pp)->next;
				}
			}
			for (size_t i = 0; i < x->n_tombs; i++)
				if (x->tombs[i].until > now_s)
					x->tombs[k++] = x->tombs[i];
			x->n_tombs = k;
		}
	}
	s->st.expired += n;
	return n;
}

void pn_mbstore_owner_key(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			  const uint8_t sign_pk[32], const uint8_t *cert, size_t cert_len)
{
	struct mbs_box *x = box_get(s, owner, true);
	unsigned i;

	if (!x)
		return;
	for (i = 0; i < x->n_certs; i++)
		if (memcmp(x->certs[i].dev, dev, 16) == 0)
			break;
	if (i == x->n_certs) {
		if (x->n_certs == PN_MBS_OWNER_CERTS)
			i = PN_MBS_OWNER_CERTS - 1;
		else
			x->n_certs++;
	}
	memcpy(x->certs[i].dev, dev, 16);
	memcpy(x->certs[i].pk, sign_pk, 32);
	if (cert && cert_len <= sizeof(x->certs[i].raw)) {
		memcpy(x->certs[i].raw, cert, cert_len);
		x->certs[i].raw_len = (uint8_t)cert_len;
	}
	db_owner_put(s, owner, dev, sign_pk, cert, cert_len);
}

void pn_mbstore_owner_certs(struct pn_mbstore *s, const char *owner,
			    void (*cb)(void *arg, const uint8_t *cert, size_t len), void *arg)
{
	struct mbs_box *x = box_get(s, owner, false);

	for (unsigned i = 0; x && i < x->n_certs; i++)
		if (x->certs[i].raw_len)
			cb(arg, x->certs[i].raw, x->certs[i].raw_len);
}

bool pn_mbstore_owner_find(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			   uint8_t sign_pk[32])
{
	struct mbs_box *x = box_get(s, owner, false);

	for (unsigned i = 0; x && i < x->n_certs; i++) {
		if (memcmp(x->certs[i].dev, dev, 16) == 0) {
			memcpy(sign_pk, x->certs[i].pk, 32);
			return true;
		}
	}
	return false;
}

void pn_mbstore_scan(struct pn_mbstore *s, unsigned *cursor, size_t max,
		     void (*cb)(void *arg, const char *owner, const struct pn_mbs_entry *e,
				const char *sender),
		     void *arg)
{
	size_t seen = 0;

	for (unsigned i = 0; i < MBS_BUCKETS && seen < max; i++) {
		unsigned b = (*cursor + i) % MBS_BUCKETS;
		for (struct mbs_box *x = s->b[b]; x && seen < max; x = x->next, seen++)
			for (struct mbs_ent *o = x->head; o; o = o->next)
				cb(arg, x->owner, &o->e, o->sender);
		*cursor = (b + 1) % MBS_BUCKETS;
	}
}

int pn_mbstore_open_db(struct pn_mbstore *s, const char *path, uint64_t now_s)
{
	sqlite3_stmt *st;
	int rc;

	if (!s || !path || s->persistent || !pn_db_u64_ok(now_s))
		return -EINVAL;
	rc = pn_db_open(&s->db, path, &mbs_db);
	if (rc)
		return rc;
	s->persistent = true;
	/* what expired while we were down goes first */
	st = s->db.st[ST_ENT_EXPIRE];
	if (pn_db_bind_u64(st, 1, now_s) == 0)
		db_run(s, ST_ENT_EXPIRE, "expiring mailbox entries");
	else
		pn_db_done(st);
	st = s->db.st[ST_TOMB_EXPIRE];
	if (pn_db_bind_u64(st, 1, now_s) == 0)
		db_run(s, ST_TOMB_EXPIRE, "expiring tombstones");
	else
		pn_db_done(st);
	s->loading = true;
	st = s->db.st[ST_OWNER_ALL];
	while ((rc = pn_db_step_next(&s->db, st, "loading owner keys")) == 1) {
		const char *owner = (const char *)sqlite3_column_text(st, 0);
		const uint8_t *dev = sqlite3_column_blob(st, 1), *pk = sqlite3_column_blob(st, 2);
		if (owner && dev && pk && sqlite3_column_bytes(st, 1) == 16 &&
		    sqlite3_column_bytes(st, 2) == 32)
			pn_mbstore_owner_key(s, owner, dev, pk, sqlite3_column_blob(st, 3),
					     (size_t)sqlite3_column_bytes(st, 3));
	}
	pn_db_done(st);
	st = s->db.st[ST_TOMB_ALL];
	while (rc >= 0 && (rc = pn_db_step_next(&s->db, st, "loading tombstones")) == 1) {
		const char *owner = (const char *)sqlite3_column_text(st, 0);
		const uint8_t *id = sqlite3_column_blob(st, 1);
		struct mbs_box *x = owner ? box_get(s, owner, true) : NULL;
		if (x && id && sqlite3_column_bytes(st, 1) == 16)
			tomb_add(s, x, id, (uint64_t)sqlite3_column_int64(st, 2));
	}
	pn_db_done(st);
	st = s->db.st[ST_ENT_ALL];
	while (rc >= 0 && (rc = pn_db_step_next(&s->db, st, "loading mailbox entries")) == 1) {
		struct pn_mbs_entry e;
		const char *owner = (const char *)sqlite3_column_text(st, 0);
		const char *sender = (const char *)sqlite3_column_text(st, 5);
		memset(&e, 0, sizeof(e));
		if (!owner || !sender || sqlite3_column_bytes(st, 1) != 16 ||
		    sqlite3_column_bytes(st, 2) != 16)
			continue;
		memcpy(e.id, sqlite3_column_blob(st, 1), 16);
		memcpy(e.to_dev, sqlite3_column_blob(st, 2), 16);
		e.expires = (uint64_t)sqlite3_column_int64(st, 3);
		e.contact = sqlite3_column_int(st, 4) != 0;
		e.env = sqlite3_column_blob(st, 6);
		e.len = (size_t)sqlite3_column_bytes(st, 6);
		if (sqlite3_column_bytes(st, 7) == PN_MBS_PASS_LEN)
			e.pass = sqlite3_column_blob(st, 7);
		if (e.env && e.len)
			pn_mbstore_put(s, owner, &e, sender, now_s);
	}
	pn_db_done(st);
	s->loading = false;
	s->st.stored = 0;
	return rc < 0 ? rc : 0;
}

void pn_mbstore_stats(const struct pn_mbstore *s, struct pn_mbs_stats *st)
{
	*st = s->st;
}
