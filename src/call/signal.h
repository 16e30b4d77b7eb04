/* Call signaling: the state machine of every call one device takes part in, sans-I/O.
 *
 * A call is offered to every device of the callee at once; the first device to answer
 * wins (the caller confirms it with CONNECT and tells every other device "answered
 * elsewhere"). Signaling frames ride inside the end-to-end sessions between devices
 * (docs/PROTOCOL.md "Call signaling"); the sessions authenticate the devices, this layer
 * adds what datagrams lack: per-frame acknowledgements and retransmission, duplicate
 * suppression, and timeouts. The owner (the client node) supplies the transport, the
 * offer policy (contacts only, rate limits) and the clock; it drives media itself once a
 * call reports PN_CALL_ACTIVE.
 *
 *   caller                               callee devices (d1, d2)
 *   OFFER(secret, caller tag)  ------->  d1, d2 ring            (state RINGING)
 *                              <-------  RINGING                (caller: RINGING)
 *                              <-------  ANSWER(callee tag)     d1 (ANSWERING)
 *   CONNECT                    ------->  d1                     (both ACTIVE)
 *   END(answered elsewhere)    ------->  d2
 *   HOLD(on/off), END(reason)  <------>  either side, any time
 * Every frame but ACK carries a per-call sequence number and is acknowledged. */
#ifndef PARLEY_CALL_SIGNAL_H
#define PARLEY_CALL_SIGNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum pn_call_state {
	PN_CALL_DIALING = 1, /* caller: offers out, no device rings yet */
	PN_CALL_RINGING,     /* caller: a device rings; callee: ringing here */
	PN_CALL_ANSWERING,   /* callee: answered, waiting for the caller's CONNECT */
	PN_CALL_ACTIVE,
	PN_CALL_ENDED,
};

/* Why a call ended (also the wire value of END). */
enum pn_call_reason {
	PN_CALL_R_NONE = 0,
	PN_CALL_R_HANGUP = 1,            /* a party hung up an active call */
	PN_CALL_R_CANCELLED = 2,         /* the caller gave up before an answer */
	PN_CALL_R_DECLINED = 3,          /* the callee declined */
	PN_CALL_R_BUSY = 4,              /* the callee is in another call */
	PN_CALL_R_NO_ANSWER = 5,         /* nobody answered in time */
	PN_CALL_R_ANSWERED_ELSEWHERE = 6, /* another device of the callee answered */
	PN_CALL_R_REFUSED = 7,           /* the callee does not take calls from the caller */
	PN_CALL_R_UNREACHABLE = 8,       /* no device of the callee acknowledged the offer */
	PN_CALL_R_CONNECTION_LOST = 9,   /* the peer stopped answering mid-call */
	PN_CALL_R_GLARE = 10,            /* both called each other; the other call goes on */
	PN_CALL_R_GONE = 11,             /* the peer knows no such call (it restarted) */
	PN_CALL_R_DECLINED_ELSEWHERE = 12, /* another device of the callee declined */
	PN_CALL_R_MAX = 12,
};

enum pn_call_limits {
	PN_CALL_MAX_DEV = 8,        /* devices one call rings */
	PN_CALL_FRAME_MAX = 160,
	PN_CALL_QUEUE = 4,          /* unacknowledged frames per device */
	PN_CALL_RETX_MS = 200,      /* first retransmission; doubles up to 1 s */
	PN_CALL_RETX_CAP_MS = 1000,
	PN_CALL_TRIES = 9,          /* about 6 s of silence: the device is gone */
	PN_CALL_RING_MS = 45000,    /* caller gives up ("no answer") */
	PN_CALL_CONNECT_MS = 6000,  /* callee waits this long for CONNECT after answering */
	PN_CALL_MEDIA_DEAD_MS = 5000, /* active call: nothing from the peer this long ends it */
	PN_CALL_LINGER_MS = 10000,  /* an ended call stays to answer retransmissions */
};

/* Wire: PN_F_CALL body kinds. */
enum pn_callf_kind {
	PN_CALLF_OFFER = 1,   /* str8 from | str8 to | u32 caller tag | 32 secret | u8 media */
	PN_CALLF_RINGING = 2, /* (empty) */
	PN_CALLF_ANSWER = 3,  /* u32 callee tag */
	PN_CALLF_CONNECT = 4, /* (empty) */
	PN_CALLF_END = 5,     /* u8 reason */
	PN_CALLF_HOLD = 6,    /* u8 on (0/1) */
};
enum { PN_CALL_MEDIA_AUDIO = 1 };

/* One decoded signaling frame (PN_F_CALL = 0x42 | 16 call id | u32 seq | u8 kind | body). */
struct pn_callf {
	uint8_t call_id[16];
	uint32_t seq;
	uint8_t kind;
	char from[33], to[33]; /* OFFER */
	uint32_t tag;          /* OFFER: caller's, ANSWER: callee's */
	uint8_t secret[32];    /* OFFER */
	uint8_t media;         /* OFFER */
	uint8_t value;         /* END: reason, HOLD: on */
};
int pn_callf_encode(const struct pn_callf *f, struct pn_wr *w);
/* r is positioned after the frame type byte. Returns 0 or -EBADMSG. */
int pn_callf_decode(struct pn_callf *f, struct pn_rd *r);
/* PN_F_CALL_ACK = 0x43 | 16 call id | u32 seq */
int pn_callack_encode(const uint8_t call_id[16], uint32_t seq, struct pn_wr *w);

