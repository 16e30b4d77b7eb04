#include "overlay/recstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Users hash into buckets by name; each user holds a small fixed array of device records.
 * A user entry is freed when its last record goes. */
enum { BUCKETS = 4096 };

struct user_ent {
	struct user_ent *next;
	char name[PN_CERT_NAME_MAX + 1];
	unsigned n;
	struct pn_stored_rec recs[PN_RECSTORE_MAX_DEVICES];
};

struct pn_recstore {
	struct user_ent *b[BUCKETS];
	size_t count;
};

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % BUCKETS;
}

int pn_recstore_new(struct pn_recstore **out)
{
	struct pn_recstore *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	*out = rs;
	return 0;
}

void pn_recstore_free(struct pn_recstore *rs)
{
	if (!rs)
		return;
	for (unsigned i = 0; i < BUCKETS; i++) {
		struct user_ent *u = rs->b[i], *n;
		for (; u; u = n) {
			n = u->next;
			free(u);
		}
	}
	free(rs);
}

static struct user_ent **find_user(struct pn_recstore *rs, const char *name)
{
	struct user_ent **p = &rs->b[hash_name(name)];
	for (; *p; p = &(*p)->next)
		if (strcmp((*p)->name, name) == 0)
			return p;
	return p;
}

int pn_recstore_put(struct pn_recstore *rs, const struct pn_record *r, const uint8_t *bytes,
		    size_t len)
{
	struct user_ent **pp = find_user(rs, r->cert.name), *u = *pp;
	struct pn_stored_rec *slot = NULL;

	if (len > PN_REC_MAX)
		return -EINVAL;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		strcpy(u->name, r->cert.name);
		*pp = u;
	}
	for (unsigned i = 0; i < u->n; i++) {
		if (memcmp(u->recs[i].device_id, r->cert.device_id, 16) == 0) {
			if (r->seq <= u->recs[i].seq)
				return -ESTALE;
			slot = &u->recs[i];
			break;
		}
	}
	if (!slot) {
		if (u->n >= PN_RECSTORE_MAX_DEVICES)
			return -ENOSPC;
		slot = &u->recs[u->n++];
		rs->count++;
	}
	memcpy(slot->device_id, r->cert.device_id, 16);
	slot->seq = r->seq;
	slot->expires = r->expires;
	slot->len = len;
	memcpy(slot->bytes, bytes, len);
	return 0;
}

int pn_recstore_get(struct pn_recstore *rs, const char *username, uint64_t now_s,
		    void (*cb)(void *arg, const struct pn_stored_rec *r), void *arg)
{
	struct user_ent *u = *find_user(rs, username);
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

static void drop_at(struct pn_recstore *rs, struct user_ent **pp, unsigned i)
{
	struct user_ent *u = *pp;

	u->recs[i] = u->recs[u->n - 1];
	u->n--;
	rs->count--;
	if (u->n == 0) {
		*pp = u->next;
		free(u);
	}
}

void pn_recstore_del(struct pn_recstore *rs, const char *username, const uint8_t device_id[16])
{
	struct user_ent **pp = find_user(rs, username);

	if (!*pp)
		return;
	for (unsigned i = 0; i < (*pp)->n; i++) {
		if (memcmp((*pp)->recs[i].device_id, device_id, 16) == 0) {
			drop_at(rs, pp, i);
			return;
		}
	}
}

void pn_recstore_expire(struct pn_recstore *rs, uint64_t now_s)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
		struct user_ent **pp = &rs->b[b];
		while (*pp) {
			struct user_ent *u = *pp;
			bool freed = false;
			for (unsigned i = 0; i < u->n;) {
				if (u->recs[i].expires < now_s) {
					if (u->n == 1) {
						drop_at(rs, pp, i);
						freed = true;
						break;
					}
					drop_at(rs, pp, i);
				} else {
					i++;
				}
			}
			if (!freed)
				pp = &u->next;
		}
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

	for (unsigned k = 0; k < BUCKETS && seen < max; k++) {
		unsigned b = (*cursor + k) % BUCKETS;
		for (struct user_ent *u = rs->b[b]; u; u = u->next)
			for (unsigned i = 0; i < u->n; i++)
				if (u->recs[i].expires >= now_s) {
					cb(arg, &u->recs[i]);
					seen++;
				}
		*cursor = (b + 1) % BUCKETS;
	}
	return seen;
}
