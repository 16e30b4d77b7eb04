/* Call signaling state machine (see signal.h for the flow and docs/PROTOCOL.md for the
 * frames). Everything here is driven by the owner: frames in, user actions, ticks. */
#include "call/signal.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "wire/wire.h"

struct pn_calls {
	struct pn_call_ops ops;
	struct pn_call *calls;
};

/* ---- frames ------------------------------------------------------------------------- */

int pn_callf_encode(const struct pn_callf *f, struct pn_wr *w)
{
	pn_wr_u8(w, PN_F_CALL);
	pn_wr_bytes(w, f->call_id, 16);
	pn_wr_u32(w, f->seq);
	pn_wr_u8(w, f->kind);
	switch (f->kind) {
	case PN_CALLF_OFFER:
		pn_wr_str8(w, f->from);
		pn_wr_str8(w, f->to);
		pn_wr_u32(w, f->tag);
		pn_wr_bytes(w, f->secret, 32);
		pn_wr_u8(w, f->media);
		break;
	case PN_CALLF_ANSWER:
		pn_wr_u32(w, f->tag);
		break;
	case PN_CALLF_END:
	case PN_CALLF_HOLD:
		pn_wr_u8(w, f->value);
		break;
	default:
		break;
	}
	return w->err ? -ENOBUFS : 0;
}

int pn_callf_decode(struct pn_callf *f, struct pn_rd *r)
{
	memset(f, 0, sizeof(*f));
	pn_rd_bytes(r, f->call_id, 16);
	pn_rd_u32(r, &f->seq);
	pn_rd_u8(r, &f->kind);
	switch (f->kind) {
	case PN_CALLF_OFFER:
		pn_rd_str8(r, f->from, sizeof(f->from));
		pn_rd_str8(r, f->to, sizeof(f->to));
		pn_rd_u32(r, &f->tag);
		pn_rd_bytes(r, f->secret, 32);
		pn_rd_u8(r, &f->media);
		if (!r->err && (pn_username_valid(f->from) || pn_username_valid(f->to) ||
				f->media != PN_CALL_MEDIA_AUDIO || f->tag == 0))
			return -EBADMSG;
		break;
	case PN_CALLF_ANSWER:
		pn_rd_u32(r, &f->tag);
		if (!r->err && f->tag == 0)
			return -EBADMSG;
		break;
	case PN_CALLF_END:
		pn_rd_u8(r, &f->value);
		if (!r->err && (f->value == 0 || f->value > PN_CALL_R_MAX))
			return -EBADMSG;
		break;
	case PN_CALLF_HOLD:
		pn_rd_u8(r, &f->value);
		if (!r->err && f->value > 1)
			return -EBADMSG;
		break;
	case PN_CALLF_RINGING:
	case PN_CALLF_CONNECT:
		break;
	default:
		return -EBADMSG;
	}
	if (pn_rd_end(r) || f->seq == 0)
		return -EBADMSG;
	return 0;
}

int pn_callack_encode(const uint8_t call_id[16], uint32_t seq, struct pn_wr *w)
{
	pn_wr_u8(w, PN_F_CALL_ACK);
	pn_wr_bytes(w, call_id, 16);
	pn_wr_u32(w, seq);
	return w->err ? -ENOBUFS : 0;
}

/* ---- names --------------------------------------------------------------------------- */

const char *pn_call_state_name(enum pn_call_state s)
{
	switch (s) {
	case PN_CALL_DIALING: return "dialing";
	case PN_CALL_RINGING: return "ringing";
	case PN_CALL_ANSWERING: return "answering";
	case PN_CALL_ACTIVE: return "active";
	case PN_CALL_ENDED: return "ended";
	}
	return "unknown";
}

