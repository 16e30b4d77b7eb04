#include "wire/wire.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) without C0
 * controls or DEL: profile text is shown to other users, so it must not be able to move
 * their terminal's cursor or smuggle in invalid sequences. */
int pn_text_field_valid(const char *str, size_t max)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n, i = 0;

	if (!s)
		return -EINVAL;
	n = strnlen(str, max + 1);
	if (n > max)
		return -EINVAL;
	while (i < n) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t len;

		if (c < 0x20 || c == 0x7f)
			return -EINVAL;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return -EINVAL;
		}
		if (i + len > n)
			return -EINVAL;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return -EINVAL;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return -EINVAL;
		i += len;
	}
	return 0;
}

static bool two_letters(const char *s, char lo, char hi)
{
	return s[0] >= lo && s[0] <= hi && s[1] >= lo && s[1] <= hi;
}

int pn_profile_valid(const char *display_name, const char *city, const char *country,
		     const char *languages, const char **why)
{
	const char *bad = NULL;
	size_t n;

	if (pn_text_field_valid(display_name, PN_PROFILE_NAME_MAX))
		bad = "display name: at most 64 bytes of UTF-8 without control characters";
	else if (pn_text_field_valid(city, PN_PROFILE_CITY_MAX))
		bad = "city: at most 64 bytes of UTF-8 without control characters";
	else if (!country || (country[0] && (strlen(country) != PN_PROFILE_COUNTRY_LEN ||
					      !two_letters(country, 'A', 'Z'))))
		bad = "country: an ISO 3166 alpha-2 code such as CH, or empty";
	if (!bad) {
		/* "", or "xx" then ",xx" any number of times, within the byte limit */
		n = languages ? strnlen(languages, PN_PROFILE_LANGS_MAX + 1) : SIZE_MAX;
		if (n > PN_PROFILE_LANGS_MAX || (n && n % 3 != 2))
			bad = "languages: ISO 639-1 codes separated by commas, such as en,de";
		for (size_t i = 0; !bad && i < n; i += 3)
			if (!two_letters(languages + i, 'a', 'z') ||
			    (i + 2 < n && languages[i + 2] != ','))
				bad = "languages: ISO 639-1 codes separated by commas, such as en,de";
	}
	if (why)
		*why = bad;
	return bad ? -EINVAL : 0;
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

/* Parses a record and its certificate; no signature or time checks. */
static int record_parse(struct pn_record *r, const uint8_t *buf, size_t len, size_t *signed_len)
{
	struct pn_rd rd;
	uint8_t ver;
	const uint8_t *cert;
	size_t cl;

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
	*signed_len = rd.pos;
	pn_rd_bytes(&rd, r->sig, 64);
	if (pn_rd_end(&rd))
		return -EBADMSG;
	if (pn_cert_decode(&r->cert, cert, cl))
		return -EBADMSG;
	return 0;
}

int pn_record_decode_verify(struct pn_record *r, const uint8_t *buf, size_t len,
			    const uint8_t root_pk[32], uint64_t now_s)
{
	size_t signed_len;
	int rc = record_parse(r, buf, len, &signed_len);

	if (rc)
		return rc;
	rc = pn_cert_verify(&r->cert, root_pk, now_s, PN_CERT_DEVICE);
	if (rc)
		return rc;
	if (record_sig_check(buf, signed_len, r->sig, r->cert.sign_pk))
		return -EBADMSG;
	if (r->expires < now_s)
		return -EKEYEXPIRED;
	return 0;
}

int pn_record_decode_known(struct pn_record *r, const uint8_t *buf, size_t len, uint64_t now_s)
{
	size_t signed_len;
	int rc = record_parse(r, buf, len, &signed_len);

	if (rc)
		return rc;
	/* The same time checks as pn_cert_verify and pn_record_decode_verify, in their order. */
	if (now_s < r->cert.not_before || now_s > r->cert.not_after || r->expires < now_s)
		return -EKEYEXPIRED;
	return 0;
}
