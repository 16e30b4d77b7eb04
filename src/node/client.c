/* The client node: one per device (docs/ARCHITECTURE.md "Client node").
 *
 * It holds the device identity (an Ed25519 + X25519 pair derived from a seed generated on
 * the device and never sent anywhere), the certificate the login server issued for it,
 * and a local SQLite store. It attaches to a supernode, publishes its signed record, looks
 * users up through the supernode, and opens end-to-end Noise IK sessions with other
 * devices whose packets the supernode forwards without being able to read them.
 *
 * Commands arrive as JSON (pn_client_request); every network step is asynchronous and
 * completes the command's callback later. Timers are pulled through next_deadline/tick. */
#include "parley/client.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/hex.h"
#include "base/log.h"
#include "call/callmedia.h"
#include "call/signal.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "im/group.h"
#include "im/histsync.h"
#include "im/store.h"
#include "nat/ice.h"
#include "session/link.h"
#include "wire/wire.h"
#include "wire/mbox.h"

enum {
	CL_HS_RETRY_MS = 300,      /* first handshake retransmission; doubles */
	CL_HS_TRIES = 4,
	CL_LOGIN_TIMEOUT_MS = 10000,
	CL_LOOKUP_TIMEOUT_MS = 5000,
	CL_PING_MS = 25000,        /* keepalive to the supernode: the top of the 15-25 s that
				    * NAT bindings need (Linux conntrack: 30 s), for the idle cost */
	CL_SN_DEAD_MS = 65000,     /* no packet from the supernode this long: reattach */
	CL_REATTACH_MS = 2000,
	CL_RECORD_TTL_S = 3600,
	CL_REPUBLISH_MS = 1800000,
	CL_MSG_RETRY_MS = 1000,    /* first message retransmission; doubles up to the cap */
	CL_MSG_RETRY_CAP_MS = 4000,
	CL_MSG_TRIES = 10,         /* about 35 s; then the message is queued for a slow retry */
	CL_QUEUED_RETRY_MS = 15000,
	CL_LOOKUP_CACHE_MS = 10000,
	/* one datagram, also when it goes into a mailbox sealed with our certificate
	 * (docs/ARCHITECTURE.md, "Messages are one datagram") */
	CL_CHAT_TEXT_MAX = 800,
	CL_MB_AFTER_TRIES = 4,     /* no receipt after this many tries (7 s): into the mailbox */
	CL_MB_RETRY_MS = 3000,     /* a deposit without any store receipt is sent again */
	CL_MB_TRIES = 8,
	CL_MB_FETCH_RETRY_MS = 8000,
	CL_MB_POLL_MS = 20000,     /* our own mailbox, while receipts for stored messages are due */
	CL_MB_IDLE_POLL_MS = 300000, /* ... and otherwise (a deposit made during a short outage) */
	CL_MB_WAKE_MS = 30000,     /* no tick for this long (suspended): fetch on waking */
	CL_REQ_RETRY_MS = 1000,    /* request retransmission (login, publish, lookup) */
	CL_ATTACH_WAIT_MS = 1500,  /* handshake done but no ATTACHED: start over */
	CL_SUSPECT_MS = 2500,      /* primary silent this long after we sent to it: probe it */
	CL_PROBE_MS = 1000,        /* probe unanswered this long: switch to the standby */   /* one datagram; chunking is future work */
	CL_PW_MAX = 128,
	CL_PATH_MAX = 512,
	CL_OFFERS_BURST = 10,      /* incoming call offers: 10 at once, then one per 3 s */
	CL_OFFER_REFILL_MS = 3000,
	CL_OFFERS_PER_USER = 3,    /* ... and at most 3 per caller per 30 s */
	CL_OFFER_USER_WINDOW_MS = 30000,
	CL_ECHO_ANSWER_MS = 300,   /* the echo bot picks up after this */
	CL_CALL_STATS_MS = 1000,
	CL_MOOD_MAX = 100,         /* bytes of UTF-8 */
	CL_PRESENCE_REFRESH_MS = 300000, /* presence sent to contacts again every 5 min */
	CL_PRESENCE_TTL_MS = 660000,
	CL_HIST_RESEND_MS = 1000,       /* a history chunk unacknowledged this long goes again */
	CL_HIST_TRIES = 30,             /* ... this many times, then the transfer waits for the
					 * next session with that device (or our next own lookup) */
	CL_HELD_PER_USER = 20,          /* messages waiting from one non-contact */
	CL_HELD_MAX = 500,              /* ... and from all of them */     /* not heard again for 11 min: offline */
	CL_READ_PENDING = 64,      /* read receipts held per user until a session is up */
	CL_REQ_BURST = 10,         /* contact requests from new people: 10, then 1 a minute */
	CL_REQ_REFILL_MS = 60000,
	CL_LOOKUPS_MAX = 8,        /* directory lookups in flight at once; the rest wait */
	CL_GROUP_ASM_MAX = 8,      /* group snapshots being reassembled at once */
	PN_CONTACT_REQUEST = 1,
};

enum pres_status { PRES_OFFLINE = 0, PRES_ONLINE = 1, PRES_AWAY = 2, PRES_DND = 3,
		   PRES_INVISIBLE = 4 /* ours only: sent as offline */ };

enum sn_state { SN_NONE = 0, SN_CONNECTING, SN_UP };
enum op_kind { OP_NONE = 0, OP_REGISTER, OP_LOGIN, OP_RENEW, OP_PROFILE_SET, OP_SEARCH,
	       OP_DEVICES, OP_REVOKE };

/* A command waiting for the network. */
struct pending {
	struct pending *next;
	enum { P_WHOIS, P_LOGIN_ATTACH, P_CALL } kind;
	char username[PN_USERNAME_MAX + 1];
	struct call_opts *call; /* P_CALL: the media options of the call to place */
	uint64_t deadline;
	pn_client_reply_cb cb;
	void *arg;
};

/* A remote user's devices, as last looked up. */
struct ruser {
	struct ruser *next;
	char name[PN_USERNAME_MAX + 1];
	unsigned n;
	struct pn_cert certs[PN_REC_MAX_SN * 2];
	struct pn_record recs[PN_REC_MAX_SN * 2];
	uint64_t fetched_at;
	uint32_t lookup_req; /* non-zero while a lookup is in flight */
	uint64_t lookup_deadline, lookup_resend_at;
	bool found;
	/* presence, for contacts: what they last told us, and whether ours is due to them */
	uint8_t pres_status;       /* PRES_* (PRES_OFFLINE until told otherwise) */
	char mood[CL_MOOD_MAX + 1];
	uint64_t pres_seq;         /* the sender's clock: older news is ignored */
	uint64_t pres_at;          /* now_ms() when it arrived (it expires) */
	bool pres_push;            /* send ours once the lookup answers */
	bool lookup_wait;          /* a lookup is due but CL_LOOKUPS_MAX are in flight */
	/* read receipts (ours, for their messages; or, for our own user, read-state sync)
	 * waiting for a session with their devices */
	uint8_t read_ids[CL_READ_PENDING][16];
	unsigned n_read;
	/* the devices last seen in the directory, kept when a lookup finds none: their
	 * mailbox envelopes are sealed to these */
	struct pn_cert mb_certs[PN_REC_MAX_SN * 2];
	unsigned mb_n;
	bool mb_loaded;
};

/* Delivered receipts for messages fetched from our mailbox, on their way into the
 * sender device's mailbox. */
struct mbrcpt {
	struct mbrcpt *next;
	struct pn_cert to;  /* the sender device */
	uint8_t kind;       /* 1 delivered, 2 read */
	uint8_t ids[PN_MB_RECEIPT_IDS][16];
	unsigned n;
	uint8_t entry[16];
	uint32_t req;
	unsigned tries;
	uint64_t next_try;
	bool done;
};

/* An end-to-end session with one remote device. */
struct peer {
	struct peer *next;
	uint8_t device_id[16];
	char username[PN_USERNAME_MAX + 1];
	struct pn_link link;
	uint64_t last_peer_ts; /* replay guard for their handshake message 1 */
	uint64_t reset_sent_at; /* RESET replies are rate limited per device */
	uint8_t sn_key[32];     /* the supernode the device is attached to, when not ours */
	bool has_sn;
	/* every supernode its record names (primary first, then standby): a retransmission
	 * tries the next one, so a device stays reachable when its primary dies */
	uint8_t routes[PN_REC_MAX_SN][32];
	unsigned n_routes, route_i;
	bool via_standby; /* its last packet came over our standby: answer the same way */
	struct histtx *hist;  /* our history on its way to this device of our account */
	uint32_t hist_rx_next; /* the next HIST chunk we expect from it */
	unsigned hist_rx_msgs, hist_rx_contacts; /* what its transfer added here so far */
	bool csync_sent; /* our contact-list stamps went on this session */
	/* direct path (the "direct paths" section): the session is not tied to a path */
	struct pn_ice ice;
	uint32_t cands_gen;     /* the last candidate generation taken from the peer */
	uint64_t hs_at, up_at;  /* handshake begun, session up (time to session) */
	uint64_t stream_rx, stream_left, stream_next_at, stream_sent; /* test stream */
	uint32_t stream_seq, stream_every_ms, stream_size;
	uint64_t direct_rx, direct_tx;
};

/* History transfer to another device of our account (see src/im/histsync.h): one chunk in
 * flight, resent until acknowledged. */
struct histtx {
	uint32_t seq;
	uint64_t cursor;        /* messages up to this row position are in earlier chunks */
	char last_contact[PN_USERNAME_MAX + 1]; /* contacts up to this name likewise */
	bool msgs_done, contacts_done, last;
	uint8_t buf[PN_E2E_FRAME_MAX];
	size_t len;
	uint64_t resend_at;
	unsigned tries;
	unsigned msgs, contacts, skipped;
	uint64_t started_at;
};

/* An outgoing message not yet acknowledged. */
struct outmsg {
	struct outmsg *next;
	char id[PN_MSG_ID_HEX + 1];
	uint8_t idb[16];
	char to[PN_USERNAME_MAX + 1];
	uint64_t sent_at;
	char *text;
	unsigned tries;
	uint64_t next_try;
	bool queued;
	/* a copy for our own other devices (to = our username, peer = the conversation's
	 * other user), so every device of the account has the same history */
	bool carbon;
	bool dead;
	char peer[PN_USERNAME_MAX + 1];
	/* the recipient's devices that acknowledged it: it goes to each of them; the first
	 * receipt makes it delivered, the last one retires it */
	uint8_t acked[PN_REC_MAX_SN * 2][16];
	unsigned n_acked;
	bool delivered;
	/* group chats: a group message (GROUP_CHAT; one entry per member, all with the same
	 * id), or a group update (blob: its frames, each u16 length + frame; idb is the
	 * update id). Both ride the same per-recipient path as a one-to-one message. */
	bool group;
	uint8_t gid[PN_GROUP_ID_LEN];
	uint8_t *blob;
	size_t blob_len;
	/* mailbox: one envelope per recipient device that did not acknowledge in time, and
	 * the supernodes that signed a store receipt for it */
	struct {
		uint8_t dev[16], entry[16];
		uint32_t req;
		uint8_t signers[PN_MB_R + 1][32];
		unsigned n_signers;
	} mbd[PN_REC_MAX_SN * 2];
	unsigned n_mbd;
	unsigned mb_n;       /* stored n of r, as last reported */
	bool mb_stored;      /* in every deposited device's mailbox: direct retries stop */
	uint64_t mb_expires; /* unix s */
	uint64_t mb_next_try;
	unsigned mb_tries;
};

/* A group we know (member or not any more), as stored. */
struct cgroup {
	struct cgroup *next;
	struct pn_group g;
};

static bool outmsg_acked_by(const struct outmsg *m, const uint8_t dev[16])
{
	for (unsigned i = 0; i < m->n_acked; i++)
		if (memcmp(m->acked[i], dev, 16) == 0)
			return true;
	return false;
}

/* A token bucket: `burst` tokens, one more every refill_ms (starts full). */
struct tbucket {
	double tokens;
	uint64_t at; /* last refill; 0 = never used */
};

static void tb_refill(struct tbucket *b, uint64_t now, double burst, uint64_t refill_ms)
{
	if (b->at == 0) {
		b->tokens = burst;
		b->at = now;
	}
	b->tokens += (double)(now - b->at) / (double)refill_ms;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at = now;
}

struct pn_client {
	struct pn_env env;
	struct pn_network net;
	struct pn_cstore *store;
	char device_name[64];
	struct pn_keys keys;
	uint8_t device_id[16];
	/* identity, once logged in */
	bool logged_in;
	char username[PN_USERNAME_MAX + 1];
	struct pn_cert cert;
	uint8_t cert_bytes[PN_CERT_MAX];
	size_t cert_len;
	uint64_t last_hs_ts;
	/* login server exchange (one at a time) */
	enum op_kind op;
	struct pn_link op_link;
	uint32_t op_req;
	uint64_t op_deadline;
	uint64_t op_resend_at; /* request retransmission while no answer came */
	uint8_t op_frame[PN_FRAME_MAX];
	size_t op_frame_len;
	uint8_t op_body[PN_FRAME_MAX]; /* PROFILE_SET / SEARCH body after the request id */
	size_t op_body_len;
	char op_user[PN_USERNAME_MAX + 1];
	char op_pw[CL_PW_MAX + 2];
	pn_client_reply_cb op_cb;
	void *op_arg;
	/* supernode attachment */
	enum sn_state sn_state;
	struct pn_link sn_link;
	struct pn_net_peer sn;
	struct pn_net_peer cands[PN_NET_MAX_SUPERNODES * 2];
	unsigned n_cands, cand_i;
	uint64_t sn_retry_at, sn_ping_at, republish_at;
	uint32_t next_req;
	uint64_t record_seq;
	uint32_t publish_req;    /* non-zero until the supernode confirms the record */
	uint64_t publish_resend_at;
	uint8_t publish_frame[PN_REC_MAX + 16];
	size_t publish_len;
	uint64_t attach_wait_until;
	uint64_t sn_probe_at;    /* a PING sent to check a primary that stopped answering */
	/* standby attachment: a second supernode kept warm, promoted when the primary dies */
	struct pn_link sb_link;
	struct pn_net_peer sb;
	int sb_state;            /* 0 none, 1 connecting, 2 attached */
	unsigned sb_cand;
	uint64_t sb_retry_at, sb_ping_at;
	bool rx_standby; /* set while a frame from the standby is being handled */
	bool hosts_asked; /* GET_SUPERNODES sent on this attachment */
	struct pn_addr reflexive;
	/* lists */
	struct pending *pending;
	struct ruser *rusers;
	struct peer *peers;
	struct outmsg *out;
	pn_client_event_cb ev_cb;
	void *ev_arg;
	bool want_exit;
	uint64_t renew_check_at;
	uint64_t wall_anchor, mono_anchor; /* see wall_ms() */
	/* calls */
	struct pn_calls *calls;
	bool calls_from_anyone;  /* setting: take calls from non-contacts too */
	bool msgs_from_anyone;   /* setting: messages from non-contacts go to the history
				  * (else they are held as a message request) */
	bool echo_bot;           /* answer every call and play back what was heard */
	const struct pn_audio_ops *audio; /* the sound device, if the host has one */
	struct tbucket offers;   /* incoming call offers: a token bucket, plus per user */
	struct { char user[PN_USERNAME_MAX + 1]; uint64_t at[CL_OFFERS_PER_USER]; } offer_users[8];
	unsigned offer_users_i;
	uint64_t calls_rate_limited, calls_refused, media_bad;
	/* presence */
	uint8_t pres_status;     /* ours: PRES_ONLINE .. PRES_INVISIBLE */
	char mood[CL_MOOD_MAX + 1];
	uint64_t pres_seq;
	uint64_t pres_refresh_at;
	uint64_t presence_bad;   /* presence from non-contacts, or malformed */
	struct tbucket requests; /* incoming contact requests from new people */
	uint64_t requests_dropped, blocked_dropped, msgs_held, revoked_refused;
	/* counters for the status command */
	uint64_t rx_bad, rx_e2e_bad, rx_e2e_early;
	/* group chats */
	struct cgroup *groups;
	struct pn_group_asm *gasm[CL_GROUP_ASM_MAX]; /* snapshots arriving in chunks */
	unsigned gasm_i;
	uint64_t group_refused;  /* group frames not allowed by the group's rules */
	unsigned lookups_peak;   /* most directory lookups ever in flight at once */
	uint64_t lookups_paced;  /* lookups that had to wait for a free slot */
	/* mailbox (the "mailbox" section) */
	uint64_t mb_ttl_s;
	uint32_t mb_fetch_req;
	uint64_t mb_fetch_at, mb_poll_at, mb_ack_ts, mb_last_fetch, mb_last_tick;
	bool mb_more, mb_ticked;
	uint8_t (*mb_acks)[16]; /* entries taken, to acknowledge */
	size_t mb_n_acks, mb_acks_cap, mb_acks_inflight;
	uint32_t mb_ack_req;
	uint64_t mb_ack_at;
	struct mbrcpt *mb_rcpts;
	uint64_t mb_in, mb_bad, mb_dup, mb_receipts_bad, mb_refused;
	/* direct paths: our candidates, the "always relay" setting, rejected direct input */
	bool always_relay;
	struct pn_cand local[PN_ICE_MAX_CANDS];
	unsigned n_local;
	uint32_t cands_gen;
	uint64_t nat_scan_at;
	uint64_t direct_bad, direct_refused;
};

/* A call's media options and running media (struct pn_call.user). */
struct call_opts {
	char play[CL_PATH_MAX], record[CL_PATH_MAX];
	bool echo;
	uint64_t auto_answer_at; /* the echo bot answers here; 0 = not */
	uint64_t stats_at;       /* next call.stats event */
	struct pn_callmedia *media;
};

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void pending_free(struct pending *p)
{
	free(p->call);
	free(p);
}

static uint64_t now_ms(struct pn_client *c)
{
	return c->env.now_ms(c->env.ctx);
}

static uint64_t wall_s(struct pn_client *c)
{
	return c->env.wall_s(c->env.ctx);
}

/* Wall-clock milliseconds: the monotonic clock anchored to the wall clock, re-anchored
 * when they drift apart by more than 2 s (the environment's wall clock has second
 * resolution; this keeps ms resolution and never steps backwards by less than that). */
static uint64_t wall_ms(struct pn_client *c)
{
	uint64_t mono = c->env.now_ms(c->env.ctx), ws = c->env.wall_s(c->env.ctx) * 1000;
	uint64_t est = c->wall_anchor + (mono - c->mono_anchor);

	if (!c->wall_anchor || est + 2000 < ws || est > ws + 3000) {
		/* Anchor at the END of the current second: we are then never behind the true
		 * time, so a restarted daemon's handshake timestamps and record sequence
		 * numbers stay above everything its previous run sent. */
		ws += 999;
		c->wall_anchor = ws;
		c->mono_anchor = mono;
		est = ws;
	}
	return est;
}

static uint32_t new_req(struct pn_client *c)
{
	if (++c->next_req == 0)
		c->next_req = 1;
	return c->next_req;
}

static void emit(struct pn_client *c, const char *name, json_t *data)
{
	if (c->ev_cb)
		c->ev_cb(c->ev_arg, name, data);
	json_decref(data);
}

static void reply_ok(pn_client_reply_cb cb, void *arg, json_t *res)
{
	if (!res)
		res = json_object();
	cb(arg, 0, NULL, NULL, res);
	json_decref(res);
}

static void reply_err(pn_client_reply_cb cb, void *arg, int err, const char *code, const char *msg)
{
	cb(arg, err, code, msg, NULL);
}

static const char *state_name(struct pn_client *c)
{
	if (!c->logged_in)
		return "logged_out";
	return c->sn_state == SN_UP ? "online" : "connecting";
}

static void set_sn_state(struct pn_client *c, enum sn_state st)
{
	char a[PN_ADDR_STRLEN];

	if (c->sn_state == st)
		return;
	c->sn_state = st;
	if (st == SN_CONNECTING)
		return;
	emit(c, "status.changed",
	     json_pack("{s:s,s:s}", "state", state_name(c), "supernode",
		       st == SN_UP ? pn_addr_str(&c->sn.addr, a) : ""));
}

/* ---- identity --------------------------------------------------------------------- */

static int load_identity(struct pn_client *c)
{
	uint8_t seed[32];
	size_t n;
	int rc;

	rc = pn_cstore_kv_get(c->store, "device_seed", seed, sizeof(seed), &n);
	if (rc == -ENOENT) {
		/* First start: the device key is born here and never leaves. */
		c->env.random(c->env.ctx, seed, sizeof(seed));
		rc = pn_cstore_kv_set(c->store, "device_seed", seed, sizeof(seed));
		n = sizeof(seed);
	}
	if (rc || n != sizeof(seed)) {
		sodium_memzero(seed, sizeof(seed));
		return rc ? rc : -EIO;
	}
	rc = pn_keys_from_seed(&c->keys, seed);
	sodium_memzero(seed, sizeof(seed));
	if (rc)
		return rc;
	pn_device_id(c->device_id, c->keys.sign_pk);
	{
		uint8_t b[8];
		size_t bl;
		if (pn_cstore_kv_get(c->store, "hs_ts", b, sizeof(b), &bl) == 0 && bl == 8)
			for (int i = 0; i < 8; i++)
				c->last_hs_ts = c->last_hs_ts << 8 | b[i];
		/* record sequence numbers come from the same clock: keep them above it too */
		c->record_seq = c->last_hs_ts;
	}
	rc = pn_cstore_kv_get(c->store, "cert", c->cert_bytes, sizeof(c->cert_bytes), &c->cert_len);
	if (rc == 0 && pn_cert_decode(&c->cert, c->cert_bytes, c->cert_len) == 0 &&
	    pn_ct_eq(c->cert.dh_pk, c->keys.dh_pk, 32)) {
		strcpy(c->username, c->cert.name);
		c->logged_in = true;
	}
	return 0;
}

static void add_candidate(struct pn_client *c, const struct pn_net_peer *p)
{
	for (unsigned i = 0; i < c->n_cands; i++) {
		if (pn_addr_eq(&c->cands[i].addr, &p->addr)) {
			if (p->has_key) {
				c->cands[i].has_key = true;
				memcpy(c->cands[i].key, p->key, 32);
			}
			return;
		}
	}
	if (c->n_cands < sizeof(c->cands) / sizeof(c->cands[0]))
		c->cands[c->n_cands++] = *p;
}

static int host_cb(void *arg, const struct pn_host_row *h)
{
	struct pn_client *c = arg;
	struct pn_net_peer p;

	memset(&p, 0, sizeof(p));
	if (pn_addr_parse(&p.addr, h->addr))
		return 0;
	memcpy(p.key, h->key, 32);
	p.has_key = true;
	add_candidate(c, &p);
	return 0;
}

static void load_candidates(struct pn_client *c)
{
	c->n_cands = 0;
	pn_cstore_host_list(c->store, host_cb, c);
	for (unsigned i = 0; i < c->net.n_supernodes; i++)
		add_candidate(c, &c->net.supernodes[i]);
}

/* ---- supernode attachment ----------------------------------------------------------- */

static void sn_send_frame(struct pn_client *c, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_RX_MAX];
	size_t len;

	if (c->sn_link.state != PN_LINK_UP)
		return;
	if (pn_link_seal(&c->sn_link, f, n, now_ms(c), pkt, sizeof(pkt), &len) == 0)
		c->env.send(c->env.ctx, &c->sn.addr, pkt, len);
}

static uint64_t next_hs_ts(struct pn_client *c)
{
	/* Strictly increasing even if the wall clock stalls or two handshakes start in the
	 * same millisecond. */
	uint64_t t = wall_ms(c);
	uint8_t b[8];

	if (t <= c->last_hs_ts)
		t = c->last_hs_ts + 1;
	c->last_hs_ts = t;
	/* Kept across restarts: peers refuse a message 1 whose timestamp is not newer than
	 * the last one they saw from this device, and a quick restart can read the same
	 * wall-clock second as the previous run. */
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(t >> (56 - 8 * i));
	pn_cstore_kv_set(c->store, "hs_ts", b, sizeof(b));
	return t;
}

/* Starts a handshake on l as initiator: fresh ephemeral key and index, our static key,
 * the current handshake timestamp and (with_cert) our certificate. rs = NULL means XX.
 * The first message is then in l->hs_pkt for the caller to send. */
static int link_start(struct pn_client *c, struct pn_link *l, uint8_t purpose, const uint8_t *rs,
		      bool with_cert)
{
	struct pn_link_params p;
	uint8_t e_sk[32];
	uint32_t idx;
	int rc;

	c->env.random(c->env.ctx, e_sk, sizeof(e_sk));
	c->env.random(c->env.ctx, &idx, sizeof(idx));
	memset(&p, 0, sizeof(p));
	p.pattern = rs ? PN_PATTERN_IK : PN_PATTERN_XX;
	p.purpose = purpose;
	p.s_sk = c->keys.dh_sk;
	p.rs = rs;
	p.e_sk = e_sk;
	p.local_idx = idx;
	p.timestamp_ms = next_hs_ts(c);
	if (with_cert) {
		p.cert = c->cert_bytes;
		p.cert_len = c->cert_len;
	}
	p.now = now_ms(c);
	rc = pn_link_connect(l, &p);
	sodium_memzero(e_sk, sizeof(e_sk));
	return rc;
}

static void sn_connect(struct pn_client *c)
{
	if (!c->logged_in || c->n_cands == 0)
		return;
	c->sn = c->cands[c->cand_i % c->n_cands];
	if (link_start(c, &c->sn_link, PN_PURPOSE_ATTACH, c->sn.has_key ? c->sn.key : NULL,
		       true) == 0) {
		c->env.send(c->env.ctx, &c->sn.addr, c->sn_link.hs_pkt, c->sn_link.hs_pkt_len);
		set_sn_state(c, SN_CONNECTING);
		c->sn_retry_at = now_ms(c) + CL_HS_RETRY_MS;
	}
}

static void publish_record(struct pn_client *c)
{
	struct pn_record r;
	uint8_t rec[PN_REC_MAX], f[PN_REC_MAX + 16];
	struct pn_wr w;
	int n;

	memset(&r, 0, sizeof(r));
	r.cert = c->cert;
	/* Sequence numbers from the wall clock survive restarts without being stored. */
	r.seq = wall_ms(c);
	if (r.seq <= c->record_seq)
		r.seq = c->record_seq + 1;
	c->record_seq = r.seq;
	r.expires = wall_s(c) + CL_RECORD_TTL_S;
	if (r.expires > c->cert.not_after)
		r.expires = c->cert.not_after;
	r.caps = 1; /* messaging */
	if (c->sn.has_key) {
		r.n_sn = 1;
		r.sn_addr[0] = c->sn.addr;
		memcpy(r.sn_key[0], c->sn.key, 32);
	}
	if (c->sb_state == 2 && c->sb.has_key) {
		r.sn_addr[r.n_sn] = c->sb.addr;
		memcpy(r.sn_key[r.n_sn], c->sb.key, 32);
		r.n_sn++;
	}
	n = pn_record_sign_encode(&r, c->keys.sign_sk, rec, sizeof(rec));
	if (n < 0)
		return;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PUBLISH);
	c->publish_req = new_req(c);
	pn_wr_u32(&w, c->publish_req);
	pn_wr_vec16(&w, rec, (size_t)n);
	if (w.err)
		return;
	sn_send_frame(c, f, w.len);
	memcpy(c->publish_frame, f, w.len);
	c->publish_len = w.len;
	c->publish_resend_at = now_ms(c) + CL_REQ_RETRY_MS;
	c->republish_at = now_ms(c) + CL_REPUBLISH_MS;
}

static void flush_all(struct pn_client *c);
static void pres_push_all(struct pn_client *c);
static void read_flush(struct pn_client *c, struct ruser *u);
static void devices_on_result(struct pn_client *c, const uint8_t *b, size_t len);
static bool is_blocked(struct pn_client *c, const char *user);
static void req_on_presence(struct pn_client *c, struct peer *p);
static void mb_fetch(struct pn_client *c);
static void mb_pass_send(struct pn_client *c, struct peer *p);
static void mb_on_pass(struct pn_client *c, struct peer *p, struct pn_rd *r);

static void complete_login_waiters(struct pn_client *c, bool ok)
{
	struct pending **pp = &c->pending;
	char a[PN_ADDR_STRLEN], did[33];

	while (*pp) {
		struct pending *p = *pp;
		if (p->kind != P_LOGIN_ATTACH) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (ok)
			reply_ok(p->cb, p->arg,
				 json_pack("{s:s,s:s,s:I,s:s}", "username", c->username, "device_id",
					   pn_hex_encode(did, sizeof(did), c->device_id, 16),
					   "cert_expires", (json_int_t)c->cert.not_after, "supernode",
					   pn_addr_str(&c->sn.addr, a)));
		else
			reply_err(p->cb, p->arg, -ETIMEDOUT, "supernode_unreachable",
				  "logged in, but no supernode answered yet; still trying");
		free(p);
	}
}

static void on_attached(struct pn_client *c)
{
	struct pn_host_row h;
	char a[PN_ADDR_STRLEN];

	c->sn_ping_at = now_ms(c) + CL_PING_MS;
	c->cand_i = 0;
	set_sn_state(c, SN_UP);
	pn_info("attached to supernode %s", pn_addr_str(&c->sn.addr, a));
	if (c->sn.has_key) {
		memset(&h, 0, sizeof(h));
		pn_addr_str(&c->sn.addr, h.addr);
		memcpy(h.key, c->sn.key, 32);
		h.last_seen = wall_s(c);
		pn_cstore_host_upsert(c->store, &h);
	}
	publish_record(c);
	complete_login_waiters(c, true);
	flush_all(c);
	c->hosts_asked = false;
	pres_push_all(c);
	mb_fetch(c);
}

static void sn_drop(struct pn_client *c, bool try_next)
{
	pn_link_wipe(&c->sn_link);
	c->sn_probe_at = 0; /* a probe of the link we just dropped means nothing now */
	if (try_next)
		c->cand_i++;
	if (c->sn_state != SN_NONE) {
		c->sn_state = SN_CONNECTING;
		emit(c, "status.changed", json_pack("{s:s}", "state", state_name(c)));
	}
	c->sn_retry_at = now_ms(c) + (try_next ? 0 : CL_REATTACH_MS);
}

/* ---- remote users and end-to-end sessions ------------------------------------------- */

static struct ruser *ruser_get(struct pn_client *c, const char *name, bool create)
{
	struct ruser *u;

	for (u = c->rusers; u; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	if (!create)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	strcpy(u->name, name);
	u->next = c->rusers;
	c->rusers = u;
	return u;
}

static void lookup_send(struct pn_client *c, struct ruser *u);

static unsigned lookups_in_flight(struct pn_client *c)
{
	unsigned n = 0;

	for (struct ruser *u = c->rusers; u; u = u->next)
		n += u->lookup_req != 0;
	return n;
}

static void lookup_start(struct pn_client *c, struct ruser *u)
{
	if (u->lookup_req || c->sn_state != SN_UP)
		return;
	/* A group message to 100 members would start 100 lookups at once: the supernode
	 * answers each with an overlay lookup of its own. Pace them: CL_LOOKUPS_MAX in
	 * flight, the rest start as answers come back (lookup_pump). */
	unsigned n = lookups_in_flight(c);
	if (n >= CL_LOOKUPS_MAX) {
		if (!u->lookup_wait)
			c->lookups_paced++;
		u->lookup_wait = true;
		return;
	}
	if (n + 1 > c->lookups_peak)
		c->lookups_peak = n + 1;
	u->lookup_wait = false;
	u->lookup_req = new_req(c);
	u->lookup_deadline = now_ms(c) + CL_LOOKUP_TIMEOUT_MS;
	lookup_send(c, u);
}

/* Starts waiting lookups while slots are free. */
static void lookup_pump(struct pn_client *c)
{
	unsigned n = lookups_in_flight(c);

	for (struct ruser *u = c->rusers; u && n < CL_LOOKUPS_MAX && c->sn_state == SN_UP;
	     u = u->next) {
		if (u->lookup_wait && !u->lookup_req) {
			lookup_start(c, u);
			n++;
		}
	}
}

static void lookup_send(struct pn_client *c, struct ruser *u)
{
	uint8_t f[64];
	struct pn_wr w;

	u->lookup_resend_at = now_ms(c) + CL_REQ_RETRY_MS;
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_LOOKUP);
	pn_wr_u32(&w, u->lookup_req);
	pn_wr_str8(&w, u->name);
	sn_send_frame(c, f, w.len);
}

static struct peer *peer_get(struct pn_client *c, const uint8_t id[16], bool create)
{
	struct peer *p;

	for (p = c->peers; p; p = p->next)
		if (memcmp(p->device_id, id, 16) == 0)
			return p;
	if (!create)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	memcpy(p->device_id, id, 16);
	pn_ice_init(&p->ice, false); /* on the relay until a session is up and a path wins */
	p->next = c->peers;
	c->peers = p;
	return p;
}

/* Sends an end-to-end packet to a device through our supernode: FORWARD when it is
 * attached to the same supernode, FORWARD_VIA naming its supernode otherwise. */
static void forward(struct pn_client *c, const uint8_t dst[16], const uint8_t *pkt, size_t n)
{
	uint8_t f[PN_PKT_RX_MAX];
	struct pn_wr w;
	struct peer *p = peer_get(c, dst, false);

	pn_wr_init(&w, f, sizeof(f));
	if (p && p->has_sn && !pn_ct_eq(p->sn_key, c->sn.key, 32)) {
		pn_wr_u8(&w, PN_F_FORWARD_VIA);
		pn_wr_bytes(&w, dst, 16);
		pn_wr_bytes(&w, p->sn_key, 32);
	} else {
		pn_wr_u8(&w, PN_F_FORWARD);
		pn_wr_bytes(&w, dst, 16);
	}
	pn_wr_vec16(&w, pkt, n);
	if (w.err)
		return;
	if (p && p->via_standby && c->sb_state == 2 && c->sb_link.state == PN_LINK_UP) {
		uint8_t out[PN_PKT_RX_MAX];
		size_t len;
		if (pn_link_seal(&c->sb_link, f, w.len, now_ms(c), out, sizeof(out), &len) == 0)
			c->env.send(c->env.ctx, &c->sb.addr, out, len);
		return;
	}
	sn_send_frame(c, f, w.len);
}

