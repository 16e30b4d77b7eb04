/* Offline mailboxes: the formats a mailbox entry, its store receipt, the recipient's
 * acknowledgement and a mailbox pass travel in (docs/PROTOCOL.md "Mailboxes").
 *
 * The mailbox of user U is kept on the r supernodes closest to BLAKE2b-256("mbox:" || U).
 * An entry is one envelope for one device of U:
 *
 *   envelope  u8 version (1) | u8 kind (1 chat, 2 receipts) | 16 entry id |
 *             16 recipient device id | u64 expires (unix s) | u16 cert_len | sender cert |
 *             u16 ct_len | ciphertext
 *   ciphertext = XChaCha20-Poly1305(key, nonce = entry id || 8 zero bytes,
 *                                   ad = every envelope byte before the ciphertext)
 *   key = BLAKE2b-256(X25519(sender, recipient) || sender dh_pk || recipient dh_pk,
 *                     key "parley-mbox-v1")
 *
 * Static-static X25519 authenticates the sending device to the recipient (only the two
 * devices can make the key); the sender's certificate in the clear lets the recipient
 * check it against the network root without a lookup, even when the sender has long gone
 * offline, and lets receipts go back to that device. Supernodes see who writes to whom
 * (they must, to apply quotas), never the text.
 *
 *   receipt   32 supernode sign_pk | u16 cert_len | supernode cert (0 on open networks) |
 *             32 mailbox id | 16 entry id | u64 expires | 64 Ed25519 signature over
 *             "parley-mbox-receipt-v1" || mailbox id || entry id || expires || sign_pk
 *   ack       str8 owner | u16 cert_len | device cert | u64 ts_ms | u8 n | n x 16 entry id |
 *             64 Ed25519 signature by the device over "parley-mbox-ack-v1" || all before
 *   pass      u64 expires | 16 signer device id | 64 Ed25519 signature by that device over
 *             "parley-mbox-pass-v1" || str8 owner || str8 grantee || expires || signer id
 */
#ifndef PARLEY_WIRE_MBOX_H
#define PARLEY_WIRE_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/cert.h"
#include "crypto/keys.h"

enum pn_mb_limits {
	PN_MB_R = 3,                    /* replicas of a mailbox */
	PN_MB_TTL_DEFAULT_S = 30 * 86400,
	PN_MB_TTL_MAX_S = 90 * 86400,   /* supernodes refuse longer */
	PN_MB_HDR_MAX = 1 + 1 + 16 + 16 + 8 + 2 + PN_CERT_MAX + 2,
	PN_MB_ENV_MAX = 1180,           /* an envelope, so that a STORE frame fits a packet */
	PN_MB_RECEIPT_MAX = 32 + 2 + PN_CERT_MAX + 32 + 16 + 8 + 64,
	PN_MB_ACK_IDS = 32,
	PN_MB_ACK_MAX = 1 + 32 + 2 + PN_CERT_MAX + 8 + 1 + PN_MB_ACK_IDS * 16 + 64,
	PN_MB_PASS_LEN = 8 + 16 + 64,
	PN_MB_RECEIPT_IDS = 48,         /* message ids per receipts envelope */
};

enum pn_mb_kind { PN_MB_CHAT = 1, PN_MB_RECEIPTS = 2 };

/* Mailbox frames (0x50..0x5f). Client <-> its supernode: */
enum pn_mb_frame {
	PN_F_MB_DEPOSIT = 0x50, /* u32 req | str8 owner | u8 has_pass | [pass] | u16 len | envelope */
	PN_F_MB_FETCH = 0x51,   /* u32 req */
	PN_F_MB_ACK = 0x52,     /* u32 req | ack */
	PN_F_MB_RECEIPT = 0x53, /* u32 req | u8 status | [u16 len | receipt when status is OK] */
	PN_F_MB_ITEMS = 0x54,   /* u32 req | u8 flags (1 = more) | u8 n | n x (u16 len | envelope) */
	PN_F_MB_DONE = 0x55,    /* u32 req | u8 status | u8 flags (1 = more) | u8 replicas answered */
	/* supernode <-> supernode (answers come back on the asker's session) */
	PN_F_MB_STORE = 0x56,   /* u32 req | str8 owner | u8 has_pass | [pass] | u16 len | envelope */
	PN_F_MB_STORED = 0x57,  /* u32 req | u8 status | [u16 len | receipt when status is OK] */
	PN_F_MB_GET = 0x58,     /* u32 req | str8 owner | u16 cert_len | device cert | u16 max */
	PN_F_MB_DEL = 0x59,     /* u32 req | ack   (answered by MB_DONE with the count deleted) */
	/* re-replication: a device certificate of the owner, so the new replica can check
	 * the passes of the entries that follow (no answer) */
	PN_F_MB_OWNER = 0x5a,   /* u32 req | str8 owner | u16 cert_len | device cert */
	/* end-to-end, device -> device: a mailbox pass for the receiver (frame type 0x46) */
	PN_F_MBOX_PASS = 0x46,  /* pass (owner = the sending user, grantee = the receiving) */
};

