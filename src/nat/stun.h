/* STUN (RFC 8489) Binding, bounded codec plus the supernode's answer to it.
 *
 * Only what server-reflexive address discovery needs: build a Binding request, parse a
 * Binding success or error response, recognise a STUN message cheaply, and build and send
 * a server's answer to a Binding request. No authentication (MESSAGE-INTEGRITY and friends
 * are recognised and ignored), no TCP framing, no RFC 5780 behaviour tests (a request
 * asking for CHANGE-REQUEST or RESPONSE-PORT gets 420 Unknown Attribute, as RFC 5780
 * tells a server without that support to answer).
 *
 * Message layout (all big-endian), docs/PROTOCOL.md "STUN":
 *   u16 type (top two bits 0) | u16 length of the attributes | u32 magic cookie 0x2112A442 |
 *   12 transaction id | attributes: u16 type | u16 length | value | zero pad to 4
 * Every decoder here reads through src/base/buf.h and rejects with -EBADMSG. */
#ifndef PARLEY_NAT_STUN_H
#define PARLEY_NAT_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/env.h"

enum pn_stun_sizes {
	PN_STUN_HDR = 20,
	PN_STUN_TID = 12,
	PN_STUN_COOKIE = 0x2112A442,
	PN_STUN_FP_XOR = 0x5354554e, /* FINGERPRINT = CRC-32 ^ this ("STUN") */
	/* Largest message we build or parse. The runtime hands datagrams of up to 2048 bytes;
	 * a request padded by a standard client (RFC 5780 PADDING of 1500) is about 1524. */
	PN_STUN_MAX = 2048,
	PN_STUN_PAD_MAX = 1400,      /* largest padded request we build */
	PN_STUN_UNKNOWN_MAX = 8,     /* unknown attribute types kept per message */
	PN_STUN_REASON_MAX = 127,    /* reason phrase bytes kept (RFC: < 128 characters) */
	/* The largest answer pn_stun_answer() builds: 420 with 8 unknown attributes. */
	PN_STUN_ANSWER_MAX = PN_STUN_HDR + 4 + 4 + 20 + 4 + 2 * PN_STUN_UNKNOWN_MAX + 8,
};

/* Message types: method Binding (0x001) in the four classes. */
enum pn_stun_type {
	PN_STUN_BINDING_REQUEST = 0x0001,
	PN_STUN_BINDING_INDICATION = 0x0011,
	PN_STUN_BINDING_SUCCESS = 0x0101,
	PN_STUN_BINDING_ERROR = 0x0111,
};

/* Attribute types (RFC 8489 section 18.3, RFC 5780). Below 0x8000: comprehension-
 * required (an agent that does not know one must fail the message); from 0x8000:
 * comprehension-optional (ignored when unknown). */
enum pn_stun_attr {
	PN_STUN_A_MAPPED_ADDRESS = 0x0001,
	PN_STUN_A_CHANGE_REQUEST = 0x0003, /* RFC 5780; not supported */
	PN_STUN_A_USERNAME = 0x0006,
	PN_STUN_A_MESSAGE_INTEGRITY = 0x0008,
	PN_STUN_A_ERROR_CODE = 0x0009,
	PN_STUN_A_UNKNOWN_ATTRIBUTES = 0x000A,
	PN_STUN_A_REALM = 0x0014,
	PN_STUN_A_NONCE = 0x0015,
	PN_STUN_A_MESSAGE_INTEGRITY_SHA256 = 0x001C,
	PN_STUN_A_PASSWORD_ALGORITHM = 0x001D,
	PN_STUN_A_USERHASH = 0x001E,
	PN_STUN_A_XOR_MAPPED_ADDRESS = 0x0020,
	PN_STUN_A_PADDING = 0x0026,        /* RFC 5780 */
	PN_STUN_A_RESPONSE_PORT = 0x0027,  /* RFC 5780; not supported */
	PN_STUN_A_SOFTWARE = 0x8022,
	PN_STUN_A_ALTERNATE_SERVER = 0x8023,
	PN_STUN_A_FINGERPRINT = 0x8028,
};

/* What a parsed message says. Addresses are set only when their attribute was present
 * (family 0 otherwise). Only the first of a repeated attribute counts (RFC 8489 14). */
