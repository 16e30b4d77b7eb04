/* Every parley wire format, defined once (docs/PROTOCOL.md mirrors this file).
 *
 * Layer 1 — packets. Every UDP datagram, and every end-to-end envelope a supernode
 * forwards, is one packet whose first byte is its type:
 *
 *   HS1   u8 type=1 | u8 pattern (1=IK, 2=XX) | u8 purpose | u32 sender_idx | noise msg 1
 *   HS2   u8 type=2 | u32 sender_idx | u32 receiver_idx | noise msg 2
 *   HS3   u8 type=3 | u32 receiver_idx | noise msg 3                       (XX only)
 *   DATA  u8 type=4 | u32 receiver_idx | u64 counter | AEAD(frame) (+16 tag)
 *   RESET u8 type=5 | u32 receiver_idx                                 (end-to-end only)
 *
 * The DATA header (13 bytes) is the AEAD's associated data. Sizes are checked per type
 * before any cryptography runs.
 *
 * Layer 2 — frames, the plaintext inside DATA: u8 frame type | body. Families:
 * login (0x10..), supernode attachment (0x20..), end-to-end (0x40..). */
#ifndef PARLEY_WIRE_H
#define PARLEY_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "crypto/cert.h"
#include "parley/env.h"

enum pn_pkt_type {
	PN_PKT_HS1 = 1,
	PN_PKT_HS2 = 2,
	PN_PKT_HS3 = 3,
	PN_PKT_DATA = 4,
	/* End-to-end only: "I have no session with receiver index X" (the peer restarted).
	 * Unauthenticated, so it only ever triggers a new handshake, never drops data. */
	PN_PKT_RESET = 5,
	/* Voice media (src/call/media.h): its own header and keys, never parsed here. */
	PN_PKT_MEDIA = 6,
};
enum pn_pattern { PN_PATTERN_IK = 1, PN_PATTERN_XX = 2 };
/* Bound into the Noise prologue, so a handshake for one purpose is useless for another. */
enum pn_purpose {
	PN_PURPOSE_LOGIN = 1,
	PN_PURPOSE_ATTACH = 2,
	PN_PURPOSE_E2E = 3,
	PN_PURPOSE_OVERLAY = 4, /* supernode <-> supernode */
};

enum pn_wire_sizes {
	PN_HS1_HDR = 1 + 1 + 1 + 4,
	PN_HS2_HDR = 1 + 4 + 4,
	PN_HS3_HDR = 1 + 4,
	PN_DATA_HDR = 1 + 4 + 8,
	PN_RESET_LEN = 1 + 4,
	PN_TAG = 16,
	/* Noise message sizes without payload (payload adds its length + 16). */
	PN_IK1_MIN = 32 + 32 + 16 + 16, /* e, s (encrypted), payload tag */
	PN_IK2_MIN = 32 + 16,
	/* XX message 1 is just e (32 bytes), but its answer carries a certificate: the
	 * initiator pads message 1 with zero payload bytes so that no responder answers an
	 * unauthenticated (possibly spoofed) packet with a larger one (anti-amplification). */
	PN_XX1_MIN = PN_HS2_HDR + 32 + 32 + 16 + (8 + 2 + PN_CERT_MAX) + 16 - PN_HS1_HDR,
	PN_XX2_MIN = 32 + 32 + 16 + 16,
	PN_XX3_MIN = 32 + 16 + 16,
	PN_PKT_MAX = 1400,     /* largest packet we send; received ones may be up to 2048 */
	PN_PKT_RX_MAX = 2048,
	PN_FRAME_MAX = PN_PKT_MAX - PN_DATA_HDR - PN_TAG,
	/* the largest end-to-end frame: its packet must still fit a FORWARD_VIA /
	 * DELIVER_VIA frame (u8 type | 16 device | 32 supernode key | u16 len) */
	PN_E2E_FRAME_MAX = PN_FRAME_MAX - (1 + 16 + 32 + 2) - PN_DATA_HDR - PN_TAG,
	/* handshake payload: u64 timestamp_ms | u16 len | cert */
	PN_HS_PAYLOAD_MAX = 8 + 2 + PN_CERT_MAX,
	/* largest handshake packet we build: HS2 of XX (e, s, payload) */
	PN_HS_PKT_MAX = PN_HS2_HDR + 32 + 32 + 16 + PN_HS_PAYLOAD_MAX + 16,
};

