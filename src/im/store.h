/* The client's local store: one SQLite database per device (data-dir/parley.db, WAL mode,
 * file mode 0600) holding settings/keys (key-value), contacts, message history and the
 * host cache. */
#ifndef PARLEY_IM_STORE_H
#define PARLEY_IM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pn_cstore;

enum pn_msg_dir { PN_MSG_IN = 0, PN_MSG_OUT = 1 };

/* Message states, in the order they advance; a state never moves backwards except
 * QUEUED -> SENT on retry. Names (pn_msg_state_name) are used in the API. */
enum pn_msg_state {
	PN_MSG_QUEUED = 0,    /* out: recipient unreachable, will retry */
	PN_MSG_SENT = 1,      /* out: handed to the network */
	PN_MSG_DELIVERED = 2, /* out: the recipient device acknowledged */
	PN_MSG_READ = 3,
	PN_MSG_FAILED = 4,    /* out: gave up (reason in the log and event) */
	PN_MSG_RECEIVED = 5,  /* in */
};

enum pn_cstore_limits {
	PN_MSG_ID_HEX = 32, /* 16-byte ids as 32 hex digits */
	PN_USERNAME_MAX = 32,
	PN_MSG_TEXT_MAX = 4096, /* bytes of UTF-8 */
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

const char *pn_msg_state_name(enum pn_msg_state st);

/* 0, -EIO (logged with the path and SQLite's message), -ENOMEM. */
int pn_cstore_open(struct pn_cstore **out, const char *path);
void pn_cstore_free(struct pn_cstore *s); /* NULL ok */

/* Key-value settings (device seed, certificate, username...). get: 0, -ENOENT, -ENOSPC. */
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

/* Messages: insert returns -EEXIST when the id is already stored (deduplication). */
int pn_cstore_msg_insert(struct pn_cstore *s, const struct pn_msg_row *m);
/* Moves the state forward only (never back, except QUEUED->SENT). 0, -ENOENT, or
 * -EALREADY when the state would not advance. */
int pn_cstore_msg_set_state(struct pn_cstore *s, const char *id, enum pn_msg_state st,
			    uint64_t now_ms);
int pn_cstore_msg_get(struct pn_cstore *s, const char *id, struct pn_msg_row *out);
/* The last `limit` messages with peer, oldest first. */
int pn_cstore_msg_list(struct pn_cstore *s, const char *peer, unsigned limit,
		       int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);
/* Outgoing messages in state QUEUED or SENT (not yet delivered), oldest first, up to limit. */
int pn_cstore_msg_pending(struct pn_cstore *s, unsigned limit,
			  int (*cb)(void *arg, const struct pn_msg_row *m), void *arg);

/* Host cache of supernodes, at most 200 rows (oldest last_seen evicted). */
int pn_cstore_host_upsert(struct pn_cstore *s, const struct pn_host_row *h);
int pn_cstore_host_list(struct pn_cstore *s, int (*cb)(void *arg, const struct pn_host_row *h),
			void *arg);

#endif
