/* A supernode's share of the offline mailboxes: envelopes by owner, in arrival order, with
 * quotas, tombstones of acknowledged entries, expiry, and the owner's device certificates
 * the mailbox has seen (to check passes). In memory; no I/O.
 *
 * Quotas per mailbox: entries that came with a valid pass from the owner (a contact) share
 * PN_MBS_CONTACT_MAX entries / PN_MBS_CONTACT_BYTES; everything else shares a small
 * request quota (PN_MBS_REQ_MAX, at most PN_MBS_REQ_PER_SENDER per sender). Nothing is
 * ever evicted to make room: a full quota refuses the new entry, so what a non-contact
 * sends cannot displace a contact's message. */
#ifndef PARLEY_OVERLAY_MBSTORE_H
#define PARLEY_OVERLAY_MBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pn_mbs_limits {
	PN_MBS_CONTACT_MAX = 4096,
	PN_MBS_CONTACT_BYTES = 4 << 20,
	PN_MBS_REQ_MAX = 64,
	PN_MBS_REQ_PER_SENDER = 8,
	PN_MBS_OWNER_CERTS = 8,
	PN_MBS_TOMBS = 8192, /* acknowledged entry ids remembered per mailbox */
	PN_MBS_PASS_LEN = 88,
};

struct pn_mbstore;

struct pn_mbs_entry {
	uint8_t id[16], to_dev[16];
	uint64_t expires;
	bool contact;
	const uint8_t *env;
	size_t len;
	const uint8_t *pass; /* the pass it came with (PN_MBS_PASS_LEN bytes), or NULL */
};

struct pn_mbs_stats {
	uint64_t mailboxes, entries, bytes;
	uint64_t stored, duplicates, quota_refused, expired, deleted, tomb_refused;
};

int pn_mbstore_new(struct pn_mbstore **out);
void pn_mbstore_free(struct pn_mbstore *s);
/* Makes the store persistent in the SQLite file at path (created mode 0600): what the file
 * holds is loaded (expired entries dropped), and from then on every change is written
 * through, so a restarted supernode still holds its mailboxes. Call on an empty store.
 * 0, -EIO (logged), -ENOMEM, -EINVAL. */
int pn_mbstore_open_db(struct pn_mbstore *s, const char *path, uint64_t now_s);

/* Stores an envelope (already checked by the caller). 0, -EEXIST (that entry is already
 * held: storing is idempotent, the caller answers as for a new one), -EDQUOT (the quota it
 * falls in is full), -ESTALE (acknowledged before, or expired), -ENOMEM. */
int pn_mbstore_put(struct pn_mbstore *s, const char *owner, const struct pn_mbs_entry *e,
		   const char *sender, uint64_t now_s);
/* Calls cb for up to max entries for device dev of owner, oldest first (skipping expired
 * ones); cb returns non-zero to stop. Returns how many were passed. */
size_t pn_mbstore_get(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      uint64_t now_s, size_t max,
		      int (*cb)(void *arg, const struct pn_mbs_entry *e), void *arg);
/* How many entries owner's mailbox holds here (all devices). */
size_t pn_mbstore_entries(struct pn_mbstore *s, const char *owner);
/* How many entries for dev are held (not expired). */
size_t pn_mbstore_count_for(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			    uint64_t now_s);
/* Deletes the listed entries addressed to dev (others are left alone) and remembers their
 * ids so a replica that missed the acknowledgement cannot bring them back. Returns the
 * number deleted. */
size_t pn_mbstore_del(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      const uint8_t (*ids)[16], size_t n, uint64_t keep_until_s);
/* Acknowledgement replay guard: 0 and remembers ts when ts is newer than the last one of
 * (owner, dev); -EALREADY otherwise. */
int pn_mbstore_ack_ts(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
		      uint64_t ts);
/* Drops expired entries and tombstones; returns the number of entries dropped. */
size_t pn_mbstore_expire(struct pn_mbstore *s, uint64_t now_s);

/* Owner certificates seen (the caller verified them): a pass is checked against these,
 * and re-replication hands them on (raw, up to 255 bytes; NULL/0 keeps only the key). */
void pn_mbstore_owner_key(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			  const uint8_t sign_pk[32], const uint8_t *cert, size_t cert_len);
/* Calls cb with each stored owner certificate of owner. */
void pn_mbstore_owner_certs(struct pn_mbstore *s, const char *owner,
			    void (*cb)(void *arg, const uint8_t *cert, size_t len), void *arg);
bool pn_mbstore_owner_find(struct pn_mbstore *s, const char *owner, const uint8_t dev[16],
			   uint8_t sign_pk[32]);

/* Re-replication: visits up to max mailboxes from *cursor on, calling cb with each owner
 * and entry. */
void pn_mbstore_scan(struct pn_mbstore *s, unsigned *cursor, size_t max,
		     void (*cb)(void *arg, const char *owner, const struct pn_mbs_entry *e,
				const char *sender),
		     void *arg);

void pn_mbstore_stats(const struct pn_mbstore *s, struct pn_mbs_stats *st);

#endif