static void nat_out(struct pn_client *c, struct peer *p, const uint8_t *pkt, size_t n);
static void nat_on_session_up(struct pn_client *c, struct peer *p);

static void peer_send_frame(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_MAX];
	size_t len;

	if (pn_link_seal(&p->link, f, n, now_ms(c), pkt, sizeof(pkt), &len) == 0)
		nat_out(c, p, pkt, len);
}

static void peer_connect(struct pn_client *c, struct peer *p, const struct pn_cert *cert)
{
	/* IK: the directory gave us the device's static key */
	if (link_start(c, &p->link, PN_PURPOSE_E2E, cert->dh_pk, true) == 0) {
		p->hs_at = now_ms(c);
		forward(c, p->device_id, p->link.hs_pkt, p->link.hs_pkt_len);
	}
}

static void group_send_entry(struct pn_client *c, struct peer *p, const struct outmsg *m);

static void send_chat(struct pn_client *c, struct peer *p, const struct outmsg *m)
{
	uint8_t f[PN_FRAME_MAX];
	struct pn_wr w;
	size_t tl;

	if (m->group || m->blob) {
		group_send_entry(c, p, m);
		return;
	}
	tl = strlen(m->text);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_CHAT);
	pn_wr_bytes(&w, m->idb, 16);
	pn_wr_u64(&w, m->sent_at);
	pn_wr_str8(&w, c->username);
	pn_wr_str8(&w, m->carbon ? m->peer : m->to);
	pn_wr_vec16(&w, m->text, tl);
	if (!w.err)
		peer_send_frame(c, p, f, w.len);
}

static struct peer *peer_for(struct pn_client *c, struct ruser *u, unsigned i);

/* Pushes unacknowledged messages for user u towards each of its devices: over an
 * established session, or by starting one (the session's arrival flushes them). With
 * `only`, just that message goes (a retransmission); without, all of u's (a session or a
 * lookup answer just arrived). */
static void push_user(struct pn_client *c, struct ruser *u, const struct outmsg *only)
{
	bool any = only != NULL;

	for (struct outmsg *m = c->out; m && !any; m = m->next)
		if (!m->queued && strcmp(m->to, u->name) == 0)
			any = true;
	if (!any)
		return;
	for (unsigned i = 0; i < u->n; i++) {
		struct peer *p = peer_for(c, u, i);
		if (!p)
			continue;
		if (p->link.state == PN_LINK_UP) {
			if (only) {
				if (!outmsg_acked_by(only, p->device_id))
					send_chat(c, p, only);
				continue;
			}
			for (struct outmsg *m = c->out; m; m = m->next)
				if (!m->queued && strcmp(m->to, u->name) == 0 &&
				    !outmsg_acked_by(m, p->device_id))
					send_chat(c, p, m);
		} else if (p->link.state != PN_LINK_WAIT_HS2) {
			peer_connect(c, p, &u->certs[i]);
		}
	}
}

static void flush_user(struct pn_client *c, struct ruser *u)
{
	push_user(c, u, NULL);
}

/* Makes sure the records of user `name` are fresh (a lookup answer flushes everything
 * for that user), else pushes `only` (or everything for the user when NULL). */
static void kick_user(struct pn_client *c, const char *name, const struct outmsg *only)
{
	struct ruser *u = ruser_get(c, name, true);

	if (!u || c->sn_state != SN_UP)
		return;
	if (!u->found || now_ms(c) - u->fetched_at > CL_LOOKUP_CACHE_MS)
		lookup_start(c, u);
	else
		push_user(c, u, only);
}

/* After attaching: every user with pending messages, once. */
static void flush_all(struct pn_client *c)
{
	for (struct outmsg *m = c->out; m; m = m->next) {
		bool seen = false;
		if (m->queued)
			continue;
		for (struct outmsg *e = c->out; e != m && !seen; e = e->next)
			seen = !e->queued && strcmp(e->to, m->to) == 0;
		if (!seen)
			kick_user(c, m->to, NULL);
	}
}

static void outmsg_free(struct outmsg *m)
{
	if (!m)
		return;
	free(m->blob);
	free(m->text);
	free(m);
}

static struct outmsg *outmsg_find(struct pn_client *c, const uint8_t idb[16], bool carbon,
				  struct outmsg ***pp)
{
	struct outmsg **p = &c->out;

	for (; *p; p = &(*p)->next) {
		if ((*p)->carbon == carbon && memcmp((*p)->idb, idb, 16) == 0) {
			if (pp)
				*pp = p;
			return *p;
		}
	}
	return NULL;
}

static void msg_state_event(struct pn_client *c, const char *id, const char *to,
			    enum pn_msg_state st)
{
	emit(c, "message.state",
	     json_pack("{s:s,s:s,s:s}", "id", id, "to", to, "state", pn_msg_state_name(st)));
}

static void send_receipt_kind(struct pn_client *c, struct peer *p, const uint8_t idb[16],
			      uint8_t kind)
{
	uint8_t f[32];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_RECEIPT);
	pn_wr_bytes(&w, idb, 16);
	pn_wr_u8(&w, kind);
	peer_send_frame(c, p, f, w.len);
}

static void send_receipt(struct pn_client *c, struct peer *p, const uint8_t idb[16])
{
	send_receipt_kind(c, p, idb, 1);
}

/* The read receipts held for u go to every device of u with a session up; the others get
 * a session (and the receipts when it comes up: read_on_session_up). */
static void read_flush(struct pn_client *c, struct ruser *u)
{
	bool all_up = true;

	for (unsigned i = 0; i < u->n; i++) {
		struct peer *p = peer_for(c, u, i);
		if (!p)
			continue;
		if (p->link.state == PN_LINK_UP) {
			for (unsigned k = 0; k < u->n_read; k++)
				send_receipt_kind(c, p, u->read_ids[k], 2);
		} else {
			all_up = false;
			if (p->link.state != PN_LINK_WAIT_HS2)
				peer_connect(c, p, &u->certs[i]);
		}
	}
	if (all_up)
		u->n_read = 0;
}

static void read_on_session_up(struct pn_client *c, struct peer *p)
{
	struct ruser *u = ruser_get(c, p->username, false);

	for (unsigned k = 0; u && k < u->n_read; k++)
		send_receipt_kind(c, p, u->read_ids[k], 2);
}

_Static_assert((int)PN_REVOKE_MAX <= (int)PN_CERT_MAX, "a notice fits a LOGIN_RESULT");
_Static_assert((int)CL_CHAT_TEXT_MAX == 800, "the API and the error text say 800 bytes");
_Static_assert((int)PN_HIST_TEXT_MAX >= (int)CL_CHAT_TEXT_MAX, "history carries every chat text");

static bool req_allow(struct pn_client *c);
static void hist_start(struct pn_client *c, struct peer *p, bool new_session);
static int revoke_learn(struct pn_client *c, const uint8_t *notice, size_t len, bool spread);
static int contact_make(struct pn_client *c, const char *user);
static void held_settle(struct pn_client *c, const char *user, bool accepted);
static void sn_probe(struct pn_client *c, uint64_t now);

/* A message from someone who is not our contact is a message request: it is kept apart
 * (pn_cstore_held_*), not shown as received, and joins the history when we accept the
 * user (contacts add/accept), or is deleted when we decline or block. The caller still
 * acknowledges it (0 or -EEXIST: the device has it, honestly), so the sender does not
 * retry. A new sender takes a token from the request bucket; each sender may have
 * CL_HELD_PER_USER messages waiting and all of them CL_HELD_MAX: beyond that -EDQUOT,
 * dropped without a receipt and counted, so strangers cannot fill our disk. */
static int hold_message(struct pn_client *c, const struct pn_msg_row *m)
{
	unsigned n_user = 0, n_all = 0;
	struct pn_rel_row rel;
	bool had_req;
	int rc;

	had_req = pn_cstore_rel_get(c->store, m->peer, &rel) == 0 && rel.kind == PN_REL_REQUEST_IN;
	if ((rc = pn_cstore_held_count(c->store, m->peer, &n_user)) ||
	    (rc = pn_cstore_held_count(c->store, NULL, &n_all)))
		return rc;
	if (n_user >= CL_HELD_PER_USER || n_all >= CL_HELD_MAX ||
	    (!had_req && n_user == 0 && !req_allow(c))) {
		c->requests_dropped++;
		return -EDQUOT;
	}
	rc = pn_cstore_held_add(c->store, m);
	if (rc)
		return rc;
	c->msgs_held++;
	if (!had_req && pn_cstore_rel_set(c->store, m->peer, PN_REL_REQUEST_IN, "", wall_s(c)) == 0)
		emit(c, "contact.request", json_pack("{s:s,s:s}", "from", m->peer, "note", ""));
	emit(c, "message.request",
	     json_pack("{s:s,s:s,s:s,s:I}", "id", m->id, "from", m->peer, "text", m->text,
		       "sent_at", (json_int_t)m->sent_at));
	return 0;
}

/* The user was accepted: what they sent while they were a stranger joins the history, in
 * the order it came, and is announced as received. */
static int held_release_cb(void *arg, const struct pn_msg_row *h)
{
	struct pn_client *c = arg;
	struct pn_msg_row *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	*m = *h;
	m->dir = PN_MSG_IN;
	m->state = PN_MSG_RECEIVED;
	if (pn_cstore_msg_insert(c->store, m) == 0)
		emit(c, "message.received",
		     json_pack("{s:s,s:s,s:s,s:I}", "id", m->id, "from", m->peer, "text", m->text,
			       "sent_at", (json_int_t)m->sent_at));
	free(m);
	return 0;
}

static void held_settle(struct pn_client *c, const char *user, bool accepted)
{
	if (accepted)
		pn_cstore_held_list(c->store, user, held_release_cb, c);
	pn_cstore_held_drop(c->store, user);
}

/* A CHAT frame body from a device of user `sender` (authenticated by a session, or by
 * the mailbox envelope's key): 0 (new), -EEXIST (had it: acknowledge again), -EBADMSG
 * (dropped and counted), -EPERM (blocked: no receipt either), -EDQUOT (a stranger's
 * message over the request limits: no receipt). A stranger's message within them is held
 * as a message request (hold_message) and acknowledged like any other. */
static int chat_take(struct pn_client *c, const char *sender, struct pn_rd *r, uint8_t idb[16])
{
	struct pn_msg_row *m;
	char from[PN_USERNAME_MAX + 1], to[PN_USERNAME_MAX + 1];
	const uint8_t *text;
	size_t tl;
	int rc;

	pn_rd_bytes(r, idb, 16);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pn_rd_u64(r, &m->sent_at);
	pn_rd_str8(r, from, sizeof(from));
	pn_rd_str8(r, to, sizeof(to));
	pn_rd_vec16(r, &text, &tl, CL_CHAT_TEXT_MAX);
	/* The session authenticated the sending device; its certificate names the user. A
	 * frame claiming another sender, or addressed to someone else, is dropped. */
	/* A copy of what another device of ours sent: from us (as its certificate proves),
	 * to someone else; it joins our history as sent. */
	bool carbon = strcmp(sender, c->username) == 0 && strcmp(from, c->username) == 0 &&
		      strcmp(to, c->username) != 0;
	if (pn_rd_end(r) || strcmp(from, sender) != 0 ||
	    (strcmp(to, c->username) != 0 && !carbon) || memchr(text, 0, tl)) {
		c->rx_e2e_bad++;
		free(m);
		return -EBADMSG;
	}
	if (is_blocked(c, from)) {
		c->blocked_dropped++; /* no receipt either: they learn nothing */
		free(m);
		return -EPERM;
	}
	pn_hex_encode(m->id, sizeof(m->id), idb, 16);
	memcpy(m->text, text, tl);
	m->text[tl] = 0;
	if (!carbon && !c->msgs_from_anyone && !pn_cstore_contact_has(c->store, from)) {
		strcpy(m->peer, from);
		m->updated_at = wall_ms(c);
		rc = hold_message(c, m);
		free(m);
		return rc;
	}
	strcpy(m->peer, carbon ? to : from);
	m->dir = carbon ? PN_MSG_OUT : PN_MSG_IN;
	/* a copy is the sending device's to deliver: here it is history, never resent */
	m->state = carbon ? PN_MSG_SENT : PN_MSG_RECEIVED;
	m->updated_at = wall_ms(c);
	rc = pn_cstore_msg_insert(c->store, m);
	if (rc == 0 && carbon)
		emit(c, "message.sent_elsewhere",
		     json_pack("{s:s,s:s,s:s,s:I}", "id", m->id, "to", to, "text", m->text,
			       "sent_at", (json_int_t)m->sent_at));
	else if (rc == 0)
		emit(c, "message.received",
		     json_pack("{s:s,s:s,s:s,s:I}", "id", m->id, "from", from, "text", m->text,
			       "sent_at", (json_int_t)m->sent_at));
	free(m);
	return rc;
}

static void on_chat(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	uint8_t idb[16];
	int rc = chat_take(c, p->username, r, idb);

	/* Acknowledge duplicates too: the sender's receipt may have been lost. */
	if (rc == 0 || rc == -EEXIST)
		send_receipt(c, p, idb);
}

/* Device dev acknowledged m; once every device the recipient's records name did, m is
 * done (a device that never answers is given up with the retries: tick_messages). */
static void outmsg_ack(struct pn_client *c, struct outmsg *m, struct outmsg **pp,
		       const uint8_t dev[16])
{
	struct ruser *u = ruser_get(c, m->to, false);
	bool all = true;

	if (!outmsg_acked_by(m, dev) && m->n_acked < sizeof(m->acked) / sizeof(m->acked[0]))
		memcpy(m->acked[m->n_acked++], dev, 16);
	for (unsigned i = 0; u && i < u->n; i++)
		all &= outmsg_acked_by(m, u->certs[i].device_id);
	if (all) {
		*pp = m->next;
		outmsg_free(m);
	}
}

static bool group_on_receipt(struct pn_client *c, const char *user, const uint8_t dev[16],
			     const uint8_t idb[16], enum pn_msg_state st);

/* A receipt (1 delivered, 2 read) for message idb from device `dev` of user `user`. */
static void receipt_take(struct pn_client *c, const char *user, const uint8_t dev[16],
			 const uint8_t idb[16], uint8_t kind)
{
	struct outmsg *m, **pp;
	char id[PN_MSG_ID_HEX + 1];
	enum pn_msg_state st;
	struct { const char *username; const uint8_t *device_id; } pv = {user, dev}, *p = &pv;

	if (kind != 1 && kind != 2)
		return;
	st = kind == 1 ? PN_MSG_DELIVERED : PN_MSG_READ;
	pn_hex_encode(id, sizeof(id), idb, 16);
	if (strcmp(p->username, c->username) == 0 && st == PN_MSG_READ) {
		/* another device of ours read a message we received too */
		struct pn_msg_row *row = calloc(1, sizeof(*row));
		if (row && pn_cstore_msg_get(c->store, id, row) == 0 && row->dir == PN_MSG_IN &&
		    pn_cstore_msg_set_state(c->store, id, PN_MSG_READ, wall_ms(c)) == 0)
			emit(c, "message.state", json_pack("{s:s,s:s,s:s}", "id", id, "from", row->peer,
							   "state", "read"));
		free(row);
		return;
	}
	if (group_on_receipt(c, user, dev, idb, st))
		return;
	if (strcmp(p->username, c->username) == 0) {
		/* one of our own devices took its copy */
		m = outmsg_find(c, idb, true, &pp);
		if (m)
			outmsg_ack(c, m, pp, p->device_id);
		return;
	}
	m = outmsg_find(c, idb, false, &pp);
	if (m && m->delivered && st == PN_MSG_DELIVERED) {
		outmsg_ack(c, m, pp, p->device_id); /* another device of the recipient */
		return;
	}
	{
		/* Only a device of the message's recipient may acknowledge it. */
		struct pn_msg_row *row = calloc(1, sizeof(*row));
		if (!row)
			return;
		if (pn_cstore_msg_get(c->store, id, row) || row->dir != PN_MSG_OUT ||
		    strcmp(row->peer, p->username) != 0) {
			c->rx_e2e_bad++;
			free(row);
			return;
		}
		if (pn_cstore_msg_set_state(c->store, id, st, wall_ms(c)) == 0)
			msg_state_event(c, id, row->peer, st);
		free(row);
	}
	if (m) {
		m->delivered = true;
		outmsg_ack(c, m, pp, p->device_id);
	}
}

static void on_receipt(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	uint8_t idb[16], kind;

	pn_rd_bytes(r, idb, 16);
	pn_rd_u8(r, &kind);
	if (pn_rd_end(r) || (kind != 1 && kind != 2))
		return;
	receipt_take(c, p->username, p->device_id, idb, kind);
}

/* ---- calls ------------------------------------------------------------------------------ */
/* The signaling state machine is src/call/signal.c, the media src/call/callmedia.c; this
 * section gives them transport (the end-to-end sessions), policy (contacts, rate limits),
 * events, the call log and timers. */

/* Sets up the peer entry for device i of user u (routes through its supernodes). */
static struct peer *peer_for(struct pn_client *c, struct ruser *u, unsigned i)
{
	struct peer *p = peer_get(c, u->certs[i].device_id, true);

	if (!p)
		return NULL;
	strcpy(p->username, u->name);
	p->n_routes = u->recs[i].n_sn;
	for (unsigned k = 0; k < p->n_routes; k++)
		memcpy(p->routes[k], u->recs[i].sn_key[k], 32);
	if (p->route_i >= p->n_routes)
		p->route_i = 0;
	p->has_sn = p->n_routes > 0;
	if (p->has_sn)
		memcpy(p->sn_key, p->routes[p->route_i], 32);
	return p;
}

static void call_send(void *ctx, const uint8_t dev[16], const uint8_t *f, size_t n)
{
	struct pn_client *c = ctx;
	struct peer *p = peer_get(c, dev, false);

	if (p && p->link.state == PN_LINK_UP) {
		peer_send_frame(c, p, f, n);
		return;
	}
	if (p && p->link.state == PN_LINK_WAIT_HS2)
		return; /* the session's arrival flushes the call's frames */
	/* no session yet: open one (the frame goes again when it is up) */
	for (struct ruser *u = c->rusers; u; u = u->next)
		for (unsigned i = 0; i < u->n; i++)
			if (memcmp(u->certs[i].device_id, dev, 16) == 0) {
				p = peer_for(c, u, i);
				if (p)
					peer_connect(c, p, &u->certs[i]);
				return;
			}
}

static void call_random(void *ctx, void *buf, size_t len)
{
	struct pn_client *c = ctx;
	c->env.random(c->env.ctx, buf, len);
}

/* Incoming offers: only to us; from contacts always; from anyone else only when the user
 * takes calls from anyone (or is the echo service), and then rate limited overall and per
 * caller. */
static enum pn_call_policy call_policy(void *ctx, const char *from, const char *to)
{
	struct pn_client *c = ctx;
	uint64_t now = now_ms(c);
	unsigned slot = UINT32_MAX, recent = 0;

	if (!c->logged_in || strcmp(to, c->username) != 0) {
		c->calls_refused++;
		return PN_CALL_REFUSE;
	}
	if (is_blocked(c, from)) {
		c->blocked_dropped++;
		return PN_CALL_DROP;
	}
	/* Contacts are trusted not to flood (and can be removed): the limits are for everyone
	 * else, whose offers are dropped unanswered once over them. */
	if (pn_cstore_contact_has(c->store, from))
		return PN_CALL_ACCEPT;
	tb_refill(&c->offers, now, CL_OFFERS_BURST, CL_OFFER_REFILL_MS);
	for (unsigned i = 0; i < sizeof(c->offer_users) / sizeof(c->offer_users[0]); i++)
		if (strcmp(c->offer_users[i].user, from) == 0)
			slot = i;
	if (slot == UINT32_MAX) {
		slot = c->offer_users_i++ % (sizeof(c->offer_users) / sizeof(c->offer_users[0]));
		memset(&c->offer_users[slot], 0, sizeof(c->offer_users[slot]));
		strcpy(c->offer_users[slot].user, from);
	}
	for (unsigned k = 0; k < CL_OFFERS_PER_USER; k++)
		if (c->offer_users[slot].at[k] && now - c->offer_users[slot].at[k] < CL_OFFER_USER_WINDOW_MS)
			recent++;
	if (c->offers.tokens < 1.0 || recent >= CL_OFFERS_PER_USER) {
		c->calls_rate_limited++;
		return PN_CALL_DROP;
	}
	c->offers.tokens -= 1.0;
	memmove(&c->offer_users[slot].at[1], &c->offer_users[slot].at[0],
		sizeof(uint64_t) * (CL_OFFERS_PER_USER - 1));
	c->offer_users[slot].at[0] = now;
	if (!c->calls_from_anyone && !c->echo_bot) {
		c->calls_refused++;
		emit(c, "call.refused", json_pack("{s:s,s:s}", "from", from, "reason", "not_a_contact"));
		return PN_CALL_REFUSE;
	}
	return PN_CALL_ACCEPT;
}

/* The route media and signaling take to the peer, for the stats. */
/* The call's media path: the session's direct path when it has one, else the relay. */
static const char *call_path(struct pn_client *c, struct pn_call *call)
{
	struct peer *p = call->peer_dev >= 0 ? peer_get(c, call->dev[call->peer_dev].id, false) : NULL;
	const struct pn_addr *a = p ? pn_ice_selected(&p->ice) : NULL;

	if (a)
		return a->family == PN_AF_INET6 ? "direct-ipv6" : "direct-ipv4";
	return c->sn.addr.family == PN_AF_INET6 ? "relayed-ipv6" : "relayed-ipv4";
}

static json_t *call_json(struct pn_client *c, struct pn_call *call)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b}", "id", call->id_hex, "peer", call->peer,
			      "direction", call->outgoing ? "outgoing" : "incoming", "state",
			      pn_call_state_name(call->state), "local_hold", call->local_hold,
			      "remote_hold", call->remote_hold);
	struct call_opts *o = call->user;

	if (call->state == PN_CALL_ENDED)
		json_object_set_new(j, "reason", json_string(pn_call_reason_name(call->reason)));
	if (call->answered_at && call->state >= PN_CALL_ACTIVE) {
		uint64_t end = call->state == PN_CALL_ENDED ? call->ended_at : now_ms(c);
		json_object_set_new(j, "duration_ms", json_integer((json_int_t)(end - call->answered_at)));
	}
	if (o && o->media) {
		json_object_set_new(j, "path", json_string(call_path(c, call)));
		json_object_set_new(j, "stats", pn_callmedia_stats_json(o->media));
	}
	return j;
}

static void call_media_start(struct pn_client *c, struct pn_call *call)
{
	struct call_opts *o = call->user;
	struct pn_callmedia_config mc;
	char err[160];

	if (!o || o->media)
		return;
	memset(&mc, 0, sizeof(mc));
	mc.secret = call->secret;
	mc.caller = call->outgoing;
	mc.local_tag = call->local_tag;
	mc.remote_tag = call->remote_tag;
	mc.play = o->play[0] ? o->play : NULL;
	mc.record = o->record[0] ? o->record : NULL;
	mc.echo = o->echo;
	mc.dev = c->audio;
	mc.now = now_ms(c);
	if (pn_callmedia_new(&o->media, &mc, err, sizeof(err))) {
		pn_warn("call %s: media failed to start: %s", call->id_hex, err);
		emit(c, "call.error", json_pack("{s:s,s:s}", "id", call->id_hex, "message", err));
		pn_call_abort(c->calls, call, now_ms(c), PN_CALL_R_HANGUP);
		return;
	}
	o->stats_at = now_ms(c) + CL_CALL_STATS_MS;
}

static void call_log(struct pn_client *c, struct pn_call *call)
{
	struct pn_call_row row;
	struct call_opts *o = call->user;

	memset(&row, 0, sizeof(row));
	snprintf(row.id, sizeof(row.id), "%s", call->id_hex);
	snprintf(row.peer, sizeof(row.peer), "%s", call->peer);
	row.outgoing = call->outgoing;
	uint64_t wall = wall_ms(c), now = now_ms(c);
	row.started_at = wall - (now - call->created_at);
	row.answered_at = call->answered_at ? wall - (now - call->answered_at) : 0;
	row.ended_at = wall;
	snprintf(row.reason, sizeof(row.reason), "%s", pn_call_reason_name(call->reason));
	if (o && o->media)
		row.mos = pn_callmedia_mos(o->media);
	pn_cstore_call_insert(c->store, &row);
}

static void call_changed(void *ctx, struct pn_call *call, enum pn_call_state old)
{
	struct pn_client *c = ctx;
	struct call_opts *o = call->user;

	if (!o && !call->outgoing && call->state != PN_CALL_ENDED) {
		/* an incoming call: options come with the answer */
		o = calloc(1, sizeof(*o));
		call->user = o;
		if (o && c->echo_bot) {
			o->echo = true;
			o->auto_answer_at = now_ms(c) + CL_ECHO_ANSWER_MS;
		}
	}
	/* media runs from the answer on: the callee listens before CONNECT arrives */
	if (call->state == PN_CALL_ANSWERING || (call->state == PN_CALL_ACTIVE && old != call->state))
		call_media_start(c, call);
	emit(c, "call.state", call_json(c, call));
	if (call->state == PN_CALL_ENDED && old != PN_CALL_ENDED) {
		call_log(c, call);
		if (o) {
			pn_callmedia_free(o->media); /* finishes the recording */
			o->media = NULL;
		}
	}
}

static void call_freed(void *ctx, struct pn_call *call)
{
	struct call_opts *o = call->user;

	(void)ctx;
	if (o)
		pn_callmedia_free(o->media);
	free(o);
	call->user = NULL;
}

/* After a lookup: places the call the user asked for. */
static void call_place(struct pn_client *c, struct ruser *u, struct pending *p)
{
	uint8_t devs[PN_CALL_MAX_DEV][16];
	unsigned n = 0;
	struct pn_call *call;
	int err;

	for (unsigned i = 0; i < u->n && n < PN_CALL_MAX_DEV; i++)
		memcpy(devs[n++], u->certs[i].device_id, 16);
	if (!u->found || n == 0) {
		reply_err(p->cb, p->arg, -ENOENT, "no_such_user",
			  "no device of that user is reachable (unknown or offline)");
		return;
	}
	call = pn_calls_dial(c->calls, now_ms(c), c->username, u->name, (const uint8_t(*)[16])devs,
			    n, &err);
	if (!call) {
		reply_err(p->cb, p->arg, err, err == -EBUSY ? "busy" : "internal",
			  err == -EBUSY ? "a call is already in progress" : "cannot place the call");
		return;
	}
	call->user = p->call; /* the media options */
	p->call = NULL;
	reply_ok(p->cb, p->arg, call_json(c, call));
}

static void on_call_frame(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	if (pn_calls_on_frame(c->calls, now_ms(c), p->device_id, p->username, f, n))
		c->rx_e2e_bad++;
}

/* A media packet from device src (relayed by the supernodes like any end-to-end packet). */
static void on_media_packet(struct pn_client *c, const uint8_t src[16], const uint8_t *pkt, size_t n)
{
	uint32_t tag;
	struct pn_call *call;
	struct call_opts *o;

	if (pn_media_peek_tag(pkt, n, &tag) || !(call = pn_calls_find_tag(c->calls, tag)) ||
	    call->peer_dev < 0 || memcmp(call->dev[call->peer_dev].id, src, 16) != 0 ||
	    !(o = call->user) || !o->media) {
		c->media_bad++;
		return;
	}
	if (pn_callmedia_on_packet(o->media, now_ms(c), pkt, n) == 0)
		pn_call_alive(call, now_ms(c));
}

static uint64_t calls_deadline(struct pn_client *c)
{
	uint64_t t = pn_calls_next_deadline(c->calls);

	for (struct pn_call *call = pn_calls_first(c->calls); call; call = call->next) {
		struct call_opts *o = call->user;
		if (!o)
			continue;
		if (o->auto_answer_at && call->state == PN_CALL_RINGING)
			t = min64(t, o->auto_answer_at);
		if (o->media) {
			t = min64(t, pn_callmedia_next_deadline(o->media));
			t = min64(t, o->stats_at);
		}
	}
	return t;
}

struct media_tx {
	struct pn_client *c;
	const uint8_t *dev;
};

static void media_tx(void *arg, const uint8_t *pkt, size_t n)
{
	struct media_tx *t = arg;
	struct peer *p = peer_get(t->c, t->dev, false);

	if (p)
		nat_out(t->c, p, pkt, n); /* the direct path when there is one */
	else
		forward(t->c, t->dev, pkt, n);
}

static void calls_tick(struct pn_client *c, uint64_t now)
{
	pn_calls_tick(c->calls, now);
	for (struct pn_call *call = pn_calls_first(c->calls); call; call = call->next) {
		struct call_opts *o = call->user;
		if (!o)
			continue;
		if (o->auto_answer_at && now >= o->auto_answer_at) {
			o->auto_answer_at = 0;
			if (call->state == PN_CALL_RINGING)
				pn_call_answer(c->calls, call, now);
		}
		if (o->media && call->state != PN_CALL_ENDED && call->peer_dev >= 0) {
			struct media_tx t = {c, call->dev[call->peer_dev].id};
			pn_callmedia_tick(o->media, now, call->local_hold || call->remote_hold, media_tx, &t);
			if (now >= o->stats_at) {
				o->stats_at = now + CL_CALL_STATS_MS;
				emit(c, "call.stats", call_json(c, call));
			}
		}
	}
}

/* ---- presence ------------------------------------------------------------------------- */
/* Our status and mood go only to our contacts' devices, over the end-to-end sessions;
 * theirs are accepted only from users in our contacts. Sent on attach, on every change,
 * when a session with a contact's device comes up, and every 5 minutes; a contact not
 * heard from for 11 minutes counts as offline. Invisible is sent as offline. */

static const char *pres_name(uint8_t st)
{
	static const char *const n[] = {"offline", "online", "away", "dnd", "invisible"};
	return st <= PRES_INVISIBLE ? n[st] : "offline";
}

static int pres_parse(const char *s)
{
	for (int i = PRES_ONLINE; i <= PRES_INVISIBLE; i++)
		if (strcmp(s, pres_name((uint8_t)i)) == 0)
			return i;
	return -1;
}

static void pres_send(struct pn_client *c, struct peer *p)
{
	uint8_t f[16 + CL_MOOD_MAX];
	struct pn_wr w;
	bool hidden = c->pres_status == PRES_INVISIBLE;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PRESENCE);
	pn_wr_u64(&w, c->pres_seq);
	pn_wr_u8(&w, hidden ? PRES_OFFLINE : c->pres_status);
	pn_wr_str8(&w, hidden ? "" : c->mood);
	if (!w.err)
		peer_send_frame(c, p, f, w.len);
	/* presence goes to contacts only, on every occasion a contact should also hold a
	 * fresh pass for our mailbox (a new session, a new contact, every few minutes) */
	mb_pass_send(c, p);
}

/* Our presence to every device of contact u: now over sessions that are up, the others
 * when their session comes up (on_session_up). */
static void pres_to_user(struct pn_client *c, struct ruser *u)
{
	u->pres_push = false;
	for (unsigned i = 0; i < u->n; i++) {
		struct peer *p = peer_for(c, u, i);
		if (!p)
			continue;
		if (p->link.state == PN_LINK_UP)
			pres_send(c, p);
		else if (p->link.state != PN_LINK_WAIT_HS2)
			peer_connect(c, p, &u->certs[i]);
	}
}

static int pres_contact_cb(void *arg, const struct pn_contact_row *r)
{
	struct pn_client *c = arg;
	struct ruser *u = ruser_get(c, r->username, true);

	if (!u)
		return 0;
	if (u->found && now_ms(c) - u->fetched_at <= CL_LOOKUP_CACHE_MS) {
		pres_to_user(c, u);
	} else {
		u->pres_push = true; /* on_lookup_result sends it */
		lookup_start(c, u);
	}
	return 0;
}

static void pres_push_all(struct pn_client *c)
{
	if (c->sn_state != SN_UP)
		return;
	c->pres_refresh_at = now_ms(c) + CL_PRESENCE_REFRESH_MS;
	pn_cstore_contact_list(c->store, pres_contact_cb, c);
	{
		/* and our own other devices, for the copies of what we send (carbon_add) */
		struct ruser *me = ruser_get(c, c->username, true);
		if (me) {
			me->fetched_at = 0;
			lookup_start(c, me);
		}
	}
}

/* A session with a device of user `name` just came up. */
static void req_on_session_up(struct pn_client *c, struct peer *p);

static void pres_on_session_up(struct pn_client *c, struct peer *p)
{
	if (c->logged_in && pn_cstore_contact_has(c->store, p->username)) {
		pres_send(c, p);
		req_on_session_up(c, p);
	}
}

static void pres_set_remote(struct pn_client *c, struct ruser *u, uint8_t st, const char *mood,
			    uint64_t seq)
{
	bool changed = u->pres_status != st || strcmp(u->mood, mood) != 0;

	u->pres_status = st;
	snprintf(u->mood, sizeof(u->mood), "%s", mood);
	u->pres_seq = seq;
	u->pres_at = now_ms(c);
	if (changed)
		emit(c, "presence.changed",
		     json_pack("{s:s,s:s,s:s}", "username", u->name, "status", pres_name(st), "mood",
			       u->mood));
}

