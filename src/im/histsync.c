/* HIST / HIST_ACK frames: see histsync.h. */
#include "im/histsync.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <stdlib.h>

#include "base/hex.h"
#include "wire/wire.h"

void pn_hist_begin(struct pn_hist_wr *hw, uint8_t *buf, size_t cap, uint32_t seq)
{
	pn_wr_init(&hw->w, buf, cap);
	pn_wr_u8(&hw->w, PN_F_HIST);
	pn_wr_u32(&hw->w, seq);
	hw->flags_at = hw->w.len;
	pn_wr_u8(&hw->w, 0); /* flags */
	pn_wr_u8(&hw->w, 0); /* n */
	hw->n = 0;
}

/* Direction and state of a carried message row: what the store accepts. */
static bool dir_state_ok(uint8_t dir, uint8_t st)
{
	if (dir == PN_MSG_IN)
		return st == PN_MSG_RECEIVED || st == PN_MSG_READ;
	if (dir == PN_MSG_OUT)
		return st <= PN_MSG_FAILED;
	return false;
}

static bool item_ok(const struct pn_hist_item *it)
{
	size_t tl;

	if (pn_username_valid(it->msg.peer))
		return false;
	if (it->kind == PN_HIST_ITEM_CONTACT)
		return true;
	if (it->kind != PN_HIST_ITEM_MSG || !dir_state_ok((uint8_t)it->msg.dir, (uint8_t)it->msg.state))
		return false;
	tl = strnlen(it->msg.text, sizeof(it->msg.text));
	return tl <= PN_HIST_TEXT_MAX && strlen(it->msg.id) == PN_MSG_ID_HEX;
}

bool pn_hist_add(struct pn_hist_wr *hw, const struct pn_hist_item *it)
{
	struct pn_wr w = hw->w;
	uint8_t id[16];

	if (hw->w.err || hw->n == PN_HIST_ITEMS_MAX || !item_ok(it))
		return false;
	pn_wr_u8(&w, it->kind);
	if (it->kind == PN_HIST_ITEM_MSG) {
		if (pn_hex_decode(id, sizeof(id), it->msg.id) != 0)
			return false;
		pn_wr_bytes(&w, id, 16);
		pn_wr_u8(&w, (uint8_t)it->msg.dir);
		pn_wr_u8(&w, (uint8_t)it->msg.state);
		pn_wr_u64(&w, it->msg.sent_at);
		pn_wr_str8(&w, it->msg.peer);
		pn_wr_vec16(&w, it->msg.text, strlen(it->msg.text));
	} else {
		pn_wr_str8(&w, it->msg.peer);
		pn_wr_u64(&w, it->msg.sent_at);
	}
	if (w.err)
		return false;
	hw->w = w;
	hw->n++;
	return true;
}

size_t pn_hist_finish(struct pn_hist_wr *hw, bool last)
{
	if (hw->w.err)
		return 0;
	hw->w.p[hw->flags_at] = last ? PN_HIST_LAST : 0;
	hw->w.p[hw->flags_at + 1] = hw->n;
	return hw->w.len;
}

static int walk(const uint8_t *f, size_t n, uint32_t *seq, bool *last,
		int (*cb)(void *arg, const struct pn_hist_item *it), void *arg,
		struct pn_hist_item *it)
{
	struct pn_rd r;
	uint8_t type, flags, count;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, seq);
	pn_rd_u8(&r, &flags);
	pn_rd_u8(&r, &count);
	if (r.err || type != PN_F_HIST || (flags & ~PN_HIST_LAST))
		return -EBADMSG;
	*last = flags & PN_HIST_LAST;
	for (unsigned i = 0; i < count; i++) {
		uint8_t idb[16], dir = 0, st = 0;
		const uint8_t *text;
		size_t tl;

		memset(it, 0, offsetof(struct pn_hist_item, msg.text));
		it->msg.text[0] = 0;
		if (pn_rd_u8(&r, &it->kind))
			return -EBADMSG;
		if (it->kind == PN_HIST_ITEM_MSG) {
			pn_rd_bytes(&r, idb, 16);
			pn_rd_u8(&r, &dir);
			pn_rd_u8(&r, &st);
			pn_rd_u64(&r, &it->msg.sent_at);
			pn_rd_str8(&r, it->msg.peer, sizeof(it->msg.peer));
			pn_rd_vec16(&r, &text, &tl, PN_HIST_TEXT_MAX);
			if (r.err || !dir_state_ok(dir, st) || memchr(text, 0, tl) ||
			    pn_username_valid(it->msg.peer))
				return -EBADMSG;
			pn_hex_encode(it->msg.id, sizeof(it->msg.id), idb, 16);
			it->msg.dir = (enum pn_msg_dir)dir;
			it->msg.state = (enum pn_msg_state)st;
			memcpy(it->msg.text, text, tl);
			it->msg.text[tl] = 0;
		} else if (it->kind == PN_HIST_ITEM_CONTACT) {
			pn_rd_str8(&r, it->msg.peer, sizeof(it->msg.peer));
			pn_rd_u64(&r, &it->msg.sent_at);
			if (r.err || pn_username_valid(it->msg.peer))
				return -EBADMSG;
		} else {
			return -EBADMSG;
		}
		if (cb && cb(arg, it))
			return 0;
	}
	return pn_rd_end(&r) ? -EBADMSG : 0;
}

int pn_hist_decode(const uint8_t *f, size_t n, uint32_t *seq, bool *last,
		   int (*cb)(void *arg, const struct pn_hist_item *it), void *arg)
{
	struct pn_hist_item *it = malloc(sizeof(*it));
	int rc;

	if (!it)
		return -ENOMEM;
	/* check everything first: a frame bad at its end changes nothing */
	rc = walk(f, n, seq, last, NULL, NULL, it);
	if (rc == 0 && cb)
		rc = walk(f, n, seq, last, cb, arg, it);
	free(it);
	return rc;
}

size_t pn_hist_ack_encode(uint8_t out[5], uint32_t seq)
{
	struct pn_wr w;

	pn_wr_init(&w, out, 5);
	pn_wr_u8(&w, PN_F_HIST_ACK);
	pn_wr_u32(&w, seq);
	return w.len;
}

int pn_hist_ack_decode(const uint8_t *f, size_t n, uint32_t *seq)
{
	struct pn_rd r;
	uint8_t type;

	pn_rd_init(&r, f, n);
	pn_rd_u8(&r, &type);
	pn_rd_u32(&r, seq);
	return pn_rd_end(&r) || type != PN_F_HIST_ACK ? -EBADMSG : 0;
}
