#include "wire/wire.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "base/addr.h"

int pn_username_valid(const char *s)
{
	size_t n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	if (n < 3 || n > 32 || !(s[0] >= 'a' && s[0] <= 'z'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return -EINVAL;
	}
	return 0;
}

void pn_user_key(uint8_t out[32], const char *username)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"user:", 5);
	crypto_generichash_update(&st, (const uint8_t *)username, strlen(username));
	crypto_generichash_final(&st, out, 32);
}

int pn_pkt_parse(struct pn_pkt_hdr *h, const uint8_t *buf, size_t len)
{
	struct pn_rd r;
	size_t min;

	memset(h, 0, sizeof(*h));
	if (len > PN_PKT_RX_MAX)
		return -EBADMSG;
	pn_rd_init(&r, buf, len);
	if (pn_rd_u8(&r, &h->type))
		return -EBADMSG;
	switch (h->type) {
	case PN_PKT_HS1:
		pn_rd_u8(&r, &h->pattern);
		pn_rd_u8(&r, &h->purpose);
		pn_rd_u32(&r, &h->sender_idx);
		if (h->pattern == PN_PATTERN_IK)
			min = PN_IK1_MIN;
		else if (h->pattern == PN_PATTERN_XX)
			min = PN_XX1_MIN;
		else
			return -EBADMSG;
		if (h->purpose < PN_PURPOSE_LOGIN || h->purpose > PN_PURPOSE_OVERLAY)
			return -EBADMSG;
		break;
	case PN_PKT_HS2:
		pn_rd_u32(&r, &h->sender_idx);
		pn_rd_u32(&r, &h->receiver_idx);
		min = PN_IK2_MIN;
		break;
	case PN_PKT_HS3:
		pn_rd_u32(&r, &h->receiver_idx);
		min = PN_XX3_MIN;
		break;
	case PN_PKT_DATA:
		pn_rd_u32(&r, &h->receiver_idx);
		pn_rd_u64(&r, &h->counter);
		min = PN_TAG;
		break;
	case PN_PKT_RESET:
		pn_rd_u32(&r, &h->receiver_idx);
		if (len != PN_RESET_LEN)
			return -EBADMSG;
		min = 0;
		break;
	default:
		return -EBADMSG;
	}
	if (r.err || pn_rd_left(&r) < min)
		return -EBADMSG;
	h->body = buf + r.pos;
	h->body_len = pn_rd_left(&r);
	return 0;
}

static const char rec_domain[] = "parley-record-v1";

static int record_sig_check(const uint8_t *signed_part, size_t n, const uint8_t sig[64],
			    const uint8_t pk[32])
{
	crypto_sign_state st;

	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)rec_domain, sizeof(rec_domain) - 1);
	crypto_sign_update(&st, signed_part, n);
	return crypto_sign_final_verify(&st, sig, pk) == 0 ? 0 : -EBADMSG;
}

int pn_record_sign_encode(struct pn_record *r, const uint8_t sign_sk[64], uint8_t *out, size_t cap)
{
	uint8_t cert[PN_CERT_MAX];
	struct pn_wr w;
	crypto_sign_state st;
	int cl;

	if (r->n_sn > PN_REC_MAX_SN)
		return -EINVAL;
	cl = pn_cert_encode(&r->cert, cert, sizeof(cert));
	if (cl < 0)
		return cl;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, 1);
	pn_wr_vec16(&w, cert, (size_t)cl);
	pn_wr_u64(&w, r->seq);
	pn_wr_u64(&w, r->expires);
	pn_wr_u32(&w, r->caps);
	pn_wr_u8(&w, r->n_sn);
	for (unsigned i = 0; i < r->n_sn; i++) {
		pn_addr_write(&w, &r->sn_addr[i]);
		pn_wr_bytes(&w, r->sn_key[i], 32);
	}
	if (w.err || w.len + 64 > cap)
		return -ENOSPC;
	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)rec_domain, sizeof(rec_domain) - 1);
	crypto_sign_update(&st, out, w.len);
	crypto_sign_final_create(&st, r->sig, NULL, sign_sk);
	pn_wr_bytes(&w, r->sig, 64);
	return (int)w.len;
}

int pn_record_decode_verify(struct pn_record *r, const uint8_t *buf, size_t len,
			    const uint8_t root_pk[32], uint64_t now_s)
{
	struct pn_rd rd;
	uint8_t ver;
	const uint8_t *cert;
	size_t cl, signed_len;
	int rc;

	memset(r, 0, sizeof(*r));
	pn_rd_init(&rd, buf, len);
	pn_rd_u8(&rd, &ver);
	pn_rd_vec16(&rd, &cert, &cl, PN_CERT_MAX);
	pn_rd_u64(&rd, &r->seq);
	pn_rd_u64(&rd, &r->expires);
	pn_rd_u32(&rd, &r->caps);
	pn_rd_u8(&rd, &r->n_sn);
	if (rd.err || ver != 1 || r->n_sn > PN_REC_MAX_SN)
		return -EBADMSG;
	for (unsigned i = 0; i < r->n_sn; i++) {
		pn_addr_read(&rd, &r->sn_addr[i]);
		pn_rd_bytes(&rd, r->sn_key[i], 32);
	}
	signed_len = rd.pos;
	pn_rd_bytes(&rd, r->sig, 64);
	if (pn_rd_end(&rd))
		return -EBADMSG;
	if (pn_cert_decode(&r->cert, cert, cl))
		return -EBADMSG;
	rc = pn_cert_verify(&r->cert, root_pk, now_s, PN_CERT_DEVICE);
	if (rc)
		return rc;
	if (record_sig_check(buf, signed_len, r->sig, r->cert.sign_pk))
		return -EBADMSG;
	if (r->expires < now_s)
		return -EKEYEXPIRED;
	return 0;
}
