#include "overlay/recstore.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Users hash into a power-of-two table of chains with a keyed hash (SipHash via
 * crypto_shorthash, a secret key per store), so nobody can pick usernames that pile into one
 * chain; the table doubles when it holds twice as many users as buckets. A user entry holds
 * a small array of device records that grows as needed (most users have one device), and
 * each record's bytes are allocated at their exact size: about 500 bytes per record
 * instead of a fixed 4.5 KB per user. */
enum { INITIAL_BUCKETS = 1024 };

struct user_ent {
	struct user_ent *next;
	uint64_t hash;
	unsigned n, cap;
	struct pn_stored_rec *recs;
	char name[]; /* NUL-terminated */
};

struct pn_recstore {
	struct user_ent **b;
	size_t nb;       /* power of two */
	size_t users, count;
	unsigned expire_cursor;
	uint8_t key[crypto_shorthash_KEYBYTES];
};

static uint64_t hash_name(const struct pn_recstore *rs, const char *s)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, (const uint8_t *)s, strlen(s), rs->key);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

int pn_recstore_new(struct pn_recstore **out, const uint8_t hash_key[16])
{
	struct pn_recstore *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->nb = INITIAL_BUCKETS;
	rs->b = calloc(rs->nb, sizeof(*rs->b));
	if (!rs->b) {
		free(rs);
		return -ENOMEM;
	}
	memcpy(rs->key, hash_key, sizeof(rs->key));
	*out = rs;
	return 0;
}

static void user_free(struct user_ent *u)
{
	for (unsigned i = 0; i < u->n; i++)
		free(u->recs[i].bytes);
	free(u->recs);
	free(u);
}

void pn_recstore_free(struct pn_recstore *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->nb; i++) {
		struct user_ent *u = rs->b[i], *n;
		for (; u; u = n) {
			n = u->next;
			user_free(u);
		}
	}
	free(rs->b);
	free(rs);
}

static void grow(struct pn_recstore *rs)
{
	size_t nb = rs->nb * 2;
	struct user_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < rs->nb; i++) {
		struct user_ent *u = rs->b[i], *n;
		for (; u; u = n) {
			n = u->next;
			u->next = b[u->hash & (nb - 1)];
			b[u->hash & (nb - 1)] = u;
		}
	}
	free(rs->b);
	rs->b = b;
	rs->nb = nb;
	rs->expire_cursor = 0;
}

static struct user_ent **find_user(struct pn_recstore *rs, const char *name, uint64_t h)
{
	struct user_ent **p = &rs->b[h & (rs->nb - 1)];

	for (; *p; p = &(*p)->next)
		if ((*p)->hash == h && strcmp((*p)->name, name) == 0)
			return p;
	return p;
}

bool pn_recstore_holds(struct pn_recstore *rs, const char *username, const uint8_t device_id[16],
		       const uint8_t *bytes, size_t len)
{
	struct user_ent *u = *find_user(rs, username, hash_name(rs, username));

	for (unsigned i = 0; u && i < u->n; i++)
		if (memcmp(u->recs[i].device_id, device_id, 16) == 0)
			return u->recs[i].len == len && memcmp(u->recs[i].bytes, bytes, len) == 0;
	return false;
}

int pn_recstore_put(struct pn_recstore *rs, const struct pn_record *r, const uint8_t *bytes,
		    size_t len)
{
	uint64_t h = hash_name(rs, r->cert.name);
	struct user_ent **pp = find_user(rs, r->cert.name, h), *u = *pp;
	struct pn_stored_rec *slot = NULL;
	uint8_t *copy;

	if (len > PN_REC_MAX)
		return -EINVAL;
	if (u) {
		for (unsigned i = 0; i < u->n; i++) {
			if (memcmp(u->recs[i].device_id, r->cert.device_id, 16) == 0) {
				if (r->seq <= u->recs[i].seq)
					return -ESTALE;
				slot = &u->recs[i];
				break;
			}
		}
		if (!slot && u->n >= PN_RECSTORE_MAX_DEVICES)
			return -ENOSPC;
	}
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, bytes, len);
	if (!u) {
		size_t nl = strlen(r->cert.name);
		u = calloc(1, sizeof(*u) + nl + 1);
		if (!u) {
			free(copy);
			return -ENOMEM;
		}
		memcpy(u->name, r->cert.name, nl + 1);
		u->hash = h;
		*pp = u;
		rs->users++;
	}
	if (!slot) {
		if (u->n == u->cap) {
			unsigned cap = u->cap ? u->cap * 2 : 1;
			struct pn_stored_rec *nr = realloc(u->recs, cap * sizeof(*nr));
			if (!nr) {
				free(copy);
				if (u->n == 0) { /* a user entry we just made, with nothing in it */
					*find_user(rs, u->name, h) = u->next;
					rs->users--;
					user_free(u);
				}
				return -ENOMEM;
			}
			u->recs = nr;
			u->cap = cap;
		}
		slot = &u->recs[u->n++];
		slot->bytes = NULL;
		rs->count++;
	}
	free(slot->bytes);
	memcpy(slot->device_id, r->cert.device_id, 16);
	slot->seq = r->seq;
	slot->expires = r->expires;
	slot->len = len;
	slot->bytes = copy;
	if (rs->users > 2 * rs->nb)
		grow(rs);
	return 0;
}