static void on_presence(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	uint64_t seq;
	uint8_t st;
	char mood[CL_MOOD_MAX + 1];
	struct ruser *u;

	pn_rd_u64(r, &seq);
	pn_rd_u8(r, &st);
	pn_rd_str8(r, mood, sizeof(mood));
	/* only from contacts: a stranger cannot make itself look present to us */
	if (pn_rd_end(r) || st > PRES_DND || !pn_cstore_contact_has(c->store, p->username)) {
		c->presence_bad++;
		return;
	}
	u = ruser_get(c, p->username, true);
	req_on_presence(c, p);
	if (!u || (seq < u->pres_seq))
		return; /* older news (another device's, or reordered) */
	pres_set_remote(c, u, st, mood, seq);
}

static uint64_t pres_deadline(struct pn_client *c)
{
	uint64_t t = c->sn_state == SN_UP && c->pres_refresh_at ? c->pres_refresh_at : UINT64_MAX;

	for (struct ruser *u = c->rusers; u; u = u->next)
		if (u->pres_status != PRES_OFFLINE)
			t = min64(t, u->pres_at + CL_PRESENCE_TTL_MS);
	return t;
}

static void pres_tick(struct pn_client *c, uint64_t now)
{
	if (c->sn_state == SN_UP && c->pres_refresh_at && now >= c->pres_refresh_at)
		pres_push_all(c);
	for (struct ruser *u = c->rusers; u; u = u->next)
		if (u->pres_status != PRES_OFFLINE && now >= u->pres_at + CL_PRESENCE_TTL_MS)
			pres_set_remote(c, u, PRES_OFFLINE, "", u->pres_seq);
}

/* Logging out or shutting down: contacts with a session up hear "offline" now. */
static void pres_going_offline(struct pn_client *c)
{
	uint8_t keep = c->pres_status;

	if (!c->logged_in)
		return;
	c->pres_status = PRES_INVISIBLE; /* sent as offline */
	c->pres_seq = wall_ms(c);
	for (struct peer *p = c->peers; p; p = p->next)
		if (p->link.state == PN_LINK_UP)
			pres_on_session_up(c, p);
	c->pres_status = keep;
}

/* ---- contact requests and blocks -------------------------------------------------------- */
/* Adding someone sends them a request with a note (when a session with one of their
 * devices comes up); they accept by adding us back, which makes them send us their
 * presence: presence from a user we asked is the acceptance. Declining is silent.
 * Blocked users are dropped: their requests, messages and calls. */

static bool is_blocked(struct pn_client *c, const char *user)
{
	struct pn_rel_row r;
	return pn_cstore_rel_get(c->store, user, &r) == 0 && r.kind == PN_REL_BLOCKED;
}

static void req_send(struct pn_client *c, struct peer *p, const char *note)
{
	uint8_t f[8 + PN_REL_NOTE_MAX];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_CONTACT);
	pn_wr_u8(&w, PN_CONTACT_REQUEST);
	pn_wr_str8(&w, note);
	if (!w.err)
		peer_send_frame(c, p, f, w.len);
}

/* A session with a device of p's user came up: a request we owe it goes now. */
static void req_on_session_up(struct pn_client *c, struct peer *p)
{
	struct pn_rel_row r;

	if (c->logged_in && pn_cstore_rel_get(c->store, p->username, &r) == 0 &&
	    r.kind == PN_REL_REQUEST_OUT)
		req_send(c, p, r.note);
}

/* Presence from user u arrived, so u has us as a contact: our request was accepted, and
 * u, who could not take our presence before, gets it now. */
static void req_on_presence(struct pn_client *c, struct peer *p)
{
	struct pn_rel_row r;
	struct ruser *u;

	if (pn_cstore_rel_get(c->store, p->username, &r) != 0 || r.kind != PN_REL_REQUEST_OUT ||
	    pn_cstore_rel_del(c->store, p->username) != 0)
		return;
	emit(c, "contact.accepted", json_pack("{s:s}", "username", p->username));
	u = ruser_get(c, p->username, false);
	if (u && u->found)
		pres_to_user(c, u);
	else
		pres_send(c, p);
}

static bool req_allow(struct pn_client *c)
{
	tb_refill(&c->requests, now_ms(c), CL_REQ_BURST, CL_REQ_REFILL_MS);
	if (c->requests.tokens < 1.0)
		return false;
	c->requests.tokens -= 1.0;
	return true;
}

static void on_contact_frame(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	uint8_t kind;
	char note[256];
	struct pn_rel_row old;
	bool had;

	pn_rd_u8(r, &kind);
	pn_rd_str8(r, note, sizeof(note));
	if (pn_rd_end(r) || kind != PN_CONTACT_REQUEST || strlen(note) > PN_REL_NOTE_MAX) {
		c->rx_e2e_bad++;
		return;
	}
	had = pn_cstore_rel_get(c->store, p->username, &old) == 0;
	if (had && old.kind == PN_REL_BLOCKED) {
		c->blocked_dropped++;
		return;
	}
	if (pn_cstore_contact_has(c->store, p->username)) {
		/* already ours: our presence tells them they are accepted */
		pres_send(c, p);
		return;
	}
	if (had && old.kind == PN_REL_REQUEST_IN) {
		if (strcmp(old.note, note) == 0)
			return; /* the same request again (it is resent on every new session) */
	} else if (!req_allow(c)) {
		c->requests_dropped++;
		return;
	}
	if (pn_cstore_rel_set(c->store, p->username, PN_REL_REQUEST_IN, note, wall_s(c)) == 0)
		emit(c, "contact.request", json_pack("{s:s,s:s}", "from", p->username, "note", note));
}

/* ---- revocations known to peers ------------------------------------------------------ */
/* Revoking a device gets a notice signed by the root from the login server. Our devices
 * give it to every device they have a session with, now and on every new session for two
 * days (longer than a certificate lives); a device that learns it refuses the revoked
 * device's sessions and records from then on, though its certificate is still in date. */

static void revoke_send(struct pn_client *c, struct peer *p, const uint8_t *notice, size_t len)
{
	uint8_t f[8 + PN_REVOKE_MAX];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_REVOKED);
	pn_wr_vec16(&w, notice, len);
	if (!w.err)
		peer_send_frame(c, p, f, w.len);
}

/* 0: learned (or known already), -EBADMSG: not a valid notice. spread: hand it on to the
 * devices we have sessions with (our own account's notices only). */
static int revoke_learn(struct pn_client *c, const uint8_t *notice, size_t len, bool spread)
{
	struct pn_revocation rv;
	char did[33];
	int rc;

	if (pn_revocation_decode_verify(&rv, notice, len, c->net.root_pk))
		return -EBADMSG;
	rc = pn_cstore_revoked_add(c->store, rv.device_id, rv.name, rv.revoked_at, notice, len);
	if (rc == -EEXIST)
		return 0;
	if (rc)
		return rc;
	pn_hex_encode(did, sizeof(did), rv.device_id, 16);
	pn_info("device %.8s of %s is revoked", did, rv.name);
	emit(c, "device.revoked",
	     json_pack("{s:s,s:s,s:b}", "device_id", did, "username", rv.name, "this_device",
		       memcmp(rv.device_id, c->device_id, 16) == 0));
	{
		struct peer *p = peer_get(c, rv.device_id, false);
		struct ruser *u = ruser_get(c, rv.name, false);
		if (p)
			pn_link_wipe(&p->link);
		if (u)
			u->fetched_at = 0; /* look up again: without its record */
		for (unsigned i = 0; u && i < u->n; i++)
			if (memcmp(u->certs[i].device_id, rv.device_id, 16) == 0) {
				u->certs[i] = u->certs[u->n - 1];
				u->recs[i] = u->recs[u->n - 1];
				u->n--;
				break;
			}
	}
	if (spread && c->logged_in && strcmp(rv.name, c->username) == 0)
		for (struct peer *p = c->peers; p; p = p->next)
			if (p->link.state == PN_LINK_UP)
				revoke_send(c, p, notice, len);
	return 0;
}

static void on_revoked_frame(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	const uint8_t *notice;
	size_t len;

	if (pn_rd_vec16(r, &notice, &len, PN_REVOKE_MAX) || pn_rd_end(r) ||
	    revoke_learn(c, notice, len, false) == -EBADMSG)
		c->rx_e2e_bad++;
}

static int revoke_send_cb(void *arg, const uint8_t *notice, size_t len)
{
	void **ctx = arg;
	revoke_send(ctx[0], ctx[1], notice, len);
	return 0;
}

static void revoke_on_session_up(struct pn_client *c, struct peer *p)
{
	void *ctx[2] = {c, p};
	uint64_t now = wall_s(c);

	if (c->logged_in)
		pn_cstore_revoked_list(c->store, c->username, now > 172800 ? now - 172800 : 0,
				       revoke_send_cb, ctx);
}

/* ---- the contact list, kept in step between our own devices ------------------------------ */
/* Each change (add or accept, remove, block) is stamped and sent to our devices that have a
 * session now; the whole list of stamps goes on every new session between two of them.
 * The newest stamp for a user wins, so devices that were apart converge. */

enum { CS_CONTACT = 1, CS_REMOVED = 2, CS_BLOCKED = 3 };

struct csync_out {
	struct pn_client *c;
	struct peer *p;
	struct pn_hist_wr hw;
	uint8_t buf[PN_E2E_FRAME_MAX];
};

static int csync_out_cb(void *arg, const char *user, int state, uint64_t at)
{
	struct csync_out *o = arg;

	if (!pn_csync_add(&o->hw, user, (uint8_t)state, at)) {
		size_t n = pn_csync_finish(&o->hw);
		if (n)
			peer_send_frame(o->c, o->p, o->buf, n);
		pn_csync_begin(&o->hw, o->buf, sizeof(o->buf));
		pn_csync_add(&o->hw, user, (uint8_t)state, at);
	}
	return 0;
}

static bool own_device(struct pn_client *c, const struct peer *p)
{
	return c->logged_in && strcmp(p->username, c->username) == 0 &&
	       memcmp(p->device_id, c->device_id, 16) != 0;
}

static void csync_send_all(struct pn_client *c, struct peer *p)
{
	struct csync_out *o = calloc(1, sizeof(*o));

	if (!o)
		return;
	o->c = c;
	o->p = p;
	pn_csync_begin(&o->hw, o->buf, sizeof(o->buf));
	pn_cstore_csync_list(c->store, csync_out_cb, o);
	/* the last (or only) frame goes even when empty: it is also the answer */
	{
		size_t n = pn_csync_finish(&o->hw);
		if (n)
			peer_send_frame(c, p, o->buf, n);
	}
	p->csync_sent = true;
	free(o);
}

/* A session with another of our devices came up: the initiator sends its stamps first
 * (its DATA can only follow the handshake's answer), the responder answers with its own
 * when they arrive (a responder's frame sent at once could overtake the handshake answer
 * and be lost: CSYNC is not retransmitted). */
static void csync_on_session_up(struct pn_client *c, struct peer *p)
{
	p->csync_sent = false;
	if (own_device(c, p)) {
		/* a device of ours we may not have in our own records yet (it logged in since
		 * our last lookup of our name): look again, so that copies of what we send
		 * from now on go to it too (what we sent before reaches it with the history) */
		struct ruser *me = ruser_get(c, c->username, true);
		bool known = false;
		for (unsigned i = 0; me && i < me->n; i++)
			known |= memcmp(me->certs[i].device_id, p->device_id, 16) == 0;
		if (me && !known && c->sn_state == SN_UP) {
			me->fetched_at = 0;
			lookup_start(c, me);
		}
		/* Until the directory names it (a lookup may be answered by a replica that has
		 * not got its record yet, and the next one is minutes away), the session itself
		 * vouches for it: its certificate names our user (checked at the handshake), and
		 * the supernode its packets came through reaches it. Kept like an earlier lookup
		 * answer (lookup_merge_old) for an hour at most. */
		if (me && !known && me->n < sizeof(me->certs) / sizeof(me->certs[0])) {
			struct pn_record rec;
			memset(&rec, 0, sizeof(rec));
			if (pn_cert_decode(&rec.cert, p->link.peer_cert, p->link.peer_cert_len) == 0 &&
			    memcmp(rec.cert.device_id, p->device_id, 16) == 0) {
				uint64_t ws = wall_s(c);
				rec.expires = ws + 3600 < rec.cert.not_after ? ws + 3600 : rec.cert.not_after;
				rec.n_sn = 1;
				memcpy(rec.sn_key[0], p->has_sn ? p->sn_key : c->sn.key, 32);
				me->recs[me->n] = rec;
				me->certs[me->n++] = rec.cert;
				me->found = true;
			}
		}
	}
	if (own_device(c, p) && p->link.initiator)
		csync_send_all(c, p);
}

/* A change made here: stamped and sent to our other devices with a session. */
static void csync_local(struct pn_client *c, const char *user, int state)
{
	struct pn_hist_wr hw;
	uint8_t buf[64 + PN_USERNAME_MAX];
	uint64_t at = wall_ms(c);
	size_t n;

	if (pn_cstore_csync_set(c->store, user, state, at))
		return;
	pn_csync_begin(&hw, buf, sizeof(buf));
	if (!pn_csync_add(&hw, user, (uint8_t)state, at) || !(n = pn_csync_finish(&hw)))
		return;
	for (struct peer *p = c->peers; p; p = p->next)
		if (own_device(c, p) && p->link.state == PN_LINK_UP)
			peer_send_frame(c, p, buf, n);
}

static int csync_apply_cb(void *arg, const char *user, uint8_t state, uint64_t at)
{
	struct pn_client *c = arg;
	struct pn_rel_row rel;
	bool has_rel;

	if (strcmp(user, c->username) == 0 || pn_cstore_csync_set(c->store, user, state, at))
		return 0; /* not newer than what we know */
	has_rel = pn_cstore_rel_get(c->store, user, &rel) == 0;
	if (state == CS_CONTACT) {
		if (has_rel && rel.kind != PN_REL_REQUEST_OUT)
			pn_cstore_rel_del(c->store, user); /* a request taken, or a block lifted */
		if (!pn_cstore_contact_has(c->store, user))
			contact_make(c, user); /* they hear our presence now */
		held_settle(c, user, true);
	} else if (state == CS_REMOVED) {
		pn_cstore_contact_remove(c->store, user);
		if (has_rel && rel.kind != PN_REL_REQUEST_IN)
			pn_cstore_rel_del(c->store, user);
	} else {
		pn_cstore_contact_remove(c->store, user);
		pn_cstore_rel_set(c->store, user, PN_REL_BLOCKED, "", wall_s(c));
		held_settle(c, user, false);
	}
	emit(c, "contact.synced",
	     json_pack("{s:s,s:s}", "username", user, "state",
		       state == CS_CONTACT ? "contact" : state == CS_REMOVED ? "removed" : "blocked"));
	return 0;
}

static void on_csync(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	if (!own_device(c, p) || pn_csync_decode(f, n, NULL, NULL)) {
		c->rx_e2e_bad++;
		return;
	}
	pn_csync_decode(f, n, csync_apply_cb, c);
	if (!p->csync_sent)
		csync_send_all(c, p); /* the answer to the initiator's */
	/* it just looked us up (or its session came up): what it has not had of our
	 * history goes now, not at our next lookup of our own name */
	hist_start(c, p, false);
}

/* ---- history transfer between our own devices ------------------------------------------- */

static void hist_kv_key(char key[64], const uint8_t dev[16])
{
	char hex[33];
	snprintf(key, 64, "hist_to:%s", pn_hex_encode(hex, sizeof(hex), dev, 16));
}

struct hist_fill {
	struct pn_hist_wr *hw;
	struct histtx *h;
	bool full;
};

static int hist_msg_cb(void *arg, uint64_t seq, const struct pn_msg_row *m)
{
	struct hist_fill *hf = arg;
	struct pn_hist_item *it;

	if (strlen(m->text) > PN_HIST_TEXT_MAX) {
		hf->h->cursor = seq; /* not carried (the network never sends such texts) */
		hf->h->skipped++;
		return 0;
	}
	it = malloc(sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->kind = PN_HIST_ITEM_MSG;
	it->msg = *m;
	if (!pn_hist_add(hf->hw, it)) {
		free(it);
		hf->full = true;
		return 1;
	}
	free(it);
	hf->h->cursor = seq;
	hf->h->msgs++;
	return 0;
}

static int hist_contact_cb(void *arg, const struct pn_contact_row *r)
{
	struct hist_fill *hf = arg;
	struct pn_hist_item *it;

	if (strcmp(r->username, hf->h->last_contact) <= 0)
		return 0;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->kind = PN_HIST_ITEM_CONTACT;
	strcpy(it->msg.peer, r->username);
	it->msg.sent_at = r->added_at;
	if (!pn_hist_add(hf->hw, it)) {
		free(it);
		hf->full = true;
		return 1;
	}
	free(it);
	strcpy(hf->h->last_contact, r->username);
	hf->h->contacts++;
	return 0;
}

/* Fills the next chunk: messages in storage order, then contacts in name order. */
static void hist_build(struct pn_client *c, struct histtx *h)
{
	struct pn_hist_wr hw;
	struct hist_fill hf = {&hw, h, false};

	pn_hist_begin(&hw, h->buf, PN_E2E_FRAME_MAX, h->seq);
	while (!h->msgs_done && !hf.full) {
		uint64_t before = h->cursor;
		if (pn_cstore_msg_since(c->store, h->cursor, 64, hist_msg_cb, &hf) < 0)
			break;
		if (!hf.full && h->cursor == before)
			h->msgs_done = true; /* nothing after the cursor */
	}
	if (h->msgs_done && !hf.full && !h->contacts_done) {
		if (pn_cstore_contact_list(c->store, hist_contact_cb, &hf) == 0 && !hf.full)
			h->contacts_done = true;
	}
	h->last = h->msgs_done && h->contacts_done;
	h->len = pn_hist_finish(&hw, h->last);
	h->tries = 0;
}

static void hist_send(struct pn_client *c, struct peer *p)
{
	struct histtx *h = p->hist;

	peer_send_frame(c, p, h->buf, h->len);
	h->tries++;
	h->resend_at = now_ms(c) + CL_HIST_RESEND_MS;
}

/* A session with another device of our account came up: unless we already gave it our
 * history, the transfer starts (again from the beginning if one was cut short). */
/* How far our history went to device dev: the last row position it acknowledged (the kv
 * mark "hist_to:<dev>"), or -1 when it never had any (then the contacts go too). */
static int64_t hist_cursor(struct pn_client *c, const uint8_t dev[16])
{
	char key[64], v[24];
	size_t len;

	hist_kv_key(key, dev);
	if (pn_cstore_kv_get(c->store, key, v, sizeof(v) - 1, &len))
		return -1;
	v[len] = 0;
	return strtoll(v, NULL, 10);
}

static int hist_any_cb(void *arg, uint64_t seq, const struct pn_msg_row *m)
{
	*(bool *)arg = true;
	return 1;
}

/* A session with another device of our account came up (or our own lookup found one with
 * a session up): what it has not had of our history yet goes now. The first time that is
 * everything and our contacts; later, the rows stored since the last transfer — so a
 * copy that never reached it (it logged in between two lookups of our name, or was away
 * longer than a mailbox keeps) still does. Message ids deduplicate on its side. */
static void hist_start(struct pn_client *c, struct peer *p, bool new_session)
{
	int64_t cur;
	bool any = false;

	if (!c->logged_in || strcmp(p->username, c->username) != 0 ||
	    memcmp(p->device_id, c->device_id, 16) == 0)
		return;
	if (p->hist) {
		if (!new_session)
			return; /* one under way */
		/* cut short with the previous session: start over (from the stored mark) */
		free(p->hist);
		p->hist = NULL;
	}
	cur = hist_cursor(c, p->device_id);
	if (cur >= 0 && (pn_cstore_msg_since(c->store, (uint64_t)cur, 1, hist_any_cb, &any) || !any))
		return; /* nothing new */
	p->hist = calloc(1, sizeof(*p->hist));
	if (!p->hist)
		return;
	if (cur > 0)
		p->hist->cursor = (uint64_t)cur;
	if (cur >= 0)
		p->hist->contacts_done = true; /* contacts went the first time; CSYNC since */
	p->hist->started_at = now_ms(c);
	hist_build(c, p->hist);
	if (!p->hist->len) {
		free(p->hist);
		p->hist = NULL;
		return;
	}
	hist_send(c, p);
}

/* The lookup of our own name named our other devices: each gets a session if it has none
 * (its coming up sends the contact-list stamps, revocations and, once, our history); one
 * with a session up that has not had our history yet gets it now. */
static void csync_send_all(struct pn_client *c, struct peer *p);

static void hist_reach_own(struct pn_client *c, struct ruser *me)
{
	for (unsigned i = 0; i < me->n; i++) {
		struct peer *p = peer_for(c, me, i);

		if (!p)
			continue;
		if (p->link.state == PN_LINK_UP) {
			hist_start(c, p, false); /* only what it has not had */
			/* CSYNC is not retransmitted: each own lookup (at attach, every 5 min)
			 * sends the stamps again to the devices we have a session with */
			csync_send_all(c, p);
		} else if (p->link.state != PN_LINK_WAIT_HS2) {
			peer_connect(c, p, &me->certs[i]);
		}
	}
}

static void on_hist_ack(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	struct histtx *h = p->hist;
	uint32_t seq;
	char key[64], did[33];

	if (pn_hist_ack_decode(f, n, &seq) || strcmp(p->username, c->username) != 0) {
		c->rx_e2e_bad++;
		return;
	}
	if (!h || seq != h->seq)
		return; /* a late duplicate */
	if (!h->last) {
		h->seq++;
		hist_build(c, h);
		hist_send(c, p);
		return;
	}
	{
		char v[24];
		hist_kv_key(key, p->device_id);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)h->cursor);
		pn_cstore_kv_set(c->store, key, v, strlen(v));
	}
	pn_info("history sent to device %s: %u messages, %u contacts in %u chunks, %llu ms",
		pn_hex_encode(did, sizeof(did), p->device_id, 4), h->msgs, h->contacts, h->seq + 1,
		(unsigned long long)(now_ms(c) - h->started_at));
	emit(c, "history.sent",
	     json_pack("{s:s,s:i,s:i}", "device_id", pn_hex_encode(did, sizeof(did), p->device_id, 16),
		       "messages", (int)h->msgs, "contacts", (int)h->contacts));
	free(h);
	p->hist = NULL;
}

static int hist_item_cb(void *arg, const struct pn_hist_item *it)
{
	struct peer *p = ((void **)arg)[1];
	struct pn_client *c = ((void **)arg)[0];

	if (it->kind == PN_HIST_ITEM_CONTACT) {
		if (strcmp(it->msg.peer, c->username) != 0 && !is_blocked(c, it->msg.peer) &&
		    !pn_cstore_contact_has(c->store, it->msg.peer) &&
		    contact_make(c, it->msg.peer) == 0)
			p->hist_rx_contacts++;
		return 0;
	}
	{
		struct pn_msg_row *m = malloc(sizeof(*m));
		if (!m)
			return -ENOMEM;
		*m = it->msg;
		m->updated_at = wall_ms(c);
		if (pn_cstore_msg_insert(c->store, m) == 0) {
			/* new to this device: announced as if it had come the usual way, so
			 * an application shows it whichever path brought it first */
			p->hist_rx_msgs++;
			if (m->dir == PN_MSG_IN)
				emit(c, "message.received",
				     json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", m->id, "from", m->peer,
					       "text", m->text, "sent_at", (json_int_t)m->sent_at,
					       "from_history", true));
			else
				emit(c, "message.sent_elsewhere",
				     json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", m->id, "to", m->peer,
					       "text", m->text, "sent_at", (json_int_t)m->sent_at,
					       "from_history", true));
		}
		free(m);
	}
	return 0;
}

/* A chunk of another of our devices' history: what we lack joins ours (ids deduplicate),
 * its contacts become ours. Only from our own account: the session's certificate says. */
static void on_hist(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	uint32_t seq;
	bool last;
	uint8_t ack[5];
	void *ctx[2] = {c, p};

	if (strcmp(p->username, c->username) != 0 || pn_hist_decode(f, n, &seq, &last, NULL, NULL)) {
		c->rx_e2e_bad++;
		return;
	}
	if (seq == 0 && p->hist_rx_next != 0) {
		/* the sender started over (a new session): count afresh */
		p->hist_rx_next = 0;
		p->hist_rx_msgs = p->hist_rx_contacts = 0;
	}
	if (seq == p->hist_rx_next) {
		if (pn_hist_decode(f, n, &seq, &last, hist_item_cb, ctx))
			return; /* out of memory: no ack, it comes again */
		p->hist_rx_next++;
		if (last) {
			char did[33];
			emit(c, "history.synced",
			     json_pack("{s:s,s:i,s:i}", "device_id",
				       pn_hex_encode(did, sizeof(did), p->device_id, 16), "messages",
				       (int)p->hist_rx_msgs, "contacts", (int)p->hist_rx_contacts));
		}
	} else if (seq + 1 != p->hist_rx_next) {
		return; /* neither the next nor a repeat of the last: ignore */
	}
	peer_send_frame(c, p, ack, pn_hist_ack_encode(ack, seq));
}

static void hist_tick(struct pn_client *c, uint64_t now)
{
	for (struct peer *p = c->peers; p; p = p->next) {
		if (!p->hist || now < p->hist->resend_at)
			continue;
		if (p->hist->tries >= CL_HIST_TRIES) {
			free(p->hist); /* the next session with it starts over */
			p->hist = NULL;
			continue;
		}
		if (p->link.state == PN_LINK_UP)
			hist_send(c, p);
		else
			p->hist->resend_at = now + CL_HIST_RESEND_MS; /* a new handshake is under way */
	}
}

static uint64_t hist_deadline(struct pn_client *c)
{
	uint64_t t = UINT64_MAX;

	for (struct peer *p = c->peers; p; p = p->next)
		if (p->hist)
			t = min64(t, p->hist->resend_at);
	return t;
}

static void group_on_frame(struct pn_client *c, struct peer *p, uint8_t type, const uint8_t *f,
			   size_t n);
static void nat_on_frame(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n,
			 const struct pn_addr *from);

static void on_e2e_frame(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	if (type == PN_F_CHAT)
		on_chat(c, p, &r);
	else if (type == PN_F_RECEIPT)
		on_receipt(c, p, &r);
	else if (type == PN_F_CALL || type == PN_F_CALL_ACK)
		on_call_frame(c, p, f, n);
	else if (type == PN_F_PRESENCE)
		on_presence(c, p, &r);
	else if (type == PN_F_CONTACT)
		on_contact_frame(c, p, &r);
	else if (type == PN_F_HIST)
		on_hist(c, p, f, n);
	else if (type == PN_F_REVOKED)
		on_revoked_frame(c, p, &r);
	else if (type == PN_F_CSYNC)
		on_csync(c, p, f, n);
	else if (type == PN_F_HIST_ACK)
		on_hist_ack(c, p, f, n);
	else if (type == PN_F_GROUP_CHAT || type == PN_F_GROUP_STATE || type == PN_F_GROUP_LEAVE)
		group_on_frame(c, p, type, f, n);
	else if (type == PN_F_MBOX_PASS)
		mb_on_pass(c, p, &r);
	else if (type == PN_F_NAT)
		nat_on_frame(c, p, f, n, NULL);
	else
		c->rx_e2e_bad++;
}

/* Tells a device that we hold no session for the index it used, at most once a second
 * per device (devices we never met get a shared budget through a zero-id entry). */
static void send_reset(struct pn_client *c, const uint8_t src[16], struct peer *p, uint32_t idx)
{
	static const uint8_t anon[16];
	uint8_t pkt[PN_RESET_LEN];
	struct pn_wr w;
	uint64_t now = now_ms(c);

	if (!p)
		p = peer_get(c, anon, true);
	if (!p || (p->reset_sent_at && now - p->reset_sent_at < 1000))
		return;
	p->reset_sent_at = now;
	pn_wr_init(&w, pkt, sizeof(pkt));
	pn_wr_u8(&w, PN_PKT_RESET);
	pn_wr_u32(&w, idx);
	forward(c, src, pkt, w.len);
}

/* Checks a peer device's certificate from its handshake payload. */
static int check_peer_cert(struct pn_client *c, const struct pn_link *l, const uint8_t src[16],
			   struct pn_cert *out)
{
	int rc = pn_cert_decode(out, l->peer_cert, l->peer_cert_len);

	if (!rc)
		rc = pn_cert_verify(out, c->net.root_pk, wall_s(c), PN_CERT_DEVICE);
	if (!rc && (!pn_ct_eq(out->dh_pk, l->remote_static, 32) ||
		    memcmp(out->device_id, src, 16) != 0))
		rc = -EKEYREJECTED;
	if (!rc && pn_cstore_revoked_has(c->store, out->device_id)) {
		c->revoked_refused++; /* its certificate is still in date; the root said no */
		rc = -EKEYREVOKED;
	}
	return rc;
}

/* Remembers which supernode a device's packets came through (via == NULL: ours), so the
 * answers go back the same way. */
/* A retransmission: try the device's next supernode. */
static void next_route(struct peer *p)
{
	if (p->n_routes < 2)
		return;
	p->route_i = (p->route_i + 1) % p->n_routes;
	memcpy(p->sn_key, p->routes[p->route_i], 32);
	p->has_sn = true;
}

static void note_route(struct pn_client *c, const uint8_t src[16], const uint8_t *via)
{
	struct peer *p = peer_get(c, src, false);

	if (!p)
		return;
	p->has_sn = via != NULL;
	if (via)
		memcpy(p->sn_key, via, 32);
	p->via_standby = c->rx_standby;
}

static void on_deliver(struct pn_client *c, struct pn_rd *r, bool via)
{
	uint8_t src[16], via_key[32], f[PN_PKT_RX_MAX];
	const uint8_t *pkt;
	size_t n, fl;
	struct pn_pkt_hdr h;
	struct peer *p;
	enum pn_link_event ev;
	struct pn_cert cert;

	pn_rd_bytes(r, src, 16);
	if (via)
		pn_rd_bytes(r, via_key, 32);
	pn_rd_vec16(r, &pkt, &n, PN_PKT_RX_MAX);
	if (!pn_rd_end(r) && n > 0 && pkt[0] == PN_PKT_MEDIA) {
		on_media_packet(c, src, pkt, n);
		return;
	}
	if (pn_rd_end(r) || pn_pkt_parse(&h, pkt, n)) {
		c->rx_e2e_bad++;
		return;
	}
	note_route(c, src, via ? via_key : NULL);
	if (h.type == PN_PKT_HS1) {
		struct pn_link nl;
		struct pn_link_params lp;
		uint8_t e_sk[32];
		uint32_t idx;

		if (h.purpose != PN_PURPOSE_E2E || h.pattern != PN_PATTERN_IK) {
			c->rx_e2e_bad++;
			return;
		}
		p = peer_get(c, src, false);
		/* A retransmitted message 1 (our HS2 was lost): answer with the same HS2. */
		if (p && !p->link.initiator && !p->link.confirmed && p->link.state == PN_LINK_UP &&
		    h.sender_idx == p->link.remote_idx) {
			forward(c, src, p->link.hs_pkt, p->link.hs_pkt_len);
			return;
		}
		/* Glare: both devices started at once. The lower device id keeps its
		 * initiator role; the other side answers. */
		if (p && p->link.state == PN_LINK_WAIT_HS2 && memcmp(c->device_id, src, 16) < 0)
			return;
		c->env.random(c->env.ctx, e_sk, sizeof(e_sk));
		c->env.random(c->env.ctx, &idx, sizeof(idx));
		memset(&lp, 0, sizeof(lp));
		lp.s_sk = c->keys.dh_sk;
		lp.e_sk = e_sk;
		lp.local_idx = idx;
		lp.timestamp_ms = next_hs_ts(c);
		lp.cert = c->cert_bytes;
		lp.cert_len = c->cert_len;
		lp.now = now_ms(c);
		if (pn_link_accept(&nl, &lp, &h) || check_peer_cert(c, &nl, src, &cert) ||
		    (p && nl.peer_ts <= p->last_peer_ts)) {
			/* bad handshake, forged certificate or a replayed message 1 */
			sodium_memzero(e_sk, sizeof(e_sk));
			pn_link_wipe(&nl);
			c->rx_e2e_bad++;
			return;
		}
		sodium_memzero(e_sk, sizeof(e_sk));
		if (!p)
			p = peer_get(c, src, true);
		if (!p) {
			pn_link_wipe(&nl);
			return;
		}
		pn_link_wipe(&p->link);
		p->link = nl;
		p->last_peer_ts = nl.peer_ts;
		strcpy(p->username, cert.name);
		note_route(c, src, via ? via_key : NULL);
		forward(c, src, p->link.hs_pkt, p->link.hs_pkt_len);
		{
			struct ruser *u = ruser_get(c, p->username, false);
			if (u && u->found)
				flush_user(c, u);
		}
		p->hs_at = now_ms(c);
		nat_on_session_up(c, p);
		pn_calls_flush_dev(c->calls, src, now_ms(c));
		pres_on_session_up(c, p);
		read_on_session_up(c, p);
		hist_start(c, p, true);
		revoke_on_session_up(c, p);
		csync_on_session_up(c, p);
		return;
	}
	p = peer_get(c, src, false);
	if (h.type == PN_PKT_RESET) {
		/* The peer lost our session (it restarted): handshake again right away. */
		if (p && p->link.state == PN_LINK_UP && h.receiver_idx == p->link.remote_idx) {
			struct ruser *u = ruser_get(c, p->username, false);
			pn_link_wipe(&p->link);
			if (u)
				flush_user(c, u);
		}
		return;
	}
	if (h.type == PN_PKT_DATA && p && p->link.state == PN_LINK_WAIT_HS2 &&
	    h.receiver_idx == p->link.local_idx) {
		/* The responder's first frames overtook its handshake answer (they leave
		 * together; paths may reorder them). Dropped, but no RESET: that would kill
		 * the session the answer is about to bring up. Its senders retransmit. */
		c->rx_e2e_early++;
		return;
	}
	if (h.type == PN_PKT_DATA && (!p || p->link.state != PN_LINK_UP ||
				      h.receiver_idx != p->link.local_idx)) {
		send_reset(c, src, p, h.receiver_idx);
		c->rx_e2e_bad++;
		return;
	}
	if (!p) {
		c->rx_e2e_bad++;
		return;
	}
	if (pn_link_input(&p->link, &h, now_ms(c), f, sizeof(f), &fl, &ev)) {
		c->rx_e2e_bad++;
		return;
	}
	if (ev == PN_LINK_EV_UP) {
		struct ruser *u;
		if (check_peer_cert(c, &p->link, src, &cert)) {
			pn_link_wipe(&p->link);
			c->rx_e2e_bad++;
			return;
		}
		nat_on_session_up(c, p);
		u = ruser_get(c, p->username, false);
		if (u)
			flush_user(c, u);
		pn_calls_flush_dev(c->calls, src, now_ms(c));
		pres_on_session_up(c, p);
		read_on_session_up(c, p);
		hist_start(c, p, true);
		revoke_on_session_up(c, p);
		csync_on_session_up(c, p);
	} else if (ev == PN_LINK_EV_DATA) {
		on_e2e_frame(c, p, f, fl);
	}
	sodium_memzero(f, sizeof(f));
}