const char *pn_call_reason_name(enum pn_call_reason r)
{
	static const char *const names[] = {
		[PN_CALL_R_NONE] = "none",
		[PN_CALL_R_HANGUP] = "hangup",
		[PN_CALL_R_CANCELLED] = "cancelled",
		[PN_CALL_R_DECLINED] = "declined",
		[PN_CALL_R_BUSY] = "busy",
		[PN_CALL_R_NO_ANSWER] = "no_answer",
		[PN_CALL_R_ANSWERED_ELSEWHERE] = "answered_elsewhere",
		[PN_CALL_R_REFUSED] = "refused",
		[PN_CALL_R_UNREACHABLE] = "unreachable",
		[PN_CALL_R_CONNECTION_LOST] = "connection_lost",
		[PN_CALL_R_GLARE] = "glare",
		[PN_CALL_R_GONE] = "gone",
		[PN_CALL_R_DECLINED_ELSEWHERE] = "declined_elsewhere",
	};
	return (unsigned)r <= PN_CALL_R_MAX ? names[r] : "unknown";
}

/* ---- calls ----------------------------------------------------------------------------- */

struct pn_calls *pn_calls_new(const struct pn_call_ops *ops)
{
	struct pn_calls *cs = calloc(1, sizeof(*cs));

	if (cs)
		cs->ops = *ops;
	return cs;
}

static void call_free(struct pn_calls *cs, struct pn_call *call)
{
	if (cs->ops.freed)
		cs->ops.freed(cs->ops.ctx, call);
	sodium_memzero(call->secret, sizeof(call->secret));
	free(call);
}

void pn_calls_free(struct pn_calls *cs)
{
	if (!cs)
		return;
	while (cs->calls) {
		struct pn_call *c = cs->calls;
		cs->calls = c->next;
		call_free(cs, c);
	}
	free(cs);
}

struct pn_call *pn_calls_first(struct pn_calls *cs)
{
	return cs->calls;
}

static struct pn_call *find_id(struct pn_calls *cs, const uint8_t id[16])
{
	for (struct pn_call *c = cs->calls; c; c = c->next)
		if (memcmp(c->id, id, 16) == 0)
			return c;
	return NULL;
}

struct pn_call *pn_calls_find(struct pn_calls *cs, const char *id_hex)
{
	for (struct pn_call *c = cs->calls; c; c = c->next)
		if (strcmp(c->id_hex, id_hex) == 0)
			return c;
	return NULL;
}

struct pn_call *pn_calls_find_tag(struct pn_calls *cs, uint32_t tag)
{
	for (struct pn_call *c = cs->calls; c; c = c->next)
		if (c->local_tag == tag && c->state != PN_CALL_ENDED)
			return c;
	return NULL;
}

struct pn_call *pn_calls_current(struct pn_calls *cs)
{
	for (struct pn_call *c = cs->calls; c; c = c->next)
		if (c->state != PN_CALL_ENDED)
			return c;
	return NULL;
}

static int dev_index(const struct pn_call *call, const uint8_t dev[16])
{
	for (unsigned i = 0; i < call->n_dev; i++)
		if (memcmp(call->dev[i].id, dev, 16) == 0)
			return (int)i;
	return -1;
}

static void set_state(struct pn_calls *cs, struct pn_call *call, enum pn_call_state st)
{
	enum pn_call_state old = call->state;

	call->state = st;
	if (cs->ops.changed)
		cs->ops.changed(cs->ops.ctx, call, old);
}

static void notify(struct pn_calls *cs, struct pn_call *call)
{
	if (cs->ops.changed)
		cs->ops.changed(cs->ops.ctx, call, call->state);
}

/* Queues a reliable frame for device i and sends it once now. A full queue drops the
 * oldest frame: the newest state is what the peer needs. */
static void send_rel(struct pn_calls *cs, struct pn_call *call, unsigned i, struct pn_callf *f,
		     uint64_t now)
{
	struct pn_call_dev *d = &call->dev[i];
	struct pn_call_out *o;
	struct pn_wr w;

	if (d->gone)
		return;
	memcpy(f->call_id, call->id, 16);
	f->seq = ++call->next_seq;
	if (d->nq == PN_CALL_QUEUE) {
		memmove(&d->q[0], &d->q[1], sizeof(d->q[0]) * (PN_CALL_QUEUE - 1));
		d->nq--;
	}
	o = &d->q[d->nq];
	pn_wr_init(&w, o->f, sizeof(o->f));
	if (pn_callf_encode(f, &w))
		return;
	d->nq++;
	o->seq = f->seq;
	o->len = (uint8_t)w.len;
	o->tries = 1;
	o->next = now + PN_CALL_RETX_MS;
	cs->ops.send(cs->ops.ctx, d->id, o->f, o->len);
}

