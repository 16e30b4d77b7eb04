/* The directory record store of a supernode: username -> the signed reachability records
 * of that user's devices. Records are verified before they get here; the store enforces
 * sequence numbers (a record is only replaced by a higher seq: a supernode can drop a
 * record, never roll one back) and expiry. Today each supernode stores the records of
 * its own attached devices; the Kademlia overlay (later issue) will place records on the
 * r supernodes closest to BLAKE2b("user:" || name) through this same interface. */
#ifndef PARLEY_OVERLAY_RECSTORE_H
#define PARLEY_OVERLAY_RECSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

enum { PN_RECSTORE_MAX_DEVICES = 8 };

struct pn_recstore;

struct pn_stored_rec {
	uint8_t device_id[16];
	uint64_t seq, expires;
	size_t len;
	uint8_t *bytes; /* exactly len bytes, owned by the store */
};

/* hash_key: 16 secret random bytes (from the environment, so simulations stay
 * deterministic) keying the username hash. */
int pn_recstore_new(struct pn_recstore **out, const uint8_t hash_key[16]);
void pn_recstore_free(struct pn_recstore *rs);
/* Stores an already verified record. 0, -ESTALE (seq not newer), -ENOSPC (user has too
 * many devices), -ENOMEM. */
int pn_recstore_put(struct pn_recstore *rs, const struct pn_record *r, const uint8_t *bytes,
		    size_t len);
/* Calls cb for each live record of username (expired ones are skipped). Returns count. */
int pn_recstore_get(struct pn_recstore *rs, const char *username, uint64_t now_s,
		    void (*cb)(void *arg, const struct pn_stored_rec *r), void *arg);
/* True when the store holds exactly these bytes as the record of (username, device_id),
 * expired or not. Such bytes passed pn_record_decode_verify when they were stored, so a
 * caller that sees them again needs only the time checks (pn_record_check_time), not the
 * two signature verifications: replicas receive the same record again on every
 * re-replication round. */
bool pn_recstore_holds(struct pn_recstore *rs, const char *username, const uint8_t device_id[16],
		       const uint8_t *bytes, size_t len);
void pn_recstore_del(struct pn_recstore *rs, const char *username, const uint8_t device_id[16]);
/* Drops expired records (a whole pass; get() never returns expired ones anyway). */
void pn_recstore_expire(struct pn_recstore *rs, uint64_t now_s);
/* The same, for a slice of at most `buckets` hash buckets from an internal cursor: a
 * supernode calls it every second so that no single tick walks 100,000 users. */
void pn_recstore_expire_some(struct pn_recstore *rs, uint64_t now_s, unsigned buckets);
size_t pn_recstore_count(const struct pn_recstore *rs);
/* Visits live records bucket by bucket from *cursor, at most max records or one full
 * round, and advances *cursor (re-replication walks the store a slice at a time).
 * Returns how many were visited. */
size_t pn_recstore_scan(struct pn_recstore *rs, unsigned *cursor, size_t max, uint64_t now_s,
			void (*cb)(void *arg, const struct pn_stored_rec *r), void *arg);

#endif
