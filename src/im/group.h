/* Group chats: the group state (id, name, admin, members, version), the rules that decide
 * which group frames a device accepts, and the codec of the three end-to-end group frames
 * (docs/PROTOCOL.md 3.3.1). Pure: no I/O, no clock; the client node (src/node/client.c)
 * sends and stores what these functions decide.
 *
 * Members are kept sorted (strcmp order) and unique, so two devices holding the same
 * version hold byte-identical lists and the snapshot on the wire has one canonical form.
 * Errors: -EINVAL bad argument, -EBADMSG malformed frame, -ENOSPC group full, -EEXIST /
 * -ENOENT member already there / not there, -EPERM not allowed by the group's rules. */
#ifndef PARLEY_IM_GROUP_H
#define PARLEY_IM_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im/store.h"

enum pn_group_limits {
	PN_GROUP_ID_LEN = 16,
	PN_GROUP_MEMBERS_MAX = 256, /* the issue asks for 100; a snapshot spans frames */
	PN_GROUP_NAME_MAX = 64,     /* bytes of UTF-8 */
	PN_GROUP_TEXT_MAX = 1198,   /* as a one-to-one CHAT (relayed, it still fits a packet) */
	PN_GROUP_CHUNK_MAX = 255,   /* members in one GROUP_STATE frame (u8 n) */
};

struct pn_group {
	uint8_t id[PN_GROUP_ID_LEN];
	char name[PN_GROUP_NAME_MAX + 1];
	char admin[PN_USERNAME_MAX + 1];
	uint32_t version; /* bumped by the admin on every change */
	unsigned n;
	char members[PN_GROUP_MEMBERS_MAX][PN_USERNAME_MAX + 1]; /* sorted, unique */
};

/* Membership. add keeps the order: 0, -EEXIST, -ENOSPC, -EINVAL (not a valid username). */
bool pn_group_has(const struct pn_group *g, const char *user);
int pn_group_add(struct pn_group *g, const char *user);
int pn_group_remove(struct pn_group *g, const char *user);
/* A name: 1..PN_GROUP_NAME_MAX bytes of strict UTF-8, no control characters. */
bool pn_group_name_valid(const char *name);
/* A whole state: valid name and admin, members valid, sorted and unique, the admin among
 * them unless the group is empty (its last member, the admin, left). 0 or -EBADMSG. */
int pn_group_check(const struct pn_group *g);

/* ---- what a device accepts ------------------------------------------------------------ */

enum pn_group_verdict {
	PN_GROUP_ACCEPT = 0, /* apply it (and acknowledge) */
	PN_GROUP_STALE,      /* nothing new (an old or repeated update): acknowledge only */
	PN_GROUP_REFUSE,     /* not allowed: drop, count, do not acknowledge */
};

/* A snapshot `in` arrived from (a device of) user `from`; `local` is our copy or NULL when
 * we do not know the group; `me` is our username; `from_contact` whether `from` is in our
 * contacts. Rules (docs/ARCHITECTURE.md "Group chats"):
 * - a known group changes only by its current admin (who may hand the role on in the
 *   snapshot), and only to a higher version;
 * - an unknown group is an invitation: it must come from its admin, list us, and the admin
 *   must be one of our contacts (or ourselves: another device of our account). */
enum pn_group_verdict pn_group_judge_state(const struct pn_group *local, const struct pn_group *in,
					   const char *from, const char *me, bool from_contact);
/* A group message from `from`: only for a group we are in, only from one of its members. */
bool pn_group_may_post(const struct pn_group *local, const char *me, const char *from);
/* A LEAVE from `from`: REFUSE for a group we do not know or from the admin (the admin
 * leaves by handing the role on in a snapshot); STALE when `from` is not a member (any
 * more); else ACCEPT, and the caller removes `from`. */
enum pn_group_verdict pn_group_judge_leave(const struct pn_group *local, const char *from);

/* ---- frames --------------------------------------------------------------------------- */

/* GROUP_CHAT (type byte included). text borrowed from the frame. */
struct pn_group_chat {
	uint8_t msg_id[16];
	uint8_t gid[PN_GROUP_ID_LEN];
	uint64_t sent_at;
	char from[PN_USERNAME_MAX + 1];
	const uint8_t *text;
	size_t text_len;
};
/* encode: 0 and *len, -EINVAL (text empty, too long or with a NUL; bad from), -ENOSPC. */
int pn_group_chat_encode(const struct pn_group_chat *m, uint8_t *buf, size_t cap, size_t *len);
/* decode: 0 or -EBADMSG (also for an invalid username, empty text or a NUL in it). */
int pn_group_chat_decode(struct pn_group_chat *m, const uint8_t *f, size_t n);

/* GROUP_STATE: one chunk of a snapshot, members [first, first + n) of `total`. */
struct pn_group_chunk {
	uint8_t update_id[16];
	uint8_t gid[PN_GROUP_ID_LEN];
	uint32_t version;
	char admin[PN_USERNAME_MAX + 1];
	char name[PN_GROUP_NAME_MAX + 1];
	uint16_t total, first;
	unsigned n;
	char members[PN_GROUP_CHUNK_MAX][PN_USERNAME_MAX + 1];
};
/* Writes the chunk of g that starts at member `first`, as many members as fit in cap;
 * *next is the first member not written (g->n when done). 0, -EINVAL (first > g->n, or g
 * not valid), -ENOSPC (not even one member fits). A group of 0 members is one chunk.
 * Senders pass cap PN_E2E_FRAME_MAX, so a chunk fits a packet relayed between supernodes. */
int pn_group_state_encode(const struct pn_group *g, const uint8_t update_id[16], unsigned first,
			  uint8_t *buf, size_t cap, size_t *len, unsigned *next);
/* 0 or -EBADMSG: wrong type, truncated, trailing bytes, total > PN_GROUP_MEMBERS_MAX,
 * first + n > total, an invalid name/admin/member, members not strictly increasing. */
int pn_group_state_decode(struct pn_group_chunk *ck, const uint8_t *f, size_t n);

/* Reassembles a snapshot from its chunks (they may arrive in any order, and repeated). */
struct pn_group_asm {
	bool active;
	struct pn_group g;
	uint8_t update_id[16];
	uint16_t total;
	unsigned have;
	uint8_t got[PN_GROUP_MEMBERS_MAX / 8];
};
/* 1 and the whole state in a->g (checked with pn_group_check) when this chunk completed
 * it; 0 when more are needed; -EBADMSG when the snapshot is not consistent (a chunk of
 * the same update disagreeing with an earlier one, or a complete list that fails
 * pn_group_check): the assembly is dropped. A chunk of another update starts over. */
int pn_group_asm_add(struct pn_group_asm *a, const struct pn_group_chunk *ck);

/* GROUP_LEAVE. */
int pn_group_leave_encode(const uint8_t update_id[16], const uint8_t gid[PN_GROUP_ID_LEN],
			  uint8_t *buf, size_t cap, size_t *len);
int pn_group_leave_decode(uint8_t update_id[16], uint8_t gid[PN_GROUP_ID_LEN], const uint8_t *f,
			  size_t n);

#endif
