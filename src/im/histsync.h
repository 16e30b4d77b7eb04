/* History transfer between the devices of one account: the chunk frames (codec only).
 *
 * When an end-to-end session comes up between two devices of the same account for the
 * first time, each sends the other its history (messages, oldest first, then its
 * contacts) in HIST chunks, one at a time, each acknowledged by HIST_ACK; the receiver
 * inserts what it does not have (message ids deduplicate). So a device added to an
 * account gets the past conversations and the contact list of the others. The state
 * machine lives in src/node/client.c; this file only builds and checks the frames.
 *
 *   HIST     = u8 0x4c | u32 seq | u8 flags (bit 0: last chunk) | u8 n | n x item
 *   item     = u8 kind 1 (message) | 16 id | u8 dir | u8 state | u64 sent_at |
 *                                    str8 peer | u16 len | text
 *            | u8 kind 2 (contact) | str8 username | u64 added_at
 *   HIST_ACK = u8 0x4d | u32 seq
 */
#ifndef PARLEY_IM_HISTSYNC_H
#define PARLEY_IM_HISTSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "im/store.h"

enum {
	PN_F_HIST = 0x4c,
	PN_F_HIST_ACK = 0x4d,
	PN_HIST_LAST = 1,
	PN_HIST_ITEM_MSG = 1,
	PN_HIST_ITEM_CONTACT = 2,
	PN_HIST_ITEMS_MAX = 255,
	PN_HIST_TEXT_MAX = 1200, /* the largest chat text; longer rows are not carried */
};

/* One item. A message uses every field of msg; a contact only msg.peer (the username)
 * and msg.sent_at (when it was added, s). */
struct pn_hist_item {
	uint8_t kind;
	struct pn_msg_row msg;
};

/* Builds one HIST chunk into buf. */
struct pn_hist_wr {
	struct pn_wr w;
	size_t flags_at;
	uint8_t n;
};

void pn_hist_begin(struct pn_hist_wr *hw, uint8_t *buf, size_t cap, uint32_t seq);
/* Appends it; false (and the chunk unchanged) when it does not fit or is not valid. */
bool pn_hist_add(struct pn_hist_wr *hw, const struct pn_hist_item *it);
/* The chunk's length. */
size_t pn_hist_finish(struct pn_hist_wr *hw, bool last);

/* Checks a whole HIST frame (from the type byte on) and only then hands each item to cb
 * (when cb is non-NULL; a non-zero return stops the walk). 0, or -EBADMSG for a frame that
 * is malformed anywhere: wrong type, truncated, trailing bytes, a text with a NUL or
 * longer than PN_HIST_TEXT_MAX, a bad direction/state pair, an unknown item kind. */
int pn_hist_decode(const uint8_t *f, size_t n, uint32_t *seq, bool *last,
		   int (*cb)(void *arg, const struct pn_hist_item *it), void *arg);

/* HIST_ACK: encode into 5 bytes; decode 0 or -EBADMSG. */
size_t pn_hist_ack_encode(uint8_t out[5], uint32_t seq);
int pn_hist_ack_decode(const uint8_t *f, size_t n, uint32_t *seq);

#endif
