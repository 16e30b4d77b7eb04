/* Certificates: a fixed, canonical encoding (one byte string per certificate), so the root
 * signs exactly the bytes that travel and re-encoding a decoded certificate reproduces them. */
#include "crypto/cert.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "base/buf.h"

enum {
	CERT_VERSION = 1,
	CERT_FLAGS_KNOWN = PN_CERT_DEVICE | PN_CERT_SUPERNODE | PN_CERT_LOGIN,
};

/* Domain separation: a root signature over a certificate can never be replayed as a
 * signature over some other parley object that happens to share the bytes. */
static const char cert_domain[] = "parley-cert-v1";
#define CERT_DOMAIN_LEN (sizeof(cert_domain) - 1)

static bool cert_fields_ok(const struct pn_cert *c)
{
	size_t n = strnlen(c->name, sizeof(c->name));

	return n >= 1 && n <= PN_CERT_NAME_MAX && c->not_after > c->not_before &&
	       c->flags != 0 && (c->flags & ~CERT_FLAGS_KNOWN) == 0;
}

/* Everything but the signature; returns the length or a negative errno. */
static int cert_encode_body(const struct pn_cert *c, uint8_t *out, size_t cap)
{
	struct pn_wr w;

	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, c->version);
	pn_wr_u8(&w, c->flags);
	pn_wr_str8(&w, c->name);
	pn_wr_bytes(&w, c->device_id, PN_DEVICE_ID);
	pn_wr_bytes(&w, c->sign_pk, PN_SIGN_PK);
	pn_wr_bytes(&w, c->dh_pk, PN_DH_PK);
	pn_wr_u64(&w, c->not_before);
	pn_wr_u64(&w, c->not_after);
	return w.err ? w.err : (int)w.len;
}

/* "parley-cert-v1" || body, the exact bytes the root signs. */
static int cert_signed_msg(const struct pn_cert *c, uint8_t out[CERT_DOMAIN_LEN + PN_CERT_MAX])
{
	int n;

	memcpy(out, cert_domain, CERT_DOMAIN_LEN);
	n = cert_encode_body(c, out + CERT_DOMAIN_LEN, PN_CERT_MAX - PN_SIG);
	return n < 0 ? n : (int)CERT_DOMAIN_LEN + n;
}

int pn_cert_sign(struct pn_cert *c, const uint8_t root_sk[PN_SIGN_SK])
{
	uint8_t msg[CERT_DOMAIN_LEN + PN_CERT_MAX];
	int n;

	if (!c || !root_sk)
		return -EINVAL;
	if (!cert_fields_ok(c))
		return -EINVAL;
	c->version = CERT_VERSION;
	pn_device_id(c->device_id, c->sign_pk);
	n = cert_signed_msg(c, msg);
	if (n < 0)
		return -EINVAL;
	crypto_sign_detached(c->sig, NULL, msg, (unsigned long long)n, root_sk);
	return 0;
}

int pn_cert_encode(const struct pn_cert *c, uint8_t *out, size_t cap)
{
	int n;

	if (!c || !out || !cert_fields_ok(c))
		return -EINVAL;
	n = cert_encode_body(c, out, cap);
	if (n < 0)
		return n;
	if ((size_t)n + PN_SIG > cap)
		return -ENOSPC;
	memcpy(out + n, c->sig, PN_SIG);
	return n + PN_SIG;
}

int pn_cert_decode(struct pn_cert *c, const uint8_t *buf, size_t len)
{
	struct pn_cert t;
	uint8_t id[PN_DEVICE_ID];
	struct pn_rd r;
	int err = -EBADMSG;

	if (!c)
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	pn_rd_init(&r, buf, len);
	pn_rd_u8(&r, &t.version);
	pn_rd_u8(&r, &t.flags);
	pn_rd_str8(&r, t.name, sizeof(t.name));
	pn_rd_bytes(&r, t.device_id, PN_DEVICE_ID);
	pn_rd_bytes(&r, t.sign_pk, PN_SIGN_PK);
	pn_rd_bytes(&r, t.dh_pk, PN_DH_PK);
	pn_rd_u64(&r, &t.not_before);
	pn_rd_u64(&r, &t.not_after);
	pn_rd_bytes(&r, t.sig, PN_SIG);
	/* The reader is sticky, so one check covers every read and trailing bytes. */
	if (pn_rd_end(&r))
		goto out;
	if (t.version != CERT_VERSION || !cert_fields_ok(&t))
		goto out;
	pn_device_id(id, t.sign_pk);
	if (!pn_ct_eq(id, t.device_id, PN_DEVICE_ID))
		goto out;
	*c = t;
	err = 0;
out:
	return err;
}

