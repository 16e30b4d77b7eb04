/* The login server's account store: SQLite (WAL mode). Usernames are already validated by
 * the caller; password hashes are libsodium crypto_pwhash_str strings (Argon2id). All
 * statements are prepared once at open.
 *
 * Limits: usernames 1..32 bytes, password hashes 1..crypto_pwhash_STRBYTES-1 bytes, device
 * names 0..64 bytes, times <= INT64_MAX; anything else, or a NULL pointer other than the
 * optional out pointers, is -EINVAL. One store is used by one thread at a time; several
 * processes may open the same file (WAL, busy timeout 5 s). Failures other than the
 * documented answers are logged with the path and SQLite's message; hashes and keys
 * never are. */
#ifndef PARLEY_LOGIN_STORE_H
#define PARLEY_LOGIN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pn_acct_store;

/* Opens or creates the database at path (":memory:" allowed), creating tables, enabling
 * WAL and foreign keys. The file is created mode 0600. Returns 0, -EIO (with a message on
 * the log saying which path and why), -ENOMEM. */
int pn_acct_store_open(struct pn_acct_store **out, const char *path);
void pn_acct_store_free(struct pn_acct_store *s); /* NULL ok */

/* Returns 0, -EEXIST if the username is taken, -EIO. */
int pn_acct_store_create_user(struct pn_acct_store *s, const char *username,
			      const char *pwhash, uint64_t now_s);
/* Copies the stored hash (NUL-terminated) into out[cap]. 0, -ENOENT, -ENOSPC, -EIO. */
int pn_acct_store_get_pwhash(struct pn_acct_store *s, const char *username, char *out,
			     size_t cap);
/* Registers (or refreshes last_seen and name of) a device of an existing user. A device id
 * already registered to another user is -EPERM, and so is a known device id presented
 * with different keys (a device's keys never change under the same id). A revoked device
 * stays revoked: -EACCES. 0, -ENOENT (no such user), -EIO. */
int pn_acct_store_upsert_device(struct pn_acct_store *s, const char *username,
				const uint8_t device_id[16], const uint8_t sign_pk[32],
				const uint8_t dh_pk[32], const char *device_name, uint64_t now_s);
/* 0 when the device exists for that user and is not revoked, -EACCES if revoked,
 * -ENOENT if unknown; on 0 copies its keys when the out pointers are non-NULL. */
int pn_acct_store_get_device(struct pn_acct_store *s, const char *username,
			     const uint8_t device_id[16], uint8_t sign_pk[32], uint8_t dh_pk[32]);
/* The devices of a user, oldest first (revoked ones too: revoked_at > 0). */
struct pn_acct_device {
	uint8_t device_id[16];
	char name[65];
	uint64_t created_at, last_seen, revoked_at; /* s */
};
int pn_acct_store_list_devices(struct pn_acct_store *s, const char *username,
			       int (*cb)(void *arg, const struct pn_acct_device *d), void *arg);
/* Marks the device revoked (keeping the first revocation time). 0, also when it was
 * already revoked; -ENOENT if the user has no such device; -EIO. */
int pn_acct_store_revoke_device(struct pn_acct_store *s, const char *username,
				const uint8_t device_id[16], uint64_t now_s);
/* 0 and the number of accounts in *n, or -EIO. */
int pn_acct_store_count_users(struct pn_acct_store *s, uint64_t *n);

/* ---- profiles ----
 * A user's optional public profile. Only searchable profiles are in the full-text index
 * (FTS5, unicode61 with diacritics removed, so "zurich" finds "Zürich"); a hidden profile
 * is stored but never returned by a search. The store checks byte lengths only (the
 * field rules are the caller's, src/wire pn_profile_valid). */
enum pn_acct_profile_limits {
	PN_ACCT_PROFILE_TEXT_MAX = 64, /* display_name, city */
	PN_ACCT_PROFILE_COUNTRY_MAX = 2,
	PN_ACCT_PROFILE_LANGS_MAX = 32,
	PN_ACCT_QUERY_MAX = 255, /* search text, bytes */
	PN_ACCT_QUERY_TOKENS = 8, /* words of a search beyond this are ignored */
};

struct pn_acct_profile {
	char username[33];
	char display_name[PN_ACCT_PROFILE_TEXT_MAX + 1];
	char city[PN_ACCT_PROFILE_TEXT_MAX + 1];
	char country[PN_ACCT_PROFILE_COUNTRY_MAX + 1];
	char languages[PN_ACCT_PROFILE_LANGS_MAX + 1];
	bool searchable;
};

/* Creates or replaces username's profile (p->username is ignored). 0, -ENOENT (no such
 * user), -EINVAL (a field too long), -EIO. */
int pn_acct_store_set_profile(struct pn_acct_store *s, const char *username,
			      const struct pn_acct_profile *p, uint64_t now_s);
/* 0 and the profile in *out, -ENOENT when the user has none (or does not exist), -EIO. */
int pn_acct_store_get_profile(struct pn_acct_store *s, const char *username,
			      struct pn_acct_profile *out);
/* Full-text search over the searchable profiles (username, display name, city, country,
 * languages), best match first, at most limit (1..1000) rows, each handed to cb; a cb
 * that returns non-zero stops the walk (a negative value is passed back).
 *
 * The text is never FTS5 syntax: it is split at white space, every word is quoted (so
 * `"`, `*`, `(`, AND, OR, NOT, NEAR and column filters mean nothing) and matched as a
 * prefix, and all words must match. Words beyond PN_ACCT_QUERY_TOKENS are ignored; a
 * text with no word in it matches nothing. 0, -EINVAL (NULL, text longer than
 * PN_ACCT_QUERY_MAX bytes, bad limit), -EIO. */
int pn_acct_store_search_profiles(struct pn_acct_store *s, const char *text, unsigned limit,
				  int (*cb)(void *arg, const struct pn_acct_profile *p),
				  void *arg);

#endif