/* ---- mailbox (docs/PROTOCOL.md "Mailboxes") -------------------------------------------------
 * Sending: a message no device of the recipient acknowledged after CL_MB_AFTER_TRIES tries
 * is sealed once per such device (src/wire/mbox.c) and deposited through our supernode
 * into the recipient's mailbox; each replica's signed store receipt is checked and the
 * message shows "stored" with n of r. Direct retries stop then; the delivered receipt
 * comes end to end (directly, or through our own mailbox), or the time to live ends and
 * the message shows "expired".
 * Receiving: on every attachment (and every CL_MB_POLL_MS while receipts for our stored
 * messages are due) we fetch our mailbox, take what is in it into history (deduplicated
 * by message id), acknowledge with our device key so the replicas delete it, and send the
 * delivered receipts back the same way. */

static void mb_certs_save(struct pn_client *c, struct ruser *u)
{
	uint8_t buf[PN_REC_MAX_SN * 2 * (PN_CERT_MAX + 2)];
	char key[PN_KV_KEY_MAX + 1];
	struct pn_wr w;

	pn_wr_init(&w, buf, sizeof(buf));
	for (unsigned i = 0; i < u->mb_n; i++) {
		uint8_t cb[PN_CERT_MAX];
		int n = pn_cert_encode(&u->mb_certs[i], cb, sizeof(cb));
		if (n > 0)
			pn_wr_vec16(&w, cb, (size_t)n);
	}
	snprintf(key, sizeof(key), "mbdev:%s", u->name);
	if (!w.err)
		pn_cstore_kv_set(c->store, key, buf, w.len);
}

/* The devices a mailbox envelope for u goes to: the last lookup's, or those we saved. */
static unsigned mb_certs(struct pn_client *c, struct ruser *u)
{
	if (u->n) {
		bool same = u->n == u->mb_n;
		for (unsigned i = 0; same && i < u->n; i++)
			same = memcmp(u->certs[i].device_id, u->mb_certs[i].device_id, 16) == 0 &&
			       u->certs[i].not_after == u->mb_certs[i].not_after;
		if (!same) {
			memcpy(u->mb_certs, u->certs, u->n * sizeof(u->certs[0]));
			u->mb_n = u->n;
			mb_certs_save(c, u);
		}
		u->mb_loaded = true;
	} else if (!u->mb_loaded) {
		uint8_t buf[PN_REC_MAX_SN * 2 * (PN_CERT_MAX + 2)];
		char key[PN_KV_KEY_MAX + 1];
		size_t len;
		struct pn_rd r;
		u->mb_loaded = true;
		snprintf(key, sizeof(key), "mbdev:%s", u->name);
		if (pn_cstore_kv_get(c->store, key, buf, sizeof(buf), &len) == 0) {
			pn_rd_init(&r, buf, len);
			while (pn_rd_left(&r) && u->mb_n < PN_REC_MAX_SN * 2) {
				const uint8_t *cb;
				size_t cl;
				if (pn_rd_vec16(&r, &cb, &cl, PN_CERT_MAX) ||
				    pn_cert_decode(&u->mb_certs[u->mb_n], cb, cl))
					break;
				u->mb_n++;
			}
		}
	}
	return u->mb_n;
}

/* Our pass for owner's mailbox (0 and the pass, or -ENOENT). Our own mailbox needs none
 * from anybody: we sign it. */
static int mb_pass_for(struct pn_client *c, const char *owner, uint8_t pass[PN_MB_PASS_LEN])
{
	char key[PN_KV_KEY_MAX + 1];
	size_t len;

	if (strcmp(owner, c->username) == 0) {
		pn_mb_pass_sign(pass, owner, owner, wall_s(c) + PN_MB_TTL_MAX_S, &c->keys,
				c->device_id);
		return 0;
	}
	snprintf(key, sizeof(key), "mbpass:%s", owner);
	if (pn_cstore_kv_get(c->store, key, pass, PN_MB_PASS_LEN, &len) || len != PN_MB_PASS_LEN)
		return -ENOENT;
	return 0;
}

static void mb_send_deposit(struct pn_client *c, const char *owner, uint32_t req,
			    const uint8_t *env, size_t el)
{
	uint8_t f[PN_FRAME_MAX], pass[PN_MB_PASS_LEN];
	bool has_pass = mb_pass_for(c, owner, pass) == 0;
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_DEPOSIT);
	pn_wr_u32(&w, req);
	pn_wr_str8(&w, owner);
	pn_wr_u8(&w, has_pass);
	if (has_pass)
		pn_wr_bytes(&w, pass, sizeof(pass));
	pn_wr_vec16(&w, env, el);
	if (!w.err)
		sn_send_frame(c, f, w.len);
}

static uint64_t mb_expiry(struct pn_client *c, const struct outmsg *m)
{
	uint64_t sent_s = m->sent_at / 1000;
	return sent_s + c->mb_ttl_s;
}

/* Seals m for device cert and deposits it (again: same entry id, so replicas that hold it
 * answer with a receipt and keep one copy). */
static void mb_deposit_one(struct pn_client *c, struct outmsg *m, unsigned k,
			   const struct pn_cert *cert)
{
	uint8_t inner[PN_FRAME_MAX], env[PN_MB_ENV_MAX];
	const char *owner = m->carbon ? c->username : m->to;
	struct pn_wr w;
	int el;

	pn_wr_init(&w, inner, sizeof(inner));
	pn_wr_u8(&w, PN_F_CHAT);
	pn_wr_bytes(&w, m->idb, 16);
	pn_wr_u64(&w, m->sent_at);
	pn_wr_str8(&w, c->username);
	pn_wr_str8(&w, m->carbon ? m->peer : m->to);
	pn_wr_vec16(&w, m->text, strlen(m->text));
	if (w.err)
		return;
	m->mb_expires = mb_expiry(c, m);
	el = pn_mb_env_seal(env, sizeof(env), PN_MB_CHAT, m->mbd[k].entry, cert->device_id,
			    cert->dh_pk, m->mb_expires, c->cert_bytes, c->cert_len, &c->keys, inner,
			    w.len);
	if (el > 0)
		mb_send_deposit(c, owner, m->mbd[k].req, env, (size_t)el);
}

static void mb_deposit(struct pn_client *c, struct outmsg *m, uint64_t now)
{
	struct ruser *u = ruser_get(c, m->carbon ? c->username : m->to, true);
	unsigned n;

	if (!u || c->sn_state != SN_UP || wall_s(c) >= mb_expiry(c, m))
		return;
	n = mb_certs(c, u);
	for (unsigned i = 0; i < n; i++) {
		const struct pn_cert *cert = &u->mb_certs[i];
		unsigned k;
		if (outmsg_acked_by(m, cert->device_id) ||
		    memcmp(cert->device_id, c->device_id, 16) == 0)
			continue;
		for (k = 0; k < m->n_mbd; k++)
			if (memcmp(m->mbd[k].dev, cert->device_id, 16) == 0)
				break;
		if (k == m->n_mbd) {
			if (k == sizeof(m->mbd) / sizeof(m->mbd[0]))
				continue;
			memset(&m->mbd[k], 0, sizeof(m->mbd[k]));
			memcpy(m->mbd[k].dev, cert->device_id, 16);
			c->env.random(c->env.ctx, m->mbd[k].entry, 16);
			m->n_mbd++;
		}
		if (m->mbd[k].n_signers)
			continue;
		m->mbd[k].req = new_req(c);
		mb_deposit_one(c, m, k, cert);
	}
	m->mb_tries++;
	m->mb_next_try = now + CL_MB_RETRY_MS;
}

static void mb_stored_state(struct pn_client *c, struct outmsg *m)
{
	unsigned n = UINT32_MAX;
	uint8_t kv[9];
	char key[PN_KV_KEY_MAX + 1];
	struct pn_wr w;

	for (unsigned k = 0; k < m->n_mbd; k++)
		if (!outmsg_acked_by(m, m->mbd[k].dev) && m->mbd[k].n_signers < n)
			n = m->mbd[k].n_signers;
	if (n == UINT32_MAX || n <= m->mb_n)
		return;
	m->mb_n = n;
	m->mb_stored = true;
	pn_wr_init(&w, kv, sizeof(kv));
	pn_wr_u64(&w, m->mb_expires);
	pn_wr_u8(&w, (uint8_t)n);
	snprintf(key, sizeof(key), "mb:%s", m->id);
	pn_cstore_kv_set(c->store, key, kv, w.len);
	if (m->carbon)
		return;
	pn_cstore_msg_set_state(c->store, m->id, PN_MSG_STORED, wall_ms(c));
	emit(c, "message.state",
		     json_pack("{s:s,s:s,s:s,s:i,s:i,s:I}", "id", m->id, "to", m->to, "state",
			       "stored", "stored", (int)n, "of", PN_MB_R, "expires",
			       (json_int_t)m->mb_expires));
}

static void mb_on_receipt(struct pn_client *c, struct pn_rd *r)
{
	uint32_t req;
	uint8_t st, mid[32], signer[32];
	const uint8_t *rc;
	size_t rl;

	pn_rd_u32(r, &req);
	pn_rd_u8(r, &st);
	if (r->err || !req)
		return;
	if (st != PN_ST_OK) {
		c->mb_refused++;
		return;
	}
	if (pn_rd_vec16(r, &rc, &rl, PN_MB_RECEIPT_MAX) || pn_rd_end(r))
		return;
	for (struct outmsg *m = c->out; m; m = m->next) {
		for (unsigned k = 0; k < m->n_mbd; k++) {
			bool have = false;
			if (m->mbd[k].req != req)
				continue;
			pn_mb_key(mid, m->carbon ? c->username : m->to);
			if (pn_mb_receipt_verify(rc, rl, c->net.root_pk, c->net.open_policy, wall_s(c),
						 mid, m->mbd[k].entry, NULL, signer)) {
				c->mb_receipts_bad++;
				return;
			}
			for (unsigned i = 0; i < m->mbd[k].n_signers && !have; i++)
				have = memcmp(m->mbd[k].signers[i], signer, 32) == 0;
			if (!have && m->mbd[k].n_signers < PN_MB_R + 1)
				memcpy(m->mbd[k].signers[m->mbd[k].n_signers++], signer, 32);
			mb_stored_state(c, m);
			return;
		}
	}
	for (struct mbrcpt *q = c->mb_rcpts; q; q = q->next) {
		if (q->req != req)
			continue;
		pn_mb_key(mid, q->to.name);
		if (pn_mb_receipt_verify(rc, rl, c->net.root_pk, c->net.open_policy, wall_s(c), mid,
					 q->entry, NULL, signer) == 0)
			q->done = true;
		else
			c->mb_receipts_bad++;
		return;
	}
}

static void mb_fetch(struct pn_client *c)
{
	uint8_t f[8];
	struct pn_wr w;

	if (c->sn_state != SN_UP || !c->logged_in)
		return;
	c->mb_fetch_req = new_req(c);
	c->mb_fetch_at = now_ms(c) + CL_MB_FETCH_RETRY_MS;
	c->mb_poll_at = now_ms(c) + CL_MB_POLL_MS;
	c->mb_last_fetch = now_ms(c);
	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_MB_FETCH);
	pn_wr_u32(&w, c->mb_fetch_req);
	sn_send_frame(c, f, w.len);
}

static void mb_ack_add(struct pn_client *c, const uint8_t id[16])
{
	for (size_t i = 0; i < c->mb_n_acks; i++)
		if (memcmp(c->mb_acks[i], id, 16) == 0)
			return;
	if (c->mb_n_acks == c->mb_acks_cap) {
		size_t cap = c->mb_acks_cap ? c->mb_acks_cap * 2 : 64;
		uint8_t (*a)[16] = realloc(c->mb_acks, cap * sizeof(*a));
		if (!a)
			return;
		c->mb_acks = a;
		c->mb_acks_cap = cap;
	}
	memcpy(c->mb_acks[c->mb_n_acks++], id, 16);
}

/* Acknowledges the next batch of taken entries (one batch in flight: the replicas refuse
 * an acknowledgement not newer than the last one of this device). */
static void mb_ack_next(struct pn_client *c)
{
	uint8_t f[PN_FRAME_MAX];
	size_t n;
	int al;

	if (c->mb_ack_req || c->sn_state != SN_UP)
		return;
	if (c->mb_acks_inflight) {
		/* the previous batch was answered: drop it */
		memmove(c->mb_acks, c->mb_acks + c->mb_acks_inflight,
			(c->mb_n_acks - c->mb_acks_inflight) * sizeof(*c->mb_acks));
		c->mb_n_acks -= c->mb_acks_inflight;
		c->mb_acks_inflight = 0;
	}
	if (!c->mb_n_acks) {
		if (c->mb_more && !c->mb_fetch_req)
			mb_fetch(c);
		return;
	}
	n = c->mb_n_acks < PN_MB_ACK_IDS ? c->mb_n_acks : PN_MB_ACK_IDS;
	c->mb_ack_ts = wall_ms(c) > c->mb_ack_ts ? wall_ms(c) : c->mb_ack_ts + 1;
	c->mb_ack_req = new_req(c);
	f[0] = PN_F_MB_ACK;
	f[1] = (uint8_t)(c->mb_ack_req >> 24);
	f[2] = (uint8_t)(c->mb_ack_req >> 16);
	f[3] = (uint8_t)(c->mb_ack_req >> 8);
	f[4] = (uint8_t)c->mb_ack_req;
	al = pn_mb_ack_sign(f + 5, sizeof(f) - 5, c->username, c->cert_bytes, c->cert_len, &c->keys,
			    c->mb_ack_ts, (const uint8_t (*)[16])c->mb_acks, (unsigned)n);
	if (al < 0)
		return;
	c->mb_acks_inflight = n;
	c->mb_ack_at = now_ms(c) + CL_MB_FETCH_RETRY_MS;
	sn_send_frame(c, f, 5 + (size_t)al);
}

/* A receipt (kind 1 delivered, 2 read) for message idb, into the mailbox of device `to`
 * (it may be gone for days). */
static void mb_receipt_add(struct pn_client *c, const struct pn_cert *to, uint8_t kind,
			   const uint8_t idb[16])
{
	struct mbrcpt *q;

	for (q = c->mb_rcpts; q; q = q->next)
		if (!q->tries && q->kind == kind && memcmp(q->to.device_id, to->device_id, 16) == 0 &&
		    q->n < PN_MB_RECEIPT_IDS)
			break;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return;
		q->to = *to;
		q->kind = kind;
		c->env.random(c->env.ctx, q->entry, 16);
		q->next = c->mb_rcpts;
		c->mb_rcpts = q;
	}
	for (unsigned i = 0; i < q->n; i++)
		if (memcmp(q->ids[i], idb, 16) == 0)
			return;
	memcpy(q->ids[q->n++], idb, 16);
}

/* A delivered receipt for message idb goes to the sending device: directly when a session
 * with it is up, and always through its mailbox. */
static void mb_receipt_queue(struct pn_client *c, const struct pn_cert *to, const uint8_t idb[16])
{
	struct peer *p = peer_get(c, to->device_id, false);

	if (p && p->link.state == PN_LINK_UP)
		send_receipt(c, p, idb);
	mb_receipt_add(c, to, 1, idb);
}

/* Read receipts for messages of user u go into the mailboxes of u's devices too, so the
 * sender sees "read" even when it is offline now. */
static void mb_read_receipts(struct pn_client *c, struct ruser *u, const uint8_t (*ids)[16],
			     unsigned n)
{
	unsigned nd = mb_certs(c, u);

	for (unsigned d = 0; d < nd; d++)
		for (unsigned k = 0; k < n; k++)
			mb_receipt_add(c, &u->mb_certs[d], 2, ids[k]);
}

static void mb_receipts_send(struct pn_client *c, uint64_t now)
{
	for (struct mbrcpt **pp = &c->mb_rcpts; *pp;) {
		struct mbrcpt *q = *pp;
		if (q->done || q->tries >= CL_MB_TRIES) {
			*pp = q->next;
			free(q);
			continue;
		}
		pp = &q->next;
		if (q->tries && now < q->next_try)
			continue;
		{
			uint8_t inner[2 + PN_MB_RECEIPT_IDS * 16], env[PN_MB_ENV_MAX];
			struct pn_wr w;
			int el;
			pn_wr_init(&w, inner, sizeof(inner));
			pn_wr_u8(&w, q->kind);
			pn_wr_u8(&w, (uint8_t)q->n);
			for (unsigned i = 0; i < q->n; i++)
				pn_wr_bytes(&w, q->ids[i], 16);
			el = pn_mb_env_seal(env, sizeof(env), PN_MB_RECEIPTS, q->entry, q->to.device_id,
					    q->to.dh_pk, wall_s(c) + c->mb_ttl_s, c->cert_bytes,
					    c->cert_len, &c->keys, inner, w.len);
			q->tries++;
			q->next_try = now + CL_MB_RETRY_MS;
			if (el <= 0)
				continue;
			q->req = new_req(c);
			mb_send_deposit(c, q->to.name, q->req, env, (size_t)el);
		}
	}
}

/* One envelope from our mailbox. */
static void mb_take(struct pn_client *c, const uint8_t *env, size_t el)
{
	struct pn_mb_env e;
	uint8_t pt[PN_MB_ENV_MAX];
	size_t pl;
	struct pn_rd r;

	if (pn_mb_env_decode(&e, env, el) || memcmp(e.to_dev, c->device_id, 16) != 0) {
		c->mb_bad++;
		return;
	}
	/* ours to delete, whatever it turns out to be */
	mb_ack_add(c, e.entry_id);
	if (pn_mb_cert_was_valid(&e.sender, c->net.root_pk, PN_CERT_DEVICE) ||
	    pn_mb_env_open(&e, env, &c->keys, pt, sizeof(pt), &pl)) {
		c->mb_bad++; /* forged, or not sealed for us */
		return;
	}
	pn_rd_init(&r, pt, pl);
	if (e.kind == PN_MB_CHAT) {
		uint8_t type, idb[16];
		int rc;
		if (pn_rd_u8(&r, &type) || type != PN_F_CHAT) {
			c->mb_bad++;
			return;
		}
		rc = chat_take(c, e.sender.name, &r, idb);
		if (rc == 0)
			c->mb_in++;
		else if (rc == -EEXIST)
			c->mb_dup++;
		if (rc == 0 || rc == -EEXIST)
			mb_receipt_queue(c, &e.sender, idb);
		else if (rc == -EBADMSG)
			c->mb_bad++;
	} else {
		uint8_t kind, n, idb[16];
		pn_rd_u8(&r, &kind);
		pn_rd_u8(&r, &n);
		for (unsigned i = 0; i < n && !r.err; i++)
			if (pn_rd_bytes(&r, idb, 16) == 0)
				receipt_take(c, e.sender.name, e.sender.device_id, idb, kind);
		if (r.err)
			c->mb_bad++;
	}
}

static void mb_on_items(struct pn_client *c, struct pn_rd *r)
{
	uint32_t req;
	uint8_t flags, n;

	pn_rd_u32(r, &req);
	pn_rd_u8(r, &flags);
	pn_rd_u8(r, &n);
	if (r->err || req != c->mb_fetch_req || !req)
		return;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *env;
		size_t el;
		if (pn_rd_vec16(r, &env, &el, PN_MB_ENV_MAX)) {
			c->rx_bad++;
			return;
		}
		mb_take(c, env, el);
	}
}

static void mb_on_done(struct pn_client *c, struct pn_rd *r)
{
	uint32_t req;
	uint8_t st, flags, cnt;

	pn_rd_u32(r, &req);
	pn_rd_u8(r, &st);
	pn_rd_u8(r, &flags);
	pn_rd_u8(r, &cnt);
	if (r->err || !req)
		return;
	if (req == c->mb_fetch_req) {
		c->mb_fetch_req = 0;
		c->mb_more = st == PN_ST_OK && (flags & 1);
		mb_receipts_send(c, now_ms(c));
		mb_ack_next(c);
	} else if (req == c->mb_ack_req) {
		c->mb_ack_req = 0;
		if (st != PN_ST_OK)
			c->mb_acks_inflight = 0; /* sent again with a newer time stamp */
		mb_ack_next(c);
	}
}

/* A contact's device gave us a pass for its user's mailbox. */
static void mb_on_pass(struct pn_client *c, struct peer *p, struct pn_rd *r)
{
	uint8_t pass[PN_MB_PASS_LEN], dev[16];
	char key[PN_KV_KEY_MAX + 1];
	struct pn_cert pc;

	if (pn_rd_bytes(r, pass, sizeof(pass)) || pn_rd_end(r) ||
	    pn_cert_decode(&pc, p->link.peer_cert, p->link.peer_cert_len)) {
		c->rx_e2e_bad++;
		return;
	}
	pn_mb_pass_signer(pass, dev);
	if (memcmp(dev, p->device_id, 16) != 0 ||
	    pn_mb_pass_verify(pass, p->username, c->username, pc.sign_pk, wall_s(c))) {
		c->rx_e2e_bad++;
		return;
	}
	snprintf(key, sizeof(key), "mbpass:%s", p->username);
	pn_cstore_kv_set(c->store, key, pass, sizeof(pass));
}

/* Our contacts get a pass for our mailbox on every new session with them. */
static void mb_pass_send(struct pn_client *c, struct peer *p)
{
	uint8_t f[1 + PN_MB_PASS_LEN];

	f[0] = PN_F_MBOX_PASS;
	pn_mb_pass_sign(f + 1, c->username, p->username, wall_s(c) + PN_MB_TTL_MAX_S, &c->keys,
			c->device_id);
	peer_send_frame(c, p, f, sizeof(f));
}

/* Outbox side of tick_messages: deposits, expiry. true when m is done with. */
static bool mb_tick_msg(struct pn_client *c, struct outmsg *m, uint64_t now)
{
	if (m->mb_stored && !m->delivered && m->mb_expires && wall_s(c) >= m->mb_expires) {
		if (!m->carbon &&
		    pn_cstore_msg_set_state(c->store, m->id, PN_MSG_EXPIRED, wall_ms(c)) == 0)
			msg_state_event(c, m->id, m->to, PN_MSG_EXPIRED);
		return true;
	}
	/* group messages and updates are not deposited (yet): a mailbox envelope carries a
	 * CHAT frame, and a group message stored per member would move the one shared row's
	 * state once per member; members who are away get them by the retries */
	if (c->sn_state == SN_UP && !m->group && !m->blob && m->tries >= CL_MB_AFTER_TRIES &&
	    m->mb_tries < CL_MB_TRIES && now >= m->mb_next_try) {
		bool all = m->n_mbd > 0;
		for (unsigned k = 0; k < m->n_mbd; k++)
			all &= m->mbd[k].n_signers > 0;
		if (!all || !m->mb_stored)
			mb_deposit(c, m, now);
	}
	return false;
}

static void mb_tick(struct pn_client *c, uint64_t now)
{
	bool waiting = false;

	if (c->sn_state != SN_UP)
		return;
	if (c->mb_fetch_req && now >= c->mb_fetch_at)
		mb_fetch(c);
	if (c->mb_ack_req && now >= c->mb_ack_at) {
		c->mb_ack_req = 0;
		c->mb_acks_inflight = 0;
		mb_ack_next(c);
	}
	for (struct outmsg *m = c->out; m && !waiting; m = m->next)
		waiting = m->mb_stored && !m->delivered;
	if (!c->mb_fetch_req && ((waiting && now >= c->mb_poll_at) ||
				 (c->mb_ticked && now - c->mb_last_tick > CL_MB_WAKE_MS) ||
				 now >= c->mb_last_fetch + CL_MB_IDLE_POLL_MS))
		mb_fetch(c);
	c->mb_last_tick = now;
	c->mb_ticked = true;
	mb_receipts_send(c, now);
}

static uint64_t mb_deadline(struct pn_client *c)
{
	uint64_t t = UINT64_MAX;

	if (c->sn_state != SN_UP)
		return t;
	if (c->mb_fetch_req)
		t = min64(t, c->mb_fetch_at);
	else
		t = min64(t, c->mb_last_fetch + CL_MB_IDLE_POLL_MS);
	if (c->mb_ack_req)
		t = min64(t, c->mb_ack_at);
	for (struct outmsg *m = c->out; m; m = m->next) {
		if (m->mb_stored && !m->delivered) {
			t = min64(t, c->mb_poll_at);
			if (m->mb_expires) {
				uint64_t ws = wall_s(c), left = m->mb_expires > ws ? m->mb_expires - ws : 0;
				t = min64(t, now_ms(c) + left * 1000);
			}
		}
		if (!m->group && !m->blob && m->tries >= CL_MB_AFTER_TRIES &&
		    m->mb_tries < CL_MB_TRIES && !m->mb_stored)
			t = min64(t, m->mb_next_try);
	}
	for (struct mbrcpt *q = c->mb_rcpts; q; q = q->next)
		t = min64(t, q->next_try);
	return t;
}

/* ---- direct paths ---------------------------------------------------------------------- */
/* An end-to-end session starts on the relay (FORWARD/DELIVER through the supernodes) and
 * stays usable there. Once it is up, each side sends its candidates (host addresses of
 * every interface from the host, the reflexive address our supernode saw) inside it, but
 * only to peers we accept: our contacts and our own other devices, and nobody when the
 * user chose "always relay". Both sides then check every pair at once, straight to the
 * peer's addresses, with DATA packets of the same session (src/nat/ice.h): a check is as
 * authenticated as any message, and whatever the peer's NAT does to our source address
 * is learned from where its checks come from. When the controlling side nominates a
 * pair, every later packet of the session (frames and call media) goes that way; packets
 * already on the relay still arrive, because the session's keys and replay window do
 * not depend on the path. Keepalive checks every 20-25 s hold the NAT bindings; a path that
 * stops answering is dropped and the session is back on the relay at once. */

static bool nat_allowed(struct pn_client *c, const struct peer *p)
{
	if (c->always_relay || !c->logged_in || !p->username[0])
		return false;
	return strcmp(p->username, c->username) == 0 || pn_cstore_contact_has(c->store, p->username);
}

static unsigned nat_fams(const struct pn_client *c)
{
	unsigned f = 0;

	for (unsigned i = 0; i < c->n_local; i++)
		f |= c->local[i].addr.family == PN_AF_INET ? 1 : 2;
	return f;
}

/* Our candidates now: the host's addresses and the supernode's view of us. True when
 * they differ from what we last told peers. */
static bool nat_gather(struct pn_client *c)
{
	struct pn_cand l[PN_ICE_MAX_CANDS];
	struct pn_addr a[PN_ICE_MAX_CANDS];
	unsigned n = 0, na = 0;
	bool same;

	memset(l, 0, sizeof(l));
	memset(a, 0, sizeof(a));

	if (c->env.local_addrs)
		na = c->env.local_addrs(c->env.ctx, a, PN_ICE_MAX_CANDS - 1);
	for (unsigned i = 0; i < na && n < PN_ICE_MAX_CANDS - 1; i++) {
		l[n].type = PN_CAND_HOST;
		l[n++].addr = a[i];
	}
	if (c->sn_state == SN_UP && c->reflexive.family) {
		bool dup = false;
		for (unsigned i = 0; i < n; i++)
			dup |= pn_addr_eq(&l[i].addr, &c->reflexive);
		if (!dup) {
			l[n].type = PN_CAND_SRFLX;
			l[n++].addr = c->reflexive;
		}
	}
	/* field by field: struct padding is not part of a candidate */
	same = n == c->n_local;
	for (unsigned i = 0; same && i < n; i++)
		same = l[i].type == c->local[i].type && pn_addr_eq(&l[i].addr, &c->local[i].addr);
	if (same)
		return false;
	memcpy(c->local, l, n * sizeof(l[0]));
	c->n_local = n;
	c->cands_gen++;
	return true;
}

static void nat_send_cands_flags(struct pn_client *c, struct peer *p, uint8_t flags)
{
	uint8_t f[PN_FRAME_MAX];
	bool ok = nat_allowed(c, p);
	int n = pn_ice_cands_encode(f, sizeof(f), c->cands_gen,
				    ok ? flags : PN_ICE_F_RELAY_ONLY, c->local, ok ? c->n_local : 0);

	if (n > 0)
		peer_send_frame(c, p, f, (size_t)n);
}

static void nat_send_cands(struct pn_client *c, struct peer *p)
{
	nat_send_cands_flags(c, p, 0);
}

/* A user just became our contact: sessions that are already up (a contact request opens
 * one before the other side accepts) get our candidates now, and we ask for theirs (they
 * may have sent them while we did not accept them yet, and we dropped them). */
static void nat_on_contact(struct pn_client *c, const char *user)
{
	for (struct peer *p = c->peers; p; p = p->next)
		if (p->link.state == PN_LINK_UP && strcmp(p->username, user) == 0 &&
		    nat_allowed(c, p))
			nat_send_cands_flags(c, p, PN_ICE_F_WANT);
}

static void nat_path_event(struct pn_client *c, struct peer *p)
{
	const struct pn_addr *a = pn_ice_selected(&p->ice);
	char s[PN_ADDR_STRLEN], did[33];

	pn_info("path to %s: %s", p->username, a ? pn_addr_str(a, s) : "relay");
	emit(c, "path.changed",
	     json_pack("{s:s,s:s,s:s,s:s?}", "user", p->username, "device",
		       pn_hex_encode(did, sizeof(did), p->device_id, 16), "path",
		       a ? "direct" : "relay", "address", a ? pn_addr_str(a, s) : NULL));
}

static void nat_on_session_up(struct pn_client *c, struct peer *p)
{
	p->up_at = now_ms(c);
	p->cands_gen = 0;
	pn_ice_init(&p->ice, memcmp(c->device_id, p->device_id, 16) < 0);
	nat_gather(c);
	/* strangers get nothing at all; they stay on the relay */
	if (nat_allowed(c, p))
		nat_send_cands(c, p);
}

/* Sends an end-to-end packet of session p: on its direct path when it has one. */
static void nat_out(struct pn_client *c, struct peer *p, const uint8_t *pkt, size_t n)
{
	const struct pn_addr *a = pn_ice_selected(&p->ice);

	if (a) {
		p->direct_tx++;
		c->env.send(c->env.ctx, a, pkt, n);
	} else {
		forward(c, p->device_id, pkt, n);
	}
}

/* 0, or the host's error when it could not send at all (e.g. -ENETUNREACH). */
static int nat_send_direct(struct pn_client *c, struct peer *p, const struct pn_addr *to,
			   const uint8_t *f, size_t n)
{
	uint8_t pkt[PN_PKT_MAX];
	size_t len;
	int rc = pn_link_seal(&p->link, f, n, now_ms(c), pkt, sizeof(pkt), &len);

	if (rc == 0)
		rc = c->env.send(c->env.ctx, to, pkt, len);
	return rc == -ENETUNREACH || rc == -EHOSTUNREACH || rc == -EAFNOSUPPORT || rc == -EINVAL ? rc : 0;
}

/* A 0x47 frame of session p; from is where it came from when it arrived directly. */
static void nat_on_frame(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n,
			 const struct pn_addr *from)
{
	struct pn_ice_frame fr;
	uint64_t now = now_ms(c);
	bool changed = false;

	if (pn_ice_frame_decode(&fr, f, n)) {
		c->rx_e2e_bad++;
		return;
	}
	if (fr.kind == PN_ICE_STREAM) {
		p->stream_rx++;
		return;
	}
	if (!nat_allowed(c, p)) {
		/* we never check towards peers we do not accept: a check reveals our address */
		c->direct_refused++;
		return;
	}
	if (fr.kind == PN_ICE_CANDS) {
		if (fr.flags & PN_ICE_F_WANT)
			nat_send_cands(c, p); /* (without WANT: no ping-pong) */
		if (fr.gen <= p->cands_gen && p->cands_gen)
			return; /* old news */
		p->cands_gen = fr.gen;
		if (fr.flags & PN_ICE_F_RELAY_ONLY)
			pn_ice_stop(&p->ice);
		else
			pn_ice_set_remote(&p->ice, fr.cands, fr.n, nat_fams(c), now);
		return;
	}
	if (!from) {
		c->rx_e2e_bad++; /* checks only make sense on the path they test */
		return;
	}
	if (fr.kind == PN_ICE_CHECK) {
		uint8_t ok[64];
		int k = pn_ice_check_encode(ok, sizeof(ok), true, fr.tid, fr.flags, from);
		if (k > 0)
			nat_send_direct(c, p, from, ok, (size_t)k);
		changed = pn_ice_on_check(&p->ice, now, from, fr.flags);
	} else if (fr.kind == PN_ICE_CHECK_OK) {
		changed = pn_ice_on_ok(&p->ice, now, from, fr.tid, fr.flags, &fr.mapped);
	}
	if (changed)
		nat_path_event(c, p);
}