struct pn_stun_msg {
	uint16_t type;
	uint8_t tid[PN_STUN_TID];
	struct pn_addr xor_mapped;   /* XOR-MAPPED-ADDRESS, decoded */
	struct pn_addr mapped;       /* MAPPED-ADDRESS (RFC 3489 servers send only this) */
	uint16_t error_code;         /* 300..699 from ERROR-CODE, 0 if absent */
	char reason[PN_STUN_REASON_MAX + 1]; /* its reason phrase, printable ASCII only */
	bool fingerprint;            /* a FINGERPRINT was present (and correct) */
	/* Comprehension-required attribute types this parser does not know. */
	uint16_t unknown[PN_STUN_UNKNOWN_MAX];
	unsigned n_unknown;          /* total seen; only the first PN_STUN_UNKNOWN_MAX kept */
	/* The types an error 420 lists in UNKNOWN-ATTRIBUTES. */
	uint16_t err_unknown[PN_STUN_UNKNOWN_MAX];
	unsigned n_err_unknown;
};

/* Cheap test for "is this datagram STUN": at least 20 bytes, top two bits of the type
 * zero, the magic cookie, and an attribute length that is a multiple of 4 and matches
 * len exactly. Reads only the header. */
bool pn_stun_is_msg(const uint8_t *buf, size_t len);

struct pn_stun_req_opts {
	uint8_t tid[PN_STUN_TID]; /* the caller's random transaction id */
	bool fingerprint;         /* append FINGERPRINT */
	/* Make the request at least this many bytes (0: no padding) with a PADDING
	 * attribute of zeros; at most PN_STUN_PAD_MAX. Servers that do not know PADDING
	 * answer 420 listing it; send again without padding then. */
	size_t pad_to;
};

/* Builds a Binding request into out[cap]; *out_len set on success. Returns 0, -EINVAL
 * (pad_to above PN_STUN_PAD_MAX) or -ENOSPC (cap too small). */
int pn_stun_build_request(uint8_t *out, size_t cap, size_t *out_len,
			  const struct pn_stun_req_opts *o);

/* Parses any STUN message: header rules of pn_stun_is_msg, every attribute within
 * bounds, FINGERPRINT (when present) last and correct, known address and error
 * attributes well formed. Unknown comprehension-required attributes are reported in
 * m->unknown, not rejected (what to do about them depends on the message's role).
 * Returns 0 or -EBADMSG; *m is unspecified after an error. */
int pn_stun_parse(struct pn_stun_msg *m, const uint8_t *buf, size_t len);

/* Parses the answer to the Binding request with transaction id tid.
 * Returns 0 for a success response with a mapped address (m->xor_mapped, else
 * m->mapped) and for an error response with an ERROR-CODE (m->error_code);
 * -ENOMSG when it is well formed STUN but not a Binding response to tid (ignore it);
 * -EPROTO for a success response without an address or with unknown comprehension-
 * required attributes, or an error response without ERROR-CODE (the transaction failed);
 * -EBADMSG when malformed. */
int pn_stun_parse_response(struct pn_stun_msg *m, const uint8_t *buf, size_t len,
			   const uint8_t tid[PN_STUN_TID]);

/* The mapped address of a response parsed by pn_stun_parse_response (XOR-MAPPED-ADDRESS
 * preferred), or NULL. */
const struct pn_addr *pn_stun_mapped(const struct pn_stun_msg *m);

/* Builds a server's answer to the request req[len] received from `from`: a Binding
 * success with XOR-MAPPED-ADDRESS = from (plus FINGERPRINT when the request had one),
 * 420 with UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes, 400 for a
 * request of another method. Returns 0, -EBADMSG (malformed), -ENOMSG (not a request:
 * indications and responses get no answer) or -ENOSPC. */
int pn_stun_answer(uint8_t *out, size_t cap, size_t *out_len, const uint8_t *req, size_t len,
		   const struct pn_addr *from);

/* The supernode's STUN service: answers req[len] from `from` through env->send, but only
 * when the answer is no larger than the request (an unauthenticated, possibly spoofed
 * source must never get more bytes than it sent: no amplification). Returns 0 (answered),
 * -EMSGSIZE (the answer would be larger: dropped; the client must pad),
 * -ENOMSG (not a request), -EBADMSG (malformed). */
int pn_stun_serve(const struct pn_env *env, const struct pn_addr *from, const uint8_t *req,
		  size_t len);

#endif
