/* The client's local store: one SQLite database per device (data-dir/parley.db, WAL mode,
 * file mode 0600) holding settings/keys (key-value), contacts, message history (with an
 * FTS5 full-text index) and the host cache.
 *
 * Every function returns -EINVAL for a NULL store or argument, a name, key or id that is
 * empty or longer than its limit below, text over its limit, or a time above INT64_MAX;
 * -EIO (logged with the path and SQLite's message) when SQLite fails. Values are never
 * logged.
 *
 * The list functions call cb once per row; the row is borrowed for the call. A cb that
 * returns non-zero stops the walk, and the list returns that value if it is negative, 0
 * otherwise. cb may read the store but must not write to it (collect ids and act after
 * the call): SQLite leaves a query's results undefined when its tables change under it. */
#ifndef PARLEY_IM_STORE_H
#define PARLEY_IM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pn_cstore;

enum pn_msg_dir { PN_MSG_IN = 0, PN_MSG_OUT = 1 };

/* Message states. Names (pn_msg_state_name) are used in the API. A state only advances,
 * in the order of its direction (the numbers are not that order):
 *   out: QUEUED -> SENT -> STORED -> FAILED|EXPIRED -> DELIVERED -> READ  (any step may be
 *        skipped; FAILED and EXPIRED are below DELIVERED because a receipt arriving after
 *        we gave up is the truth)
 *   in:  RECEIVED -> READ
 * with one step back: SENT -> QUEUED, when the recipient stayed unreachable and the
 * message waits for a slow retry. */
enum pn_msg_state {
	PN_MSG_QUEUED = 0,    /* out: recipient unreachable, will retry */
	PN_MSG_SENT = 1,      /* out: handed to the network */
	PN_MSG_DELIVERED = 2, /* out: the recipient device acknowledged */
	PN_MSG_READ = 3,
	PN_MSG_FAILED = 4,    /* out: gave up (reason in the log and event) */
	PN_MSG_RECEIVED = 5,  /* in */
	PN_MSG_STORED = 6,    /* out: in the recipient's mailbox (receipts from n of r supernodes) */
	PN_MSG_EXPIRED = 7,   /* out: its mailbox time to live ran out before any receipt */
};

enum pn_cstore_limits {
	PN_MSG_ID_HEX = 32, /* 16-byte ids as 32 hex digits */
	PN_USERNAME_MAX = 32,
	PN_MSG_TEXT_MAX = 4096, /* bytes of UTF-8 */
	PN_KV_KEY_MAX = 64,
	PN_KV_VALUE_MAX = 65536,
	PN_SEARCH_QUERY_MAX = 256,
	PN_HOST_CACHE_MAX = 200,
};

struct pn_msg_row {
	char id[PN_MSG_ID_HEX + 1];
	char peer[PN_USERNAME_MAX + 1]; /* the other user of the conversation */
	enum pn_msg_dir dir;
	enum pn_msg_state state;
	uint64_t sent_at;     /* ms since epoch, sender's clock */
	uint64_t updated_at;  /* ms since epoch, local clock, last state change */
	char text[PN_MSG_TEXT_MAX + 1];
};

struct pn_contact_row {
	char username[PN_USERNAME_MAX + 1];
	uint64_t added_at; /* s */
};

struct pn_host_row {
	char addr[64];   /* "198.18.0.1:7700" */
	uint8_t key[32]; /* X25519 static of the supernode */
	uint64_t last_seen; /* s */
	uint32_t rtt_ms;
};

/* One finished call in the call log. Times are ms since the epoch; answered_at 0 when
 * never answered; mos 0 when no media ran. */
struct pn_call_row {
	char id[PN_MSG_ID_HEX + 1];
	char peer[PN_USERNAME_MAX + 1];
	bool outgoing;
	uint64_t started_at, answered_at, ended_at;
	char reason[32];
	double mos;
};

/* "queued", "sent", ...; "unknown" for a value outside the enum. */
const char *pn_msg_state_name(enum pn_msg_state st);

/* Opens or creates path (":memory:" allowed; a new file is mode 0600, an existing one
 * readable by others is set to 0600). 0, -EIO (logged with the path and SQLite's
 * message), -ENOMEM. */
int pn_cstore_open(struct pn_cstore **out, const char *path);
void pn_cstore_free(struct pn_cstore *s); /* NULL ok */

/* Key-value settings (device seed, certificate, username...). Keys 1..PN_KV_KEY_MAX bytes,
 * values 0..PN_KV_VALUE_MAX bytes. get: 0, -ENOENT, -ENOSPC when the value is longer than
 * cap (buf may be NULL when cap is 0); *len (if len is non-NULL) gets the value's length
 * on 0 and on -ENOSPC. set: 0 (replacing any old value). del: 0, -ENOENT. Deleted
 * values are overwritten in the file (secure_delete). */