static struct peer *nat_peer_by_idx(struct pn_client *c, uint32_t idx)
{
	for (struct peer *p = c->peers; p; p = p->next)
		if (p->link.state == PN_LINK_UP && p->link.local_idx == idx)
			return p;
	return NULL;
}

/* A datagram from an address that is neither the login server nor a supernode of ours:
 * a packet of an end-to-end session that arrived directly. Anything that does not
 * authenticate as such is dropped and counted (spoofed or stale checks end here). */
static bool nat_on_direct(struct pn_client *c, const struct pn_addr *from, const uint8_t *buf,
			  size_t len)
{
	struct pn_pkt_hdr h;
	struct peer *p;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (len > 0 && buf[0] == PN_PKT_MEDIA) {
		/* media is keyed per call; here we only learn which device it is from */
		for (p = c->peers; p; p = p->next) {
			const struct pn_addr *a = pn_ice_selected(&p->ice);
			if (a && pn_addr_eq(a, from)) {
				p->direct_rx++;
				on_media_packet(c, p->device_id, buf, len);
				return true;
			}
		}
		c->direct_bad++;
		return true;
	}
	if (pn_pkt_parse(&h, buf, len) || h.type != PN_PKT_DATA)
		return false;
	p = nat_peer_by_idx(c, h.receiver_idx);
	if (!p) {
		c->direct_bad++;
		return true;
	}
	if (pn_link_input(&p->link, &h, now_ms(c), f, sizeof(f), &n, &ev) || ev != PN_LINK_EV_DATA) {
		c->direct_bad++;
		return true;
	}
	if (!nat_allowed(c, p)) {
		c->direct_refused++;
	} else if (n > 0 && f[0] == PN_F_NAT) {
		p->direct_rx++;
		nat_on_frame(c, p, f, n, from);
	} else {
		p->direct_rx++;
		pn_ice_on_rx(&p->ice, now_ms(c), from);
		on_e2e_frame(c, p, f, n);
	}
	sodium_memzero(f, sizeof(f));
	return true;
}

static uint64_t nat_deadline(struct pn_client *c)
{
	uint64_t t = c->logged_in ? c->nat_scan_at : UINT64_MAX;

	for (struct peer *p = c->peers; p; p = p->next) {
		if (p->link.state != PN_LINK_UP)
			continue;
		t = min64(t, pn_ice_deadline(&p->ice));
		if (p->stream_left)
			t = min64(t, p->stream_next_at);
	}
	return t;
}

static void nat_tick(struct pn_client *c, uint64_t now)
{
	/* the host's addresses may change (a new network): tell every peer */
	if (c->logged_in && now >= c->nat_scan_at) {
		c->nat_scan_at = now + 10000;
		if (nat_gather(c))
			for (struct peer *p = c->peers; p; p = p->next)
				if (p->link.state == PN_LINK_UP && nat_allowed(c, p)) {
					pn_ice_recheck(&p->ice, now);
					nat_send_cands(c, p);
				}
	}
	for (struct peer *p = c->peers; p; p = p->next) {
		struct pn_ice_out o;
		const struct pn_addr *before;
		bool had;

		if (p->link.state != PN_LINK_UP)
			continue;
		before = pn_ice_selected(&p->ice);
		had = before != NULL;
		while (pn_ice_poll(&p->ice, now, &o)) {
			uint8_t f[32];
			int k = pn_ice_check_encode(f, sizeof(f), false, o.tid, o.flags, NULL);
			if (k > 0 && nat_send_direct(c, p, &o.to, f, (size_t)k) < 0)
				pn_ice_send_failed(&p->ice, &o.to);
		}
		if (had && !pn_ice_selected(&p->ice))
			nat_path_event(c, p); /* consent lost: back on the relay */
		while (p->stream_left && now >= p->stream_next_at) {
			uint8_t f[PN_FRAME_MAX];
			int k = pn_ice_stream_encode(f, sizeof(f), p->stream_seq++, p->stream_size);
			if (k > 0)
				peer_send_frame(c, p, f, (size_t)k);
			p->stream_left--;
			p->stream_sent++;
			p->stream_next_at += p->stream_every_ms;
		}
	}
}

static json_t *nat_peer_json(struct pn_client *c, struct peer *p)
{
	const struct pn_addr *a = pn_ice_selected(&p->ice);
	char s[PN_ADDR_STRLEN], did[33];
	json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "user", p->username, "device",
			      pn_hex_encode(did, sizeof(did), p->device_id, 16), "path",
			      a ? "direct" : "relay", "controlling", p->ice.controlling, "session",
			      p->link.state == PN_LINK_UP ? "up" : "down");

	if (a)
		json_object_set_new(o, "address", json_string(pn_addr_str(a, s)));
	if (p->up_at && p->hs_at)
		json_object_set_new(o, "session_ms", json_integer((json_int_t)(p->up_at - p->hs_at)));
	if (a && p->hs_at)
		json_object_set_new(o, "direct_ms",
				    json_integer((json_int_t)(p->ice.selected_at - p->hs_at)));
	if (a && p->up_at && p->ice.selected_at >= p->up_at)
		json_object_set_new(o, "ice_ms",
				    json_integer((json_int_t)(p->ice.selected_at - p->up_at)));
	json_object_set_new(o, "initiator", json_boolean(p->link.initiator));
	json_object_set_new(o, "pairs", json_integer(p->ice.n));
	json_object_set_new(o, "checks_sent", json_integer((json_int_t)p->ice.checks_sent));
	json_object_set_new(o, "paths_lost", json_integer((json_int_t)p->ice.paths_lost));
	json_object_set_new(o, "direct_rx", json_integer((json_int_t)p->direct_rx));
	json_object_set_new(o, "direct_tx", json_integer((json_int_t)p->direct_tx));
	json_object_set_new(o, "stream_rx", json_integer((json_int_t)p->stream_rx));
	json_object_set_new(o, "stream_sent", json_integer((json_int_t)p->stream_sent));
	return o;
}

/* paths: every end-to-end session and the path it uses. */
static void cmd_paths(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	json_t *arr = json_array(), *local = json_array();
	const char *user = args ? json_string_value(json_object_get(args, "user")) : NULL;
	char s[PN_ADDR_STRLEN];

	for (struct peer *p = c->peers; p; p = p->next)
		if (p->username[0] && (!user || strcmp(user, p->username) == 0))
			json_array_append_new(arr, nat_peer_json(c, p));
	for (unsigned i = 0; i < c->n_local; i++)
		json_array_append_new(local, json_pack("{s:s,s:s}", "type",
						       c->local[i].type == PN_CAND_HOST ? "host" : "srflx",
						       "address", pn_addr_str(&c->local[i].addr, s)));
	reply_ok(cb, arg, json_pack("{s:o,s:o,s:b,s:I,s:I}", "sessions", arr, "candidates", local,
				    "always_relay", c->always_relay, "direct_rejected",
				    (json_int_t)c->direct_bad, "direct_refused",
				    (json_int_t)c->direct_refused));
}

/* nat.stream {"user", "count"?, "interval_ms"?, "size"?}: a test stream of `count` frames of
 * `size` filler bytes, one every interval_ms (default 500 x 160 bytes every 20 ms, the
 * shape of 10 s of voice), to every device of user we hold an up session with. The
 * receiver counts them (paths: stream_rx). */
static void cmd_nat_stream(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *user = args ? json_string_value(json_object_get(args, "user")) : NULL;
	json_int_t count = 500, every = 20, size = 160;
	unsigned n = 0;

	if (args && json_is_integer(json_object_get(args, "count")))
		count = json_integer_value(json_object_get(args, "count"));
	if (args && json_is_integer(json_object_get(args, "interval_ms")))
		every = json_integer_value(json_object_get(args, "interval_ms"));
	if (args && json_is_integer(json_object_get(args, "size")))
		size = json_integer_value(json_object_get(args, "size"));
	if (!user || count < 1 || count > 100000 || every < 1 || every > 10000 || size < 0 ||
	    size > PN_ICE_STREAM_MAX) {
		reply_err(cb, arg, -EINVAL, "bad_request",
			  "nat.stream needs user, count 1..100000, interval_ms 1..10000, size 0..1200");
		return;
	}
	for (struct peer *p = c->peers; p; p = p->next) {
		if (p->link.state != PN_LINK_UP || strcmp(p->username, user) != 0)
			continue;
		p->stream_left = (uint64_t)count;
		p->stream_every_ms = (uint32_t)every;
		p->stream_size = (uint32_t)size;
		p->stream_next_at = now_ms(c);
		n++;
	}
	if (!n) {
		reply_err(cb, arg, -ENOTCONN, "no_session", "no session with that user");
		return;
	}
	reply_ok(cb, arg, json_pack("{s:i}", "devices", n));
}

/* "always relay": never reveal our addresses; existing direct paths are given up. */
static void nat_set_always_relay(struct pn_client *c, bool on)
{
	c->always_relay = on;
	c->cands_gen++;
	for (struct peer *p = c->peers; p; p = p->next) {
		if (p->link.state != PN_LINK_UP)
			continue;
		if (on && pn_ice_selected(&p->ice)) {
			pn_ice_stop(&p->ice);
			nat_path_event(c, p);
		}
		if (on)
			pn_ice_stop(&p->ice);
		nat_send_cands(c, p);
	}
}

/* ---- supernode frames ---------------------------------------------------------------- */

static json_t *devices_json(struct ruser *u)
{
	json_t *arr = json_array();
	char did[33], a[PN_ADDR_STRLEN];

	for (unsigned i = 0; i < u->n; i++) {
		json_t *sns = json_array();
		for (unsigned j = 0; j < u->recs[i].n_sn; j++)
			json_array_append_new(sns, json_string(pn_addr_str(&u->recs[i].sn_addr[j], a)));
		json_array_append_new(
			arr, json_pack("{s:s,s:o,s:I,s:I}", "device_id",
				       pn_hex_encode(did, sizeof(did), u->certs[i].device_id, 16),
				       "supernodes", sns, "expires", (json_int_t)u->recs[i].expires,
				       "seq", (json_int_t)u->recs[i].seq));
	}
	return arr;
}

static void finish_whois(struct pn_client *c, struct ruser *u, bool timeout)
{
	struct pending **pp = &c->pending;

	while (*pp) {
		struct pending *p = *pp;
		if ((p->kind != P_WHOIS && p->kind != P_CALL) || strcmp(p->username, u->name) != 0) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (p->kind == P_CALL && !timeout) {
			call_place(c, u, p);
			pending_free(p);
			continue;
		}
		if (timeout)
			reply_err(p->cb, p->arg, -ETIMEDOUT, "timeout", "the supernode did not answer");
		else if (!u->found)
			reply_err(p->cb, p->arg, -ENOENT, "no_such_user",
				  "no device of that user is reachable (unknown or offline)");
		else
			reply_ok(p->cb, p->arg,
				 json_pack("{s:s,s:b,s:o}", "username", u->name, "online", u->n > 0,
					   "devices", devices_json(u)));
		pending_free(p);
	}
}

/* The overlay answers a lookup from the first of the user's r supernodes that holds any
 * record, and that one may not (yet) hold every device's: an answer can name fewer
 * devices than the last one. Records from earlier answers that have not expired are
 * kept (a device that went away stops being tried when its record expires), so a
 * message to a user on two devices is not retired after the first one's receipt. */
struct lookup_old {
	unsigned n;
	struct pn_record recs[PN_REC_MAX_SN * 2];
};

static struct lookup_old *lookup_keep_old(const struct ruser *u)
{
	struct lookup_old *o = u->n ? malloc(sizeof(*o)) : NULL;

	if (!o)
		return NULL;
	o->n = u->n;
	memcpy(o->recs, u->recs, u->n * sizeof(u->recs[0]));
	return o;
}

static void lookup_merge_old(struct pn_client *c, struct ruser *u, struct lookup_old *o)
{
	uint64_t ws = wall_s(c);

	for (unsigned i = 0; o && i < o->n; i++) {
		bool have = false;
		for (unsigned k = 0; k < u->n && !have; k++)
			have = memcmp(u->certs[k].device_id, o->recs[i].cert.device_id, 16) == 0;
		if (have || o->recs[i].expires <= ws || o->recs[i].cert.not_after <= ws ||
		    u->n >= sizeof(u->certs) / sizeof(u->certs[0]))
			continue;
		u->recs[u->n] = o->recs[i];
		u->certs[u->n++] = o->recs[i].cert;
	}
	free(o);
}

static void on_lookup_result(struct pn_client *c, struct pn_rd *r)
{
	uint32_t req;
	uint8_t st, n;
	struct ruser *u;
	struct lookup_old *old;

	pn_rd_u32(r, &req);
	pn_rd_u8(r, &st);
	pn_rd_u8(r, &n);
	if (r->err)
		return;
	for (u = c->rusers; u; u = u->next)
		if (u->lookup_req == req && req)
			break;
	if (!u)
		return;
	u->lookup_req = 0;
	old = lookup_keep_old(u);
	u->n = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *rec;
		size_t rl;
		struct pn_record pr;
		if (pn_rd_vec16(r, &rec, &rl, PN_REC_MAX))
			break;
		/* Never trust the supernode: every record must carry a valid device
		 * signature and a certificate from our root for exactly this user. */
		if (pn_record_decode_verify(&pr, rec, rl, c->net.root_pk, wall_s(c)) ||
		    strcmp(pr.cert.name, u->name) != 0) {
			c->rx_bad++;
			continue;
		}
		if (memcmp(pr.cert.device_id, c->device_id, 16) == 0)
			continue; /* ourselves */
		if (pn_cstore_revoked_has(c->store, pr.cert.device_id))
			continue; /* a revoked device's record, until it expires */
		if (u->n < sizeof(u->certs) / sizeof(u->certs[0])) {
			u->recs[u->n] = pr;
			u->certs[u->n++] = pr.cert;
		}
	}
	lookup_merge_old(c, u, old);
	u->found = u->n > 0;
	u->fetched_at = now_ms(c);
	finish_whois(c, u, false);
	if (u->found)
		flush_user(c, u);
	if (u->found && strcmp(u->name, c->username) == 0)
		hist_reach_own(c, u);
	if (u->found && u->pres_push)
		pres_to_user(c, u);
	if (u->found && u->n_read)
		read_flush(c, u);
	lookup_pump(c);
}

static void on_unreachable(struct pn_client *c, struct pn_rd *r)
{
	uint8_t dst[16];
	struct peer *p;

	pn_rd_bytes(r, dst, 16);
	if (r->err)
		return;
	p = peer_get(c, dst, false);
	if (p) {
		pn_link_wipe(&p->link);
		/* Forget the cached lookup so the next retry asks again. */
		struct ruser *u = ruser_get(c, p->username, false);
		if (u)
			u->fetched_at = 0;
	}
}

static void on_sn_frame(struct pn_client *c, const uint8_t *f, size_t n)
{
	struct pn_rd r;
	uint8_t type;

	pn_rd_init(&r, f, n);
	if (pn_rd_u8(&r, &type))
		return;
	switch (type) {
	case PN_F_ATTACHED:
		if (pn_addr_read(&r, &c->reflexive) == 0 && c->sn_state != SN_UP) {
			c->nat_scan_at = now_ms(c); /* a new reflexive address goes to peers */
			on_attached(c);
		}
		break;
	case PN_F_PONG: {
		uint64_t tok;
		struct pn_host_row h;
		if (pn_rd_u64(&r, &tok) || c->rx_standby || tok > now_ms(c) || !c->sn.has_key)
			break;
		/* our PING carried the send time: the round trip goes into the host cache */
		memset(&h, 0, sizeof(h));
		pn_addr_str(&c->sn.addr, h.addr);
		memcpy(h.key, c->sn.key, 32);
		h.last_seen = wall_s(c);
		h.rtt_ms = (uint32_t)(now_ms(c) - tok);
		pn_cstore_host_upsert(c->store, &h);
		break;
	}
	case PN_F_SUPERNODES: {
		uint8_t cnt;
		pn_rd_u8(&r, &cnt);
		for (unsigned i = 0; i < cnt && i < 16; i++) {
			struct pn_net_peer p;
			struct pn_host_row h;
			memset(&p, 0, sizeof(p));
			if (pn_rd_bytes(&r, p.key, 32) || pn_addr_read(&r, &p.addr))
				break;
			p.has_key = true;
			add_candidate(c, &p);
			/* hearsay: last_seen 0 until we talk to it ourselves, so it is the
			 * first to go when the cache is full */
			memset(&h, 0, sizeof(h));
			pn_addr_str(&p.addr, h.addr);
			memcpy(h.key, p.key, 32);
			pn_cstore_host_upsert(c->store, &h);
		}
		break;
	}
	case PN_F_RESULT: {
		uint32_t req;
		uint8_t st;
		pn_rd_u32(&r, &req);
		pn_rd_u8(&r, &st);
		if (r.err || req != c->publish_req)
			break;
		c->publish_req = 0;
		if (st != PN_ST_OK)
			pn_warn("supernode refused our record (status %u)", st);
		break;
	}
	case PN_F_LOOKUP_RESULT:
		on_lookup_result(c, &r);
		break;
	case PN_F_DELIVER:
		on_deliver(c, &r, false);
		break;
	case PN_F_DELIVER_VIA:
		on_deliver(c, &r, true);
		break;
	case PN_F_UNREACHABLE:
		on_unreachable(c, &r);
		break;
	case PN_F_MB_RECEIPT:
		mb_on_receipt(c, &r);
		break;
	case PN_F_MB_ITEMS:
		mb_on_items(c, &r);
		break;
	case PN_F_MB_DONE:
		mb_on_done(c, &r);
		break;
	default:
		c->rx_bad++;
	}
}

/* ---- login server exchange --------------------------------------------------------- */

static void op_finish(struct pn_client *c)
{
	pn_link_wipe(&c->op_link);
	sodium_memzero(c->op_frame, sizeof(c->op_frame));
	c->op_frame_len = 0;
	sodium_memzero(c->op_pw, sizeof(c->op_pw));
	c->op = OP_NONE;
	c->op_cb = NULL;
	c->op_arg = NULL;
}

static void op_fail(struct pn_client *c, int err, const char *code, const char *msg)
{
	pn_client_reply_cb cb = c->op_cb;
	void *arg = c->op_arg;
	enum op_kind k = c->op;

	op_finish(c);
	if (cb)
		reply_err(cb, arg, err, code, msg);
	if (k == OP_RENEW)
		pn_warn("certificate renewal failed: %s", msg);
}

static int op_start(struct pn_client *c, enum op_kind k, const char *user, const char *pw,
		    pn_client_reply_cb cb, void *arg)
{
	int rc;

	if (c->op != OP_NONE)
		return -EBUSY;
	/* IK: the login server's key is pinned in the network file */
	rc = link_start(c, &c->op_link, PN_PURPOSE_LOGIN, c->net.login.key, false);
	if (rc)
		return rc;
	c->op = k;
	c->op_req = new_req(c);
	c->op_deadline = now_ms(c) + CL_LOGIN_TIMEOUT_MS;
	snprintf(c->op_user, sizeof(c->op_user), "%s", user);
	snprintf(c->op_pw, sizeof(c->op_pw), "%s", pw ? pw : "");
	c->op_cb = cb;
	c->op_arg = arg;
	c->env.send(c->env.ctx, &c->net.login.addr, c->op_link.hs_pkt, c->op_link.hs_pkt_len);
	return 0;
}

/* ---- profiles ----
 * profile.set and search ride the login server exchange (one at a time with login and
 * renewal): op_start opens the IK session with this device's key, the body prepared here
 * goes out when it is up. PROFILE_SET names the user and device key as RENEW does and is
 * answered by LOGIN_RESULT (no certificate); SEARCH needs no login at all. */

static void prof_write_request(struct pn_client *c, struct pn_wr *w)
{
	pn_wr_u8(w, c->op == OP_SEARCH ? PN_F_SEARCH : c->op == OP_DEVICES ? PN_F_DEVICES
		    : c->op == OP_REVOKE ? PN_F_REVOKE : PN_F_PROFILE_SET);
	pn_wr_u32(w, c->op_req);
	pn_wr_bytes(w, c->op_body, c->op_body_len);
}

static void prof_set_done(struct pn_client *c)
{
	pn_client_reply_cb cb = c->op_cb;
	void *arg = c->op_arg;

	op_finish(c);
	if (cb)
		reply_ok(cb, arg, NULL);
}

static void prof_on_search_result(struct pn_client *c, const uint8_t *b, size_t len)
{
	pn_client_reply_cb cb = c->op_cb;
	void *arg = c->op_arg;
	struct pn_rd r;
	uint32_t req;
	uint8_t st, n;
	json_t *arr;

	pn_rd_init(&r, b, len);
	pn_rd_u32(&r, &req);
	pn_rd_u8(&r, &st);
	pn_rd_u8(&r, &n);
	if (r.err || c->op != OP_SEARCH || req != c->op_req)
		return;
	if (st != PN_ST_OK) {
		op_fail(c, -EPERM, st == PN_ST_RATE_LIMITED ? "rate_limited"
				   : st == PN_ST_BAD_REQUEST ? "bad_query" : "internal",
			st == PN_ST_RATE_LIMITED ? "too many searches from this address; try later"
						 : "the login server refused the search");
		return;
	}
	arr = json_array();
	for (unsigned i = 0; arr && i < n; i++) {
		char user[PN_USERNAME_MAX + 1], name[PN_PROFILE_NAME_MAX + 1];
		char city[PN_PROFILE_CITY_MAX + 1], country[PN_PROFILE_COUNTRY_LEN + 1];
		char langs[PN_PROFILE_LANGS_MAX + 1];

		pn_rd_str8(&r, user, sizeof(user));
		pn_rd_str8(&r, name, sizeof(name));
		pn_rd_str8(&r, city, sizeof(city));
		pn_rd_str8(&r, country, sizeof(country));
		pn_rd_str8(&r, langs, sizeof(langs));
		if (r.err) {
			json_decref(arr);
			arr = NULL;
			break;
		}
		/* The login server is pinned, but text that breaks the rules (or is not UTF-8,
		 * which JSON cannot carry) is dropped rather than passed on. */
		if (pn_username_valid(user) || pn_profile_valid(name, city, country, langs, NULL))
			continue;
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s}", "username", user,
						     "display_name", name, "city", city, "country",
						     country, "languages", langs));
	}
	if (!arr) {
		op_fail(c, -EBADMSG, "internal", "the login server sent a malformed search result");
		return;
	}
	op_finish(c);
	if (cb)
		reply_ok(cb, arg, json_pack("{s:o}", "results", arr));
	else
		json_decref(arr);
}

/* Starts the exchange with the body in c->op_body; replies itself on failure. */
static void prof_start(struct pn_client *c, enum op_kind k, pn_client_reply_cb cb, void *arg)
{
	int rc;

	if (c->op != OP_NONE) {
		reply_err(cb, arg, -EBUSY, "busy",
			  "another exchange with the login server is in progress; try again");
		return;
	}
	rc = op_start(c, k, c->username, NULL, cb, arg);
	if (rc)
		reply_err(cb, arg, rc, "internal", "cannot start the exchange with the login server");
}

/* The start of v for an error message: control characters as '?', cut at a character
 * boundary (the message travels as JSON, which must be valid UTF-8). */
static const char *prof_quote(char *out, size_t cap, const char *v)
{
	size_t n = 0;

	for (; v[n] && n + 1 < cap; n++)
		out[n] = (unsigned char)v[n] < 0x20 || v[n] == 0x7f ? '?' : v[n];
	if (v[n])
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	out[n] = 0;
	return out;
}

/* Copies an optional string argument into out[cap] (absent: ""); -EINVAL when it is not a
 * string. */
static int prof_arg(json_t *args, const char *key, char *out, size_t cap, const char **bad)
{
	json_t *v = json_object_get(args, key);

	out[0] = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		*bad = key;
		return -EINVAL;
	}
	/* one byte more than the limit, so that an overlong value fails validation */
	snprintf(out, cap, "%s", json_string_value(v));
	return 0;
}

static void cmd_profile_set(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	char name[PN_PROFILE_NAME_MAX + 2], city[PN_PROFILE_CITY_MAX + 2];
	char country[PN_PROFILE_COUNTRY_LEN + 2], langs[PN_PROFILE_LANGS_MAX + 2];
	json_t *sv = args ? json_object_get(args, "searchable") : NULL;
	const char *bad = NULL, *why = NULL;
	char msg[200];
	struct pn_wr w;

	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first: a profile belongs to an account");
		return;
	}
	if ((sv && !json_is_boolean(sv)) || prof_arg(args, "display_name", name, sizeof(name), &bad) ||
	    prof_arg(args, "city", city, sizeof(city), &bad) ||
	    prof_arg(args, "country", country, sizeof(country), &bad) ||
	    prof_arg(args, "languages", langs, sizeof(langs), &bad)) {
		snprintf(msg, sizeof(msg), "%s must be a %s", bad ? bad : "searchable",
			 bad ? "string" : "boolean");
		reply_err(cb, arg, -EINVAL, "bad_request", msg);
		return;
	}
	/* Codes are compared in their canonical case: CH, en. */
	for (char *p = country; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	for (char *p = langs; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (pn_profile_valid(name, city, country, langs, &why)) {
		/* quote what the caller sent, not our truncated, case-folded copy */
		const char *key = !strncmp(why, "display", 7) ? "display_name"
				  : !strncmp(why, "city", 4) ? "city"
				  : !strncmp(why, "country", 7) ? "country" : "languages";
		const char *v = json_string_value(json_object_get(args, key));
		char q[48];
		snprintf(msg, sizeof(msg), "%s; not `%s'", why, prof_quote(q, sizeof(q), v ? v : ""));
		reply_err(cb, arg, -EINVAL, "bad_profile", msg);
		return;
	}
	pn_wr_init(&w, c->op_body, sizeof(c->op_body));
	pn_wr_str8(&w, c->username);
	pn_wr_bytes(&w, c->keys.sign_pk, 32);
	pn_wr_u8(&w, !sv || json_is_true(sv)); /* publishing is the opt-in: searchable by default */
	pn_wr_str8(&w, name);
	pn_wr_str8(&w, city);
	pn_wr_str8(&w, country);
	pn_wr_str8(&w, langs);
	if (w.err) {
		reply_err(cb, arg, -ENOSPC, "internal", "profile too large");
		return;
	}
	c->op_body_len = w.len;
	prof_start(c, OP_PROFILE_SET, cb, arg);
}

static void cmd_search(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	json_t *qv = args ? json_object_get(args, "query") : NULL;
	const char *q = json_is_string(qv) ? json_string_value(qv) : NULL;
	json_t *lim = args ? json_object_get(args, "limit") : NULL;
	json_int_t limit = 20;
	struct pn_wr w;

	if (!q) {
		reply_err(cb, arg, -EINVAL, "bad_request", "query is required");
		return;
	}
	if (!*q || pn_text_field_valid(q, PN_PROFILE_QUERY_MAX)) {
		reply_err(cb, arg, -EINVAL, "bad_query",
			  "the query is 1 to 128 bytes of text without control characters");
		return;
	}
	if (lim) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > PN_PROFILE_SEARCH_MAX) {
			reply_err(cb, arg, -EINVAL, "bad_request", "limit must be 1..50");
			return;
		}
		limit = json_integer_value(lim);
	}
	pn_wr_init(&w, c->op_body, sizeof(c->op_body));
	pn_wr_str8(&w, q);
	pn_wr_u8(&w, (uint8_t)limit);
	c->op_body_len = w.len;
	prof_start(c, OP_SEARCH, cb, arg);
}

/* The session with the login server is up: send the request (password inside it). */
static void op_send_request(struct pn_client *c)
{
	uint8_t f[PN_FRAME_MAX], pkt[PN_PKT_MAX];
	struct pn_wr w;
	size_t len;

	pn_wr_init(&w, f, sizeof(f));
	if (c->op == OP_PROFILE_SET || c->op == OP_SEARCH || c->op == OP_DEVICES ||
	    c->op == OP_REVOKE) {
		prof_write_request(c, &w);
	} else if (c->op == OP_REGISTER) {
		pn_wr_u8(&w, PN_F_REGISTER);
		pn_wr_u32(&w, c->op_req);
		pn_wr_str8(&w, c->op_user);
		pn_wr_str8(&w, c->op_pw);
	} else if (c->op == OP_LOGIN) {
		pn_wr_u8(&w, PN_F_LOGIN);
		pn_wr_u32(&w, c->op_req);
		pn_wr_str8(&w, c->op_user);
		pn_wr_str8(&w, c->op_pw);
		pn_wr_bytes(&w, c->keys.sign_pk, 32);
		pn_wr_str8(&w, c->device_name);
	} else {
		pn_wr_u8(&w, PN_F_RENEW);
		pn_wr_u32(&w, c->op_req);
		pn_wr_str8(&w, c->op_user);
		pn_wr_bytes(&w, c->keys.sign_pk, 32);
	}
	if (!w.err &&
	    pn_link_seal(&c->op_link, f, w.len, now_ms(c), pkt, sizeof(pkt), &len) == 0)
		c->env.send(c->env.ctx, &c->net.login.addr, pkt, len);
	/* Kept (with the same request id) for retransmission; wiped in op_finish. */
	memcpy(c->op_frame, f, w.len);
	c->op_frame_len = w.err ? 0 : w.len;
	c->op_resend_at = now_ms(c) + CL_REQ_RETRY_MS;
	sodium_memzero(f, sizeof(f));
	sodium_memzero(c->op_pw, sizeof(c->op_pw));
}

static const char *status_code(uint8_t st)
{
	switch (st) {
	case PN_ST_BAD_REQUEST: return "bad_request";
	case PN_ST_BAD_USERNAME: return "bad_username";
	case PN_ST_USERNAME_TAKEN: return "username_taken";
	case PN_ST_WRONG_PASSWORD: return "wrong_password";
	case PN_ST_RATE_LIMITED: return "rate_limited";
	case PN_ST_WEAK_PASSWORD: return "weak_password";
	case PN_ST_FORBIDDEN: return "device_revoked";
	case PN_ST_DEVICE_TAKEN: return "device_in_use";
	case PN_ST_UNKNOWN_DEVICE: return "unknown_device";
	default: return "internal";
	}
}

static void on_login_result(struct pn_client *c, struct pn_rd *r)
{
	uint32_t req;
	uint8_t st, nb;
	char msg[256];
	const uint8_t *cert;
	size_t cl;
	struct pn_cert pc;
	pn_client_reply_cb cb = c->op_cb;
	void *arg = c->op_arg;
	enum op_kind k = c->op;

	pn_rd_u32(r, &req);
	pn_rd_u8(r, &st);
	pn_rd_str8(r, msg, sizeof(msg));
	pn_rd_vec16(r, &cert, &cl, PN_CERT_MAX); /* or, for REVOKE, a notice (smaller) */
	pn_rd_u8(r, &nb);
	if (r->err || req != c->op_req)
		return;
	if (st != PN_ST_OK) {
		op_fail(c, -EPERM, status_code(st), msg);
		return;
	}
	if (k == OP_REVOKE && cl > 0 && revoke_learn(c, cert, cl, true) != 0)
		pn_warn("the login server's revocation notice does not verify");
	if (k == OP_PROFILE_SET || k == OP_REVOKE) {
		prof_set_done(c);
		return;
	}
	if (k == OP_REGISTER) {
		char user[PN_USERNAME_MAX + 1];
		strcpy(user, c->op_user);
		op_finish(c);
		if (cb)
			reply_ok(cb, arg, json_pack("{s:s}", "username", user));
		return;
	}
	/* A certificate must be for our own keys and signed by our root. */
	if (pn_cert_decode(&pc, cert, cl) ||
	    pn_cert_verify(&pc, c->net.root_pk, wall_s(c), PN_CERT_DEVICE) ||
	    !pn_ct_eq(pc.dh_pk, c->keys.dh_pk, 32) || !pn_ct_eq(pc.sign_pk, c->keys.sign_pk, 32) ||
	    strcmp(pc.name, c->op_user) != 0) {
		op_fail(c, -EBADMSG, "internal", "the login server returned an invalid certificate");
		return;
	}
	for (unsigned i = 0; i < nb; i++) {
		struct pn_net_peer p;
		memset(&p, 0, sizeof(p));
		if (pn_addr_read(r, &p.addr) || pn_rd_bytes(r, p.key, 32))
			break;
		p.has_key = true;
		add_candidate(c, &p);
		{
			struct pn_host_row h;
			memset(&h, 0, sizeof(h));
			pn_addr_str(&p.addr, h.addr);
			memcpy(h.key, p.key, 32);
			h.last_seen = wall_s(c);
			pn_cstore_host_upsert(c->store, &h);
		}
	}
	c->cert = pc;
	memcpy(c->cert_bytes, cert, cl);
	c->cert_len = cl;
	pn_cstore_kv_set(c->store, "cert", cert, cl);
	strcpy(c->username, pc.name);
	c->logged_in = true;
	op_finish(c);
	if (k == OP_RENEW) {
		pn_info("certificate renewed until %llu", (unsigned long long)pc.not_after);
		if (c->sn_state == SN_UP)
			publish_record(c);
		else if (c->sn_state == SN_NONE)
			sn_connect(c);
		return;
	}
	pn_info("logged in as %s", c->username);
	emit(c, "status.changed", json_pack("{s:s}", "state", "connecting"));
	if (cb) {
		struct pending *p = calloc(1, sizeof(*p));
		if (!p) {
			reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
			return;
		}
		p->kind = P_LOGIN_ATTACH;
		p->cb = cb;
		p->arg = arg;
		p->deadline = now_ms(c) + CL_LOGIN_TIMEOUT_MS;
		p->next = c->pending;
		c->pending = p;
	}
	if (c->sn_state == SN_UP) {
		/* re-login while attached: the new certificate needs a new attachment */
		sn_drop(c, false);
		c->sn_retry_at = now_ms(c);
	} else {
		c->cand_i = 0;
		sn_connect(c);
	}
}