static void send_kind(struct pn_calls *cs, struct pn_call *call, unsigned i, uint8_t kind,
		      uint8_t value, uint64_t now)
{
	struct pn_callf f;

	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.value = value;
	send_rel(cs, call, i, &f, now);
}

static void end_call(struct pn_calls *cs, struct pn_call *call, enum pn_call_reason why,
		     uint64_t now)
{
	if (call->state == PN_CALL_ENDED)
		return;
	call->reason = why;
	call->ended_at = now;
	sodium_memzero(call->secret, sizeof(call->secret));
	set_state(cs, call, PN_CALL_ENDED);
}

/* Tells every device still involved that the call is over (with why), then ends it
 * locally with `local` as the reason. */
static void end_all(struct pn_calls *cs, struct pn_call *call, enum pn_call_reason why,
		    enum pn_call_reason local, uint64_t now)
{
	for (unsigned i = 0; i < call->n_dev; i++) {
		struct pn_call_dev *d = &call->dev[i];
		if (d->gone || d->ended)
			continue;
		d->ended = true;
		send_kind(cs, call, i, PN_CALLF_END, why, now);
	}
	end_call(cs, call, local, now);
}

static struct pn_call *call_new(struct pn_calls *cs, uint64_t now)
{
	struct pn_call *call = calloc(1, sizeof(*call));

	if (!call)
		return NULL;
	cs->ops.random(cs->ops.ctx, call->id, 16);
	pn_hex_encode(call->id_hex, sizeof(call->id_hex), call->id, 16);
	do
		cs->ops.random(cs->ops.ctx, &call->local_tag, sizeof(call->local_tag));
	while (call->local_tag == 0 || pn_calls_find_tag(cs, call->local_tag));
	call->peer_dev = -1;
	call->created_at = now;
	call->last_rx = now;
	call->next = cs->calls;
	cs->calls = call;
	return call;
}

struct pn_call *pn_calls_dial(struct pn_calls *cs, uint64_t now, const char *me, const char *peer,
			      const uint8_t (*devs)[16], unsigned n_dev, int *err)
{
	struct pn_call *call;
	struct pn_callf f;

	if (n_dev == 0 || pn_username_valid(me) || pn_username_valid(peer)) {
		*err = -EINVAL;
		return NULL;
	}
	if (pn_calls_current(cs)) {
		*err = -EBUSY;
		return NULL;
	}
	call = call_new(cs, now);
	if (!call) {
		*err = -ENOMEM;
		return NULL;
	}
	call->outgoing = true;
	snprintf(call->peer, sizeof(call->peer), "%s", peer);
	cs->ops.random(cs->ops.ctx, call->secret, 32);
	call->media = PN_CALL_MEDIA_AUDIO;
	call->n_dev = n_dev > PN_CALL_MAX_DEV ? PN_CALL_MAX_DEV : n_dev;
	for (unsigned i = 0; i < call->n_dev; i++)
		memcpy(call->dev[i].id, devs[i], 16);
	call->ring_deadline = now + PN_CALL_RING_MS;
	set_state(cs, call, PN_CALL_DIALING);
	for (unsigned i = 0; i < call->n_dev; i++) {
		memset(&f, 0, sizeof(f));
		f.kind = PN_CALLF_OFFER;
		snprintf(f.from, sizeof(f.from), "%s", me);
		snprintf(f.to, sizeof(f.to), "%s", peer);
		f.tag = call->local_tag;
		memcpy(f.secret, call->secret, 32);
		f.media = call->media;
		send_rel(cs, call, i, &f, now);
		sodium_memzero(f.secret, 32);
	}
	*err = 0;
	return call;
}

/* Records seq from device d; false when it was handled before. */
static bool rx_new(struct pn_call_dev *d, uint32_t seq)
{
	if (seq > d->rx_max) {
		uint32_t shift = seq - d->rx_max;
		d->rx_bits = shift >= 64 ? 0 : d->rx_bits << shift;
		d->rx_bits |= 1;
		d->rx_max = seq;
		return true;
	}
	if (d->rx_max - seq >= 64 || (d->rx_bits >> (d->rx_max - seq)) & 1)
		return false;
	d->rx_bits |= 1ull << (d->rx_max - seq);
	return true;
}