/* A parsed envelope; pointers borrow the buffer it was decoded from. */
struct pn_mb_env {
	uint8_t kind;
	uint8_t entry_id[16];
	uint8_t to_dev[16];
	uint64_t expires;
	struct pn_cert sender;
	const uint8_t *cert;
	size_t cert_len;
	const uint8_t *ct;
	size_t ct_len;
	size_t ad_len; /* bytes before the ciphertext */
};

/* BLAKE2b-256("mbox:" || owner). */
void pn_mb_key(uint8_t out[32], const char *owner);

/* Seals inner (a CHAT frame or a receipts list) into an envelope for device to_dev with
 * X25519 key to_dh_pk. Returns its length, -ENOSPC, -EINVAL. */
int pn_mb_env_seal(uint8_t *out, size_t cap, uint8_t kind, const uint8_t entry_id[16],
		   const uint8_t to_dev[16], const uint8_t to_dh_pk[32], uint64_t expires,
		   const uint8_t *cert, size_t cert_len, const struct pn_keys *me,
		   const uint8_t *inner, size_t inner_len);
/* Structure only (the certificate's signature is not checked): 0 or -EBADMSG. */
int pn_mb_env_decode(struct pn_mb_env *e, const uint8_t *buf, size_t len);
/* Opens an envelope addressed to us. 0 and the plaintext in out[*out_len], -EBADMSG (not
 * for us, or forged: the tag did not verify), -ENOSPC. */
int pn_mb_env_open(const struct pn_mb_env *e, const uint8_t *buf, const struct pn_keys *me,
		   uint8_t *out, size_t cap, size_t *out_len);

/* A supernode's signed store receipt. Returns length or -ENOSPC. */
int pn_mb_receipt_sign(uint8_t *out, size_t cap, const struct pn_keys *sn, const uint8_t *cert,
		       size_t cert_len, const uint8_t mbox_id[32], const uint8_t entry_id[16],
		       uint64_t expires);
/* Checks a receipt for (mbox_id, entry_id): the signature, and the signer's certificate
 * from root_pk (valid at now_s, supernode flag, same key) unless the network is open and
 * the receipt carries none. 0 and the signer's key in signer[32], or -EBADMSG / -EPERM /
 * -EKEYEXPIRED. */
int pn_mb_receipt_verify(const uint8_t *buf, size_t len, const uint8_t root_pk[32],
			 bool open_policy, uint64_t now_s, const uint8_t mbox_id[32],
			 const uint8_t entry_id[16], uint64_t *expires, uint8_t signer[32]);

struct pn_mb_ack {
	char owner[PN_CERT_NAME_MAX + 1];
	struct pn_cert cert;
	const uint8_t *cert_raw;
	size_t cert_len;
	uint64_t ts_ms;
	uint8_t n;
	uint8_t ids[PN_MB_ACK_IDS][16];
};
/* Returns length or -ENOSPC / -EINVAL (n above PN_MB_ACK_IDS). */
int pn_mb_ack_sign(uint8_t *out, size_t cap, const char *owner, const uint8_t *cert,
		   size_t cert_len, const struct pn_keys *dev, uint64_t ts_ms,
		   const uint8_t (*ids)[16], unsigned n);
/* Decodes and checks: the device signature, the certificate from root_pk (valid at now_s,
 * device flag) and that it names the owner. 0, -EBADMSG, -EPERM, -EKEYEXPIRED. */
int pn_mb_ack_verify(struct pn_mb_ack *a, const uint8_t *buf, size_t len,
		     const uint8_t root_pk[32], uint64_t now_s);

/* A pass: owner lets grantee use the contact quota of owner's mailbox until expires. */
void pn_mb_pass_sign(uint8_t out[PN_MB_PASS_LEN], const char *owner, const char *grantee,
		     uint64_t expires, const struct pn_keys *dev, const uint8_t dev_id[16]);
/* 0 when the pass was signed by the device with sign_pk for (owner, grantee) and has not
 * expired at now_s; -EBADMSG or -EKEYEXPIRED. */
int pn_mb_pass_verify(const uint8_t pass[PN_MB_PASS_LEN], const char *owner, const char *grantee,
		      const uint8_t sign_pk[32], uint64_t now_s);
/* The signer device id of a pass. */
void pn_mb_pass_signer(const uint8_t pass[PN_MB_PASS_LEN], uint8_t dev_id[16]);

/* Checks a certificate's root signature and flags, ignoring its validity window: mailbox
 * entries outlive the short-lived certificate of the device that sealed them. */
int pn_mb_cert_was_valid(const struct pn_cert *c, const uint8_t root_pk[32], uint8_t flags);

#endif
