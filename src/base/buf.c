#include "base/buf.h"

#include <errno.h>
#include <string.h>

void pn_rd_init(struct pn_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->pos = 0;
	r->err = 0;
}

size_t pn_rd_left(const struct pn_rd *r)
{
	return r->err ? 0 : r->len - r->pos;
}

static int rd_take(struct pn_rd *r, size_t n, const uint8_t **out)
{
	if (r->err || n > r->len - r->pos) {
		r->err = -EBADMSG;
		return -EBADMSG;
	}
	*out = r->p + r->pos;
	r->pos += n;
	return 0;
}

int pn_rd_u8(struct pn_rd *r, uint8_t *v)
{
	const uint8_t *s;
	if (rd_take(r, 1, &s))
		return -EBADMSG;
	*v = s[0];
	return 0;
}

int pn_rd_u16(struct pn_rd *r, uint16_t *v)
{
	const uint8_t *s;
	if (rd_take(r, 2, &s))
		return -EBADMSG;
	*v = (uint16_t)((uint16_t)s[0] << 8 | s[1]);
	return 0;
}

int pn_rd_u32(struct pn_rd *r, uint32_t *v)
{
	const uint8_t *s;
	if (rd_take(r, 4, &s))
		return -EBADMSG;
	*v = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3];
	return 0;
}

int pn_rd_u64(struct pn_rd *r, uint64_t *v)
{
	uint32_t hi, lo;
	if (pn_rd_u32(r, &hi) || pn_rd_u32(r, &lo))
		return -EBADMSG;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int pn_rd_bytes(struct pn_rd *r, void *out, size_t n)
{
	const uint8_t *s;
	if (rd_take(r, n, &s))
		return -EBADMSG;
	if (n)
		memcpy(out, s, n);
	return 0;
}

int pn_rd_ptr(struct pn_rd *r, const uint8_t **out, size_t n)
{
	return rd_take(r, n, out);
}

int pn_rd_vec8(struct pn_rd *r, const uint8_t **out, size_t *n, size_t max)
{
	uint8_t l;
	if (pn_rd_u8(r, &l))
		return -EBADMSG;
	if (l > max) {
		r->err = -EBADMSG;
		return -EBADMSG;
	}
	*n = l;
	return rd_take(r, l, out);
}

int pn_rd_vec16(struct pn_rd *r, const uint8_t **out, size_t *n, size_t max)
{
	uint16_t l;
	if (pn_rd_u16(r, &l))
		return -EBADMSG;
	if (l > max) {
		r->err = -EBADMSG;
		return -EBADMSG;
	}
	*n = l;
	return rd_take(r, l, out);
}

int pn_rd_str8(struct pn_rd *r, char *out, size_t cap)
{
	const uint8_t *s;
	size_t n;
	if (cap == 0 || pn_rd_vec8(r, &s, &n, cap - 1))
		goto bad;
	if (memchr(s, 0, n))
		goto bad;
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
bad:
	r->err = -EBADMSG;
	return -EBADMSG;
}

int pn_rd_end(const struct pn_rd *r)
{
	return (r->err || r->pos != r->len) ? -EBADMSG : 0;
}

void pn_wr_init(struct pn_wr *w, void *p, size_t cap)
{
	w->p = p;
	w->cap = p ? cap : 0;
	w->len = 0;
	w->err = 0;
}

int pn_wr_bytes(struct pn_wr *w, const void *p, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = -ENOSPC;
		return -ENOSPC;
	}
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
	return 0;
}

int pn_wr_u8(struct pn_wr *w, uint8_t v)
{
	return pn_wr_bytes(w, &v, 1);
}

int pn_wr_u16(struct pn_wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	return pn_wr_bytes(w, b, 2);
}

int pn_wr_u32(struct pn_wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return pn_wr_bytes(w, b, 4);
}

int pn_wr_u64(struct pn_wr *w, uint64_t v)
{
	if (pn_wr_u32(w, (uint32_t)(v >> 32)))
		return -ENOSPC;
	return pn_wr_u32(w, (uint32_t)v);
}

int pn_wr_vec8(struct pn_wr *w, const void *p, size_t n)
{
	if (n > 0xff) {
		w->err = -ENOSPC;
		return -ENOSPC;
	}
	if (pn_wr_u8(w, (uint8_t)n))
		return -ENOSPC;
	return pn_wr_bytes(w, p, n);
}

int pn_wr_vec16(struct pn_wr *w, const void *p, size_t n)
{
	if (n > 0xffff) {
		w->err = -ENOSPC;
		return -ENOSPC;
	}
	if (pn_wr_u16(w, (uint16_t)n))
		return -ENOSPC;
	return pn_wr_bytes(w, p, n);
}

int pn_wr_str8(struct pn_wr *w, const char *s)
{
	return pn_wr_vec8(w, s, strlen(s));
}
