/* STUN Binding codec (RFC 8489) and the supernode's STUN answer; see stun.h. */
#include "nat/stun.h"

#include <errno.h>
#include <string.h>

#include "base/buf.h"

/* CRC-32 as in ISO-HDLC / zlib (reflected 0xEDB88320, init and final xor ~0), which is
 * what FINGERPRINT uses. Bitwise: STUN messages are small and rare. */
static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return ~c;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

bool pn_stun_is_msg(const uint8_t *buf, size_t len)
{
	uint16_t alen;

	if (!buf || len < PN_STUN_HDR || len > PN_STUN_MAX)
		return false;
	if (buf[0] & 0xC0)
		return false;
	alen = get16(buf + 2);
	if (alen % 4 || (size_t)alen + PN_STUN_HDR != len)
		return false;
	return buf[4] == 0x21 && buf[5] == 0x12 && buf[6] == 0xA4 && buf[7] == 0x42;
}

/* ---- building ---------------------------------------------------------------------- */

static void wr_header(struct pn_wr *w, uint16_t type, const uint8_t tid[PN_STUN_TID])
{
	pn_wr_u16(w, type);
	pn_wr_u16(w, 0); /* attribute length, patched by wr_finish */
	pn_wr_u32(w, PN_STUN_COOKIE);
	pn_wr_bytes(w, tid, PN_STUN_TID);
}

/* Sets the header length to what follows it, then appends FINGERPRINT if asked: its CRC
 * covers the message with a length that already counts the FINGERPRINT itself. */
static int wr_finish(struct pn_wr *w, bool fingerprint)
{
	if (w->err)
		return w->err;
	if (fingerprint) {
		put16(w->p + 2, (uint16_t)(w->len - PN_STUN_HDR + 8));
		uint32_t fp = crc32(w->p, w->len) ^ PN_STUN_FP_XOR;
		pn_wr_u16(w, PN_STUN_A_FINGERPRINT);
		pn_wr_u16(w, 4);
		pn_wr_u32(w, fp);
		return w->err;
	}
	put16(w->p + 2, (uint16_t)(w->len - PN_STUN_HDR));
	return 0;
}

int pn_stun_build_request(uint8_t *out, size_t cap, size_t *out_len,
			  const struct pn_stun_req_opts *o)
{
	struct pn_wr w;
	size_t base = PN_STUN_HDR + (o->fingerprint ? 8 : 0);
	int rc;

	if (o->pad_to > PN_STUN_PAD_MAX)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	wr_header(&w, PN_STUN_BINDING_REQUEST, o->tid);
	if (o->pad_to > base) {
		/* PADDING value rounded up to 4 so the message reaches at least pad_to */
		size_t need = o->pad_to - base, vlen = need > 4 ? (need - 4 + 3) & ~(size_t)3 : 0;
		static const uint8_t zeros[PN_STUN_PAD_MAX];

		pn_wr_u16(&w, PN_STUN_A_PADDING);
		pn_wr_u16(&w, (uint16_t)vlen);
		pn_wr_bytes(&w, zeros, vlen);
	}
	rc = wr_finish(&w, o->fingerprint);
	if (rc)
		return rc;
	*out_len = w.len;
	return 0;
}

/* XOR-MAPPED-ADDRESS value: 0 | family (1 = IPv4, 2 = IPv6) | port ^ cookie>>16 |
 * address ^ cookie (IPv4) or ^ (cookie || transaction id) (IPv6). */
static void wr_xor_addr(struct pn_wr *w, const struct pn_addr *a, const uint8_t tid[PN_STUN_TID])
{
	uint8_t key[16] = {0x21, 0x12, 0xA4, 0x42};
	size_t n = a->family == PN_AF_INET ? 4 : 16;

	memcpy(key + 4, tid, PN_STUN_TID);
	pn_wr_u16(w, PN_STUN_A_XOR_MAPPED_ADDRESS);
	pn_wr_u16(w, (uint16_t)(4 + n));
	pn_wr_u8(w, 0);
	pn_wr_u8(w, a->family == PN_AF_INET ? 1 : 2);
	pn_wr_u16(w, a->port ^ (uint16_t)(PN_STUN_COOKIE >> 16));
	for (size_t i = 0; i < n; i++)
		pn_wr_u8(w, a->ip[i] ^ key[i]);
}

static void wr_error(struct pn_wr *w, unsigned code, const char *reason)
{
	size_t n = strlen(reason), pad = (4 - n % 4) % 4;

	pn_wr_u16(w, PN_STUN_A_ERROR_CODE);
	pn_wr_u16(w, (uint16_t)(4 + n));
	pn_wr_u16(w, 0);
	pn_wr_u8(w, (uint8_t)(code / 100));
	pn_wr_u8(w, (uint8_t)(code % 100));
	pn_wr_bytes(w, reason, n);
	for (size_t i = 0; i < pad; i++)
		pn_wr_u8(w, 0);
}

/* ---- parsing ----------------------------------------------------------------------- */

