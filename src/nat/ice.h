/* Direct paths between two devices (ICE-like, RFC 8445 ideas, our own wire format).
 *
 * Sans-I/O: one struct pn_ice per end-to-end session. The session (a Noise link that
 * is not tied to any path) carries everything: candidate offers travel inside it over
 * the supernode relay, and connectivity checks are ordinary DATA packets of that same
 * session sent straight to a candidate address. A check is therefore authenticated by
 * the session's AEAD and replay window: a spoofed or replayed check never reaches this
 * module (the caller drops and counts it). This module only decides which address to
 * check when, which pair to nominate and when a path has died.
 *
 * The frame (e2e frame 0x47, docs/PROTOCOL.md §3.9), u8 0x47 | u8 kind | body:
 *   kind 1 CANDS     u32 gen | u8 flags (1 = relay only, 2 = send yours) | u8 n |
 *                    n x (u8 type | addr)
 *   kind 2 CHECK     u64 tid | u8 flags (1 = nominate)
 *   kind 3 CHECK_OK  u64 tid | u8 flags (echoed) | addr (the check's source as seen)
 *   kind 4 STREAM    u32 seq | vec16 filler   (test traffic: an audio-sized stream)
 *
 * Roles: the device with the lower device id is controlling (the same rule as the
 * handshake glare rule); only it nominates. Both sides check at once: that is the hole
 * punch. */
#ifndef PARLEY_NAT_ICE_H
#define PARLEY_NAT_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/env.h"

enum pn_cand_type { PN_CAND_HOST = 1, PN_CAND_SRFLX = 2, PN_CAND_PRFLX = 3 };
enum pn_ice_kind { PN_ICE_CANDS = 1, PN_ICE_CHECK = 2, PN_ICE_CHECK_OK = 3, PN_ICE_STREAM = 4 };
enum pn_ice_flags {
	PN_ICE_F_RELAY_ONLY = 1, /* CANDS: the sender reveals no address (always relay) */
	PN_ICE_F_WANT = 2,       /* CANDS: send me yours (we just started accepting you) */
	PN_ICE_F_NOMINATE = 1,   /* CHECK / CHECK_OK */
};
enum pn_ice_limits {
	PN_ICE_MAX_CANDS = 8,
	PN_ICE_MAX_PAIRS = 12,     /* remote candidates + peer-reflexive ones learned */
	PN_ICE_STREAM_MAX = 1200,  /* filler bytes of a STREAM frame */
};
/* Timing (ms). Checks are paced Ta apart; each pair is retried with a doubling timeout
 * from PN_ICE_RTO_MS up to PN_ICE_RTO_MAX_MS until PN_ICE_PAIR_FAIL_MS after its first
 * check; a round with no success is tried again PN_ICE_ROUND_MS later (the session stays
 * on the relay meanwhile). The controlling side checks the selected path every
 * PN_ICE_CONSENT_MS plus up to 5 s of jitter (a keepalive that holds the NAT bindings of
 * both sides, 20-25 s: Linux conntrack keeps a UDP flow 30 s before it saw an answer,
 * 120 s after); when nothing authenticated came back from it for PN_ICE_CONSENT_FAIL_MS
 * after such a check, the path is dropped and traffic goes back to the relay. The
 * controlled side drops it when nothing authenticated arrived on it for
 * PN_ICE_CONSENT_MS + 5 s + 2 x PN_ICE_CONSENT_FAIL_MS. */
enum pn_ice_timing {
	PN_ICE_TA_MS = 20,
	PN_ICE_RTO_MS = 50,
	PN_ICE_RTO_MAX_MS = 500,
	PN_ICE_PAIR_FAIL_MS = 8000,
	PN_ICE_NOMINATE_WAIT_MS = 50,
	PN_ICE_ROUND_MS = 30000,
	PN_ICE_CONSENT_MS = 20000,
	PN_ICE_CONSENT_FAIL_MS = 3000,
};

struct pn_cand {
	uint8_t type; /* enum pn_cand_type */
	struct pn_addr addr;
};

/* One decoded 0x47 frame. */
struct pn_ice_frame {
	uint8_t kind;
	uint8_t flags;
	uint32_t gen;                          /* CANDS */
	uint8_t n;                             /* CANDS */
	struct pn_cand cands[PN_ICE_MAX_CANDS]; /* CANDS */
	uint64_t tid;                          /* CHECK, CHECK_OK */
	struct pn_addr mapped;                 /* CHECK_OK */
	uint32_t seq;                          /* STREAM */
	size_t filler;                         /* STREAM */
};

/* Decodes a frame that starts with the 0x47 byte. 0 or -EBADMSG (truncated, trailing
 * bytes, unknown kind, bad address or candidate type, n > PN_ICE_MAX_CANDS). */