/* ---- packet input -------------------------------------------------------------------- */

static void sb_drop(struct pn_client *c);
static void sb_promote(struct pn_client *c);

static void cl_recv(void *node, const struct pn_addr *from, const uint8_t *buf, size_t len)
{
	struct pn_client *c = node;
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;
	uint64_t now = now_ms(c);

	if (len > 0 && buf[0] == PN_PKT_MEDIA && nat_on_direct(c, from, buf, len))
		return;
	if (pn_pkt_parse(&h, buf, len) || h.type == PN_PKT_HS1) {
		c->rx_bad++;
		return;
	}
	if (h.type == PN_PKT_RESET) {
		/* A supernode lost our session (it restarted): attach again now rather than
		 * after the keepalive times out. Only the index we use there counts. */
		if (c->sn_state == SN_UP && c->sn_link.state == PN_LINK_UP &&
		    pn_addr_eq(from, &c->sn.addr) && h.receiver_idx == c->sn_link.remote_idx) {
			pn_warn("supernode lost our session; attaching again");
			if (c->sb_state == 2) {
				sb_promote(c);
			} else {
				sn_drop(c, false);
				c->sn_retry_at = now;
			}
		} else if (c->sb_state && c->sb_link.state == PN_LINK_UP &&
			   pn_addr_eq(from, &c->sb.addr) && h.receiver_idx == c->sb_link.remote_idx) {
			sb_drop(c);
			c->sb_retry_at = now;
		} else {
			c->rx_bad++;
		}
		return;
	}
	if (c->op != OP_NONE && pn_addr_eq(from, &c->net.login.addr) &&
	    h.receiver_idx == c->op_link.local_idx) {
		if (pn_link_input(&c->op_link, &h, now, f, sizeof(f), &n, &ev)) {
			c->rx_bad++;
			return;
		}
		if (ev == PN_LINK_EV_UP) {
			op_send_request(c);
		} else if (ev == PN_LINK_EV_DATA && n > 0 && f[0] == PN_F_DEVICES_RESULT) {
			devices_on_result(c, f + 1, n - 1);
		} else if (ev == PN_LINK_EV_DATA && n > 0 && f[0] == PN_F_SEARCH_RESULT) {
			prof_on_search_result(c, f + 1, n - 1);
		} else if (ev == PN_LINK_EV_DATA && n > 0 && f[0] == PN_F_LOGIN_RESULT) {
			struct pn_rd r;
			pn_rd_init(&r, f + 1, n - 1);
			on_login_result(c, &r);
		}
		return;
	}
	if (c->sn_state != SN_NONE && pn_addr_eq(from, &c->sn.addr) &&
	    h.receiver_idx == c->sn_link.local_idx) {
		if (pn_link_input(&c->sn_link, &h, now, f, sizeof(f), &n, &ev)) {
			c->rx_bad++;
			return;
		}
		if (ev == PN_LINK_EV_UP)
			c->attach_wait_until = now + CL_ATTACH_WAIT_MS;
		if (ev == PN_LINK_EV_UP && c->sn_link.pattern == PN_PATTERN_XX) {
			/* The supernode's key was unknown: its certificate must come from our
			 * root and match the key it just proved. */
			struct pn_cert sc;
			bool open_ok = c->net.open_policy && c->sn_link.peer_cert_len == 0;
			if (!open_ok &&
			    (pn_cert_decode(&sc, c->sn_link.peer_cert, c->sn_link.peer_cert_len) ||
			     pn_cert_verify(&sc, c->net.root_pk, wall_s(c), PN_CERT_SUPERNODE) ||
			     !pn_ct_eq(sc.dh_pk, c->sn_link.remote_static, 32))) {
				pn_warn("supernode presented an invalid certificate; trying another");
				sn_drop(c, true);
				return;
			}
			/* (open network: an uncertified supernode is who its key says) */
			memcpy(c->sn.key, c->sn_link.remote_static, 32);
			c->sn.has_key = true;
			c->env.send(c->env.ctx, &c->sn.addr, c->sn_link.hs_pkt, c->sn_link.hs_pkt_len);
		} else if (ev == PN_LINK_EV_DATA) {
			on_sn_frame(c, f, n);
		}
		sodium_memzero(f, sizeof(f));
		return;
	}
	if (c->sb_state && pn_addr_eq(from, &c->sb.addr) && h.receiver_idx == c->sb_link.local_idx) {
		if (pn_link_input(&c->sb_link, &h, now, f, sizeof(f), &n, &ev)) {
			c->rx_bad++;
			return;
		}
		if (ev == PN_LINK_EV_DATA && n > 0) {
			if (f[0] == PN_F_ATTACHED) {
				if (c->sb_state == 1) {
					char a[PN_ADDR_STRLEN];
					c->sb_state = 2;
					/* Ping at once: the supernode keeps a session whose
					 * initiator has sent no DATA yet for only 5 s (its
					 * half-open limit), and everything else goes to the
					 * primary, so without this the standby died unseen
					 * 5 s after attaching. */
					c->sb_ping_at = now;
					pn_info("standby supernode %s attached", pn_addr_str(&c->sb.addr, a));
					publish_record(c);
				}
			} else if (f[0] != PN_F_PONG) {
				/* a peer reached us through the standby: its packets through our
				 * primary went unanswered, so check on the primary now rather than
				 * only when we next send through it */
				if (c->sn_state == SN_UP && !c->sn_probe_at &&
				    now > c->sn_link.last_rx + CL_PROBE_MS)
					sn_probe(c, now);
				c->rx_standby = true;
				on_sn_frame(c, f, n);
				c->rx_standby = false;
			}
		}
		sodium_memzero(f, sizeof(f));
		return;
	}
	if (nat_on_direct(c, from, buf, len))
		return;
	c->rx_bad++;
}

/* ---- timers ---------------------------------------------------------------------------- */


static uint64_t hs_retry_time(const struct pn_link *l)
{
	return l->hs_sent_at + ((uint64_t)CL_HS_RETRY_MS << (l->hs_tries - 1));
}

/* ---- standby attachment ------------------------------------------------------------- */

/* Asks a primary that may be dead for a PONG; unanswered within CL_PROBE_MS, the tick
 * promotes the standby. */
static void sn_ping(struct pn_client *c, uint64_t now)
{
	uint8_t f[9];
	struct pn_wr w;

	pn_wr_init(&w, f, sizeof(f));
	pn_wr_u8(&w, PN_F_PING);
	pn_wr_u64(&w, now); /* the PONG echoes it: the round trip goes into the host cache */
	sn_send_frame(c, f, w.len);
}

static void sn_probe(struct pn_client *c, uint64_t now)
{
	sn_ping(c, now);
	c->sn_probe_at = now;
}

static void sb_drop(struct pn_client *c)
{
	bool was_up = c->sb_state == 2;

	pn_link_wipe(&c->sb_link);
	c->sb_state = 0;
	c->sb_cand++;
	c->sb_retry_at = now_ms(c) + CL_REATTACH_MS;
	if (was_up && c->sn_state == SN_UP)
		publish_record(c); /* the record must stop naming it */
}

/* Attaches to a second supernode (one whose key we know, other than the primary). */
static void sb_connect(struct pn_client *c)
{

	for (unsigned k = 0; k < c->n_cands; k++) {
		const struct pn_net_peer *cand = &c->cands[(c->sb_cand + k) % c->n_cands];
		if (!cand->has_key || pn_addr_eq(&cand->addr, &c->sn.addr))
			continue;
		c->sb = *cand;
		c->sb_cand = (c->sb_cand + k) % c->n_cands;
		break;
	}
	if (!c->sb.has_key || pn_addr_eq(&c->sb.addr, &c->sn.addr)) {
		c->sb_retry_at = now_ms(c) + CL_QUEUED_RETRY_MS;
		return;
	}
	if (link_start(c, &c->sb_link, PN_PURPOSE_ATTACH, c->sb.key, true) == 0) {
		c->env.send(c->env.ctx, &c->sb.addr, c->sb_link.hs_pkt, c->sb_link.hs_pkt_len);
		c->sb_state = 1;
	}
}

/* The primary stopped answering: the warm standby takes over at once (no handshake), a new
 * standby is found later, and the record names the new primary. */
static void sb_promote(struct pn_client *c)
{
	char a[PN_ADDR_STRLEN], b[PN_ADDR_STRLEN];

	pn_warn("supernode %s stopped answering; switching to standby %s",
		pn_addr_str(&c->sn.addr, a), pn_addr_str(&c->sb.addr, b));
	pn_link_wipe(&c->sn_link);
	c->sn_link = c->sb_link;
	c->sn = c->sb;
	memset(&c->sb_link, 0, sizeof(c->sb_link));
	memset(&c->sb, 0, sizeof(c->sb));
	c->sb_state = 0;
	c->sb_retry_at = now_ms(c) + CL_REATTACH_MS;
	c->sn_probe_at = 0;
	c->sn_ping_at = now_ms(c) + CL_PING_MS;
	emit(c, "status.changed", json_pack("{s:s,s:s}", "state", "online", "supernode",
					    pn_addr_str(&c->sn.addr, a)));
	publish_record(c);
	flush_all(c);
}

static void sb_tick(struct pn_client *c, uint64_t now)
{
	if (c->sn_state != SN_UP) {
		if (c->sb_state)
			sb_drop(c);
		return;
	}
	if (c->sb_state == 0) {
		if (now >= c->sb_retry_at && c->n_cands > 1)
			sb_connect(c);
		return;
	}
	if (c->sb_state == 1) {
		if (c->sb_link.state == PN_LINK_WAIT_HS2 && now >= hs_retry_time(&c->sb_link)) {
			if (c->sb_link.hs_tries >= CL_HS_TRIES) {
				sb_drop(c);
			} else {
				c->sb_link.hs_tries++;
				c->env.send(c->env.ctx, &c->sb.addr, c->sb_link.hs_pkt,
					    c->sb_link.hs_pkt_len);
			}
		} else if (c->sb_link.state == PN_LINK_UP && now >= c->sb_link.up_at + CL_ATTACH_WAIT_MS) {
			sb_drop(c);
		}
		return;
	}
	if (now - c->sb_link.last_rx > CL_SN_DEAD_MS) {
		sb_drop(c);
		return;
	}
	if (now >= c->sb_ping_at) {
		uint8_t f[9], pkt[64];
		struct pn_wr w;
		size_t len;
		pn_wr_init(&w, f, sizeof(f));
		pn_wr_u8(&w, PN_F_PING);
		pn_wr_u64(&w, now);
		if (pn_link_seal(&c->sb_link, f, w.len, now, pkt, sizeof(pkt), &len) == 0)
			c->env.send(c->env.ctx, &c->sb.addr, pkt, len);
		c->sb_ping_at = now + CL_PING_MS;
	}
}

static uint64_t sb_deadline(struct pn_client *c)
{
	if (c->sn_state != SN_UP)
		return c->sb_state ? 0 : UINT64_MAX;
	if (c->sb_state == 0)
		return c->n_cands > 1 ? c->sb_retry_at : UINT64_MAX;
	if (c->sb_state == 1)
		return c->sb_link.state == PN_LINK_WAIT_HS2 ? hs_retry_time(&c->sb_link)
							    : c->sb_link.up_at + CL_ATTACH_WAIT_MS;
	return min64(c->sb_ping_at, c->sb_link.last_rx + CL_SN_DEAD_MS + 1);
}

static uint64_t cl_deadline(void *node)
{
	struct pn_client *c = node;
	uint64_t t = UINT64_MAX;

	if (c->op != OP_NONE) {
		t = min64(t, c->op_deadline);
		if (c->op_link.state == PN_LINK_WAIT_HS2)
			t = min64(t, hs_retry_time(&c->op_link));
		else if (c->op_frame_len)
			t = min64(t, c->op_resend_at);
	}
	if (c->logged_in) {
		if (c->sn_state == SN_UP) {
			t = min64(t, min64(c->sn_ping_at, c->republish_at));
			if (c->publish_req)
				t = min64(t, c->publish_resend_at);
		} else if (c->sn_state == SN_CONNECTING && c->sn_link.state == PN_LINK_UP)
			t = min64(t, c->attach_wait_until);
		else if (c->sn_state == SN_CONNECTING && c->sn_link.state == PN_LINK_WAIT_HS2)
			t = min64(t, hs_retry_time(&c->sn_link));
		else
			t = min64(t, c->sn_retry_at);
		t = min64(t, c->renew_check_at);
	}
	if (c->logged_in) {
		t = min64(t, sb_deadline(c));
		/* (a probe counts only while attached: the tick looks at it only then) */
		if (c->sn_probe_at && c->sn_state == SN_UP)
			t = min64(t, c->sn_probe_at + CL_PROBE_MS);
		else if (c->sn_state == SN_UP && c->sb_state == 2 &&
			 c->sn_link.last_tx > c->sn_link.last_rx)
			t = min64(t, c->sn_link.last_rx + CL_SUSPECT_MS + 1);
	}
	for (struct pending *p = c->pending; p; p = p->next)
		t = min64(t, p->deadline);
	/* a lookup is resent only while attached (the tick's rule), so its resend time
	 * counts only then; its deadline always does */
	for (struct ruser *u = c->rusers; u; u = u->next)
		if (u->lookup_req)
			t = min64(t, c->sn_state == SN_UP ? min64(u->lookup_deadline, u->lookup_resend_at)
							  : u->lookup_deadline);
	for (struct peer *p = c->peers; p; p = p->next)
		if (p->link.state == PN_LINK_WAIT_HS2)
			t = min64(t, hs_retry_time(&p->link));
	if (c->sn_state == SN_UP)
		for (struct outmsg *m = c->out; m; m = m->next)
			t = min64(t, m->next_try);
	t = min64(t, mb_deadline(c));
	t = min64(t, pres_deadline(c));
	t = min64(t, hist_deadline(c));
	t = min64(t, nat_deadline(c));
	return min64(t, calls_deadline(c));
}

static void tick_messages(struct pn_client *c, uint64_t now)
{
	mb_tick(c, now);
	for (struct outmsg *m = c->out; m; m = m->next) {
		if (mb_tick_msg(c, m, now)) {
			m->dead = true;
			continue;
		}
		if (m->next_try > now)
			continue;
		if ((m->carbon || m->delivered) && m->tries >= CL_MSG_TRIES &&
		    (m->n_mbd == 0 || m->mb_stored || m->mb_tries >= CL_MB_TRIES)) {
			/* the devices that stayed away take it from their mailbox (deposited
			 * after CL_MB_AFTER_TRIES), or, when none could be, miss it */
			m->dead = true;
			continue;
		}
		if (m->queued) {
			/* slow retry of a message whose recipient was unreachable */
			m->queued = false;
			m->tries = 0;
			/* (a stored message keeps saying so while we try directly as well; a group
			 * message's row stays `sent`: its members' receipts are counted) */
			if (!m->mb_stored && !m->group && !m->blob)
				pn_cstore_msg_set_state(c->store, m->id, PN_MSG_SENT, wall_ms(c));
		}
		if (++m->tries > CL_MSG_TRIES) {
			m->queued = true;
			m->next_try = now + CL_QUEUED_RETRY_MS;
			/* a group message's row stays `sent`: its members' receipts are counted */
			if (m->mb_stored || m->group || m->blob)
				continue;
			pn_cstore_msg_set_state(c->store, m->id, PN_MSG_QUEUED, wall_ms(c));
			msg_state_event(c, m->id, m->to, PN_MSG_QUEUED);
			continue;
		}
		m->next_try = now + min64((uint64_t)CL_MSG_RETRY_MS << (m->tries - 1),
					  CL_MSG_RETRY_CAP_MS);
		/* the recipient's devices may be reachable only through another supernode */
		for (struct peer *p = c->peers; p; p = p->next)
			if (strcmp(p->username, m->to) == 0)
				next_route(p);
		if (m->tries > 2) {
			/* Retransmissions went unanswered on every route: the records may be
			 * stale (the device moved to another supernode). Look again. */
			struct ruser *u = ruser_get(c, m->to, false);
			if (u)
				u->fetched_at = 0;
		}
		if (m->tries > 4) {
			/* ... and the peer may have restarted and lost our session (its new
			 * process drops our DATA): re-handshake sessions that went quiet. */
			for (struct peer *p = c->peers; p; p = p->next)
				if (p->link.state == PN_LINK_UP && strcmp(p->username, m->to) == 0 &&
				    p->link.last_rx + 10000 < now)
					pn_link_wipe(&p->link);
		}
		kick_user(c, m->to, m);
	}
	for (struct outmsg **pp = &c->out; *pp;) {
		if ((*pp)->dead) {
			struct outmsg *d = *pp;
			*pp = d->next;
			outmsg_free(d);
		} else {
			pp = &(*pp)->next;
		}
	}
}

static void cl_tick(void *node)
{
	struct pn_client *c = node;
	uint64_t now = now_ms(c);

	/* login server exchange */
	if (c->op != OP_NONE) {
		if (now >= c->op_deadline) {
			op_fail(c, -ETIMEDOUT, "login_server_unreachable",
				"the login server did not answer");
		} else if (c->op_link.state == PN_LINK_WAIT_HS2 && now >= hs_retry_time(&c->op_link)) {
			c->op_link.hs_tries++;
			c->env.send(c->env.ctx, &c->net.login.addr, c->op_link.hs_pkt,
				    c->op_link.hs_pkt_len);
		} else if (c->op_link.state == PN_LINK_UP && c->op_frame_len &&
			   now >= c->op_resend_at) {
			uint8_t pkt[PN_PKT_MAX];
			size_t len;
			if (pn_link_seal(&c->op_link, c->op_frame, c->op_frame_len, now, pkt,
					 sizeof(pkt), &len) == 0)
				c->env.send(c->env.ctx, &c->net.login.addr, pkt, len);
			c->op_resend_at = now + CL_REQ_RETRY_MS;
		}
	}
	/* supernode attachment */
	if (c->logged_in) {
		if (c->sn_state == SN_UP) {
			if (c->sn_probe_at && c->sn_link.last_rx >= c->sn_probe_at)
				c->sn_probe_at = 0; /* it answered */
			if (c->sb_state == 2 && c->sn_probe_at && now >= c->sn_probe_at + CL_PROBE_MS) {
				sb_promote(c);
			} else if (c->sb_state == 2 && !c->sn_probe_at &&
				   c->sn_link.last_tx > c->sn_link.last_rx &&
				   now > c->sn_link.last_rx + CL_SUSPECT_MS) {
				/* we keep sending and it went quiet: ask it directly */
				sn_probe(c, now);
			} else if (now - c->sn_link.last_rx > CL_SN_DEAD_MS) {
				pn_warn("supernode silent for %d s; reattaching", CL_SN_DEAD_MS / 1000);
				if (c->sb_state == 2)
					sb_promote(c);
				else
					sn_drop(c, true);
			} else {
				if (now >= c->sn_ping_at) {
					sn_ping(c, now);
					c->sn_ping_at = now + CL_PING_MS;
					if (!c->hosts_asked) {
						/* with the first keepalive of an attachment: refresh
						 * the host cache from the supernode's overlay view */
						uint8_t g[1] = {PN_F_GET_SUPERNODES};
						sn_send_frame(c, g, 1);
						c->hosts_asked = true;
					}
				}
				if (now >= c->republish_at)
					publish_record(c);
				else if (c->publish_req && now >= c->publish_resend_at) {
					sn_send_frame(c, c->publish_frame, c->publish_len);
					c->publish_resend_at = now + CL_REQ_RETRY_MS;
				}
			}
		} else if (c->sn_state == SN_CONNECTING && c->sn_link.state == PN_LINK_WAIT_HS2) {
			if (now >= hs_retry_time(&c->sn_link)) {
				if (c->sn_link.hs_tries >= CL_HS_TRIES) {
					sn_drop(c, true);
				} else {
					c->sn_link.hs_tries++;
					c->env.send(c->env.ctx, &c->sn.addr, c->sn_link.hs_pkt,
						    c->sn_link.hs_pkt_len);
				}
			}
		} else if (c->sn_state == SN_CONNECTING && c->sn_link.state == PN_LINK_UP) {
			/* Handshake done but ATTACHED (or our HS3) was lost: start over with a
			 * fresh handshake; the supernode replaces the half-made session. */
			if (now >= c->attach_wait_until)
				sn_drop(c, false), c->sn_retry_at = now;
		} else if (now >= c->sn_retry_at && c->sn_link.state != PN_LINK_UP) {
			if (c->n_cands == 0)
				load_candidates(c);
			sn_connect(c);
			if (c->sn_state != SN_CONNECTING)
				c->sn_retry_at = now + CL_REATTACH_MS;
		}
		/* certificate renewal at half its lifetime */
		if (now >= c->renew_check_at) {
			uint64_t ws = wall_s(c), life = c->cert.not_after - c->cert.not_before;
			c->renew_check_at = now + 60000;
			if (c->op == OP_NONE && ws + life / 2 >= c->cert.not_after)
				op_start(c, OP_RENEW, c->username, NULL, NULL, NULL);
		}
	}
	if (c->logged_in)
		sb_tick(c, now);
	/* pending commands */
	for (struct pending **pp = &c->pending; *pp;) {
		struct pending *p = *pp;
		if (now < p->deadline) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (p->kind == P_LOGIN_ATTACH)
			reply_err(p->cb, p->arg, -ETIMEDOUT, "supernode_unreachable",
				  "logged in, but no supernode answered yet; still trying");
		else
			reply_err(p->cb, p->arg, -ETIMEDOUT, "timeout", "the supernode did not answer");
		pending_free(p);
	}
	for (struct ruser *u = c->rusers; u; u = u->next) {
		if (u->lookup_req && now >= u->lookup_deadline) {
			u->lookup_req = 0;
			finish_whois(c, u, true);
		} else if (u->lookup_req && now >= u->lookup_resend_at && c->sn_state == SN_UP) {
			lookup_send(c, u); /* same request id: a late answer still counts */
		}
	}
	for (struct peer *p = c->peers; p; p = p->next) {
		if (p->link.state == PN_LINK_WAIT_HS2 && now >= hs_retry_time(&p->link)) {
			if (p->link.hs_tries >= CL_HS_TRIES) {
				pn_link_wipe(&p->link);
			} else {
				p->link.hs_tries++;
				next_route(p);
				forward(c, p->device_id, p->link.hs_pkt, p->link.hs_pkt_len);
			}
		}
	}
	if (c->sn_state == SN_UP) {
		tick_messages(c, now);
		lookup_pump(c);
	}
	calls_tick(c, now);
	pres_tick(c, now);
	hist_tick(c, now);
	nat_tick(c, now);
}

const struct pn_node_ops pn_client_ops = {cl_recv, cl_deadline, cl_tick};

/* ---- commands ------------------------------------------------------------------------ */

static const char *arg_str(json_t *args, const char *key)
{
	json_t *v = args ? json_object_get(args, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void cmd_register_login(struct pn_client *c, bool login, json_t *args,
			       pn_client_reply_cb cb, void *arg)
{
	const char *user = arg_str(args, "username"), *pw = arg_str(args, "password");
	const char *dn = arg_str(args, "device_name");
	int rc;

	if (!user || !pw) {
		reply_err(cb, arg, -EINVAL, "bad_request", "username and password are required");
		return;
	}
	if (pn_username_valid(user)) {
		reply_err(cb, arg, -EINVAL, "bad_username",
			  "usernames are 3-32 characters a-z 0-9 . _ - starting with a letter");
		return;
	}
	if (strlen(pw) > CL_PW_MAX || (!login && strlen(pw) < 8)) {
		reply_err(cb, arg, -EINVAL, "weak_password", "passwords are 8 to 128 bytes");
		return;
	}
	if (login && c->logged_in && strcmp(user, c->username) == 0 && c->sn_state == SN_UP) {
		reply_err(cb, arg, -EALREADY, "already_logged_in", "this device is already logged in");
		return;
	}
	if (dn)
		snprintf(c->device_name, sizeof(c->device_name), "%s", dn);
	rc = op_start(c, login ? OP_LOGIN : OP_REGISTER, user, pw, cb, arg);
	if (rc == -EBUSY)
		reply_err(cb, arg, rc, "busy", "another login or registration is in progress");
	else if (rc)
		reply_err(cb, arg, rc, "internal", "cannot start the login exchange");
}

static void cmd_logout(struct pn_client *c, pn_client_reply_cb cb, void *arg)
{
	pres_going_offline(c);
	pn_link_wipe(&c->sn_link);
	pn_link_wipe(&c->sb_link);
	c->sb_state = 0;
	for (struct peer *p = c->peers; p; p = p->next)
		pn_link_wipe(&p->link);
	c->sn_state = SN_NONE;
	c->logged_in = false;
	c->username[0] = 0;
	c->cert_len = 0;
	memset(&c->cert, 0, sizeof(c->cert));
	pn_cstore_kv_del(c->store, "cert");
	complete_login_waiters(c, false);
	emit(c, "status.changed", json_pack("{s:s}", "state", "logged_out"));
	reply_ok(cb, arg, NULL);
}

static void cmd_status(struct pn_client *c, pn_client_reply_cb cb, void *arg)
{
	json_t *r = json_pack("{s:s,s:s}", "state", state_name(c), "network",
			      c->net.name[0] ? c->net.name : "parley");
	char did[33], a[PN_ADDR_STRLEN];

	json_object_set_new(r, "device_id",
			    json_string(pn_hex_encode(did, sizeof(did), c->device_id, 16)));
	if (c->logged_in) {
		json_object_set_new(r, "username", json_string(c->username));
		json_object_set_new(r, "cert_expires", json_integer((json_int_t)c->cert.not_after));
	}
	if (c->sn_state == SN_UP) {
		json_object_set_new(r, "supernode", json_string(pn_addr_str(&c->sn.addr, a)));
		json_object_set_new(r, "reflexive_address", json_string(pn_addr_str(&c->reflexive, a)));
	}
	/* what this device rejected: bad packets, bad end-to-end frames, call offers refused
	 * or dropped by the rate limits, media packets not of a call of ours */
	json_object_set_new(r, "rejected",
			    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "packets",
				      (json_int_t)c->rx_bad, "e2e_frames", (json_int_t)c->rx_e2e_bad,
				      "call_offers_refused", (json_int_t)c->calls_refused,
				      "call_offers_rate_limited", (json_int_t)c->calls_rate_limited,
				      "media_packets", (json_int_t)c->media_bad, "requests_dropped",
				      (json_int_t)c->requests_dropped, "from_blocked",
				      (json_int_t)c->blocked_dropped));
	json_object_set_new(json_object_get(r, "rejected"), "revoked_devices",
			    json_integer((json_int_t)c->revoked_refused));
	json_object_set_new(r, "messages_held", json_integer((json_int_t)c->msgs_held));
	json_object_set_new(json_object_get(r, "rejected"), "group_frames",
			    json_integer((json_int_t)c->group_refused));
	/* directory lookups: the most ever in flight at once (at most CL_LOOKUPS_MAX) and how
	 * many had to wait for a slot */
	json_object_set_new(r, "lookups",
			    json_pack("{s:i,s:I}", "in_flight_peak", (int)c->lookups_peak, "paced",
				      (json_int_t)c->lookups_paced));
	/* our mailbox: messages taken from it, duplicates, envelopes refused (forged, not
	 * for us, malformed); store receipts that did not verify; deposits refused */
	json_object_set_new(r, "mailbox",
			    json_pack("{s:I,s:I,s:I,s:I,s:I}", "received", (json_int_t)c->mb_in,
				      "duplicates", (json_int_t)c->mb_dup, "rejected",
				      (json_int_t)c->mb_bad, "bad_store_receipts",
				      (json_int_t)c->mb_receipts_bad, "deposits_refused",
				      (json_int_t)c->mb_refused));
	reply_ok(cb, arg, r);
}

struct contact_list {
	struct pn_client *c;
	json_t *arr;
};

static int contact_cb(void *arg, const struct pn_contact_row *r)
{
	struct contact_list *l = arg;
	struct ruser *u = ruser_get(l->c, r->username, false);

	json_array_append_new(l->arr, json_pack("{s:s,s:I,s:s,s:s}", "username", r->username,
						"added_at", (json_int_t)r->added_at, "status",
						pres_name(u ? u->pres_status : PRES_OFFLINE),
						"mood", u ? u->mood : ""));
	return 0;
}

static const char *rel_name(enum pn_rel_kind k)
{
	return k == PN_REL_REQUEST_IN ? "incoming" : k == PN_REL_REQUEST_OUT ? "outgoing" : "blocked";
}

static int held_json_cb(void *arg, const struct pn_msg_row *m)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:I}", "id", m->id, "text", m->text,
					     "sent_at", (json_int_t)m->sent_at));
	return 0;
}

struct rel_list {
	struct pn_client *c;
	json_t *arr;
};

/* contacts.requests: an incoming request lists the messages held with it, oldest first */
static int rel_cb(void *arg, const struct pn_rel_row *r)
{
	struct rel_list *l = arg;
	json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "username", r->username, "kind",
			      rel_name(r->kind), "note", r->note, "at", (json_int_t)r->at);

	if (r->kind == PN_REL_REQUEST_IN) {
		json_t *msgs = json_array();
		pn_cstore_held_list(l->c->store, r->username, held_json_cb, msgs);
		json_object_set_new(o, "messages", msgs);
	}
	json_array_append_new(l->arr, o);
	return 0;
}

/* The user becomes a contact of ours; they hear our presence (and, when they have not
 * accepted us yet, our request) once a session with one of their devices is up. */
static void nat_on_contact(struct pn_client *c, const char *user);

static int contact_make(struct pn_client *c, const char *user)
{
	int rc = pn_cstore_contact_add(c->store, user, wall_s(c));

	if (rc == 0)
		nat_on_contact(c, user);
	if (rc == 0 && c->sn_state == SN_UP) {
		struct pn_contact_row row = {0};
		snprintf(row.username, sizeof(row.username), "%s", user);
		pres_contact_cb(c, &row);
	}
	return rc;
}

static void cmd_contacts(struct pn_client *c, const char *sub, json_t *args, pn_client_reply_cb cb,
			 void *arg)
{
	const char *user = arg_str(args, "username"), *note = arg_str(args, "note");
	struct pn_rel_row rel;
	bool has_rel;
	int rc = 0;

	if (strcmp(sub, "list") == 0) {
		struct contact_list l = {c, json_array()};
		pn_cstore_contact_list(c->store, contact_cb, &l);
		reply_ok(cb, arg, json_pack("{s:o}", "contacts", l.arr));
		return;
	}
	if (strcmp(sub, "requests") == 0) {
		struct rel_list l = {c, json_array()};
		pn_cstore_rel_list(c->store, rel_cb, &l);
		reply_ok(cb, arg, json_pack("{s:o}", "requests", l.arr));
		return;
	}
	if (!user || pn_username_valid(user)) {
		reply_err(cb, arg, -EINVAL, "bad_username", "not a valid username");
		return;
	}
	if (note && strlen(note) > PN_REL_NOTE_MAX) {
		reply_err(cb, arg, -EINVAL, "bad_request", "the note is longer than 200 bytes");
		return;
	}
	has_rel = pn_cstore_rel_get(c->store, user, &rel) == 0;
	if (strcmp(sub, "add") == 0) {
		if (c->logged_in && strcmp(user, c->username) == 0) {
			reply_err(cb, arg, -EINVAL, "bad_username", "you cannot add yourself");
			return;
		}
		if (pn_cstore_contact_has(c->store, user)) {
			reply_err(cb, arg, -EEXIST, "exists", "already a contact");
			return;
		}
		/* they asked us already: adding them is accepting; else we ask them (this also
		 * lifts a block) */
		if (has_rel && rel.kind == PN_REL_REQUEST_IN)
			rc = pn_cstore_rel_del(c->store, user);
		else
			rc = pn_cstore_rel_set(c->store, user, PN_REL_REQUEST_OUT, note ? note : "",
					       wall_s(c));
		if (rc == 0)
			rc = contact_make(c, user);
	} else if (strcmp(sub, "accept") == 0) {
		if (!has_rel || rel.kind != PN_REL_REQUEST_IN) {
			reply_err(cb, arg, -ENOENT, "no_such_request", "no contact request from that user");
			return;
		}
		rc = pn_cstore_rel_del(c->store, user);
		if (rc == 0)
			rc = contact_make(c, user);
		if (rc == 0)
			emit(c, "contact.accepted", json_pack("{s:s}", "username", user));
	} else if (strcmp(sub, "decline") == 0) {
		if (!has_rel || rel.kind != PN_REL_REQUEST_IN) {
			reply_err(cb, arg, -ENOENT, "no_such_request", "no contact request from that user");
			return;
		}
		rc = pn_cstore_rel_del(c->store, user); /* silently: they are not told */
	} else if (strcmp(sub, "block") == 0) {
		pn_cstore_contact_remove(c->store, user);
		rc = pn_cstore_rel_set(c->store, user, PN_REL_BLOCKED, "", wall_s(c));
	} else if (strcmp(sub, "unblock") == 0) {
		if (!has_rel || rel.kind != PN_REL_BLOCKED) {
			reply_err(cb, arg, -ENOENT, "not_blocked", "that user is not blocked");
			return;
		}
		rc = pn_cstore_rel_del(c->store, user);
	} else {
		rc = pn_cstore_contact_remove(c->store, user);
		if (rc == -ENOENT) {
			reply_err(cb, arg, rc, "no_such_contact", "not a contact");
			return;
		}
		if (has_rel && rel.kind == PN_REL_REQUEST_OUT)
			pn_cstore_rel_del(c->store, user);
	}
	if (rc) {
		reply_err(cb, arg, rc, "internal", "contact store error");
		return;
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "accept") == 0)
		held_settle(c, user, true);
	else if (strcmp(sub, "decline") == 0 || strcmp(sub, "block") == 0)
		held_settle(c, user, false);
	if (strcmp(sub, "add") == 0 || strcmp(sub, "accept") == 0)
		csync_local(c, user, CS_CONTACT);
	else if (strcmp(sub, "remove") == 0 || strcmp(sub, "unblock") == 0)
		csync_local(c, user, CS_REMOVED);
	else if (strcmp(sub, "block") == 0)
		csync_local(c, user, CS_BLOCKED);
	if (strcmp(sub, "remove") == 0 || strcmp(sub, "block") == 0) {
		struct ruser *u = ruser_get(c, user, false);
		if (u && u->pres_status != PRES_OFFLINE)
			pres_set_remote(c, u, PRES_OFFLINE, "", u->pres_seq);
	}
	reply_ok(cb, arg, json_pack("{s:s}", "username", user));
}

