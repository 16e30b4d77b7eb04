/* Mailbox formats (see mbox.h and docs/PROTOCOL.md "Mailboxes"). */
#include "wire/mbox.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "base/buf.h"

void pn_mb_key(uint8_t out[32], const char *owner)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"mbox:", 5);
	crypto_generichash_update(&st, (const uint8_t *)owner, strlen(owner));
	crypto_generichash_final(&st, out, 32);
}

/* The envelope key of a sender/recipient pair; -EINVAL for a low-order public key. */
static int env_key(uint8_t key[32], const uint8_t my_sk[32], const uint8_t peer_pk[32],
		   const uint8_t sender_pk[32], const uint8_t recip_pk[32])
{
	uint8_t shared[32];
	crypto_generichash_state st;

	if (crypto_scalarmult(shared, my_sk, peer_pk))
		return -EINVAL;
	crypto_generichash_init(&st, (const uint8_t *)"parley-mbox-v1", 14, 32);
	crypto_generichash_update(&st, shared, 32);
	crypto_generichash_update(&st, sender_pk, 32);
	crypto_generichash_update(&st, recip_pk, 32);
	crypto_generichash_final(&st, key, 32);
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

static void env_nonce(uint8_t n[24], const uint8_t entry_id[16])
{
	memset(n, 0, 24);
	memcpy(n, entry_id, 16);
}

int pn_mb_env_seal(uint8_t *out, size_t cap, uint8_t kind, const uint8_t entry_id[16],
		   const uint8_t to_dev[16], const uint8_t to_dh_pk[32], uint64_t expires,
		   const uint8_t *cert, size_t cert_len, const struct pn_keys *me,
		   const uint8_t *inner, size_t inner_len)
{
	struct pn_wr w;
	uint8_t key[32], nonce[24];
	unsigned long long cl;
	size_t ad;

	if (kind != PN_MB_CHAT && kind != PN_MB_RECEIPTS)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, 1);
	pn_wr_u8(&w, kind);
	pn_wr_bytes(&w, entry_id, 16);
	pn_wr_bytes(&w, to_dev, 16);
	pn_wr_u64(&w, expires);
	pn_wr_vec16(&w, cert, cert_len);
	pn_wr_u16(&w, (uint16_t)(inner_len + crypto_aead_xchacha20poly1305_ietf_ABYTES));
	ad = w.len;
	if (w.err || inner_len > 0xffff - 16 ||
	    cap - ad < inner_len + crypto_aead_xchacha20poly1305_ietf_ABYTES)
		return -ENOSPC;
	if (env_key(key, me->dh_sk, to_dh_pk, me->dh_pk, to_dh_pk))
		return -EINVAL;
	env_nonce(nonce, entry_id);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + ad, &cl, inner, inner_len, out, ad, NULL,
						   nonce, key);
	sodium_memzero(key, sizeof(key));
	return (int)(ad + cl);
}

int pn_mb_env_decode(struct pn_mb_env *e, const uint8_t *buf, size_t len)
{
	struct pn_rd r;
	uint8_t ver;

	memset(e, 0, sizeof(*e));
	pn_rd_init(&r, buf, len);
	pn_rd_u8(&r, &ver);
	pn_rd_u8(&r, &e->kind);
	pn_rd_bytes(&r, e->entry_id, 16);
	pn_rd_bytes(&r, e->to_dev, 16);
	pn_rd_u64(&r, &e->expires);
	pn_rd_vec16(&r, &e->cert, &e->cert_len, PN_CERT_MAX);
	e->ad_len = r.pos + 2;
	pn_rd_vec16(&r, &e->ct, &e->ct_len, PN_MB_ENV_MAX);
	if (pn_rd_end(&r) || ver != 1 || (e->kind != PN_MB_CHAT && e->kind != PN_MB_RECEIPTS) ||
	    e->ct_len < crypto_aead_xchacha20poly1305_ietf_ABYTES || len > PN_MB_ENV_MAX)
		return -EBADMSG;
	if (pn_cert_decode(&e->sender, e->cert, e->cert_len))
		return -EBADMSG;
	return 0;
}

int pn_mb_env_open(const struct pn_mb_env *e, const uint8_t *buf, const struct pn_keys *me,
		   uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t key[32], nonce[24];
	unsigned long long ml;
	int rc;

	if (cap < e->ct_len - crypto_aead_xchacha20poly1305_ietf_ABYTES)
		return -ENOSPC;
	if (env_key(key, me->dh_sk, e->sender.dh_pk, e->sender.dh_pk, me->dh_pk))
		return -EBADMSG;
	env_nonce(nonce, e->entry_id);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &ml, NULL, e->ct, e->ct_len, buf,
							e->ad_len, nonce, key);
	sodium_memzero(key, sizeof(key));
	if (rc)
		return -EBADMSG;
	*out_len = (size_t)ml;
	return 0;
}

