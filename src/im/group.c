/* Group chats: state, acceptance rules and frame codec. See group.h. */
#include "im/group.h"

#include <errno.h>
#include <string.h>

#include "base/buf.h"
#include "wire/wire.h"

/* The largest GROUP_CHAT fits an end-to-end frame that a supernode can relay. */
_Static_assert(1 + 16 + PN_GROUP_ID_LEN + 8 + 1 + PN_USERNAME_MAX + 2 + PN_GROUP_TEXT_MAX <=
		       PN_E2E_FRAME_MAX,
	       "GROUP_CHAT must fit PN_E2E_FRAME_MAX");

/* Index of user in g's sorted list, or of where it would go (*found false). */
static unsigned find_pos(const struct pn_group *g, const char *user, bool *found)
{
	unsigned lo = 0, hi = g->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int c = strcmp(g->members[mid], user);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

bool pn_group_has(const struct pn_group *g, const char *user)
{
	bool found;

	if (!g || !user)
		return false;
	find_pos(g, user, &found);
	return found;
}

int pn_group_add(struct pn_group *g, const char *user)
{
	bool found;
	unsigned i;

	if (!g || !user || pn_username_valid(user))
		return -EINVAL;
	i = find_pos(g, user, &found);
	if (found)
		return -EEXIST;
	if (g->n >= PN_GROUP_MEMBERS_MAX)
		return -ENOSPC;
	memmove(g->members[i + 1], g->members[i], (g->n - i) * sizeof(g->members[0]));
	strcpy(g->members[i], user);
	g->n++;
	return 0;
}

int pn_group_remove(struct pn_group *g, const char *user)
{
	bool found;
	unsigned i;

	if (!g || !user)
		return -EINVAL;
	i = find_pos(g, user, &found);
	if (!found)
		return -ENOENT;
	memmove(g->members[i], g->members[i + 1], (g->n - i - 1) * sizeof(g->members[0]));
	g->n--;
	memset(g->members[g->n], 0, sizeof(g->members[0]));
	return 0;
}

bool pn_group_name_valid(const char *name)
{
	/* strict UTF-8 (it goes into JSON) without control characters (it is printed on
	 * other members' terminals) */
	return name && name[0] && pn_text_field_valid(name, PN_GROUP_NAME_MAX) == 0;
}

int pn_group_check(const struct pn_group *g)
{
	if (!g || !pn_group_name_valid(g->name) || pn_username_valid(g->admin) ||
	    g->n > PN_GROUP_MEMBERS_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < g->n; i++) {
		if (pn_username_valid(g->members[i]))
			return -EBADMSG;
		if (i > 0 && strcmp(g->members[i - 1], g->members[i]) >= 0)
			return -EBADMSG;
	}
	/* empty only when its last member, the admin, left */
	return g->n == 0 || pn_group_has(g, g->admin) ? 0 : -EBADMSG;
}

/* ---- acceptance ---------------------------------------------------------------------- */

enum pn_group_verdict pn_group_judge_state(const struct pn_group *local, const struct pn_group *in,
					   const char *from, const char *me, bool from_contact)
{
	if (!in || !from || !me || pn_group_check(in))
		return PN_GROUP_REFUSE;
	if (local) {
		/* Only the admin we know may change the group (and name its successor). */
		if (strcmp(local->admin, from) != 0)
			return PN_GROUP_REFUSE;
		return in->version > local->version ? PN_GROUP_ACCEPT : PN_GROUP_STALE;
	}
	/* An invitation: from the admin it names, to us, from someone we accepted. */
	if (strcmp(in->admin, from) != 0)
		return PN_GROUP_REFUSE;
	if (!pn_group_has(in, me))
		return PN_GROUP_STALE; /* a group we were never in told us we are out */
	if (!from_contact && strcmp(from, me) != 0)
		return PN_GROUP_REFUSE;
	return PN_GROUP_ACCEPT;
}

bool pn_group_may_post(const struct pn_group *local, const char *me, const char *from)
{
	return local && pn_group_has(local, me) && pn_group_has(local, from);
}

enum pn_group_verdict pn_group_judge_leave(const struct pn_group *local, const char *from)
{
	if (!local || !from || strcmp(local->admin, from) == 0)
		return PN_GROUP_REFUSE;
	return pn_group_has(local, from) ? PN_GROUP_ACCEPT : PN_GROUP_STALE;
}

/* ---- frames -------------------------------------------------------------------------- */

int pn_group_chat_encode(const struct pn_group_chat *m, uint8_t *buf, size_t cap, size_t *len)
{
	struct pn_wr w;

	if (!m || !buf || !len || pn_username_valid(m->from) || !m->text || m->text_len == 0 ||
	    m->text_len > PN_GROUP_TEXT_MAX || memchr(m->text, 0, m->text_len))
		return -EINVAL;
	pn_wr_init(&w, buf, cap);
	pn_wr_u8(&w, PN_F_GROUP_CHAT);
	pn_wr_bytes(&w, m->msg_id, 16);
	pn_wr_bytes(&w, m->gid, PN_GROUP_ID_LEN);
	pn_wr_u64(&w, m->sent_at);
	pn_wr_str8(&w, m->from);
	pn_wr_vec16(&w, m->text, m->text_len);
	if (w.err)
		return w.err;
	*len = w.len;
	return 0;
}

int pn_group_chat_decode(struct pn_group_chat *m, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;

	if (!m || !f)
		return -EBADMSG;
	memset(m, 0, sizeof(*m));
	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_bytes(&r, m->msg_id, 16);
	pn_rd_bytes(&r, m->gid, PN_GROUP_ID_LEN);
	pn_rd_u64(&r, &m->sent_at);
	pn_rd_str8(&r, m->from, sizeof(m->from));
	pn_rd_vec16(&r, &m->text, &m->text_len, PN_GROUP_TEXT_MAX);
	if (pn_rd_end(&r) || type != PN_F_GROUP_CHAT || pn_username_valid(m->from) ||
	    m->text_len == 0 || memchr(m->text, 0, m->text_len))
		return -EBADMSG;
	return 0;
}

/* Fixed part of GROUP_STATE before the member names. */
static void state_header(struct pn_wr *w, const struct pn_group *g, const uint8_t update_id[16],
			 unsigned first)
{
	pn_wr_u8(w, PN_F_GROUP_STATE);
	pn_wr_bytes(w, update_id, 16);
	pn_wr_bytes(w, g->id, PN_GROUP_ID_LEN);
	pn_wr_u32(w, g->version);
	pn_wr_str8(w, g->admin);
	pn_wr_str8(w, g->name);
	pn_wr_u16(w, (uint16_t)g->n);
	pn_wr_u16(w, (uint16_t)first);
}

int pn_group_state_encode(const struct pn_group *g, const uint8_t update_id[16], unsigned first,
			  uint8_t *buf, size_t cap, size_t *len, unsigned *next)
{
	struct pn_wr w;
	size_t n_at;
	unsigned i;

	if (!g || !update_id || !buf || !len || !next || first > g->n || pn_group_check(g))
		return -EINVAL;
	pn_wr_init(&w, buf, cap);
	state_header(&w, g, update_id, first);
	n_at = w.len;
	pn_wr_u8(&w, 0);
	if (w.err)
		return w.err;
	for (i = first; i < g->n && i - first < PN_GROUP_CHUNK_MAX; i++) {
		size_t l = strlen(g->members[i]);
		if (w.len + 1 + l > cap)
			break;
		pn_wr_str8(&w, g->members[i]);
	}
	if (i == first && first < g->n)
		return -ENOSPC;
	buf[n_at] = (uint8_t)(i - first);
	*len = w.len;
	*next = i;
	return 0;
}

int pn_group_state_decode(struct pn_group_chunk *ck, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type, cnt;

	if (!ck || !f)
		return -EBADMSG;
	memset(ck, 0, sizeof(*ck));
	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_bytes(&r, ck->update_id, 16);
	pn_rd_bytes(&r, ck->gid, PN_GROUP_ID_LEN);
	pn_rd_u32(&r, &ck->version);
	pn_rd_str8(&r, ck->admin, sizeof(ck->admin));
	pn_rd_str8(&r, ck->name, sizeof(ck->name));
	pn_rd_u16(&r, &ck->total);
	pn_rd_u16(&r, &ck->first);
	if (pn_rd_u8(&r, &cnt) || type != PN_F_GROUP_STATE)
		return -EBADMSG;
	ck->n = cnt;
	if (ck->total > PN_GROUP_MEMBERS_MAX || (unsigned)ck->first + cnt > ck->total ||
	    pn_username_valid(ck->admin) || !pn_group_name_valid(ck->name))
		return -EBADMSG;
	for (unsigned i = 0; i < cnt; i++) {
		if (pn_rd_str8(&r, ck->members[i], sizeof(ck->members[i])) ||
		    pn_username_valid(ck->members[i]) ||
		    (i > 0 && strcmp(ck->members[i - 1], ck->members[i]) >= 0))
			return -EBADMSG;
	}
	return pn_rd_end(&r) ? -EBADMSG : 0;
}

static bool got(const struct pn_group_asm *a, unsigned i)
{
	return a->got[i / 8] & (1u << (i % 8));
}

int pn_group_asm_add(struct pn_group_asm *a, const struct pn_group_chunk *ck)
{
	if (!a || !ck)
		return -EINVAL;
	if (!a->active || memcmp(a->update_id, ck->update_id, 16) != 0) {
		memset(a, 0, sizeof(*a));
		a->active = true;
		memcpy(a->update_id, ck->update_id, 16);
		memcpy(a->g.id, ck->gid, PN_GROUP_ID_LEN);
		a->g.version = ck->version;
		strcpy(a->g.admin, ck->admin);
		strcpy(a->g.name, ck->name);
		a->total = ck->total;
	} else if (memcmp(a->g.id, ck->gid, PN_GROUP_ID_LEN) != 0 || a->g.version != ck->version ||
		   strcmp(a->g.admin, ck->admin) != 0 || strcmp(a->g.name, ck->name) != 0 ||
		   a->total != ck->total) {
		/* one update id, two different snapshots: trust neither */
		memset(a, 0, sizeof(*a));
		return -EBADMSG;
	}
	for (unsigned i = 0; i < ck->n; i++) {
		unsigned k = ck->first + i;
		if (got(a, k)) {
			if (strcmp(a->g.members[k], ck->members[i]) != 0) {
				memset(a, 0, sizeof(*a));
				return -EBADMSG;
			}
			continue;
		}
		strcpy(a->g.members[k], ck->members[i]);
		a->got[k / 8] |= (uint8_t)(1u << (k % 8));
		a->have++;
	}
	if (a->have < a->total)
		return 0;
	a->g.n = a->total;
	a->active = false;
	if (pn_group_check(&a->g)) {
		memset(a, 0, sizeof(*a));
		return -EBADMSG;
	}
	return 1;
}

int pn_group_leave_encode(const uint8_t update_id[16], const uint8_t gid[PN_GROUP_ID_LEN],
			  uint8_t *buf, size_t cap, size_t *len)
{
	struct pn_wr w;

	if (!update_id || !gid || !buf || !len)
		return -EINVAL;
	pn_wr_init(&w, buf, cap);
	pn_wr_u8(&w, PN_F_GROUP_LEAVE);
	pn_wr_bytes(&w, update_id, 16);
	pn_wr_bytes(&w, gid, PN_GROUP_ID_LEN);
	if (w.err)
		return w.err;
	*len = w.len;
	return 0;
}

int pn_group_leave_decode(uint8_t update_id[16], uint8_t gid[PN_GROUP_ID_LEN], const uint8_t *f,
			  size_t n)
{
	struct pn_rd r;
	uint8_t type;

	if (!update_id || !gid || !f)
		return -EBADMSG;
	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_bytes(&r, update_id, 16);
	pn_rd_bytes(&r, gid, PN_GROUP_ID_LEN);
	return pn_rd_end(&r) || type != PN_F_GROUP_LEAVE ? -EBADMSG : 0;
}