/* The start of a command that needs a user's records (whois, call): checks the name and
 * the attachment and makes the pending entry. NULL when it replied with an error. */
static struct pending *pending_for_user(struct pn_client *c, int kind, const char *user,
					pn_client_reply_cb cb, void *arg, struct ruser **up)
{
	struct pending *p;

	if (!user || pn_username_valid(user)) {
		reply_err(cb, arg, -EINVAL, "bad_username", "not a valid username");
		return NULL;
	}
	if (c->sn_state != SN_UP) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "not attached to the network");
		return NULL;
	}
	*up = ruser_get(c, user, true);
	p = calloc(1, sizeof(*p));
	if (!*up || !p) {
		free(p);
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return NULL;
	}
	p->kind = kind;
	strcpy(p->username, user);
	p->cb = cb;
	p->arg = arg;
	return p;
}

/* Queues p until the lookup of its user answers (finish_whois) or times out. */
static void pending_wait_lookup(struct pn_client *c, struct pending *p, struct ruser *u)
{
	p->deadline = now_ms(c) + CL_LOOKUP_TIMEOUT_MS + 1000;
	p->next = c->pending;
	c->pending = p;
	lookup_start(c, u);
}

static void cmd_whois(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	struct ruser *u;
	struct pending *p = pending_for_user(c, P_WHOIS, arg_str(args, "username"), cb, arg, &u);

	if (!p)
		return;
	u->fetched_at = 0; /* whois always asks */
	pending_wait_lookup(c, p, u);
}

static int outmsg_add(struct pn_client *c, const struct pn_msg_row *row);

/* Our other devices get a copy of m, when we know we have any (the lookup of our own name
 * at attach, refreshed every 5 minutes, tells; or the devices it last named, kept for the
 * mailbox): a device that does not acknowledge it in time takes it from our own mailbox.
 * The copy is not kept across a restart. */
static void carbon_add(struct pn_client *c, const struct outmsg *m)
{
	struct ruser *me = ruser_get(c, c->username, true);
	struct outmsg *cm;

	if (!m || !me || ((!me->found || me->n == 0) && mb_certs(c, me) == 0))
		return;
	cm = calloc(1, sizeof(*cm));
	if (!cm || !(cm->text = strdup(m->text))) {
		free(cm);
		return;
	}
	memcpy(cm->id, m->id, sizeof(cm->id));
	memcpy(cm->idb, m->idb, 16);
	strcpy(cm->to, c->username);
	strcpy(cm->peer, m->to);
	cm->carbon = true;
	cm->group = m->group;
	memcpy(cm->gid, m->gid, sizeof(cm->gid));
	cm->sent_at = m->sent_at;
	cm->tries = 1;
	cm->next_try = now_ms(c) + CL_MSG_RETRY_MS;
	{
		struct outmsg **pp = &c->out;
		while (*pp)
			pp = &(*pp)->next;
		*pp = cm;
	}
	kick_user(c, c->username, cm);
}

static int outmsg_add(struct pn_client *c, const struct pn_msg_row *row)
{
	struct outmsg *m = calloc(1, sizeof(*m));

	if (!m || !(m->text = strdup(row->text))) {
		free(m);
		return -ENOMEM;
	}
	strcpy(m->id, row->id);
	pn_hex_decode(m->idb, 16, row->id);
	strcpy(m->to, row->peer);
	m->sent_at = row->sent_at;
	m->next_try = now_ms(c) + CL_MSG_RETRY_MS;
	m->tries = 1;
	{
		struct outmsg **pp = &c->out;
		while (*pp)
			pp = &(*pp)->next;
		*pp = m;
	}
	return 0;
}

static void group_cmd_send(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg);
static void group_cmd_history(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg);
static void group_cmd_read(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg);

/* A new outgoing history row with a fresh random id (also in idb): sent, or queued while
 * not attached. peer is the other user (for a group message, ourselves: group_msgs says
 * which group). The caller checked text's length. NULL when out of memory. */
static struct pn_msg_row *out_row_new(struct pn_client *c, const char *peer, const char *text,
				      uint8_t idb[16])
{
	struct pn_msg_row *row = calloc(1, sizeof(*row));

	if (!row)
		return NULL;
	c->env.random(c->env.ctx, idb, 16);
	pn_hex_encode(row->id, sizeof(row->id), idb, 16);
	snprintf(row->peer, sizeof(row->peer), "%s", peer);
	row->dir = PN_MSG_OUT;
	row->state = c->sn_state == SN_UP ? PN_MSG_SENT : PN_MSG_QUEUED;
	row->sent_at = wall_ms(c);
	row->updated_at = row->sent_at;
	snprintf(row->text, sizeof(row->text), "%s", text);
	return row;
}

static void cmd_send(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *to = arg_str(args, "to"), *text = arg_str(args, "text");

	if (args && json_object_get(args, "group")) {
		group_cmd_send(c, args, cb, arg);
		return;
	}
	struct pn_msg_row *row;
	uint8_t idb[16];
	int rc;

	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first");
		return;
	}
	if (!to || pn_username_valid(to)) {
		reply_err(cb, arg, -EINVAL, "bad_username", "not a valid username");
		return;
	}
	if (!text || !*text) {
		reply_err(cb, arg, -EINVAL, "empty_text", "nothing to send");
		return;
	}
	if (strlen(text) > CL_CHAT_TEXT_MAX) {
		/* the number in the text is CL_CHAT_TEXT_MAX (checked below) */
		reply_err(cb, arg, -EMSGSIZE, "text_too_long", "messages are at most 800 bytes");
		return;
	}
	row = out_row_new(c, to, text, idb);
	if (!row) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return;
	}
	rc = pn_cstore_msg_insert(c->store, row);
	if (rc || outmsg_add(c, row)) {
		reply_err(cb, arg, rc ? rc : -ENOMEM, "internal", "cannot store the message");
		free(row);
		return;
	}
	reply_ok(cb, arg, json_pack("{s:s,s:s}", "id", row->id, "state",
				    pn_msg_state_name(row->state)));
	free(row);
	{
		/* the new message is the last in the outbox */
		struct outmsg *m = c->out;
		while (m && m->next)
			m = m->next;
		kick_user(c, to, m);
		carbon_add(c, m);
	}
}

struct hist_ctx {
	json_t *arr;
	const char *me;
};

static int hist_cb(void *arg, const struct pn_msg_row *m)
{
	struct hist_ctx *h = arg;
	bool out = m->dir == PN_MSG_OUT;

	json_array_append_new(h->arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "id", m->id,
						"direction", out ? "out" : "in", "from",
						out ? h->me : m->peer, "to", out ? m->peer : h->me,
						"text", m->text, "sent_at", (json_int_t)m->sent_at,
						"state", pn_msg_state_name(m->state)));
	return 0;
}

static void cmd_history(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *with = arg_str(args, "with");
	json_t *lim = args ? json_object_get(args, "limit") : NULL;
	json_int_t limit = 50;
	struct hist_ctx h;

	if (args && json_object_get(args, "group")) {
		group_cmd_history(c, args, cb, arg);
		return;
	}
	if (!with || pn_username_valid(with)) {
		reply_err(cb, arg, -EINVAL, "bad_username", "not a valid username");
		return;
	}
	if (lim) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > 1000) {
			reply_err(cb, arg, -EINVAL, "bad_request", "limit must be 1..1000");
			return;
		}
		limit = json_integer_value(lim);
	}
	h.arr = json_array();
	h.me = c->username;
	pn_cstore_msg_list(c->store, with, (unsigned)limit, hist_cb, &h);
	reply_ok(cb, arg, json_pack("{s:o}", "messages", h.arr));
}

/* ---- devices of the account (login server) ------------------------------------------- */

static void devices_on_result(struct pn_client *c, const uint8_t *b, size_t len)
{
	struct pn_rd r;
	uint32_t req;
	uint8_t st, n;
	json_t *arr;
	pn_client_reply_cb cb = c->op_cb;
	void *arg = c->op_arg;

	pn_rd_init(&r, b, len);
	pn_rd_u32(&r, &req);
	pn_rd_u8(&r, &st);
	pn_rd_u8(&r, &n);
	if (r.err || c->op != OP_DEVICES || req != c->op_req || st != PN_ST_OK)
		return;
	arr = json_array();
	for (unsigned i = 0; arr && i < n; i++) {
		uint8_t did[16];
		char name[65], hex[33];
		uint64_t created, seen, revoked;
		pn_rd_bytes(&r, did, 16);
		pn_rd_str8(&r, name, sizeof(name));
		pn_rd_u64(&r, &created);
		pn_rd_u64(&r, &seen);
		pn_rd_u64(&r, &revoked);
		if (r.err)
			break;
		pn_hex_encode(hex, sizeof(hex), did, 16);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I,s:b,s:b}", "device_id", hex,
						     "name", name, "created_at", (json_int_t)created,
						     "last_seen", (json_int_t)seen, "revoked", revoked != 0,
						     "this_device", memcmp(did, c->device_id, 16) == 0));
	}
	if (r.err || pn_rd_end(&r)) {
		json_decref(arr);
		op_fail(c, -EBADMSG, "internal", "the login server sent a malformed device list");
		return;
	}
	op_finish(c);
	if (cb)
		reply_ok(cb, arg, json_pack("{s:o}", "devices", arr));
	else
		json_decref(arr);
}

/* devices {} lists the account's devices; devices.revoke {"device_id"} revokes one: the
 * login server will not renew or log it in again. */
static void cmd_devices(struct pn_client *c, bool revoke, json_t *args, pn_client_reply_cb cb,
			void *arg)
{
	const char *id = arg_str(args, "device_id");
	uint8_t did[16];
	struct pn_wr w;

	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first");
		return;
	}
	if (revoke && (!id || strlen(id) != 32 || pn_hex_decode(did, 16, id))) {
		reply_err(cb, arg, -EINVAL, "bad_request", "device_id must be 32 hex digits");
		return;
	}
	pn_wr_init(&w, c->op_body, sizeof(c->op_body));
	pn_wr_str8(&w, c->username);
	pn_wr_bytes(&w, c->keys.sign_pk, 32);
	if (revoke)
		pn_wr_bytes(&w, did, 16);
	c->op_body_len = w.len;
	prof_start(c, revoke ? OP_REVOKE : OP_DEVICES, cb, arg);
}

/* ---- presence commands ------------------------------------------------------------------ */

static void cmd_presence(struct pn_client *c, bool set, json_t *args, pn_client_reply_cb cb, void *arg)
{
	json_t *res, *arr;

	if (set) {
		const char *st = arg_str(args, "status"), *mood = arg_str(args, "mood");
		int v = st ? pres_parse(st) : c->pres_status;
		if (v < 0) {
			reply_err(cb, arg, -EINVAL, "bad_request",
				  "status must be online, away, dnd or invisible");
			return;
		}
		if (mood && strlen(mood) > CL_MOOD_MAX) {
			reply_err(cb, arg, -EINVAL, "bad_request", "the mood is longer than 100 bytes");
			return;
		}
		c->pres_status = (uint8_t)v;
		if (mood)
			snprintf(c->mood, sizeof(c->mood), "%s", mood);
		c->pres_seq = wall_ms(c);
		pn_cstore_kv_set(c->store, "presence", pres_name(c->pres_status),
				 strlen(pres_name(c->pres_status)));
		pn_cstore_kv_set(c->store, "mood", c->mood, strlen(c->mood));
		pres_push_all(c);
	}
	res = json_pack("{s:s,s:s}", "status", pres_name(c->pres_status), "mood", c->mood);
	arr = json_array();
	for (struct ruser *u = c->rusers; u; u = u->next)
		if (pn_cstore_contact_has(c->store, u->name))
			json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "username", u->name, "status",
							     pres_name(u->pres_status), "mood", u->mood));
	json_object_set_new(res, "contacts", arr);
	reply_ok(cb, arg, res);
}

/* ---- call commands --------------------------------------------------------------------- */

/* Reads the media options of a call/answer command; NULL (and a reply) when bad. */
static struct call_opts *call_opts_from(struct pn_client *c, json_t *args, pn_client_reply_cb cb,
					void *arg)
{
	const char *play = arg_str(args, "play"), *rec = arg_str(args, "record");
	struct call_opts *o;
	char err[200];

	(void)c;
	if ((play && (play[0] != '/' || strlen(play) >= CL_PATH_MAX)) ||
	    (rec && (rec[0] != '/' || strlen(rec) >= CL_PATH_MAX))) {
		reply_err(cb, arg, -EINVAL, "bad_path", "play and record take absolute file paths");
		return NULL;
	}
	if (pn_callmedia_check(play, rec, err, sizeof(err))) {
		reply_err(cb, arg, -EINVAL, "bad_path", err);
		return NULL;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return NULL;
	}
	if (play)
		snprintf(o->play, sizeof(o->play), "%s", play);
	if (rec)
		snprintf(o->record, sizeof(o->record), "%s", rec);
	return o;
}

static void cmd_call(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	struct ruser *u;
	struct pending *p = pending_for_user(c, P_CALL, arg_str(args, "username"), cb, arg, &u);

	if (!p)
		return;
	if (strcmp(p->username, c->username) == 0) {
		reply_err(cb, arg, -EINVAL, "bad_username", "you cannot call yourself");
		goto drop;
	}
	if (pn_calls_current(c->calls)) {
		reply_err(cb, arg, -EBUSY, "busy", "a call is already in progress");
		goto drop;
	}
	p->call = call_opts_from(c, args, cb, arg);
	if (!p->call)
		goto drop;
	if (u->found && now_ms(c) - u->fetched_at <= CL_LOOKUP_CACHE_MS) {
		call_place(c, u, p); /* fresh records: no lookup needed */
		goto drop;
	}
	pending_wait_lookup(c, p, u);
	return;
drop:
	pending_free(p);
}

/* The call a command names by "id", else the current one. */
static struct pn_call *call_arg(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *id = arg_str(args, "id");
	struct pn_call *call = id ? pn_calls_find(c->calls, id) : pn_calls_current(c->calls);

	if (!call)
		reply_err(cb, arg, -ENOENT, "no_such_call", id ? "no call with that id" : "no call in progress");
	return call;
}

static void cmd_call_action(struct pn_client *c, const char *what, json_t *args,
			    pn_client_reply_cb cb, void *arg)
{
	struct pn_call *call = call_arg(c, args, cb, arg);
	uint64_t now = now_ms(c);
	int rc;

	if (!call)
		return;
	if (strcmp(what, "answer") == 0) {
		struct call_opts *o;
		if (call->outgoing || call->state != PN_CALL_RINGING) {
			reply_err(cb, arg, -EINVAL, "bad_state", "the call is not ringing here");
			return;
		}
		o = call_opts_from(c, args, cb, arg);
		if (!o)
			return;
		free(call->user);
		call->user = o;
		rc = pn_call_answer(c->calls, call, now);
	} else if (strcmp(what, "hangup") == 0) {
		rc = pn_call_hangup(c->calls, call, now);
	} else if (strcmp(what, "hold") == 0 || strcmp(what, "resume") == 0) {
		rc = pn_call_hold(c->calls, call, now, what[0] == 'h');
	} else {
		reply_ok(cb, arg, call_json(c, call)); /* stats */
		return;
	}
	if (rc)
		reply_err(cb, arg, rc, "bad_state", "not possible in the call's current state");
	else
		reply_ok(cb, arg, call_json(c, call));
}

static int call_row_cb(void *arg, const struct pn_call_row *r)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "id", r->id, "peer", r->peer,
			      "direction", r->outgoing ? "outgoing" : "incoming", "started_at",
			      (json_int_t)r->started_at, "answered_at", (json_int_t)r->answered_at,
			      "ended_at", (json_int_t)r->ended_at, "reason", r->reason);
	if (r->mos > 0)
		json_object_set_new(j, "mos", json_real(r->mos));
	json_array_append_new(arg, j);
	return 0;
}

static void cmd_calls(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	json_t *cur = json_array(), *hist = json_array(), *lim = args ? json_object_get(args, "limit") : NULL;
	json_int_t limit = json_is_integer(lim) ? json_integer_value(lim) : 20;

	if (limit < 1 || limit > 1000)
		limit = 20;
	for (struct pn_call *call = pn_calls_first(c->calls); call; call = call->next)
		if (call->state != PN_CALL_ENDED)
			json_array_append_new(cur, call_json(c, call));
	pn_cstore_call_list(c->store, (unsigned)limit, call_row_cb, hist);
	reply_ok(cb, arg, json_pack("{s:o,s:o}", "current", cur, "history", hist));
}

/* settings.get / settings.set: each setting is "contacts" or "anyone", kept in the kv
 * table under its own name; set takes any subset. */
static bool *setting_flag(struct pn_client *c, const char *name)
{
	if (strcmp(name, "calls_from") == 0)
		return &c->calls_from_anyone;
	if (strcmp(name, "messages_from") == 0)
		return &c->msgs_from_anyone;
	return NULL;
}

static void cmd_settings(struct pn_client *c, bool set, json_t *args, pn_client_reply_cb cb, void *arg)
{
	static const char *const names[] = {"calls_from", "messages_from"};

	if (set) {
		const char *key;
		json_t *v;
		bool any = false;

		if (!json_is_object(args)) {
			reply_err(cb, arg, -EINVAL, "bad_request", "settings.set takes an object");
			return;
		}
		/* check everything before changing anything */
		json_object_foreach(args, key, v) {
			const char *val = json_string_value(v);
			if (strcmp(key, "always_relay") == 0) {
				/* true keeps our addresses from every peer (a relayed path) */
				if (!json_is_boolean(v)) {
					reply_err(cb, arg, -EINVAL, "bad_request",
						  "always_relay must be true or false");
					return;
				}
			} else if (strcmp(key, "mailbox_ttl_s") == 0) {
				/* how long our messages wait in a mailbox for an offline recipient */
				json_int_t t = json_is_integer(v) ? json_integer_value(v) : -1;
				if (t < 60 || t > PN_MB_TTL_MAX_S) {
					reply_err(cb, arg, -EINVAL, "bad_request",
						  "mailbox_ttl_s must be a whole number of seconds, 60 to 7776000");
					return;
				}
			} else if (!setting_flag(c, key)) {
				reply_err(cb, arg, -EINVAL, "bad_request",
					  "unknown setting (known: calls_from, messages_from, mailbox_ttl_s, always_relay)");
				return;
			} else if (!val || (strcmp(val, "contacts") != 0 && strcmp(val, "anyone") != 0)) {
				reply_err(cb, arg, -EINVAL, "bad_request",
					  "calls_from and messages_from are \"contacts\" or \"anyone\"");
				return;
			}
			any = true;
		}
		if (!any) {
			reply_err(cb, arg, -EINVAL, "bad_request",
				  "name a setting: calls_from, messages_from, mailbox_ttl_s or always_relay");
			return;
		}
		json_object_foreach(args, key, v) {
			char num[24];
			const char *val = json_string_value(v);
			if (strcmp(key, "always_relay") == 0) {
				if (pn_cstore_kv_set(c->store, "always_relay",
						     json_is_true(v) ? "1" : "0", 1)) {
					reply_err(cb, arg, -EIO, "internal", "settings store error");
					return;
				}
				nat_set_always_relay(c, json_is_true(v));
				continue;
			}
			if (!val) {
				snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
				val = num;
			}
			if (pn_cstore_kv_set(c->store, key, val, strlen(val))) {
				reply_err(cb, arg, -EIO, "internal", "settings store error");
				return;
			}
			if (strcmp(key, "mailbox_ttl_s") == 0)
				c->mb_ttl_s = (uint64_t)json_integer_value(v);
			else
				*setting_flag(c, key) = val[0] == 'a';
		}
	}
	{
		json_t *o = json_pack("{s:b,s:I,s:b}", "echo_bot", c->echo_bot, "mailbox_ttl_s",
				      (json_int_t)c->mb_ttl_s, "always_relay", c->always_relay);
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			json_object_set_new(o, names[i],
					    json_string(*setting_flag(c, names[i]) ? "anyone" : "contacts"));
		reply_ok(cb, arg, o);
	}
}

/* history.search {"text", "limit"?}: every word of text, as a word prefix, in any order;
 * the FTS5 query is built here, so user text can never be FTS syntax. */
static void cmd_history_search(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *text = arg_str(args, "text");
	json_t *lim = args ? json_object_get(args, "limit") : NULL;
	json_int_t limit = 50;
	char q[PN_SEARCH_QUERY_MAX + 1];
	size_t n = 0;
	bool any = false;
	struct hist_ctx h;

	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > 1000)) {
		reply_err(cb, arg, -EINVAL, "bad_request", "limit must be 1..1000");
		return;
	}
	if (lim)
		limit = json_integer_value(lim);
	for (const char *p = text ? text : ""; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		if (n + 4 > sizeof(q) - 1)
			goto too_long;
		q[n++] = '"';
		for (; *p && *p != ' ' && *p != '\t' && *p != '\n'; p++) {
			if (n + 4 > sizeof(q) - 1)
				goto too_long;
			if (*p == '"')
				q[n++] = '"'; /* FTS5 doubles quotes inside a string */
			q[n++] = *p;
		}
		q[n++] = '"';
		q[n++] = '*';
		q[n++] = ' ';
		any = true;
	}
	if (!any) {
		reply_err(cb, arg, -EINVAL, "bad_request", "text must hold at least one word");
		return;
	}
	q[n - 1] = 0;
	h.arr = json_array();
	h.me = c->username;
	if (pn_cstore_msg_search(c->store, q, (unsigned)limit, hist_cb, &h)) {
		json_decref(h.arr);
		reply_err(cb, arg, -EINVAL, "bad_request", "the search failed");
		return;
	}
	reply_ok(cb, arg, json_pack("{s:o}", "messages", h.arr));
	return;
too_long:
	reply_err(cb, arg, -EINVAL, "bad_request", "the search text is too long");
}

/* read {"with"}: every message received from `with` that is not read yet becomes read;
 * the sender's devices get read receipts, our own other devices the same news. */
struct read_ctx {
	uint8_t ids[CL_READ_PENDING][16];
	unsigned n;
};

static int read_cb(void *arg, const struct pn_msg_row *m)
{
	struct read_ctx *r = arg;

	if (m->dir == PN_MSG_IN && m->state == PN_MSG_RECEIVED && r->n < CL_READ_PENDING)
		pn_hex_decode(r->ids[r->n++], 16, m->id);
	return 0;
}

static void read_queue(struct pn_client *c, const char *user, const struct read_ctx *r)
{
	struct ruser *u = ruser_get(c, user, true);

	if (!u)
		return;
	if (strcmp(user, c->username) != 0)
		mb_read_receipts(c, u, (const uint8_t (*)[16])r->ids, r->n);
	for (unsigned k = 0; k < r->n; k++) {
		if (u->n_read == CL_READ_PENDING) {
			/* the oldest go: the newest receipts matter */
			memmove(u->read_ids[0], u->read_ids[1], 16 * (CL_READ_PENDING - 1));
			u->n_read--;
		}
		memcpy(u->read_ids[u->n_read++], r->ids[k], 16);
	}
	if (c->sn_state != SN_UP)
		return;
	if (u->found && now_ms(c) - u->fetched_at <= CL_LOOKUP_CACHE_MS)
		read_flush(c, u);
	else
		lookup_start(c, u); /* on_lookup_result flushes */
}

static void cmd_read(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *with = arg_str(args, "with");
	struct read_ctx *r;
	unsigned marked = 0;

	if (args && json_object_get(args, "group") && c->logged_in) {
		group_cmd_read(c, args, cb, arg);
		return;
	}
	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first");
		return;
	}
	if (!with || pn_username_valid(with)) {
		reply_err(cb, arg, -EINVAL, "bad_username", "not a valid username");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return;
	}
	pn_cstore_msg_list(c->store, with, 1000, read_cb, r);
	for (unsigned k = 0; k < r->n; k++) {
		char id[PN_MSG_ID_HEX + 1];
		pn_hex_encode(id, sizeof(id), r->ids[k], 16);
		if (pn_cstore_msg_set_state(c->store, id, PN_MSG_READ, wall_ms(c)) == 0)
			marked++;
	}
	read_queue(c, with, r);
	read_queue(c, c->username, r);
	free(r);
	reply_ok(cb, arg, json_pack("{s:s,s:i}", "with", with, "marked", marked));
}

/* ---- group chats ------------------------------------------------------------------------ */
/* A group (src/im/group.h) is state every member keeps: id, name, admin, version, members.
 * The admin changes it and sends the whole new state (GROUP_STATE, in chunks when it does
 * not fit one frame) to every member's devices; a member leaves with GROUP_LEAVE to all.
 * A group message is a GROUP_CHAT sent pairwise to every member's devices: one outbox
 * entry per member (the same message id), so the retries, per-device acknowledgements and
 * whatever carries one-to-one messages to offline devices carry group messages as well.
 * Updates ride the outbox too (their update id in place of a message id). */

static struct cgroup *group_find(struct pn_client *c, const uint8_t gid[PN_GROUP_ID_LEN])
{
	for (struct cgroup *g = c->groups; g; g = g->next)
		if (memcmp(g->g.id, gid, PN_GROUP_ID_LEN) == 0)
			return g;
	return NULL;
}

/* Stores g and makes it our copy. */
static int group_save(struct pn_client *c, const struct pn_group *g)
{
	struct cgroup *cg = group_find(c, g->id);
	int rc = pn_cstore_group_put(c->store, g, wall_ms(c));

	if (rc)
		return rc;
	if (!cg) {
		cg = calloc(1, sizeof(*cg));
		if (!cg)
			return -ENOMEM;
		cg->next = c->groups;
		c->groups = cg;
	}
	if (&cg->g != g)
		cg->g = *g;
	return 0;
}

static int group_load_cb(void *arg, const struct pn_group *g)
{
	struct pn_client *c = arg;
	struct cgroup *cg = calloc(1, sizeof(*cg));

	if (!cg)
		return -ENOMEM;
	cg->g = *g;
	cg->next = c->groups;
	c->groups = cg;
	return 0;
}

static void group_push_state(struct pn_client *c, const struct pn_group *g, const char *extra);
static void group_send_leave(struct pn_client *c, const struct pn_group *g);

/* "group.left.<gid>" in the key-value table: we left the group and the admin has not yet
 * answered with a state without us. The LEAVE goes again after a restart until it has:
 * else the admin's next state would list us again, and our copy would take it. */
static void group_left_key(char key[PN_KV_KEY_MAX + 1], const uint8_t gid[PN_GROUP_ID_LEN])
{
	char hex[PN_MSG_ID_HEX + 1];

	snprintf(key, PN_KV_KEY_MAX + 1, "group.left.%s",
		 pn_hex_encode(hex, sizeof(hex), gid, PN_GROUP_ID_LEN));
}

/* At start: our groups from the store. Updates in flight are not stored, so the admin
 * sends the current state of each group it runs again (members that have it acknowledge
 * it as stale): an update cut short by a restart still reaches everyone. */
static void group_load(struct pn_client *c)
{
	pn_cstore_group_list(c->store, group_load_cb, c);
	if (!c->logged_in)
		return;
	for (struct cgroup *cg = c->groups; cg; cg = cg->next) {
		char key[PN_KV_KEY_MAX + 1];
		if (strcmp(cg->g.admin, c->username) == 0 && pn_group_has(&cg->g, c->username))
			group_push_state(c, &cg->g, NULL);
		group_left_key(key, cg->g.id);
		if (!pn_group_has(&cg->g, c->username) &&
		    pn_cstore_kv_get(c->store, key, NULL, 0, NULL) == 0)
			group_send_leave(c, &cg->g);
	}
}

static void group_free_all(struct pn_client *c)
{
	while (c->groups) {
		struct cgroup *g = c->groups;
		c->groups = g->next;
		free(g);
	}
	for (unsigned i = 0; i < CL_GROUP_ASM_MAX; i++)
		free(c->gasm[i]);
}

static json_t *group_json(struct pn_client *c, const struct pn_group *g)
{
	char gid[PN_MSG_ID_HEX + 1];

	return json_pack("{s:s,s:s,s:s,s:I,s:i,s:b}", "group",
			 pn_hex_encode(gid, sizeof(gid), g->id, PN_GROUP_ID_LEN), "name", g->name,
			 "admin", g->admin, "version", (json_int_t)g->version, "members", (int)g->n,
			 "member", pn_group_has(g, c->username));
}

/* Sends an outbox entry for a group to device p: the group message, or the frames of a
 * group update one after another. */
static void group_send_entry(struct pn_client *c, struct peer *p, const struct outmsg *m)
{
	uint8_t f[PN_FRAME_MAX];
	size_t len;

	if (m->blob) {
		struct pn_rd r;
		pn_rd_init(&r, m->blob, m->blob_len);
		while (pn_rd_left(&r) > 0) {
			const uint8_t *fr;
			size_t fl;
			if (pn_rd_vec16(&r, &fr, &fl, PN_FRAME_MAX))
				break;
			peer_send_frame(c, p, fr, fl);
		}
		return;
	}
	struct pn_group_chat gc = {.sent_at = m->sent_at, .text = (const uint8_t *)m->text,
				   .text_len = strlen(m->text)};
	memcpy(gc.msg_id, m->idb, 16);
	memcpy(gc.gid, m->gid, PN_GROUP_ID_LEN);
	strcpy(gc.from, c->username);
	if (pn_group_chat_encode(&gc, f, sizeof(f), &len) == 0)
		peer_send_frame(c, p, f, len);
}

/* A new outbox entry for user `to` (our own user with carbon: our other devices), last in
 * the outbox. blob is copied. */
static struct outmsg *group_entry_new(struct pn_client *c, const char *to, bool carbon,
				      const uint8_t idb[16], const uint8_t gid[PN_GROUP_ID_LEN],
				      const char *text, const uint8_t *blob, size_t blob_len)
{
	struct outmsg *m = calloc(1, sizeof(*m)), **pp;

	if (!m)
		return NULL;
	m->text = strdup(text ? text : "");
	if (blob) {
		m->blob = malloc(blob_len);
		if (m->blob)
			memcpy(m->blob, blob, blob_len);
	}
	if (!m->text || (blob && !m->blob)) {
		outmsg_free(m);
		return NULL;
	}
	m->blob_len = blob_len;
	memcpy(m->idb, idb, 16);
	pn_hex_encode(m->id, sizeof(m->id), idb, 16);
	strcpy(m->to, to);
	strcpy(m->peer, to);
	m->carbon = carbon;
	m->group = blob == NULL;
	memcpy(m->gid, gid, PN_GROUP_ID_LEN);
	m->sent_at = wall_ms(c);
	m->tries = 1;
	m->next_try = now_ms(c) + CL_MSG_RETRY_MS;
	for (pp = &c->out; *pp; pp = &(*pp)->next)
		;
	*pp = m;
	return m;
}

/* Pushes a group entry towards user `to`. Unlike kick_user it does not wait for a fresh
 * lookup when every device we know of the user has a session up: the entry goes at once
 * and the records are refreshed alongside (paced, lookup_pump), so a group message is not
 * held behind 99 lookups; a device the refresh reveals gets it from the lookup answer. */
static void group_kick(struct pn_client *c, const struct outmsg *m)
{
	struct ruser *u = ruser_get(c, m->to, true);
	bool all_up = u && u->found && u->n > 0;

	for (unsigned i = 0; all_up && i < u->n; i++) {
		struct peer *p = peer_get(c, u->certs[i].device_id, false);
		all_up = p && p->link.state == PN_LINK_UP;
	}
	if (!all_up || c->sn_state != SN_UP) {
		kick_user(c, m->to, m);
		return;
	}
	push_user(c, u, m);
	if (now_ms(c) - u->fetched_at > CL_LOOKUP_CACHE_MS)
		lookup_start(c, u);
}

/* Queues one outbox entry per member of g (but us), per name in `extra` (a removed
 * member, who must learn it), and one for our own other devices when we have any. */
static void group_fan_out(struct pn_client *c, const struct pn_group *g, const char *extra,
			  const uint8_t idb[16], const char *text, const uint8_t *blob,
			  size_t blob_len)
{
	struct ruser *me = ruser_get(c, c->username, false);
	struct outmsg *m;

	for (unsigned i = 0; i < g->n; i++) {
		if (strcmp(g->members[i], c->username) == 0)
			continue;
		m = group_entry_new(c, g->members[i], false, idb, g->id, text, blob, blob_len);
		if (m)
			group_kick(c, m);
	}
	if (extra && strcmp(extra, c->username) != 0 && !pn_group_has(g, extra)) {
		m = group_entry_new(c, extra, false, idb, g->id, text, blob, blob_len);
		if (m)
			group_kick(c, m);
	}
	if (me && me->found && me->n > 0) {
		m = group_entry_new(c, c->username, true, idb, g->id, text, blob, blob_len);
		if (m)
			group_kick(c, m);
	}
}