/* ---- receipts ---------------------------------------------------------------------- */

static void receipt_msg(uint8_t m[22 + 32 + 16 + 8 + 32], const uint8_t mbox_id[32],
			const uint8_t entry_id[16], uint64_t expires, const uint8_t sign_pk[32])
{
	struct pn_wr w;

	pn_wr_init(&w, m, 22 + 32 + 16 + 8 + 32);
	pn_wr_bytes(&w, "parley-mbox-receipt-v1", 22);
	pn_wr_bytes(&w, mbox_id, 32);
	pn_wr_bytes(&w, entry_id, 16);
	pn_wr_u64(&w, expires);
	pn_wr_bytes(&w, sign_pk, 32);
}

int pn_mb_receipt_sign(uint8_t *out, size_t cap, const struct pn_keys *sn, const uint8_t *cert,
		       size_t cert_len, const uint8_t mbox_id[32], const uint8_t entry_id[16],
		       uint64_t expires)
{
	uint8_t m[22 + 32 + 16 + 8 + 32], sig[64];
	struct pn_wr w;

	receipt_msg(m, mbox_id, entry_id, expires, sn->sign_pk);
	crypto_sign_detached(sig, NULL, m, sizeof(m), sn->sign_sk);
	pn_wr_init(&w, out, cap);
	pn_wr_bytes(&w, sn->sign_pk, 32);
	pn_wr_vec16(&w, cert, cert_len);
	pn_wr_bytes(&w, mbox_id, 32);
	pn_wr_bytes(&w, entry_id, 16);
	pn_wr_u64(&w, expires);
	pn_wr_bytes(&w, sig, 64);
	return w.err ? -ENOSPC : (int)w.len;
}

int pn_mb_receipt_verify(const uint8_t *buf, size_t len, const uint8_t root_pk[32],
			 bool open_policy, uint64_t now_s, const uint8_t mbox_id[32],
			 const uint8_t entry_id[16], uint64_t *expires, uint8_t signer[32])
{
	struct pn_rd r;
	uint8_t pk[32], mid[32], eid[16], sig[64], m[22 + 32 + 16 + 8 + 32];
	const uint8_t *cert;
	size_t cl;
	uint64_t exp;
	int rc;

	pn_rd_init(&r, buf, len);
	pn_rd_bytes(&r, pk, 32);
	pn_rd_vec16(&r, &cert, &cl, PN_CERT_MAX);
	pn_rd_bytes(&r, mid, 32);
	pn_rd_bytes(&r, eid, 16);
	pn_rd_u64(&r, &exp);
	pn_rd_bytes(&r, sig, 64);
	if (pn_rd_end(&r) || memcmp(mid, mbox_id, 32) != 0 || memcmp(eid, entry_id, 16) != 0)
		return -EBADMSG;
	if (cl) {
		struct pn_cert c;
		if (pn_cert_decode(&c, cert, cl))
			return -EBADMSG;
		rc = pn_cert_verify(&c, root_pk, now_s, PN_CERT_SUPERNODE);
		if (rc)
			return rc;
		if (!pn_ct_eq(c.sign_pk, pk, 32))
			return -EBADMSG;
	} else if (!open_policy) {
		return -EPERM;
	}
	receipt_msg(m, mid, eid, exp, pk);
	if (crypto_sign_verify_detached(sig, m, sizeof(m), pk))
		return -EBADMSG;
	if (expires)
		*expires = exp;
	memcpy(signer, pk, 32);
	return 0;
}

/* ---- acknowledgements -------------------------------------------------------------- */

int pn_mb_ack_sign(uint8_t *out, size_t cap, const char *owner, const uint8_t *cert,
		   size_t cert_len, const struct pn_keys *dev, uint64_t ts_ms,
		   const uint8_t (*ids)[16], unsigned n)
{
	struct pn_wr w;
	crypto_sign_state st;
	uint8_t sig[64];

	if (n > PN_MB_ACK_IDS)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	pn_wr_str8(&w, owner);
	pn_wr_vec16(&w, cert, cert_len);
	pn_wr_u64(&w, ts_ms);
	pn_wr_u8(&w, (uint8_t)n);
	for (unsigned i = 0; i < n; i++)
		pn_wr_bytes(&w, ids[i], 16);
	if (w.err || cap - w.len < 64)
		return -ENOSPC;
	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)"parley-mbox-ack-v1", 18);
	crypto_sign_update(&st, out, w.len);
	crypto_sign_final_create(&st, sig, NULL, dev->sign_sk);
	pn_wr_bytes(&w, sig, 64);
	return w.err ? -ENOSPC : (int)w.len;
}