int pn_cstore_kv_get(struct pn_cstore *s, const char *key, void *buf, size_t cap, size_t *len);
int pn_cstore_kv_set(struct pn_cstore *s, const char *key, const void *buf, size_t len);
int pn_cstore_kv_del(struct pn_cstore *s, const char *key);

/* Contacts: add 0 / -EEXIST; remove 0 / -ENOENT; list calls cb in username order
 * (stop early by returning non-zero from cb). */
int pn_cstore_contact_add(struct pn_cstore *s, const char *username, uint64_t now_s);
int pn_cstore_contact_remove(struct pn_cstore *s, const char *username);
bool pn_cstore_contact_has(struct pn_cstore *s, const char *username);
int pn_cstore_contact_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_contact_row *r),
			   void *arg);

/* Messages: ids are PN_MSG_ID_HEX hex digits (either case; stored and returned in lower
 * case), peer 1..PN_USERNAME_MAX bytes, text NUL-terminated within text[]; the state must
 * belong to the direction (see enum pn_msg_state). insert returns -EEXIST when the id is
 * already stored (deduplication). */
int pn_cstore_msg_insert(struct pn_cstore *s, const struct pn_msg_row *m);
/* Moves the state forward only, in its direction's order. 0, -ENOENT, -EINVAL for a state
 * of the other direction, or -EALREADY when the state would not advance. */
int pn_cstore_msg_set_state(struct pn_cstore *s, const char *id, enum pn_msg_state st,
			    uint64_t now_ms);
/* 0 and the message in *out, or -ENOENT. */
int pn_cstore_msg_get(struct pn_cstore *s, const char *id, struct pn_msg_row *out);
/* The last `limit` messages with peer, oldest first (by sent_at, then arrival order). */
int pn_cstore_msg_list(struct pn_cstore *s, const char *peer, unsigned limit,
		       int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);
/* Outgoing messages in state QUEUED, SENT or STORED (not yet delivered), oldest first, up to
 * limit. */
int pn_cstore_msg_pending(struct pn_cstore *s, unsigned limit,
			  int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);

/* Full-text search over message text: query is FTS5 syntax (1..PN_SEARCH_QUERY_MAX bytes;
 * quote user-typed text as a "phrase", since punctuation outside quotes is a syntax error).
 * Matches newest first, up to limit. 0, -EINVAL for a malformed query. */
int pn_cstore_msg_search(struct pn_cstore *s, const char *query, unsigned limit,
			 int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);

/* Host cache of supernodes, at most PN_HOST_CACHE_MAX rows (oldest last_seen evicted,
 * which may be the row just written). upsert keyed by addr (1..63 bytes); a row older than
 * the stored one for the same addr is ignored. list: most recently seen first. */
/* Contact requests and blocks, one state per user besides the contact list: a request we
 * received (with its note), one we sent and wait to see accepted, or a blocked user. */
enum pn_rel_kind { PN_REL_REQUEST_IN = 1, PN_REL_REQUEST_OUT = 2, PN_REL_BLOCKED = 3 };
enum { PN_REL_NOTE_MAX = 200 };
struct pn_rel_row {
	char username[PN_USERNAME_MAX + 1];
	enum pn_rel_kind kind;
	char note[PN_REL_NOTE_MAX + 1];
	uint64_t at; /* s */
};
/* set replaces the user's state; get: 0 or -ENOENT; del: 0 or -ENOENT. */
int pn_cstore_rel_set(struct pn_cstore *s, const char *username, enum pn_rel_kind kind,
		      const char *note, uint64_t at);
int pn_cstore_rel_get(struct pn_cstore *s, const char *username, struct pn_rel_row *out);
int pn_cstore_rel_del(struct pn_cstore *s, const char *username);
/* Every message (either direction) stored after row position `after` (0: from the
 * first), in storage order, up to limit, with its row position: for walking the whole
 * history in steps (history transfer to another device). */
int pn_cstore_msg_since(struct pn_cstore *s, uint64_t after, unsigned limit,
			int (*cb)(void *arg, uint64_t seq, const struct pn_msg_row *m), void *arg);

/* Contact-list sync between the account's devices: the last change per username, state
 * 1 contact, 2 removed, 3 blocked, at in ms. set: 0 when it is newer than what is stored
 * (and stored), -EALREADY when not. list: in username order. */
int pn_cstore_csync_set(struct pn_cstore *s, const char *username, int state, uint64_t at);
int pn_cstore_csync_list(struct pn_cstore *s,
			 int (*cb)(void *arg, const char *username, int state, uint64_t at), void *arg);

