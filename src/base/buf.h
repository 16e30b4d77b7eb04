/* Bounded byte reader and writer: the only way protocol code touches packet bytes.
 *
 * Every read checks the remaining length first and returns -EBADMSG on underflow; the
 * reader then stays in error so a sequence of reads can be checked once at the end.
 * Every write checks the capacity and returns -ENOSPC on overflow, likewise sticky.
 * Integers are big-endian (network order) on the wire. */
#ifndef PARLEY_BASE_BUF_H
#define PARLEY_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct pn_rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
	int err; /* 0 or -EBADMSG, sticky */
};

struct pn_wr {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err; /* 0 or -ENOSPC, sticky */
};

void pn_rd_init(struct pn_rd *r, const void *p, size_t len);
size_t pn_rd_left(const struct pn_rd *r);
int pn_rd_u8(struct pn_rd *r, uint8_t *v);
int pn_rd_u16(struct pn_rd *r, uint16_t *v);
int pn_rd_u32(struct pn_rd *r, uint32_t *v);
int pn_rd_u64(struct pn_rd *r, uint64_t *v);
/* Copy exactly n bytes out. */
int pn_rd_bytes(struct pn_rd *r, void *out, size_t n);
/* Borrow n bytes in place (pointer valid as long as the input buffer). */
int pn_rd_ptr(struct pn_rd *r, const uint8_t **out, size_t n);
/* Length-prefixed (u8 / u16) borrowed slices; the length must not exceed max. */
int pn_rd_vec8(struct pn_rd *r, const uint8_t **out, size_t *n, size_t max);
int pn_rd_vec16(struct pn_rd *r, const uint8_t **out, size_t *n, size_t max);
/* u8-length-prefixed string copied into out[cap] and NUL-terminated; rejects embedded NUL. */
int pn_rd_str8(struct pn_rd *r, char *out, size_t cap);
/* 0 when the reader consumed everything without error, else -EBADMSG. */
int pn_rd_end(const struct pn_rd *r);

void pn_wr_init(struct pn_wr *w, void *p, size_t cap);
int pn_wr_u8(struct pn_wr *w, uint8_t v);
int pn_wr_u16(struct pn_wr *w, uint16_t v);
int pn_wr_u32(struct pn_wr *w, uint32_t v);
int pn_wr_u64(struct pn_wr *w, uint64_t v);
int pn_wr_bytes(struct pn_wr *w, const void *p, size_t n);
int pn_wr_vec8(struct pn_wr *w, const void *p, size_t n);
int pn_wr_vec16(struct pn_wr *w, const void *p, size_t n);
int pn_wr_str8(struct pn_wr *w, const char *s);

#endif