struct pn_call;
struct pn_calls;

/* What the owner decides about an incoming offer. */
enum pn_call_policy { PN_CALL_ACCEPT = 0, PN_CALL_REFUSE, PN_CALL_DROP /* rate limited */ };

struct pn_call_ops {
	void *ctx;
	/* Send a frame to a device over the end-to-end session (the owner opens one when
	 * needed; a frame sent meanwhile may be lost: it is retransmitted). */
	void (*send)(void *ctx, const uint8_t dev[16], const uint8_t *frame, size_t len);
	void (*random)(void *ctx, void *buf, size_t len);
	/* An offer from user `from` (proved by its device's session) addressed to user
	 * `to`: ring, refuse or drop silently. */
	enum pn_call_policy (*offer_policy)(void *ctx, const char *from, const char *to);
	/* The call's state or hold flags changed (old: the state before). */
	void (*changed)(void *ctx, struct pn_call *call, enum pn_call_state old);
	/* The call is about to be freed (after its linger time, or with the set): the owner
	 * frees what it hung on call->user. Optional. */
	void (*freed)(void *ctx, struct pn_call *call);
};

/* A call, as one device sees it. Read-only for the owner except `user` (owner data). */
struct pn_call {
	struct pn_call *next;
	uint8_t id[16];
	char id_hex[33];
	bool outgoing;
	char peer[33];             /* the other user */
	enum pn_call_state state;
	enum pn_call_reason reason; /* once ENDED */
	bool local_hold, remote_hold;
	uint8_t secret[32];        /* media key material (wiped at the end) */
	uint32_t local_tag, remote_tag;
	uint8_t media;
	int peer_dev;              /* index into dev[] of the device the call runs with; -1 */
	unsigned n_dev;
	struct pn_call_dev {
		uint8_t id[16];
		bool ringing, gone, answered, ended;
		uint32_t rx_max;       /* highest seq handled from this device */
		uint64_t rx_bits;      /* bit i: seq rx_max - i handled (duplicate filter) */
		struct pn_call_out {
			uint32_t seq;
			uint8_t len, tries;
			uint64_t next;
			uint8_t f[PN_CALL_FRAME_MAX];
		} q[PN_CALL_QUEUE];
		unsigned nq;
	} dev[PN_CALL_MAX_DEV];
	uint32_t next_seq;
	uint64_t created_at, answered_at, ended_at;
	uint64_t ring_deadline, connect_deadline, last_rx;
	void *user;
};

struct pn_calls *pn_calls_new(const struct pn_call_ops *ops);
void pn_calls_free(struct pn_calls *cs); /* NULL ok; wipes every call's secret */
struct pn_call *pn_calls_first(struct pn_calls *cs);
struct pn_call *pn_calls_find(struct pn_calls *cs, const char *id_hex);
struct pn_call *pn_calls_find_tag(struct pn_calls *cs, uint32_t local_tag);
/* A call not ended yet, if any (a device takes part in one call at a time). */
struct pn_call *pn_calls_current(struct pn_calls *cs);

/* Calls `peer` (user `me`) on the given devices. Returns NULL with *err = -EBUSY when a
 * call is in progress, -EINVAL for no devices. */
struct pn_call *pn_calls_dial(struct pn_calls *cs, uint64_t now, const char *me, const char *peer,
			      const uint8_t (*devs)[16], unsigned n_dev, int *err);
/* A PN_F_CALL or PN_F_CALL_ACK frame (type byte included) from device dev, whose
 * certificate names user dev_user. Returns 0, or -EBADMSG when malformed or forged. */
int pn_calls_on_frame(struct pn_calls *cs, uint64_t now, const uint8_t dev[16], const char *dev_user,
		      const uint8_t *f, size_t n);
/* User actions; -EINVAL when the call is not in a state that allows it. */
int pn_call_answer(struct pn_calls *cs, struct pn_call *call, uint64_t now);
/* Hang up (active), cancel (caller, not answered) or decline (callee, ringing). */
int pn_call_hangup(struct pn_calls *cs, struct pn_call *call, uint64_t now);
int pn_call_hold(struct pn_calls *cs, struct pn_call *call, uint64_t now, bool on);
/* Ends a call for a local reason (e.g. the media path died): tells the peer. */
void pn_call_abort(struct pn_calls *cs, struct pn_call *call, uint64_t now, enum pn_call_reason why);
/* Media or a report arrived from the peer: the call is alive. */
void pn_call_alive(struct pn_call *call, uint64_t now);
/* Frames to retransmit for device dev right away (its session just came up). */
void pn_calls_flush_dev(struct pn_calls *cs, const uint8_t dev[16], uint64_t now);

uint64_t pn_calls_next_deadline(struct pn_calls *cs);
void pn_calls_tick(struct pn_calls *cs, uint64_t now);

const char *pn_call_state_name(enum pn_call_state s);
const char *pn_call_reason_name(enum pn_call_reason r);

#endif