/* Revocation notices (src/crypto/cert.h), verified by the caller: add 0 / -EEXIST; has
 * tells whether a device is revoked; list hands the notices of username's devices revoked
 * at or after `since` (unix s) to cb, oldest first. */
int pn_cstore_revoked_add(struct pn_cstore *s, const uint8_t device_id[16], const char *username,
			  uint64_t revoked_at, const uint8_t *notice, size_t len);
bool pn_cstore_revoked_has(struct pn_cstore *s, const uint8_t device_id[16]);
int pn_cstore_revoked_list(struct pn_cstore *s, const char *username, uint64_t since,
			   int (*cb)(void *arg, const uint8_t *notice, size_t len), void *arg);

/* Messages held from users who are not contacts (a message request): kept apart from the
 * history until the user is accepted. add: 0, -EEXIST (duplicate id); the row's dir and
 * state are ignored, updated_at is the arrival time. count: per peer, or all when peer is
 * NULL. list: oldest first, as incoming rows in state RECEIVED (updated_at = arrival).
 * drop: deletes every held message of peer (0 also when there was none). */
int pn_cstore_held_add(struct pn_cstore *s, const struct pn_msg_row *m);
int pn_cstore_held_count(struct pn_cstore *s, const char *peer, unsigned *n);
int pn_cstore_held_list(struct pn_cstore *s, const char *peer,
			int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);
int pn_cstore_held_drop(struct pn_cstore *s, const char *peer);

int pn_cstore_rel_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_rel_row *r),
		       void *arg);

/* The call log: insert (a duplicate id is ignored) and the latest `limit` calls, oldest
 * first. */
int pn_cstore_call_insert(struct pn_cstore *s, const struct pn_call_row *c);
int pn_cstore_call_list(struct pn_cstore *s, unsigned limit,
			int (*cb)(void *arg, const struct pn_call_row *c), void *arg);

/* Group chats (src/im/group.h): each group's latest state, which messages belong to which
 * group, and, for the messages we sent to a group, each member's receipt. A group message
 * is an ordinary row of the message table (peer = its sender, our own name for ours) plus
 * a row in group_msgs; the one-to-one history leaves such messages out.
 * group_put replaces the group's stored state (name, admin, version, members) in one
 * transaction; group_get: 0 or -ENOENT; group_list calls cb for every group (gid order),
 * the group borrowed for the call. */
struct pn_group;
int pn_cstore_group_put(struct pn_cstore *s, const struct pn_group *g, uint64_t now_ms);
int pn_cstore_group_get(struct pn_cstore *s, const uint8_t gid[16], struct pn_group *out);
int pn_cstore_group_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_group *g),
			 void *arg);
/* Marks message id (already inserted) as belonging to group gid: 0, -EEXIST. */
int pn_cstore_group_msg_add(struct pn_cstore *s, const char *id, const uint8_t gid[16]);
/* 0 and the message's group in gid, or -ENOENT for a one-to-one message. */
int pn_cstore_group_msg_gid(struct pn_cstore *s, const char *id, uint8_t gid[16]);
/* The last `limit` messages of the group, oldest first, ordered by (sent_at, id): the same
 * order on every device whatever the arrival order was. */
int pn_cstore_group_msg_list(struct pn_cstore *s, const uint8_t gid[16], unsigned limit,
			     int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);
/* Receipts of our group messages, per member: PENDING when sent, then DELIVERED, READ; a
 * state only advances (an older one is ignored: 0). */
enum pn_rcpt_state { PN_RCPT_PENDING = 0, PN_RCPT_DELIVERED = 1, PN_RCPT_READ = 2 };
int pn_cstore_group_rcpt_set(struct pn_cstore *s, const char *id, const char *member,
			     enum pn_rcpt_state st);
/* 0, -ENOENT when member has no receipt row for id (it was not a recipient). */
int pn_cstore_group_rcpt_get(struct pn_cstore *s, const char *id, const char *member,
			     enum pn_rcpt_state *st);
/* How many recipients, how many delivered (READ counts as delivered too), how many read. */
int pn_cstore_group_rcpt_count(struct pn_cstore *s, const char *id, unsigned *total,
			       unsigned *delivered, unsigned *read);
/* The recipients still PENDING (to resend after a restart), in name order. */
int pn_cstore_group_rcpt_pending(struct pn_cstore *s, const char *id,
				 int (*cb)(void *arg, const char *member), void *arg);

int pn_cstore_host_upsert(struct pn_cstore *s, const struct pn_host_row *h);
int pn_cstore_host_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_host_row *h),
			void *arg);

#endif