static int rd_addr(struct pn_rd *r, size_t vlen, struct pn_addr *a, bool xored,
		   const uint8_t tid[PN_STUN_TID])
{
	uint8_t key[16] = {0x21, 0x12, 0xA4, 0x42};
	uint8_t zero, fam;
	uint16_t port;
	size_t n;

	memcpy(key + 4, tid, PN_STUN_TID);
	if (pn_rd_u8(r, &zero) || pn_rd_u8(r, &fam) || pn_rd_u16(r, &port))
		return -EBADMSG;
	if (fam == 1)
		n = 4;
	else if (fam == 2)
		n = 16;
	else
		return -EBADMSG;
	if (vlen != 4 + n)
		return -EBADMSG;
	memset(a, 0, sizeof(*a));
	if (pn_rd_bytes(r, a->ip, n))
		return -EBADMSG;
	a->family = fam == 1 ? PN_AF_INET : PN_AF_INET6;
	a->port = port;
	if (xored) {
		a->port ^= (uint16_t)(PN_STUN_COOKIE >> 16);
		for (size_t i = 0; i < n; i++)
			a->ip[i] ^= key[i];
	}
	return 0;
}

static int rd_error(struct pn_rd *r, size_t vlen, struct pn_stun_msg *m)
{
	uint16_t zero;
	uint8_t cls, num;
	const uint8_t *s;
	size_t n, k = 0;

	if (vlen < 4 || vlen > 4 + 763)
		return -EBADMSG;
	if (pn_rd_u16(r, &zero) || pn_rd_u8(r, &cls) || pn_rd_u8(r, &num))
		return -EBADMSG;
	cls &= 0x07; /* the rest of the 21 reserved bits are ignored */
	if (cls < 3 || cls > 6 || num > 99)
		return -EBADMSG;
	n = vlen - 4;
	if (pn_rd_ptr(r, &s, n))
		return -EBADMSG;
	m->error_code = (uint16_t)(cls * 100 + num);
	/* The phrase is UTF-8 for humans: keep printable ASCII, mark the rest. */
	for (size_t i = 0; i < n && k < PN_STUN_REASON_MAX; i++)
		m->reason[k++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	m->reason[k] = 0;
	return 0;
}

static int rd_unknown_list(struct pn_rd *r, size_t vlen, struct pn_stun_msg *m)
{
	if (vlen % 2)
		return -EBADMSG;
	for (size_t i = 0; i < vlen / 2; i++) {
		uint16_t t;
		if (pn_rd_u16(r, &t))
			return -EBADMSG;
		if (m->n_err_unknown < PN_STUN_UNKNOWN_MAX)
			m->err_unknown[m->n_err_unknown++] = t;
	}
	return 0;
}

/* Attributes this codec understands or deliberately ignores; anything else below
 * 0x8000 is "unknown comprehension-required". */
static bool known(uint16_t t)
{
	switch (t) {
	case PN_STUN_A_MAPPED_ADDRESS:
	case PN_STUN_A_USERNAME:
	case PN_STUN_A_MESSAGE_INTEGRITY:
	case PN_STUN_A_ERROR_CODE:
	case PN_STUN_A_UNKNOWN_ATTRIBUTES:
	case PN_STUN_A_REALM:
	case PN_STUN_A_NONCE:
	case PN_STUN_A_MESSAGE_INTEGRITY_SHA256:
	case PN_STUN_A_PASSWORD_ALGORITHM:
	case PN_STUN_A_USERHASH:
	case PN_STUN_A_XOR_MAPPED_ADDRESS:
	case PN_STUN_A_PADDING:
		return true;
	default:
		return t >= 0x8000;
	}
}

int pn_stun_parse(struct pn_stun_msg *m, const uint8_t *buf, size_t len)
{
	struct pn_rd r;
	uint32_t cookie;
	uint16_t alen;
	bool got_xor = false, got_mapped = false, got_err = false, got_unk = false;

	memset(m, 0, sizeof(*m));
	if (!pn_stun_is_msg(buf, len))
		return -EBADMSG;
	pn_rd_init(&r, buf, len);
	pn_rd_u16(&r, &m->type);
	pn_rd_u16(&r, &alen);
	pn_rd_u32(&r, &cookie);
	pn_rd_bytes(&r, m->tid, PN_STUN_TID);
	while (pn_rd_left(&r) > 0) {
		uint16_t t, vlen;
		size_t start, padded;
		struct pn_rd v;
		const uint8_t *val;
		int rc = 0;

		if (m->fingerprint)
			return -EBADMSG; /* FINGERPRINT must be the last attribute */
		start = r.pos;
		if (pn_rd_u16(&r, &t) || pn_rd_u16(&r, &vlen))
			return -EBADMSG;
		padded = ((size_t)vlen + 3) & ~(size_t)3;
		if (padded > pn_rd_left(&r) || pn_rd_ptr(&r, &val, padded))
			return -EBADMSG;
		pn_rd_init(&v, val, vlen);
		switch (t) {
		case PN_STUN_A_XOR_MAPPED_ADDRESS:
			if (!got_xor)
				rc = rd_addr(&v, vlen, &m->xor_mapped, true, m->tid);
			got_xor = true;
			break;
		case PN_STUN_A_MAPPED_ADDRESS:
			if (!got_mapped)
				rc = rd_addr(&v, vlen, &m->mapped, false, m->tid);
			got_mapped = true;
			break;
		case PN_STUN_A_ERROR_CODE:
			if (!got_err)
				rc = rd_error(&v, vlen, m);
			got_err = true;
			break;
		case PN_STUN_A_UNKNOWN_ATTRIBUTES:
			if (!got_unk)
				rc = rd_unknown_list(&v, vlen, m);
			got_unk = true;
			break;
		case PN_STUN_A_FINGERPRINT: {
			uint32_t fp;
			if (vlen != 4 || pn_rd_u32(&v, &fp))
				return -EBADMSG;
			/* the header length already counts this attribute: CRC the bytes as sent */
			if ((crc32(buf, start) ^ PN_STUN_FP_XOR) != fp)
				return -EBADMSG;
			m->fingerprint = true;
			break;
		}
		default:
			if (!known(t)) {
				if (m->n_unknown < PN_STUN_UNKNOWN_MAX)
					m->unknown[m->n_unknown] = t;
				m->n_unknown++;
			}
			break;
		}
		if (rc)
			return -EBADMSG;
	}
	return pn_rd_end(&r);
}

int pn_stun_parse_response(struct pn_stun_msg *m, const uint8_t *buf, size_t len,
			   const uint8_t tid[PN_STUN_TID])
{
	if (pn_stun_parse(m, buf, len))
		return -EBADMSG;
	if (m->type != PN_STUN_BINDING_SUCCESS && m->type != PN_STUN_BINDING_ERROR)
		return -ENOMSG;
	if (memcmp(m->tid, tid, PN_STUN_TID) != 0)
		return -ENOMSG;
	if (m->type == PN_STUN_BINDING_ERROR)
		return m->error_code ? 0 : -EPROTO;
	if (m->n_unknown || !pn_stun_mapped(m))
		return -EPROTO;
	return 0;
}

const struct pn_addr *pn_stun_mapped(const struct pn_stun_msg *m)
{
	if (m->xor_mapped.family)
		return &m->xor_mapped;
	if (m->mapped.family)
		return &m->mapped;
	return NULL;
}

/* ---- the server side --------------------------------------------------------------- */

int pn_stun_answer(uint8_t *out, size_t cap, size_t *out_len, const uint8_t *req, size_t len,
		   const struct pn_addr *from)
{
	struct pn_stun_msg m;
	struct pn_wr w;
	uint16_t method;
	int rc;

	if (pn_stun_parse(&m, req, len))
		return -EBADMSG;
	/* class bits are 0x0110 of the type; 00 is a request */
	if (m.type & 0x0110)
		return -ENOMSG;
	if (from->family != PN_AF_INET && from->family != PN_AF_INET6)
		return -EINVAL;
	method = m.type & 0x3EEF;
	pn_wr_init(&w, out, cap);
	if (method != 0x0001) {
		/* an error response keeps the request's method */
		wr_header(&w, (uint16_t)(m.type | 0x0110), m.tid);
		wr_error(&w, 400, "Bad Request");
	} else if (m.n_unknown) {
		unsigned n = m.n_unknown < PN_STUN_UNKNOWN_MAX ? m.n_unknown : PN_STUN_UNKNOWN_MAX;

		wr_header(&w, PN_STUN_BINDING_ERROR, m.tid);
		wr_error(&w, 420, "Unknown Attribute");
		pn_wr_u16(&w, PN_STUN_A_UNKNOWN_ATTRIBUTES);
		pn_wr_u16(&w, (uint16_t)(2 * n));
		for (unsigned i = 0; i < n; i++)
			pn_wr_u16(&w, m.unknown[i]);
		if (n % 2)
			pn_wr_u16(&w, 0);
	} else {
		wr_header(&w, PN_STUN_BINDING_SUCCESS, m.tid);
		wr_xor_addr(&w, from, m.tid);
	}
	rc = wr_finish(&w, m.fingerprint);
	if (rc)
		return rc;
	*out_len = w.len;
	return 0;
}

int pn_stun_serve(const struct pn_env *env, const struct pn_addr *from, const uint8_t *req,
		  size_t len)
{
	uint8_t out[PN_STUN_ANSWER_MAX];
	size_t n;
	int rc = pn_stun_answer(out, sizeof(out), &n, req, len, from);

	if (rc == -ENOSPC || rc == -EINVAL)
		return -EBADMSG;
	if (rc)
		return rc;
	/* Anti-amplification: the source address is not authenticated, so a spoofed request
	 * must not buy its victim more bytes than the attacker spent. */
	if (n > len)
		return -EMSGSIZE;
	env->send(env->ctx, from, out, n);
	return 0;
}