/* ---- frames ---------------------------------------------------------------------- */
enum pn_frame_type {
	/* login: client -> login server */
	PN_F_REGISTER = 0x10,  /* u32 req | str8 username | str8 password */
	PN_F_LOGIN = 0x11,     /* u32 req | str8 username | str8 password | 32 sign_pk | str8 device_name */
	PN_F_RENEW = 0x12,     /* u32 req | str8 username | 32 sign_pk  (device authenticated
				  by its Noise static) */
	/* Authenticated like RENEW; answered by LOGIN_RESULT with an empty certificate. */
	PN_F_PROFILE_SET = 0x13, /* u32 req | str8 username | 32 sign_pk | u8 searchable |
				    str8 display_name | str8 city | str8 country | str8 languages */
	PN_F_SEARCH = 0x14,    /* u32 req | str8 query | u8 limit (1..PN_PROFILE_SEARCH_MAX) */
	/* Authenticated like RENEW: the account's devices, and revoking one of them. */
	PN_F_DEVICES = 0x15,   /* u32 req | str8 username | 32 sign_pk */
	PN_F_REVOKE = 0x16,    /* u32 req | str8 username | 32 sign_pk | 16 device id
				  (answered by LOGIN_RESULT with an empty certificate) */
	/* login server -> client */
	PN_F_LOGIN_RESULT = 0x18, /* u32 req | u8 status | str8 message | u16 cert_len | cert |
				     u8 n | n x (addr | 32 key) bootstrap supernodes */
	PN_F_DEVICES_RESULT = 0x1a, /* u32 req | u8 status | u8 n | n x (16 device id |
				       str8 name | u64 created_at | u64 last_seen | u64 revoked_at) */
	PN_F_SEARCH_RESULT = 0x19, /* u32 req | u8 status | u8 n | n x (str8 username |
				      str8 display_name | str8 city | str8 country |
				      str8 languages); as many as fit in one frame */

	/* client <-> supernode */
	PN_F_PING = 0x20,      /* u64 token */
	PN_F_PONG = 0x21,      /* u64 token */
	PN_F_PUBLISH = 0x22,   /* u32 req | u16 len | record */
	PN_F_LOOKUP = 0x23,    /* u32 req | str8 username */
	PN_F_RESULT = 0x24,    /* u32 req | u8 status | str8 message   (answers PUBLISH) */
	PN_F_LOOKUP_RESULT = 0x25, /* u32 req | u8 status | u8 n | n x (u16 len | record) */
	PN_F_FORWARD = 0x26,   /* 16 dst device id | u16 len | packet    (client -> supernode) */
	PN_F_DELIVER = 0x27,   /* 16 src device id | u16 len | packet    (supernode -> client) */
	PN_F_UNREACHABLE = 0x28, /* 16 dst device id | u8 reason  (supernode -> client) */
	PN_F_ATTACHED = 0x29,  /* addr (the client's address as the supernode sees it) */
	/* to a device attached to another supernode (named by its key, from the record) */
	PN_F_FORWARD_VIA = 0x2a, /* 16 dst device id | 32 dst supernode key | u16 len | packet */
	PN_F_DELIVER_VIA = 0x2b, /* 16 src device id | 32 src supernode key | u16 len | packet */
	/* host cache refresh: other supernodes this one knows (client -> asks, <- answers) */
	PN_F_GET_SUPERNODES = 0x2d, /* (empty) */
	PN_F_SUPERNODES = 0x2c,     /* u8 n | n x (32 key | addr), n <= 16 */

	/* supernode <-> supernode (purpose OVERLAY); requests go over the requester's own
	 * outbound session, answers come back on it */
	PN_F_FIND_NODE = 0x30,  /* u32 req | 32 target id */
	PN_F_NODES = 0x31,      /* u32 req | u8 n | n x (32 key | addr) */
	PN_F_STORE = 0x32,      /* u32 req | u16 len | record */
	PN_F_FIND_VALUE = 0x33, /* u32 req | str8 username  (answered by VALUE or NODES) */
	PN_F_VALUE = 0x34,      /* u32 req | u8 n | n x (u16 len | record) */
	PN_F_SN_FORWARD = 0x35, /* 16 dst device | 16 src device | u16 len | packet */
	PN_F_STORED = 0x36,     /* u32 req | u8 status */

	/* end-to-end, device <-> device inside a forwarded session */
	PN_F_CHAT = 0x40,      /* 16 msg id | u64 sent_at_ms | str8 from | str8 to | u16 len | text */
	PN_F_RECEIPT = 0x41,   /* 16 msg id | u8 kind (1 delivered, 2 read) */
	PN_F_CALL = 0x42,      /* 16 call id | u32 seq | u8 kind | body (src/call/signal.h) */
	PN_F_CALL_ACK = 0x43,  /* 16 call id | u32 seq */
	PN_F_PRESENCE = 0x44,  /* u64 seq | u8 status (0 offline, 1 online, 2 away, 3 dnd) | str8 mood */
	PN_F_CONTACT = 0x45,   /* u8 kind (1 request) | str8 note */
	/* group chats (src/im/group.h has the layouts and limits) */
	PN_F_GROUP_CHAT = 0x48,  /* 16 msg id | 16 group id | u64 sent_at_ms | str8 from | vec16 text */
	PN_F_GROUP_STATE = 0x49, /* 16 update id | 16 group id | u32 version | str8 admin |
				  * str8 name | u16 total | u16 first | u8 n | n x str8 member */
	PN_F_GROUP_LEAVE = 0x4a, /* 16 update id | 16 group id */
	PN_F_REVOKED = 0x4e,   /* vec16 revocation notice (src/crypto/cert.h) */
	/* direct paths: candidates, connectivity checks, test stream (src/nat/ice.h) */
	PN_F_NAT = 0x47,       /* u8 kind | body */
};