/* Sends g's state (a new version) to its members, `extra` and our other devices. */
static void group_push_state(struct pn_client *c, const struct pn_group *g, const char *extra)
{
	uint8_t uid[16], *blob;
	size_t cap = 4 * (size_t)(PN_E2E_FRAME_MAX + 2), len = 0;
	unsigned first = 0;

	blob = malloc(cap);
	if (!blob)
		return;
	c->env.random(c->env.ctx, uid, sizeof(uid));
	do {
		size_t fl;
		unsigned next;
		if (len + 2 + PN_E2E_FRAME_MAX > cap) {
			uint8_t *nb = realloc(blob, cap * 2);
			if (!nb)
				goto out;
			blob = nb;
			cap *= 2;
		}
		/* chunks no larger than a relayed end-to-end frame may be */
		if (pn_group_state_encode(g, uid, first, blob + len + 2, PN_E2E_FRAME_MAX, &fl,
					  &next))
			goto out;
		blob[len] = (uint8_t)(fl >> 8);
		blob[len + 1] = (uint8_t)fl;
		len += 2 + fl;
		first = next;
	} while (first < g->n);
	group_fan_out(c, g, extra, uid, NULL, blob, len);
out:
	free(blob);
}

/* GROUP_LEAVE to every other member of g and to our other devices. */
static void group_send_leave(struct pn_client *c, const struct pn_group *g)
{
	uint8_t uid[16], f[64];
	size_t fl;

	c->env.random(c->env.ctx, uid, sizeof(uid));
	if (pn_group_leave_encode(uid, g->id, f + 2, sizeof(f) - 2, &fl) == 0) {
		f[0] = (uint8_t)(fl >> 8);
		f[1] = (uint8_t)fl;
		group_fan_out(c, g, NULL, uid, NULL, f, fl + 2);
	}
}

static void group_changed_event(struct pn_client *c, const struct pn_group *g)
{
	emit(c, "group.changed", group_json(c, g));
}

static void group_on_chat(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	struct pn_group_chat gc;
	struct pn_msg_row *row;
	struct cgroup *cg;
	char gid[PN_MSG_ID_HEX + 1];
	bool mine;
	int rc;

	/* the session authenticated the device; its certificate names the sender */
	if (pn_group_chat_decode(&gc, f, n) || strcmp(gc.from, p->username) != 0) {
		c->rx_e2e_bad++;
		return;
	}
	if (is_blocked(c, gc.from)) {
		c->blocked_dropped++;
		return;
	}
	cg = group_find(c, gc.gid);
	if (!pn_group_may_post(cg ? &cg->g : NULL, c->username, gc.from)) {
		/* Not (yet) a member as far as we know: no receipt, so a member whose
		 * invitation has not reached us yet is retried and taken later. */
		pn_dbg("%s: group message from %s refused (%s)", c->username, gc.from,
		       cg ? "not a member" : "unknown group");
		c->group_refused++;
		return;
	}
	row = calloc(1, sizeof(*row));
	if (!row)
		return;
	mine = strcmp(gc.from, c->username) == 0; /* another device of ours sent it */
	pn_hex_encode(row->id, sizeof(row->id), gc.msg_id, 16);
	strcpy(row->peer, gc.from);
	row->dir = mine ? PN_MSG_OUT : PN_MSG_IN;
	row->state = mine ? PN_MSG_SENT : PN_MSG_RECEIVED;
	row->sent_at = gc.sent_at;
	row->updated_at = wall_ms(c);
	memcpy(row->text, gc.text, gc.text_len);
	row->text[gc.text_len] = 0;
	rc = pn_cstore_msg_insert(c->store, row);
	if (rc == 0)
		rc = pn_cstore_group_msg_add(c->store, row->id, gc.gid);
	if (rc == 0 || rc == -EEXIST)
		send_receipt(c, p, gc.msg_id);
	pn_hex_encode(gid, sizeof(gid), gc.gid, PN_GROUP_ID_LEN);
	if (rc == 0)
		emit(c, mine ? "message.sent_elsewhere" : "message.received",
		     json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", row->id, "from", gc.from, "group", gid,
			       "text", row->text, "sent_at", (json_int_t)row->sent_at));
	free(row);
}

/* The assembly for chunk ck's update. Keyed by update id, not group: two devices of the
 * admin may answer one LEAVE with two updates at once, and their chunks interleave. */
static struct pn_group_asm *group_asm_for(struct pn_client *c, const struct pn_group_chunk *ck)
{
	struct pn_group_asm *a;

	for (unsigned i = 0; i < CL_GROUP_ASM_MAX; i++)
		if (c->gasm[i] && c->gasm[i]->active &&
		    memcmp(c->gasm[i]->update_id, ck->update_id, 16) == 0)
			return c->gasm[i];
	/* a free slot, else the next one in turn goes (its sender retransmits) */
	for (unsigned i = 0; i < CL_GROUP_ASM_MAX; i++)
		if (!c->gasm[i] || !c->gasm[i]->active)
			return c->gasm[i] ? c->gasm[i] : (c->gasm[i] = calloc(1, sizeof(*a)));
	a = c->gasm[c->gasm_i];
	c->gasm_i = (c->gasm_i + 1) % CL_GROUP_ASM_MAX;
	memset(a, 0, sizeof(*a));
	return a;
}

static void group_on_state(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	struct pn_group_chunk *ck = malloc(sizeof(*ck));
	struct pn_group_asm *a;
	struct cgroup *cg;
	enum pn_group_verdict v;
	int rc;

	if (!ck)
		return;
	if (pn_group_state_decode(ck, f, n)) {
		c->rx_e2e_bad++;
		goto out;
	}
	a = group_asm_for(c, ck);
	if (!a)
		goto out;
	rc = pn_group_asm_add(a, ck);
	if (rc < 0)
		c->rx_e2e_bad++;
	if (rc != 1)
		goto out;
	cg = group_find(c, a->g.id);
	v = pn_group_judge_state(cg ? &cg->g : NULL, &a->g, p->username, c->username,
				 pn_cstore_contact_has(c->store, p->username) &&
					 !is_blocked(c, p->username));
	if (v == PN_GROUP_REFUSE) {
		c->group_refused++;
		goto out;
	}
	if (v == PN_GROUP_ACCEPT) {
		char key[PN_KV_KEY_MAX + 1];
		if (group_save(c, &a->g))
			goto out; /* not stored: no receipt, it comes again */
		/* the admin's answer to our leave (or a new invitation): nothing to resend */
		group_left_key(key, a->g.id);
		pn_cstore_kv_del(c->store, key);
		group_changed_event(c, &a->g);
	}
	send_receipt(c, p, a->update_id);
out:
	free(ck);
}

static void group_on_leave(struct pn_client *c, struct peer *p, const uint8_t *f, size_t n)
{
	uint8_t uid[16], gid[PN_GROUP_ID_LEN];
	struct cgroup *cg;
	enum pn_group_verdict v;

	if (pn_group_leave_decode(uid, gid, f, n)) {
		c->rx_e2e_bad++;
		return;
	}
	cg = group_find(c, gid);
	v = pn_group_judge_leave(cg ? &cg->g : NULL, p->username);
	if (v == PN_GROUP_REFUSE) {
		c->group_refused++;
		return;
	}
	if (v == PN_GROUP_ACCEPT) {
		struct pn_group *g = malloc(sizeof(*g));
		if (!g)
			return;
		*g = cg->g;
		pn_group_remove(g, p->username);
		/* The admin makes it official with a new version, which also undoes any
		 * older snapshot that still listed the leaver. */
		if (strcmp(g->admin, c->username) == 0)
			g->version++;
		if (group_save(c, g)) {
			free(g);
			return;
		}
		group_changed_event(c, g);
		/* the leaver gets it too: its answer (the leaver stops resending its LEAVE) */
		if (strcmp(g->admin, c->username) == 0)
			group_push_state(c, g, p->username);
		free(g);
	}
	send_receipt(c, p, uid);
}

static void group_on_frame(struct pn_client *c, struct peer *p, uint8_t type, const uint8_t *f,
			   size_t n)
{
	if (type == PN_F_GROUP_CHAT)
		group_on_chat(c, p, f, n);
	else if (type == PN_F_GROUP_STATE)
		group_on_state(c, p, f, n);
	else
		group_on_leave(c, p, f, n);
}

/* A receipt from another user for a group message or update of ours: true when it was
 * one (and is handled here). */
static bool group_on_receipt(struct pn_client *c, const char *user, const uint8_t dev[16],
			     const uint8_t idb[16], enum pn_msg_state st)
{
	struct { const char *username; const uint8_t *device_id; } pv = {user, dev}, *p = &pv;
	struct outmsg *e = NULL, **pp = NULL;
	char id[PN_MSG_ID_HEX + 1];
	uint8_t gid[PN_GROUP_ID_LEN];
	enum pn_rcpt_state old, rs = st == PN_MSG_READ ? PN_RCPT_READ : PN_RCPT_DELIVERED;
	unsigned total, dl, rd;

	if (strcmp(p->username, c->username) == 0)
		return false; /* our own devices: the carbon path */
	for (struct outmsg **q = &c->out; *q; q = &(*q)->next) {
		if (!(*q)->carbon && ((*q)->group || (*q)->blob) && memcmp((*q)->idb, idb, 16) == 0 &&
		    strcmp((*q)->to, p->username) == 0) {
			e = *q;
			pp = q;
			break;
		}
	}
	if (e && e->blob) {
		outmsg_ack(c, e, pp, p->device_id);
		return true;
	}
	pn_hex_encode(id, sizeof(id), idb, 16);
	if (pn_cstore_group_msg_gid(c->store, id, gid))
		return false;
	/* only a member we sent it to may acknowledge it; a read receipt for the copy of a
	 * message another device of ours sent is not ours to count (that device counts) */
	if (pn_cstore_group_rcpt_get(c->store, id, p->username, &old)) {
		struct pn_msg_row *row = calloc(1, sizeof(*row));
		if (!row || pn_cstore_msg_get(c->store, id, row) || row->dir != PN_MSG_OUT ||
		    st != PN_MSG_READ)
			c->rx_e2e_bad++;
		free(row);
		return true;
	}
	if (rs > old && pn_cstore_group_rcpt_set(c->store, id, p->username, rs) == 0 &&
	    pn_cstore_group_rcpt_count(c->store, id, &total, &dl, &rd) == 0) {
		char gh[PN_MSG_ID_HEX + 1];
		enum pn_msg_state rst = PN_MSG_SENT;
		struct pn_msg_row *row = calloc(1, sizeof(*row));
		/* the message is delivered (read) when every member it went to has it */
		if (dl == total)
			pn_cstore_msg_set_state(c->store, id, PN_MSG_DELIVERED, wall_ms(c));
		if (rd == total)
			pn_cstore_msg_set_state(c->store, id, PN_MSG_READ, wall_ms(c));
		if (row && pn_cstore_msg_get(c->store, id, row) == 0)
			rst = row->state;
		free(row);
		emit(c, "message.state",
		     json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:s}", "id", id, "group",
			       pn_hex_encode(gh, sizeof(gh), gid, PN_GROUP_ID_LEN), "state",
			       pn_msg_state_name(rst), "delivered", (int)dl, "read", (int)rd,
			       "members", (int)total, "by", p->username));
	}
	if (e) {
		e->delivered = true;
		outmsg_ack(c, e, pp, p->device_id);
	}
	return true;
}

struct reload_ctx {
	struct pn_client *c;
	const struct pn_msg_row *m;
	uint8_t idb[16], gid[PN_GROUP_ID_LEN];
};

static int group_reload_cb(void *arg, const char *member)
{
	struct reload_ctx *r = arg;
	struct outmsg *e = group_entry_new(r->c, member, false, r->idb, r->gid, r->m->text, NULL, 0);

	if (e)
		e->sent_at = r->m->sent_at;
	return 0;
}

/* After a restart: a group message of ours not yet delivered goes again to the members
 * whose receipt is missing. False for a one-to-one message. */
static bool group_reload(struct pn_client *c, const struct pn_msg_row *m)
{
	struct reload_ctx r = {.c = c, .m = m};

	if (pn_cstore_group_msg_gid(c->store, m->id, r.gid))
		return false;
	pn_hex_decode(r.idb, 16, m->id);
	pn_cstore_group_rcpt_pending(c->store, m->id, group_reload_cb, &r);
	return true;
}

/* ---- group commands ---- */

static struct cgroup *group_arg(struct pn_client *c, json_t *args, pn_client_reply_cb cb,
				void *arg)
{
	const char *h = arg_str(args, "group");
	uint8_t gid[PN_GROUP_ID_LEN];
	struct cgroup *cg;

	if (!h || pn_hex_decode(gid, sizeof(gid), h)) {
		reply_err(cb, arg, -EINVAL, "bad_group", "group must be a group id (32 hex digits)");
		return NULL;
	}
	cg = group_find(c, gid);
	if (!cg)
		reply_err(cb, arg, -ENOENT, "no_such_group", "no such group");
	return cg;
}

/* Adds the names in args "users" (array) or "user" (string) to g. */
static int group_add_users(struct pn_client *c, struct pn_group *g, json_t *args,
			   pn_client_reply_cb cb, void *arg, bool need_one)
{
	json_t *users = json_object_get(args, "users"), *v;
	const char *one = arg_str(args, "user");
	size_t i;
	char msg[96];

	if (users && !json_is_array(users)) {
		reply_err(cb, arg, -EINVAL, "bad_request", "users must be an array of usernames");
		return -EINVAL;
	}
	if (need_one && !one && json_array_size(users) == 0) {
		reply_err(cb, arg, -EINVAL, "bad_request", "name at least one user to invite");
		return -EINVAL;
	}
	for (i = 0; i <= json_array_size(users); i++) {
		const char *u = i < json_array_size(users) ? json_string_value(v = json_array_get(users, i))
							   : one;
		int rc;
		if (i == json_array_size(users) && !one)
			break;
		if (!u || pn_username_valid(u)) {
			snprintf(msg, sizeof(msg), "not a valid username: `%.40s'", u ? u : "");
			reply_err(cb, arg, -EINVAL, "bad_username", msg);
			return -EINVAL;
		}
		rc = pn_group_add(g, u);
		if (rc == -ENOSPC) {
			reply_err(cb, arg, rc, "group_full", "a group has at most 256 members");
			return rc;
		}
	}
	(void)c;
	return 0;
}

static void cmd_group(struct pn_client *c, const char *sub, json_t *args, pn_client_reply_cb cb,
		      void *arg)
{
	struct pn_group *g = NULL;
	struct cgroup *cg;
	const char *name, *user;
	char removed[PN_USERNAME_MAX + 1] = "";

	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first");
		return;
	}
	if (strcmp(sub, "list") == 0) {
		json_t *arr = json_array();
		for (cg = c->groups; cg; cg = cg->next)
			json_array_append_new(arr, group_json(c, &cg->g));
		reply_ok(cb, arg, json_pack("{s:o}", "groups", arr));
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return;
	}
	if (strcmp(sub, "create") == 0) {
		name = arg_str(args, "name");
		if (!pn_group_name_valid(name)) {
			reply_err(cb, arg, -EINVAL, "bad_name",
				  "a group name is 1..64 bytes without control characters");
			goto out;
		}
		c->env.random(c->env.ctx, g->id, sizeof(g->id));
		strcpy(g->name, name);
		strcpy(g->admin, c->username);
		g->version = 1;
		pn_group_add(g, c->username);
		if (group_add_users(c, g, args, cb, arg, false))
			goto out;
		goto commit;
	}
	cg = group_arg(c, args, cb, arg);
	if (!cg)
		goto out;
	*g = cg->g;
	if (strcmp(sub, "members") == 0) {
		json_t *arr = json_array();
		for (unsigned i = 0; i < g->n; i++)
			json_array_append_new(arr, json_string(g->members[i]));
		json_t *r = group_json(c, g);
		json_object_set_new(r, "list", arr);
		reply_ok(cb, arg, r);
		goto out;
	}
	if (!pn_group_has(g, c->username)) {
		reply_err(cb, arg, -EPERM, "not_a_member", "you are not a member of this group");
		goto out;
	}
	if (strcmp(sub, "leave") == 0) {
		if (strcmp(g->admin, c->username) != 0) {
			char key[PN_KV_KEY_MAX + 1];
			group_send_leave(c, g);
			group_left_key(key, g->id);
			pn_cstore_kv_set(c->store, key, "1", 1);
			pn_group_remove(g, c->username);
			if (group_save(c, g)) {
				reply_err(cb, arg, -EIO, "internal", "cannot store the group");
				goto out;
			}
			group_changed_event(c, g);
			reply_ok(cb, arg, group_json(c, g));
			goto out;
		}
		/* the admin hands the role to the first other member, in a new version */
		pn_group_remove(g, c->username);
		if (g->n > 0)
			strcpy(g->admin, g->members[0]);
		g->version++;
		goto commit;
	}
	if (strcmp(g->admin, c->username) != 0) {
		reply_err(cb, arg, -EPERM, "not_admin", "only the group's admin can do that");
		goto out;
	}
	if (strcmp(sub, "invite") == 0) {
		if (group_add_users(c, g, args, cb, arg, true))
			goto out;
	} else if (strcmp(sub, "remove") == 0) {
		user = arg_str(args, "user");
		if (!user || strcmp(user, c->username) == 0 || pn_group_remove(g, user)) {
			reply_err(cb, arg, -EINVAL, "not_a_member",
				  "user is not a member (to leave yourself, use group.leave)");
			goto out;
		}
		strcpy(removed, user);
	} else if (strcmp(sub, "rename") == 0) {
		name = arg_str(args, "name");
		if (!pn_group_name_valid(name)) {
			reply_err(cb, arg, -EINVAL, "bad_name",
				  "a group name is 1..64 bytes without control characters");
			goto out;
		}
		strcpy(g->name, name);
	} else {
		reply_err(cb, arg, -ENOSYS, "unknown_command", "no such command");
		goto out;
	}
	g->version++;
commit:
	if (group_save(c, g)) {
		reply_err(cb, arg, -EIO, "internal", "cannot store the group");
		goto out;
	}
	group_push_state(c, g, removed[0] ? removed : NULL);
	group_changed_event(c, g);
	reply_ok(cb, arg, group_json(c, g));
out:
	free(g);
}

static void group_cmd_send(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	const char *text = arg_str(args, "text");
	struct pn_msg_row *row;
	struct cgroup *cg;
	uint8_t idb[16];
	unsigned n = 0;

	if (!c->logged_in) {
		reply_err(cb, arg, -ENOTCONN, "not_logged_in", "log in first");
		return;
	}
	cg = group_arg(c, args, cb, arg);
	if (!cg)
		return;
	if (!pn_group_has(&cg->g, c->username)) {
		reply_err(cb, arg, -EPERM, "not_a_member", "you are not a member of this group");
		return;
	}
	if (!text || !*text) {
		reply_err(cb, arg, -EINVAL, "empty_text", "nothing to send");
		return;
	}
	if (strlen(text) > PN_GROUP_TEXT_MAX) {
		reply_err(cb, arg, -EMSGSIZE, "text_too_long", "messages are at most 1198 bytes");
		return;
	}
	row = out_row_new(c, c->username, text, idb);
	if (!row) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		return;
	}
	if (pn_cstore_msg_insert(c->store, row) ||
	    pn_cstore_group_msg_add(c->store, row->id, cg->g.id)) {
		reply_err(cb, arg, -EIO, "internal", "cannot store the message");
		free(row);
		return;
	}
	/* who it went to, for the delivered/read counts (and a resend after a restart) */
	for (unsigned i = 0; i < cg->g.n; i++)
		if (strcmp(cg->g.members[i], c->username) != 0 &&
		    pn_cstore_group_rcpt_set(c->store, row->id, cg->g.members[i], PN_RCPT_PENDING) == 0)
			n++;
	reply_ok(cb, arg, json_pack("{s:s,s:s,s:i}", "id", row->id, "state",
				    pn_msg_state_name(row->state), "members", (int)n));
	group_fan_out(c, &cg->g, NULL, idb, text, NULL, 0);
	free(row);
}

struct ghist_ctx {
	struct pn_client *c;
	json_t *arr;
	const char *gid;
};

static int ghist_cb(void *arg, const struct pn_msg_row *m)
{
	struct ghist_ctx *h = arg;
	bool out = m->dir == PN_MSG_OUT;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "id", m->id, "direction",
			      out ? "out" : "in", "from", m->peer, "group", h->gid, "text", m->text,
			      "sent_at", (json_int_t)m->sent_at, "state", pn_msg_state_name(m->state));
	unsigned total, dl, rd;

	if (out && pn_cstore_group_rcpt_count(h->c->store, m->id, &total, &dl, &rd) == 0 && total) {
		json_object_set_new(o, "delivered", json_integer(dl));
		json_object_set_new(o, "read", json_integer(rd));
		json_object_set_new(o, "members", json_integer(total));
	}
	json_array_append_new(h->arr, o);
	return 0;
}

static void group_cmd_history(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	json_t *lim = json_object_get(args, "limit");
	json_int_t limit = 50;
	struct cgroup *cg = group_arg(c, args, cb, arg);
	struct ghist_ctx h = {.c = c};

	if (!cg)
		return;
	if (lim) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > 1000) {
			reply_err(cb, arg, -EINVAL, "bad_request", "limit must be 1..1000");
			return;
		}
		limit = json_integer_value(lim);
	}
	h.arr = json_array();
	h.gid = arg_str(args, "group");
	pn_cstore_group_msg_list(c->store, cg->g.id, (unsigned)limit, ghist_cb, &h);
	reply_ok(cb, arg, json_pack("{s:o}", "messages", h.arr));
}

struct gread_ctx {
	unsigned n;
	struct { uint8_t id[16]; char from[PN_USERNAME_MAX + 1]; } m[CL_READ_PENDING];
};

static int gread_cb(void *arg, const struct pn_msg_row *m)
{
	struct gread_ctx *r = arg;

	if (m->dir == PN_MSG_IN && m->state == PN_MSG_RECEIVED && r->n < CL_READ_PENDING) {
		pn_hex_decode(r->m[r->n].id, 16, m->id);
		strcpy(r->m[r->n++].from, m->peer);
	}
	return 0;
}

/* Marks the group's unread messages read and sends read receipts to each sender (and our
 * other devices), as `read` does for one user. The newest CL_READ_PENDING at most. */
static void group_cmd_read(struct pn_client *c, json_t *args, pn_client_reply_cb cb, void *arg)
{
	struct cgroup *cg = group_arg(c, args, cb, arg);
	struct gread_ctx *r;
	struct read_ctx *one, *all;
	unsigned marked = 0;

	if (!cg)
		return;
	r = calloc(1, sizeof(*r));
	one = calloc(1, sizeof(*one));
	all = calloc(1, sizeof(*all));
	if (!r || !one || !all) {
		reply_err(cb, arg, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	pn_cstore_group_msg_list(c->store, cg->g.id, 1000, gread_cb, r);
	for (unsigned k = 0; k < r->n; k++) {
		char id[PN_MSG_ID_HEX + 1];
		pn_hex_encode(id, sizeof(id), r->m[k].id, 16);
		if (pn_cstore_msg_set_state(c->store, id, PN_MSG_READ, wall_ms(c)) == 0)
			marked++;
		memcpy(all->ids[all->n++], r->m[k].id, 16);
	}
	/* one batch per sender */
	for (unsigned k = 0; k < r->n; k++) {
		bool first = true;
		for (unsigned j = 0; j < k && first; j++)
			first = strcmp(r->m[j].from, r->m[k].from) != 0;
		if (!first)
			continue;
		one->n = 0;
		for (unsigned j = k; j < r->n; j++)
			if (strcmp(r->m[j].from, r->m[k].from) == 0)
				memcpy(one->ids[one->n++], r->m[j].id, 16);
		read_queue(c, r->m[k].from, one);
	}
	read_queue(c, c->username, all);
	reply_ok(cb, arg, json_pack("{s:s,s:i}", "group", arg_str(args, "group"), "marked", marked));
out:
	free(r);
	free(one);
	free(all);
}

void pn_client_request(struct pn_client *c, const char *cmd, json_t *args, pn_client_reply_cb cb,
		       void *arg)
{
	if (args && !json_is_object(args)) {
		reply_err(cb, arg, -EINVAL, "bad_request", "args must be an object");
		return;
	}
	if (strcmp(cmd, "ping") == 0)
		reply_ok(cb, arg, json_pack("{s:b,s:s}", "pong", 1, "version", "0.1.0"));
	else if (strcmp(cmd, "register") == 0)
		cmd_register_login(c, false, args, cb, arg);
	else if (strcmp(cmd, "login") == 0)
		cmd_register_login(c, true, args, cb, arg);
	else if (strcmp(cmd, "logout") == 0)
		cmd_logout(c, cb, arg);
	else if (strcmp(cmd, "status") == 0)
		cmd_status(c, cb, arg);
	else if (strncmp(cmd, "contacts.", 9) == 0 &&
		 (!strcmp(cmd + 9, "add") || !strcmp(cmd + 9, "remove") || !strcmp(cmd + 9, "list") ||
		  !strcmp(cmd + 9, "requests") || !strcmp(cmd + 9, "accept") ||
		  !strcmp(cmd + 9, "decline") || !strcmp(cmd + 9, "block") || !strcmp(cmd + 9, "unblock")))
		cmd_contacts(c, cmd + 9, args, cb, arg);
	else if (strcmp(cmd, "whois") == 0)
		cmd_whois(c, args, cb, arg);
	else if (strcmp(cmd, "send") == 0)
		cmd_send(c, args, cb, arg);
	else if (strcmp(cmd, "history") == 0)
		cmd_history(c, args, cb, arg);
	else if (strcmp(cmd, "read") == 0)
		cmd_read(c, args, cb, arg);
	else if (strcmp(cmd, "history.search") == 0)
		cmd_history_search(c, args, cb, arg);
	else if (strcmp(cmd, "profile.set") == 0)
		cmd_profile_set(c, args, cb, arg);
	else if (strcmp(cmd, "search") == 0)
		cmd_search(c, args, cb, arg);
	else if (strcmp(cmd, "call") == 0)
		cmd_call(c, args, cb, arg);
	else if (strncmp(cmd, "call.", 5) == 0 &&
		 (!strcmp(cmd + 5, "answer") || !strcmp(cmd + 5, "hangup") || !strcmp(cmd + 5, "hold") ||
		  !strcmp(cmd + 5, "resume") || !strcmp(cmd + 5, "stats")))
		cmd_call_action(c, cmd + 5, args, cb, arg);
	else if (strcmp(cmd, "calls") == 0)
		cmd_calls(c, args, cb, arg);
	else if (strcmp(cmd, "devices") == 0 || strcmp(cmd, "devices.revoke") == 0)
		cmd_devices(c, cmd[7] == '.', args, cb, arg);
	else if (strcmp(cmd, "presence.get") == 0 || strcmp(cmd, "presence.set") == 0)
		cmd_presence(c, cmd[9] == 's', args, cb, arg);
	else if (strcmp(cmd, "settings.get") == 0 || strcmp(cmd, "settings.set") == 0)
		cmd_settings(c, cmd[9] == 's', args, cb, arg);
	else if (strncmp(cmd, "group.", 6) == 0)
		cmd_group(c, cmd + 6, args, cb, arg);
	else if (strcmp(cmd, "paths") == 0)
		cmd_paths(c, args, cb, arg);
	else if (strcmp(cmd, "nat.stream") == 0)
		cmd_nat_stream(c, args, cb, arg);
	else if (strcmp(cmd, "shutdown") == 0) {
		pres_going_offline(c);
		c->want_exit = true;
		reply_ok(cb, arg, NULL);
	} else
		reply_err(cb, arg, -ENOSYS, "unknown_command", "no such command");
}

void pn_client_cancel(struct pn_client *c, void *arg)
{
	for (struct pending **pp = &c->pending; *pp;) {
		if ((*pp)->arg == arg) {
			struct pending *p = *pp;
			*pp = p->next;
			pending_free(p);
		} else {
			pp = &(*pp)->next;
		}
	}
	if (c->op_arg == arg) {
		/* keep the exchange going (it may still log us in) but drop the reply */
		c->op_cb = NULL;
		c->op_arg = NULL;
	}
}

bool pn_client_wants_exit(const struct pn_client *c)
{
	return c->want_exit;
}

void pn_client_set_event_cb(struct pn_client *c, pn_client_event_cb cb, void *arg)
{
	c->ev_cb = cb;
	c->ev_arg = arg;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static bool group_reload(struct pn_client *c, const struct pn_msg_row *m);

static int pending_msg_cb(void *arg, const struct pn_msg_row *m)
{
	struct pn_client *c = arg;
	if (m->dir == PN_MSG_OUT && !group_reload(c, m) && outmsg_add(c, m) == 0 &&
	    m->state == PN_MSG_STORED) {
		/* in the mailbox already: wait for the receipt or the expiry */
		struct outmsg *o = c->out;
		uint8_t kv[9];
		char key[PN_KV_KEY_MAX + 1];
		size_t len;
		struct pn_rd r;
		uint8_t n = 1;
		while (o->next)
			o = o->next;
		o->mb_stored = true;
		o->mb_expires = mb_expiry(c, o);
		snprintf(key, sizeof(key), "mb:%s", o->id);
		if (pn_cstore_kv_get(c->store, key, kv, sizeof(kv), &len) == 0) {
			pn_rd_init(&r, kv, len);
			pn_rd_u64(&r, &o->mb_expires);
			pn_rd_u8(&r, &n);
		}
		o->mb_n = n;
	}
	return 0;
}

int pn_client_new(struct pn_client **out, const struct pn_client_config *cfg)
{
	struct pn_client *c;
	int rc;

	if (!cfg || !cfg->env || !cfg->net || !cfg->db_path)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->env = *cfg->env;
	c->net = *cfg->net;
	snprintf(c->device_name, sizeof(c->device_name), "%s",
		 cfg->device_name ? cfg->device_name : "device");
	rc = pn_cstore_open(&c->store, cfg->db_path);
	if (rc)
		goto fail;
	rc = load_identity(c);
	if (rc)
		goto fail;
	{
		struct pn_call_ops co = {
			.ctx = c, .send = call_send, .random = call_random,
			.offer_policy = call_policy, .changed = call_changed, .freed = call_freed,
		};
		char v[16];
		size_t vl;
		c->calls = pn_calls_new(&co);
		if (!c->calls) {
			rc = -ENOMEM;
			goto fail;
		}
		c->echo_bot = cfg->echo_bot;
		c->audio = cfg->audio;
		c->pres_status = PRES_ONLINE;
		if (pn_cstore_kv_get(c->store, "presence", v, sizeof(v) - 1, &vl) == 0) {
			v[vl] = 0;
			if (pres_parse(v) > 0)
				c->pres_status = (uint8_t)pres_parse(v);
		}
		if (pn_cstore_kv_get(c->store, "mood", c->mood, sizeof(c->mood) - 1, &vl) == 0)
			c->mood[vl] = 0;
		c->pres_seq = wall_ms(c);
		if (pn_cstore_kv_get(c->store, "calls_from", v, sizeof(v) - 1, &vl) == 0) {
			v[vl] = 0;
			c->calls_from_anyone = strcmp(v, "anyone") == 0;
		}
		if (pn_cstore_kv_get(c->store, "messages_from", v, sizeof(v) - 1, &vl) == 0) {
			v[vl] = 0;
			c->msgs_from_anyone = strcmp(v, "anyone") == 0;
		}
		if (pn_cstore_kv_get(c->store, "always_relay", v, sizeof(v) - 1, &vl) == 0)
			c->always_relay = vl == 1 && v[0] == '1';
	}
	c->env.random(c->env.ctx, &c->next_req, sizeof(c->next_req));
	c->mb_ttl_s = PN_MB_TTL_DEFAULT_S;
	{
		char v[24];
		size_t vl;
		if (pn_cstore_kv_get(c->store, "mailbox_ttl_s", v, sizeof(v) - 1, &vl) == 0) {
			v[vl] = 0;
			uint64_t t = strtoull(v, NULL, 10);
			if (t >= 60 && t <= PN_MB_TTL_MAX_S)
				c->mb_ttl_s = t;
		}
	}
	load_candidates(c);
	group_load(c);
	/* Messages that were not delivered before the last shutdown go out again. */
	pn_cstore_msg_pending(c->store, 1000, pending_msg_cb, c);
	if (c->logged_in) {
		uint64_t ws = wall_s(c);
		c->sn_retry_at = now_ms(c);
		c->sn_state = SN_CONNECTING;
		if (ws > c->cert.not_after) /* expired: renew first (no password needed) */
			op_start(c, OP_RENEW, c->username, NULL, NULL, NULL);
		c->renew_check_at = now_ms(c) + 1000;
	}
	*out = c;
	return 0;
fail:
	pn_client_free(c);
	return rc;
}

void pn_client_free(struct pn_client *c)
{
	if (!c)
		return;
	while (c->pending) {
		struct pending *p = c->pending;
		c->pending = p->next;
		pending_free(p);
	}
	while (c->rusers) {
		struct ruser *u = c->rusers;
		c->rusers = u->next;
		free(u);
	}
	while (c->peers) {
		struct peer *p = c->peers;
		c->peers = p->next;
		free(p->hist);
		pn_link_wipe(&p->link);
		free(p);
	}
	while (c->out) {
		struct outmsg *m = c->out;
		c->out = m->next;
		outmsg_free(m);
	}
	group_free_all(c);
	while (c->mb_rcpts) {
		struct mbrcpt *q = c->mb_rcpts;
		c->mb_rcpts = q->next;
		free(q);
	}
	free(c->mb_acks);
	pn_calls_free(c->calls); /* call_freed() frees each call's options and media */
	op_finish(c);
	pn_link_wipe(&c->sn_link);
	pn_link_wipe(&c->sb_link);
	pn_keys_wipe(&c->keys);
	pn_cstore_free(c->store);
	free(c);
}