int pn_recstore_get(struct pn_recstore *rs, const char *username, uint64_t now_s,
		    void (*cb)(void *arg, const struct pn_stored_rec *r), void *arg)
{
	struct user_ent *u = *find_user(rs, username, hash_name(rs, username));
	int n = 0;

	if (!u)
		return 0;
	for (unsigned i = 0; i < u->n; i++) {
		if (u->recs[i].expires < now_s)
			continue;
		if (cb)
			cb(arg, &u->recs[i]);
		n++;
	}
	return n;
}

/* Removes record i of *pp's user; frees the user when it was the last. Returns true when
 * the user entry is gone (*pp then already points at the next one). */
static bool drop_at(struct pn_recstore *rs, struct user_ent **pp, unsigned i)
{
	struct user_ent *u = *pp;

	free(u->recs[i].bytes);
	u->recs[i] = u->recs[u->n - 1];
	u->n--;
	rs->count--;
	if (u->n)
		return false;
	*pp = u->next;
	rs->users--;
	user_free(u);
	return true;
}

void pn_recstore_del(struct pn_recstore *rs, const char *username, const uint8_t device_id[16])
{
	struct user_ent **pp = find_user(rs, username, hash_name(rs, username));

	if (!*pp)
		return;
	for (unsigned i = 0; i < (*pp)->n; i++) {
		if (memcmp((*pp)->recs[i].device_id, device_id, 16) == 0) {
			drop_at(rs, pp, i);
			return;
		}
	}
}

static void expire_bucket(struct pn_recstore *rs, size_t b, uint64_t now_s)
{
	struct user_ent **pp = &rs->b[b];

	while (*pp) {
		bool gone = false;
		for (unsigned i = 0; !gone && i < (*pp)->n;) {
			if ((*pp)->recs[i].expires < now_s)
				gone = drop_at(rs, pp, i);
			else
				i++;
		}
		if (!gone)
			pp = &(*pp)->next;
	}
}

void pn_recstore_expire(struct pn_recstore *rs, uint64_t now_s)
{
	for (size_t b = 0; b < rs->nb; b++)
		expire_bucket(rs, b, now_s);
}

void pn_recstore_expire_some(struct pn_recstore *rs, uint64_t now_s, unsigned buckets)
{
	for (unsigned k = 0; k < buckets && k < rs->nb; k++) {
		expire_bucket(rs, rs->expire_cursor & (rs->nb - 1), now_s);
		rs->expire_cursor = (unsigned)((rs->expire_cursor + 1) & (rs->nb - 1));
	}
}

size_t pn_recstore_count(const struct pn_recstore *rs)
{
	return rs->count;
}

size_t pn_recstore_scan(struct pn_recstore *rs, unsigned *cursor, size_t max, uint64_t now_s,
			void (*cb)(void *arg, const struct pn_stored_rec *r), void *arg)
{
	size_t seen = 0;

	for (size_t k = 0; k < rs->nb && seen < max; k++) {
		size_t b = (*cursor + k) & (rs->nb - 1);
		for (struct user_ent *u = rs->b[b]; u; u = u->next)
			for (unsigned i = 0; i < u->n; i++)
				if (u->recs[i].expires >= now_s) {
					cb(arg, &u->recs[i]);
					seen++;
				}
		*cursor = (unsigned)((b + 1) & (rs->nb - 1));
	}
	return seen;
}