static void send_ack(struct pn_calls *cs, const uint8_t dev[16], const uint8_t id[16], uint32_t seq)
{
	uint8_t b[32];
	struct pn_wr w;

	pn_wr_init(&w, b, sizeof(b));
	if (pn_callack_encode(id, seq, &w) == 0)
		cs->ops.send(cs->ops.ctx, dev, b, w.len);
}

/* An unreliable END for a call we do not know (or no longer hold), so the peer stops. */
static void send_end_once(struct pn_calls *cs, const uint8_t dev[16], const uint8_t id[16],
			  enum pn_call_reason why)
{
	uint8_t b[PN_CALL_FRAME_MAX];
	struct pn_wr w;
	struct pn_callf f;

	memset(&f, 0, sizeof(f));
	memcpy(f.call_id, id, 16);
	f.seq = 1;
	f.kind = PN_CALLF_END;
	f.value = why;
	pn_wr_init(&w, b, sizeof(b));
	if (pn_callf_encode(&f, &w) == 0)
		cs->ops.send(cs->ops.ctx, dev, b, w.len);
}

static void on_ack(struct pn_call *call, int di, uint32_t seq)
{
	struct pn_call_dev *d = &call->dev[di];

	for (unsigned k = 0; k < d->nq; k++) {
		if (d->q[k].seq == seq) {
			memmove(&d->q[k], &d->q[k + 1], sizeof(d->q[0]) * (d->nq - k - 1));
			d->nq--;
			return;
		}
	}
}

/* An offer for a call we do not know yet. */
static void on_offer(struct pn_calls *cs, uint64_t now, const uint8_t dev[16], const char *dev_user,
		     const struct pn_callf *f)
{
	struct pn_call *cur = pn_calls_current(cs), *call;
	bool glare = false;
	enum pn_call_policy pol = cs->ops.offer_policy(cs->ops.ctx, dev_user, f->to);

	if (pol == PN_CALL_DROP)
		return;
	if (pol == PN_CALL_REFUSE) {
		send_ack(cs, dev, f->call_id, f->seq);
		send_end_once(cs, dev, f->call_id, PN_CALL_R_REFUSED);
		return;
	}
	/* Glare: we are calling the very user who calls us. Both sides compare the call
	 * ids the same way: the call with the lower id goes on, the other is dropped; the
	 * side whose own call loses takes the other call as answered at once (both wanted
	 * to talk). */
	if (cur && cur->outgoing && strcmp(cur->peer, dev_user) == 0 &&
	    (cur->state == PN_CALL_DIALING || cur->state == PN_CALL_RINGING)) {
		if (memcmp(f->call_id, cur->id, 16) > 0) {
			send_ack(cs, dev, f->call_id, f->seq);
			send_end_once(cs, dev, f->call_id, PN_CALL_R_GLARE);
			return;
		}
		end_all(cs, cur, PN_CALL_R_GLARE, PN_CALL_R_GLARE, now);
		glare = true;
	} else if (cur) {
		send_ack(cs, dev, f->call_id, f->seq);
		send_end_once(cs, dev, f->call_id, PN_CALL_R_BUSY);
		return;
	}
	call = call_new(cs, now);
	if (!call)
		return;
	memcpy(call->id, f->call_id, 16);
	pn_hex_encode(call->id_hex, sizeof(call->id_hex), call->id, 16);
	call->outgoing = false;
	snprintf(call->peer, sizeof(call->peer), "%s", dev_user);
	memcpy(call->secret, f->secret, 32);
	call->remote_tag = f->tag;
	call->media = f->media;
	call->n_dev = 1;
	memcpy(call->dev[0].id, dev, 16);
	call->peer_dev = 0;
	rx_new(&call->dev[0], f->seq);
	send_ack(cs, dev, f->call_id, f->seq);
	set_state(cs, call, PN_CALL_RINGING);
	send_kind(cs, call, 0, PN_CALLF_RINGING, 0, now);
	if (glare)
		pn_call_answer(cs, call, now);
}

