/* STUN Binding codec (RFC 8489) and the supernode's STUN answer; see stun.h. */
#include "nat/stun.h"

#include <errno.h>
#include <string.h>

#include "base/buf.h"

/* CRC-32 as in ISO-HDLC / zlib (reflected polynomial 0xEDB88320, init and final xor ~0),
 * which is what FINGERPRINT uses. Byte-wise with a table: a padded request can be 1400
 * bytes, and a supernode checks the CRC of every request that carries one, so the bitwise
 * loop (about 15 ns a byte) would make a cheap flood expensive. The table is the CRC of
 * each byte value (tests/unit/test_stun.c checks the result against a bitwise CRC on
 * 200 request sizes, besides the RFC 5769 vectors). */
static const uint32_t crc_table[256] = {
	0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
	0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
	0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
	0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
	0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
	0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
	0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
	0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
	0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
	0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
	0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
	0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
	0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
	0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
	0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
	0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
	0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
	0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
	0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
	0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
	0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
	0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
	0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
	0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
	0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
	0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
	0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
	0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
	0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
	0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
	0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
	0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
	0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
	0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
	0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
	0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
	0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
	0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
	0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
	0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
	0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
	0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
	0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
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