int pn_cert_verify(const struct pn_cert *c, const uint8_t root_pk[PN_SIGN_PK], uint64_t now_s,
		   uint8_t required_flags)
{
	uint8_t msg[CERT_DOMAIN_LEN + PN_CERT_MAX];
	uint8_t id[PN_DEVICE_ID];
	int n;

	if (!c || !root_pk)
		return -EINVAL;
	/* A hand-built struct gets the same structural checks as a decoded one. */
	if (c->version != CERT_VERSION || !cert_fields_ok(c))
		return -EBADMSG;
	pn_device_id(id, c->sign_pk);
	if (!pn_ct_eq(id, c->device_id, PN_DEVICE_ID))
		return -EBADMSG;
	n = cert_signed_msg(c, msg);
	if (n < 0)
		return -EBADMSG;
	if (crypto_sign_verify_detached(c->sig, msg, (unsigned long long)n, root_pk) != 0)
		return -EBADMSG;
	if (now_s < c->not_before || now_s > c->not_after)
		return -EKEYEXPIRED;
	if ((c->flags & required_flags) != required_flags)
		return -EPERM;
	return 0;
}

/* ---- revocation notices ------------------------------------------------------------ */

static const char revoke_domain[] = "parley-revoke-v1";
#define REVOKE_DOMAIN_LEN (sizeof(revoke_domain) - 1)

/* "parley-revoke-v1" || body: the bytes the root signs; the length or negative. */
static int revoke_signed_msg(const struct pn_revocation *r, uint8_t *out, size_t cap)
{
	struct pn_wr w;
	size_t n = strnlen(r->name, sizeof(r->name));

	if (n < 1 || n > PN_CERT_NAME_MAX)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	pn_wr_bytes(&w, revoke_domain, REVOKE_DOMAIN_LEN);
	pn_wr_u8(&w, 1);
	pn_wr_bytes(&w, r->device_id, PN_DEVICE_ID);
	pn_wr_str8(&w, r->name);
	pn_wr_u64(&w, r->revoked_at);
	return w.err ? w.err : (int)w.len;
}

int pn_revocation_sign(struct pn_revocation *r, const uint8_t root_sk[PN_SIGN_SK])
{
	uint8_t msg[REVOKE_DOMAIN_LEN + PN_REVOKE_MAX];
	int n;

	if (!r || !root_sk)
		return -EINVAL;
	n = revoke_signed_msg(r, msg, sizeof(msg));
	if (n < 0)
		return -EINVAL;
	crypto_sign_detached(r->sig, NULL, msg, (unsigned long long)n, root_sk);
	return 0;
}

int pn_revocation_encode(const struct pn_revocation *r, uint8_t *out, size_t cap)
{
	uint8_t msg[REVOKE_DOMAIN_LEN + PN_REVOKE_MAX];
	int n = revoke_signed_msg(r, msg, sizeof(msg));
	size_t body;

	if (n < 0)
		return n;
	body = (size_t)n - REVOKE_DOMAIN_LEN;
	if (body + PN_SIG > cap)
		return -ENOSPC;
	memcpy(out, msg + REVOKE_DOMAIN_LEN, body);
	memcpy(out + body, r->sig, PN_SIG);
	return (int)(body + PN_SIG);
}

int pn_revocation_decode_verify(struct pn_revocation *r, const uint8_t *buf, size_t len,
				const uint8_t root_pk[PN_SIGN_PK])
{
	uint8_t msg[REVOKE_DOMAIN_LEN + PN_REVOKE_MAX];
	struct pn_rd rd;
	uint8_t version;
	int n;

	if (!r || !buf || !root_pk)
		return -EBADMSG;
	memset(r, 0, sizeof(*r));
	pn_rd_init(&rd, buf, len);
	pn_rd_u8(&rd, &version);
	pn_rd_bytes(&rd, r->device_id, PN_DEVICE_ID);
	pn_rd_str8(&rd, r->name, sizeof(r->name));
	pn_rd_u64(&rd, &r->revoked_at);
	pn_rd_bytes(&rd, r->sig, PN_SIG);
	if (pn_rd_end(&rd) || version != 1 || r->name[0] == 0)
		return -EBADMSG;
	n = revoke_signed_msg(r, msg, sizeof(msg));
	if (n < 0 || crypto_sign_verify_detached(r->sig, msg, (unsigned long long)n, root_pk) != 0)
		return -EBADMSG;
	return 0;
}
