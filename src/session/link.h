/* A secure link: one Noise session (IK or XX) between two parties, with WireGuard-style
 * transport (explicit 64-bit counter, replay window). The same code secures client <->
 * login server, client <-> supernode and the end-to-end device <-> device sessions that
 * ride inside supernode envelopes. Sans-I/O: functions take bytes and return bytes; the
 * owner decides where they go.
 *
 * Handshake payloads: u64 timestamp_ms | u16 cert_len | cert. The initiator's timestamp
 * must grow per static key (the responder rejects a replayed first message). */
#ifndef PARLEY_SESSION_LINK_H
#define PARLEY_SESSION_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/noise.h"
#include "crypto/replay.h"
#include "wire/wire.h"

enum pn_link_state {
	PN_LINK_IDLE = 0,
	PN_LINK_WAIT_HS2, /* initiator sent HS1 */
	PN_LINK_WAIT_HS3, /* XX responder sent HS2 */
	PN_LINK_UP,
	PN_LINK_DEAD,
};

enum pn_link_event { PN_LINK_EV_NONE = 0, PN_LINK_EV_UP, PN_LINK_EV_DATA };

struct pn_link {
	enum pn_link_state state;
	bool initiator;
	bool confirmed; /* a DATA packet from the peer authenticated (or we received HS2 in IK) */
	uint8_t pattern, purpose;
	struct pn_noise_hs hs;
	uint32_t local_idx, remote_idx;
	uint8_t tx_key[32], rx_key[32];
	uint64_t tx_ctr;
	struct pn_replay replay;
	uint8_t remote_static[32];
	/* The peer's handshake payload (timestamp + certificate), kept for the owner. */
	uint64_t peer_ts;
	uint8_t peer_cert[PN_CERT_MAX];
	size_t peer_cert_len;
	/* Our last handshake packet, resent until the peer confirms. */
	uint8_t hs_pkt[PN_HS_PKT_MAX];
	size_t hs_pkt_len;
	uint64_t hs_sent_at;
	/* XX initiator: the payload for message 3, prepared at connect time. */
	uint8_t my_payload[PN_HS_PAYLOAD_MAX];
	size_t my_payload_len;
	unsigned hs_tries;
	uint64_t last_rx, last_tx, up_at;
	/* Counters for abuse accounting. */
	uint64_t rx_bad, rx_replay;
};

struct pn_link_params {
	uint8_t pattern; /* PN_PATTERN_IK / PN_PATTERN_XX */
	uint8_t purpose;
	const uint8_t *s_sk;     /* our X25519 static secret */
	const uint8_t *rs;       /* responder static (initiator with IK), else NULL */
	const uint8_t *e_sk;     /* 32 fresh random bytes */
	uint32_t local_idx;
	uint64_t timestamp_ms;   /* goes into our handshake payload */
	const uint8_t *cert;     /* our certificate (encoded), may be NULL/0 */
	size_t cert_len;
	uint64_t now;
};

/* Initiator: builds HS1 into l->hs_pkt. 0 or -EINVAL. */
int pn_link_connect(struct pn_link *l, const struct pn_link_params *p);
/* Responder: consumes a parsed HS1 and builds HS2 into l->hs_pkt. IK: the link is UP and
 * the peer's static key and certificate are available. XX: waits for HS3.
 * 0, -EBADMSG (bad handshake), -EINVAL. */
int pn_link_accept(struct pn_link *l, const struct pn_link_params *p, const struct pn_pkt_hdr *h);
/* Input for an existing link: HS2 (initiator), HS3 (XX responder) or DATA. On EV_DATA the
 * plaintext frame is written to out[cap]. On EV_UP for an XX initiator, l->hs_pkt holds HS3
 * to send. Returns 0 or -EBADMSG (dropped; counted in rx_bad/rx_replay). */
int pn_link_input(struct pn_link *l, const struct pn_pkt_hdr *h, uint64_t now, uint8_t *out,
		  size_t cap, size_t *out_len, enum pn_link_event *ev);
/* Seals frame into a DATA packet. 0, -EPROTO (link not up), -ENOSPC. */
int pn_link_seal(struct pn_link *l, const uint8_t *frame, size_t len, uint64_t now, uint8_t *out,
		 size_t cap, size_t *out_len);
/* Wipes all keys. */
void pn_link_wipe(struct pn_link *l);

#endif