int pn_ice_frame_decode(struct pn_ice_frame *f, const uint8_t *buf, size_t len);
/* Encoders: the frame's length, or -ENOSPC / -EINVAL. */
int pn_ice_cands_encode(uint8_t *out, size_t cap, uint32_t gen, uint8_t flags,
			const struct pn_cand *c, unsigned n);
int pn_ice_check_encode(uint8_t *out, size_t cap, bool ok, uint64_t tid, uint8_t flags,
			const struct pn_addr *mapped);
int pn_ice_stream_encode(uint8_t *out, size_t cap, uint32_t seq, size_t filler);

enum pn_pair_state { PN_PAIR_WAITING = 0, PN_PAIR_IN_PROGRESS, PN_PAIR_SUCCEEDED, PN_PAIR_FAILED };

struct pn_ice_pair {
	struct pn_addr remote;
	uint8_t type;   /* the remote candidate's type */
	uint8_t state;  /* enum pn_pair_state */
	bool nominating;
	uint64_t first_at, next_at;
	uint32_t rto;
	uint64_t tid_base; /* OKs with tid counters >= this answer the current transaction */
	uint32_t rtt_ms;
};

struct pn_ice {
	bool controlling;
	bool active;      /* remote candidates known and checks allowed */
	unsigned n;
	struct pn_ice_pair pairs[PN_ICE_MAX_PAIRS];
	int selected;     /* index into pairs, -1 = relay */
	uint64_t ctr;     /* transaction counter (tid = ctr << 8 | pair index) */
	uint64_t next_check_at;  /* pacing */
	uint64_t round_at;       /* next retry round when all failed (0 = none) */
	uint64_t first_ok_at;    /* first success of the current round */
	uint64_t selected_at, last_rx, consent_at, consent_sent_at;
	struct pn_addr mapped;   /* our address as the peer saw our last answered check */
	/* counters */
	uint64_t checks_sent, checks_ok, paths_lost, rounds;
};

void pn_ice_init(struct pn_ice *ice, bool controlling);
/* Takes the peer's candidates (replacing earlier ones) and starts a round of checks.
 * fams: bit 0 = we can send IPv4, bit 1 = IPv6; pairs of other families are skipped.
 * IPv6 pairs come first, then host before server-reflexive. A selected path stays in use
 * until consent fails or a new nomination replaces it. */
void pn_ice_set_remote(struct pn_ice *ice, const struct pn_cand *c, unsigned n, unsigned fams,
		       uint64_t now);
/* Stops checking and forgets the path (the session goes back to the relay). */
void pn_ice_stop(struct pn_ice *ice);

struct pn_ice_out {
	struct pn_addr to;
	uint64_t tid;
	uint8_t flags;
};
/* When a check is due at now: fills *out and returns true (call again until false). */
bool pn_ice_poll(struct pn_ice *ice, uint64_t now, struct pn_ice_out *out);
/* When pn_ice_poll next has something to do; UINT64_MAX for never. */
uint64_t pn_ice_deadline(const struct pn_ice *ice);

/* An authenticated CHECK arrived from `from` (the caller answers it with CHECK_OK to
 * from). An unknown source becomes a peer-reflexive pair checked at once (a triggered
 * check). Controlled side: a nominating check selects `from`. Returns true when the
 * selected path changed. */
bool pn_ice_on_check(struct pn_ice *ice, uint64_t now, const struct pn_addr *from, uint8_t flags);
/* An authenticated CHECK_OK. Returns true when the selected path changed; false also for
 * a stale or unknown tid. */
bool pn_ice_on_ok(struct pn_ice *ice, uint64_t now, const struct pn_addr *from, uint64_t tid,
		  uint8_t flags, const struct pn_addr *mapped);
/* Any other authenticated packet from the peer that arrived directly (consent). */
void pn_ice_on_rx(struct pn_ice *ice, uint64_t now, const struct pn_addr *from);
/* The host could not send a check to `to` at all (no route, address family): that pair
 * fails now instead of after PN_ICE_PAIR_FAIL_MS. */
void pn_ice_send_failed(struct pn_ice *ice, const struct pn_addr *to);
/* Our own addresses changed: check the path in use now (a dead one is dropped within
 * PN_ICE_CONSENT_FAIL_MS) instead of at the next keepalive. */
void pn_ice_recheck(struct pn_ice *ice, uint64_t now);
/* The direct path in use, or NULL (relay). */
const struct pn_addr *pn_ice_selected(const struct pn_ice *ice);
/* Whether `from` is one of the pairs' remote addresses. */
bool pn_ice_knows(const struct pn_ice *ice, const struct pn_addr *from);

#endif