/* Caller side: a frame from one of the callee's devices. */
static void caller_frame(struct pn_calls *cs, struct pn_call *call, int di,
			 const struct pn_callf *f, uint64_t now)
{
	struct pn_call_dev *d = &call->dev[di];

	switch (f->kind) {
	case PN_CALLF_RINGING:
		d->ringing = true;
		if (call->state == PN_CALL_DIALING)
			set_state(cs, call, PN_CALL_RINGING);
		break;
	case PN_CALLF_ANSWER:
		d->answered = true;
		if (call->state == PN_CALL_DIALING || call->state == PN_CALL_RINGING) {
			/* the first answer wins */
			call->peer_dev = di;
			call->remote_tag = f->tag;
			call->answered_at = now;
			call->last_rx = now;
			send_kind(cs, call, (unsigned)di, PN_CALLF_CONNECT, 0, now);
			for (unsigned i = 0; i < call->n_dev; i++) {
				if ((int)i == di || call->dev[i].gone)
					continue;
				call->dev[i].ended = true;
				send_kind(cs, call, i, PN_CALLF_END, PN_CALL_R_ANSWERED_ELSEWHERE, now);
			}
			set_state(cs, call, PN_CALL_ACTIVE);
		} else if (call->peer_dev != di && !d->ended) {
			d->ended = true;
			send_kind(cs, call, (unsigned)di, PN_CALLF_END, PN_CALL_R_ANSWERED_ELSEWHERE, now);
		}
		break;
	case PN_CALLF_END:
		d->ended = true;
		if (call->state == PN_CALL_ENDED)
			break;
		if (call->state == PN_CALL_ACTIVE) {
			if (di == call->peer_dev)
				end_call(cs, call, (enum pn_call_reason)f->value, now);
			break;
		}
		if (f->value == PN_CALL_R_DECLINED) {
			/* one device declining declines the call for all of them */
			for (unsigned i = 0; i < call->n_dev; i++) {
				if ((int)i == di || call->dev[i].gone || call->dev[i].ended)
					continue;
				call->dev[i].ended = true;
				send_kind(cs, call, i, PN_CALLF_END, PN_CALL_R_DECLINED_ELSEWHERE, now);
			}
			end_call(cs, call, PN_CALL_R_DECLINED, now);
			break;
		}
		{
			/* busy / refused / gone / glare: the call goes on while another device
			 * may still answer; the last one's reason ends it */
			bool left = false;
			for (unsigned i = 0; i < call->n_dev; i++)
				left |= !call->dev[i].gone && !call->dev[i].ended;
			if (!left)
				end_call(cs, call, (enum pn_call_reason)f->value, now);
		}
		break;
	case PN_CALLF_HOLD:
		if (call->state == PN_CALL_ACTIVE && di == call->peer_dev) {
			call->remote_hold = f->value;
			notify(cs, call);
		}
		break;
	default:
		break;
	}
}

/* Callee side: a frame from the caller's device. */
static void callee_frame(struct pn_calls *cs, struct pn_call *call, const struct pn_callf *f,
			 uint64_t now)
{
	switch (f->kind) {
	case PN_CALLF_CONNECT:
		if (call->state == PN_CALL_ANSWERING) {
			call->last_rx = now;
			set_state(cs, call, PN_CALL_ACTIVE);
		}
		break;
	case PN_CALLF_END:
		call->dev[0].ended = true;
		end_call(cs, call, (enum pn_call_reason)f->value, now);
		break;
	case PN_CALLF_HOLD:
		if (call->state == PN_CALL_ACTIVE) {
			call->remote_hold = f->value;
			notify(cs, call);
		}
		break;
	default:
		break;
	}
}

