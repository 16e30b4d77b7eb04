/* Certificates signed by the network root (Ed25519). One format for devices, supernodes
 * and the login server's transport key. Layout (docs/PROTOCOL.md, "Certificate"):
 *
 *   u8  version (1)
 *   u8  flags (PN_CERT_DEVICE | PN_CERT_SUPERNODE | PN_CERT_LOGIN)
 *   str8 name (username for devices, operator label otherwise; 1..64 bytes)
 *   16  device id (BLAKE2b of sign_pk, checked on decode)
 *   32  Ed25519 public key
 *   32  X25519 public key
 *   u64 not_before (unix s)
 *   u64 not_after  (unix s)
 *   64  Ed25519 signature by the root over "parley-cert-v1" || all bytes above
 */
#ifndef PARLEY_CRYPTO_CERT_H
#define PARLEY_CRYPTO_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"

enum pn_cert_flags {
	PN_CERT_DEVICE = 1,
	PN_CERT_SUPERNODE = 2,
	PN_CERT_LOGIN = 4,
};

enum pn_cert_limits {
	PN_CERT_NAME_MAX = 64,
	PN_CERT_MAX = 1 + 1 + 1 + PN_CERT_NAME_MAX + 16 + 32 + 32 + 8 + 8 + 64,
};

struct pn_cert {
	uint8_t version;
	uint8_t flags;
	char name[PN_CERT_NAME_MAX + 1];
	uint8_t device_id[PN_DEVICE_ID];
	uint8_t sign_pk[PN_SIGN_PK];
	uint8_t dh_pk[PN_DH_PK];
	uint64_t not_before;
	uint64_t not_after;
	uint8_t sig[PN_SIG];
};

/* Fills device_id from sign_pk and signs with the root secret key. Returns 0 or -EINVAL
 * (empty/too long name, not_after <= not_before). */
int pn_cert_sign(struct pn_cert *c, const uint8_t root_sk[PN_SIGN_SK]);
/* Encodes into out[cap]; returns bytes written or -ENOSPC. */
int pn_cert_encode(const struct pn_cert *c, uint8_t *out, size_t cap);
/* Decodes exactly len bytes (trailing bytes are an error); checks structure and that
 * device_id matches sign_pk, not the signature. Returns 0 or -EBADMSG. */
int pn_cert_decode(struct pn_cert *c, const uint8_t *buf, size_t len);
/* Full check: signature by root_pk, now within [not_before, not_after], required flag
 * bits present. Returns 0, -EBADMSG (bad signature), -EKEYEXPIRED (outside validity),
 * -EPERM (wrong flags). */
int pn_cert_verify(const struct pn_cert *c, const uint8_t root_pk[PN_SIGN_PK], uint64_t now_s,
		   uint8_t required_flags);

/* Revocation notice: the root's word that a device is revoked from a given time on. It
 * travels between devices (end to end) so that peers refuse the device at once rather
 * than when its certificate runs out. Layout (docs/PROTOCOL.md §3.8):
 *
 *   u8  version (1)
 *   16  device id
 *   str8 name (the account's username)
 *   u64 revoked_at (unix s)
 *   64  Ed25519 signature by the root over "parley-revoke-v1" || all bytes above
 */
enum { PN_REVOKE_MAX = 1 + 16 + 1 + PN_CERT_NAME_MAX + 8 + 64 };

struct pn_revocation {
	uint8_t device_id[PN_DEVICE_ID];
	char name[PN_CERT_NAME_MAX + 1];
	uint64_t revoked_at;
	uint8_t sig[PN_SIG];
};

/* Signs r (fields set) with the root secret key: 0 or -EINVAL (bad name). */
int pn_revocation_sign(struct pn_revocation *r, const uint8_t root_sk[PN_SIGN_SK]);
/* Encodes into out[cap]: bytes written or -ENOSPC / -EINVAL. */
int pn_revocation_encode(const struct pn_revocation *r, uint8_t *out, size_t cap);
/* Decodes exactly len bytes and checks the root's signature: 0, or -EBADMSG for a
 * malformed notice or a bad signature. */
int pn_revocation_decode_verify(struct pn_revocation *r, const uint8_t *buf, size_t len,
				const uint8_t root_pk[PN_SIGN_PK]);

#endif