enum pn_status {
	PN_ST_OK = 0,
	PN_ST_BAD_REQUEST = 1,
	PN_ST_BAD_USERNAME = 2,
	PN_ST_USERNAME_TAKEN = 3,
	PN_ST_WRONG_PASSWORD = 4,
	PN_ST_RATE_LIMITED = 5,
	PN_ST_UNKNOWN_DEVICE = 6,
	PN_ST_NOT_FOUND = 7,
	PN_ST_INTERNAL = 8,
	PN_ST_WEAK_PASSWORD = 9,
	PN_ST_STALE = 10,
	PN_ST_FORBIDDEN = 11,
	PN_ST_DEVICE_TAKEN = 12, /* the device is registered to another account */
};

/* ---- profiles (login server) -------------------------------------------------------- */
/* Byte limits of the profile fields on the wire and in the account store. */
enum pn_profile_limits {
	PN_PROFILE_NAME_MAX = 64,  /* display_name: UTF-8, no control characters */
	PN_PROFILE_CITY_MAX = 64,  /* city: the same rules */
	PN_PROFILE_COUNTRY_LEN = 2, /* country: empty or two letters A-Z (ISO 3166 alpha-2) */
	PN_PROFILE_LANGS_MAX = 32, /* languages: empty or "en,de,...", two letters a-z each */
	PN_PROFILE_QUERY_MAX = 128, /* search text: UTF-8, no control characters */
	PN_PROFILE_SEARCH_MAX = 50, /* results per search */
};

/* Checks the profile fields against the rules above (the ISO lists themselves are not
 * consulted: any two letters pass). 0, or -EINVAL with *why (when why is non-NULL)
 * naming the field that broke its rule. */
int pn_profile_valid(const char *display_name, const char *city, const char *country,
		     const char *languages, const char **why);
/* Whether s is valid UTF-8 of at most max bytes without C0 controls or DEL: 0 or -EINVAL. */
int pn_text_field_valid(const char *s, size_t max);

/* ---- reachability record ----------------------------------------------------------- */
/* A device's signed directory record (docs/PROTOCOL.md "Record"): it names the device's
 * supernodes, never the device's own address or presence status.
 *
 *   u8 version (1) | u16 cert_len | cert | u64 seq | u64 expires (unix s) | u32 caps |
 *   u8 n | n x (addr | 32 supernode key) | 64 signature by the device's Ed25519 key (Ed25519ph,
 *   RFC 8032 pre-hashed: libsodium's multi-part crypto_sign_init/update/final) over
 *   "parley-record-v1" || all bytes above */
enum { PN_REC_MAX_SN = 4, PN_REC_MAX = 1 + 2 + PN_CERT_MAX + 8 + 8 + 4 + 1 + PN_REC_MAX_SN * (19 + 32) + 64 };

struct pn_record {
	struct pn_cert cert;
	uint64_t seq;
	uint64_t expires;
	uint32_t caps;
	uint8_t n_sn;
	struct pn_addr sn_addr[PN_REC_MAX_SN];
	uint8_t sn_key[PN_REC_MAX_SN][32];
	uint8_t sig[64];
};

/* Signs with the device's Ed25519 secret key and encodes. Returns length or -ENOSPC/-EINVAL. */
int pn_record_sign_encode(struct pn_record *r, const uint8_t sign_sk[64], uint8_t *out, size_t cap);
/* Decodes and checks the device signature and the certificate against root_pk at now_s
 * (and that the record is not expired). 0, -EBADMSG (malformed or bad signature),
 * -EKEYEXPIRED, -EPERM (certificate not a device certificate). */
int pn_record_decode_verify(struct pn_record *r, const uint8_t *buf, size_t len,
			    const uint8_t root_pk[32], uint64_t now_s);
/* For bytes that already passed pn_record_decode_verify under the same root (for example
 * a record store holds them byte for byte): decodes and redoes only the checks that
 * depend on now_s, skipping both signature verifications. 0, -EBADMSG (malformed),
 * -EKEYEXPIRED. Never use it on bytes from the network that were not checked before. */
int pn_record_decode_known(struct pn_record *r, const uint8_t *buf, size_t len, uint64_t now_s);

/* The directory key of a user: BLAKE2b-256("user:" || name). */
void pn_user_key(uint8_t out[32], const char *username);

/* Username rules: 3..32 bytes of [a-z0-9._-], starting with a letter. */
int pn_username_valid(const char *s);

/* The 13-byte DATA header, parsed. */
struct pn_pkt_hdr {
	uint8_t type;
	uint8_t pattern, purpose; /* HS1 */
	uint32_t sender_idx;      /* HS1, HS2 */
	uint32_t receiver_idx;    /* HS2, HS3, DATA */
	uint64_t counter;         /* DATA */
	const uint8_t *body;      /* noise message or ciphertext */
	size_t body_len;
};
/* Parses the header of a received packet and checks the size rules of its type.
 * 0 or -EBADMSG. */
int pn_pkt_parse(struct pn_pkt_hdr *h, const uint8_t *buf, size_t len);

#endif