int pn_calls_on_frame(struct pn_calls *cs, uint64_t now, const uint8_t dev[16], const char *dev_user,
		      const uint8_t *b, size_t n)
{
	struct pn_rd r;
	uint8_t type;
	struct pn_callf f;
	struct pn_call *call;
	int di;

	pn_rd_init(&r, b, n);
	if (pn_rd_u8(&r, &type))
		return -EBADMSG;
	if (type == PN_F_CALL_ACK) {
		uint8_t id[16];
		uint32_t seq;
		pn_rd_bytes(&r, id, 16);
		pn_rd_u32(&r, &seq);
		if (pn_rd_end(&r))
			return -EBADMSG;
		call = find_id(cs, id);
		di = call ? dev_index(call, dev) : -1;
		if (di >= 0)
			on_ack(call, di, seq);
		return 0;
	}
	if (type != PN_F_CALL || pn_callf_decode(&f, &r))
		return -EBADMSG;
	call = find_id(cs, f.call_id);
	if (!call) {
		if (f.kind == PN_CALLF_OFFER) {
			/* the session proved the device; its certificate names the caller */
			if (strcmp(f.from, dev_user) != 0)
				return -EBADMSG;
			on_offer(cs, now, dev, dev_user, &f);
		} else if (f.kind != PN_CALLF_END) {
			send_ack(cs, dev, f.call_id, f.seq);
			send_end_once(cs, dev, f.call_id, PN_CALL_R_GONE);
		}
		sodium_memzero(f.secret, sizeof(f.secret));
		return 0;
	}
	sodium_memzero(f.secret, sizeof(f.secret));
	di = dev_index(call, dev);
	/* only the devices this call runs with, and only as the user it is with */
	if (di < 0 || strcmp(dev_user, call->peer) != 0)
		return -EBADMSG;
	send_ack(cs, dev, f.call_id, f.seq);
	if (!rx_new(&call->dev[di], f.seq))
		return 0; /* a retransmission we handled already */
	if (call->dev[di].gone)
		call->dev[di].gone = false;
	if (call->state == PN_CALL_ACTIVE && di == call->peer_dev)
		call->last_rx = now;
	if (f.kind == PN_CALLF_OFFER)
		return 0; /* a duplicate of the offer that created this call */
	if (call->outgoing)
		caller_frame(cs, call, di, &f, now);
	else
		callee_frame(cs, call, &f, now);
	return 0;
}

int pn_call_answer(struct pn_calls *cs, struct pn_call *call, uint64_t now)
{
	struct pn_callf f;

	if (call->outgoing || call->state != PN_CALL_RINGING)
		return -EINVAL;
	memset(&f, 0, sizeof(f));
	f.kind = PN_CALLF_ANSWER;
	f.tag = call->local_tag;
	call->answered_at = now;
	call->connect_deadline = now + PN_CALL_CONNECT_MS;
	send_rel(cs, call, 0, &f, now);
	set_state(cs, call, PN_CALL_ANSWERING);
	return 0;
}

int pn_call_hangup(struct pn_calls *cs, struct pn_call *call, uint64_t now)
{
	enum pn_call_reason why;

	switch (call->state) {
	case PN_CALL_DIALING:
	case PN_CALL_RINGING:
		why = call->outgoing ? PN_CALL_R_CANCELLED : PN_CALL_R_DECLINED;
		break;
	case PN_CALL_ANSWERING:
	case PN_CALL_ACTIVE:
		why = PN_CALL_R_HANGUP;
		break;
	default:
		return -EINVAL;
	}
	if (call->state == PN_CALL_ACTIVE && call->outgoing) {
		/* only the device the call runs with needs to hear it */
		for (unsigned i = 0; i < call->n_dev; i++)
			if ((int)i != call->peer_dev)
				call->dev[i].ended = true;
	}
	end_all(cs, call, why, why, now);
	return 0;
}

int pn_call_hold(struct pn_calls *cs, struct pn_call *call, uint64_t now, bool on)
{
	if (call->state != PN_CALL_ACTIVE || call->peer_dev < 0)
		return -EINVAL;
	if (call->local_hold == on)
		return 0;
	call->local_hold = on;
	send_kind(cs, call, (unsigned)call->peer_dev, PN_CALLF_HOLD, on, now);
	notify(cs, call);
	return 0;
}

void pn_call_abort(struct pn_calls *cs, struct pn_call *call, uint64_t now, enum pn_call_reason why)
{
	if (call->state != PN_CALL_ENDED)
		end_all(cs, call, why, why, now);
}

void pn_call_alive(struct pn_call *call, uint64_t now)
{
	call->last_rx = now;
}