int pn_mb_ack_verify(struct pn_mb_ack *a, const uint8_t *buf, size_t len,
		     const uint8_t root_pk[32], uint64_t now_s)
{
	struct pn_rd r;
	crypto_sign_state st;
	size_t signed_len;
	int rc;

	memset(a, 0, sizeof(*a));
	pn_rd_init(&r, buf, len);
	pn_rd_str8(&r, a->owner, sizeof(a->owner));
	pn_rd_vec16(&r, &a->cert_raw, &a->cert_len, PN_CERT_MAX);
	pn_rd_u64(&r, &a->ts_ms);
	pn_rd_u8(&r, &a->n);
	if (r.err || a->n > PN_MB_ACK_IDS)
		return -EBADMSG;
	for (unsigned i = 0; i < a->n; i++)
		pn_rd_bytes(&r, a->ids[i], 16);
	signed_len = r.pos;
	if (r.err || pn_rd_left(&r) != 64)
		return -EBADMSG;
	if (pn_cert_decode(&a->cert, a->cert_raw, a->cert_len))
		return -EBADMSG;
	rc = pn_cert_verify(&a->cert, root_pk, now_s, PN_CERT_DEVICE);
	if (rc)
		return rc;
	if (strcmp(a->cert.name, a->owner) != 0)
		return -EPERM;
	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)"parley-mbox-ack-v1", 18);
	crypto_sign_update(&st, buf, signed_len);
	if (crypto_sign_final_verify(&st, buf + signed_len, a->cert.sign_pk))
		return -EBADMSG;
	return 0;
}

/* ---- passes ------------------------------------------------------------------------ */

static size_t pass_msg(uint8_t *m, size_t cap, const char *owner, const char *grantee,
		       uint64_t expires, const uint8_t dev_id[16])
{
	struct pn_wr w;

	pn_wr_init(&w, m, cap);
	pn_wr_bytes(&w, "parley-mbox-pass-v1", 19);
	pn_wr_str8(&w, owner);
	pn_wr_str8(&w, grantee);
	pn_wr_u64(&w, expires);
	pn_wr_bytes(&w, dev_id, 16);
	return w.err ? 0 : w.len;
}

void pn_mb_pass_sign(uint8_t out[PN_MB_PASS_LEN], const char *owner, const char *grantee,
		     uint64_t expires, const struct pn_keys *dev, const uint8_t dev_id[16])
{
	uint8_t m[19 + 2 * 256 + 8 + 16];
	size_t ml = pass_msg(m, sizeof(m), owner, grantee, expires, dev_id);
	struct pn_wr w;

	pn_wr_init(&w, out, PN_MB_PASS_LEN);
	pn_wr_u64(&w, expires);
	pn_wr_bytes(&w, dev_id, 16);
	crypto_sign_detached(out + w.len, NULL, m, ml, dev->sign_sk);
}

int pn_mb_pass_verify(const uint8_t pass[PN_MB_PASS_LEN], const char *owner, const char *grantee,
		      const uint8_t sign_pk[32], uint64_t now_s)
{
	uint8_t m[19 + 2 * 256 + 8 + 16], dev[16];
	uint64_t exp;
	struct pn_rd r;
	size_t ml;

	pn_rd_init(&r, pass, PN_MB_PASS_LEN);
	pn_rd_u64(&r, &exp);
	pn_rd_bytes(&r, dev, 16);
	ml = pass_msg(m, sizeof(m), owner, grantee, exp, dev);
	if (r.err || !ml || crypto_sign_verify_detached(pass + 24, m, ml, sign_pk))
		return -EBADMSG;
	return now_s > exp ? -EKEYEXPIRED : 0;
}

void pn_mb_pass_signer(const uint8_t pass[PN_MB_PASS_LEN], uint8_t dev_id[16])
{
	memcpy(dev_id, pass + 8, 16);
}

int pn_mb_cert_was_valid(const struct pn_cert *c, const uint8_t root_pk[32], uint8_t flags)
{
	/* the signature is the same at any time inside the window */
	return pn_cert_verify(c, root_pk, c->not_before, flags);
}