void pn_calls_flush_dev(struct pn_calls *cs, const uint8_t dev[16], uint64_t now)
{
	for (struct pn_call *call = cs->calls; call; call = call->next) {
		int di = dev_index(call, dev);
		if (di < 0)
			continue;
		for (unsigned k = 0; k < call->dev[di].nq; k++) {
			struct pn_call_out *o = &call->dev[di].q[k];
			cs->ops.send(cs->ops.ctx, dev, o->f, o->len);
			o->next = now + PN_CALL_RETX_MS;
		}
	}
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t pn_calls_next_deadline(struct pn_calls *cs)
{
	uint64_t t = UINT64_MAX;

	for (struct pn_call *call = cs->calls; call; call = call->next) {
		for (unsigned i = 0; i < call->n_dev; i++)
			for (unsigned k = 0; k < call->dev[i].nq; k++)
				t = min64(t, call->dev[i].q[k].next);
		switch (call->state) {
		case PN_CALL_DIALING:
		case PN_CALL_RINGING:
			if (call->outgoing)
				t = min64(t, call->ring_deadline);
			break;
		case PN_CALL_ANSWERING:
			t = min64(t, call->connect_deadline);
			break;
		case PN_CALL_ACTIVE:
			t = min64(t, call->last_rx + PN_CALL_MEDIA_DEAD_MS);
			break;
		case PN_CALL_ENDED:
			t = min64(t, call->ended_at + PN_CALL_LINGER_MS);
			break;
		}
	}
	return t;
}

/* A device stopped acknowledging: what that means depends on the call's state. */
static void dev_gone(struct pn_calls *cs, struct pn_call *call, unsigned i, uint64_t now)
{
	bool left = false;

	call->dev[i].gone = true;
	call->dev[i].nq = 0;
	if (call->state == PN_CALL_ENDED)
		return;
	if (call->state == PN_CALL_ACTIVE || call->state == PN_CALL_ANSWERING) {
		if ((int)i == call->peer_dev)
			end_call(cs, call, PN_CALL_R_CONNECTION_LOST, now);
		return;
	}
	for (unsigned k = 0; k < call->n_dev; k++)
		left |= !call->dev[k].gone && !call->dev[k].ended;
	if (!left)
		end_call(cs, call, call->outgoing ? PN_CALL_R_UNREACHABLE : PN_CALL_R_CONNECTION_LOST,
			 now);
}

void pn_calls_tick(struct pn_calls *cs, uint64_t now)
{
	for (struct pn_call **pp = &cs->calls; *pp;) {
		struct pn_call *call = *pp;

		for (unsigned i = 0; i < call->n_dev; i++) {
			struct pn_call_dev *d = &call->dev[i];
			for (unsigned k = 0; k < d->nq; k++) {
				struct pn_call_out *o = &d->q[k];
				if (o->next > now)
					continue;
				if (o->tries >= PN_CALL_TRIES) {
					dev_gone(cs, call, i, now);
					break;
				}
				o->tries++;
				o->next = now + min64((uint64_t)PN_CALL_RETX_MS << (o->tries - 1),
						      PN_CALL_RETX_CAP_MS);
				cs->ops.send(cs->ops.ctx, d->id, o->f, o->len);
			}
		}
		switch (call->state) {
		case PN_CALL_DIALING:
		case PN_CALL_RINGING:
			if (call->outgoing && now >= call->ring_deadline)
				end_all(cs, call, PN_CALL_R_NO_ANSWER, PN_CALL_R_NO_ANSWER, now);
			break;
		case PN_CALL_ANSWERING:
			if (now >= call->connect_deadline)
				end_all(cs, call, PN_CALL_R_CONNECTION_LOST, PN_CALL_R_CONNECTION_LOST, now);
			break;
		case PN_CALL_ACTIVE:
			if (now >= call->last_rx + PN_CALL_MEDIA_DEAD_MS)
				end_all(cs, call, PN_CALL_R_CONNECTION_LOST, PN_CALL_R_CONNECTION_LOST, now);
			break;
		case PN_CALL_ENDED:
			break;
		}
		/* an ended call lingers (to acknowledge retransmissions) until its last
		 * frames went out or gave up */
		if (call->state == PN_CALL_ENDED && now >= call->ended_at + PN_CALL_LINGER_MS) {
			bool busy = false;
			for (unsigned i = 0; i < call->n_dev; i++)
				busy |= call->dev[i].nq > 0;
			if (!busy) {
				*pp = call->next;
				call_free(cs, call);
				continue;
			}
		}
		pp = &call->next;
	}
}
