/* Hex and base32 (RFC 4648 alphabet, lower case, no padding) encoding. */
#ifndef PARLEY_BASE_HEX_H
#define PARLEY_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n hex digits and a NUL into out (cap >= 2n+1). Returns out. */
char *pn_hex_encode(char *out, size_t cap, const void *in, size_t n);
/* Decodes exactly n bytes from a string of exactly 2n hex digits; -EINVAL otherwise. */
int pn_hex_decode(void *out, size_t n, const char *in);
/* Base32 of n bytes: ceil(8n/5) characters plus NUL. Returns out or NULL if cap is short. */
char *pn_base32_encode(char *out, size_t cap, const void *in, size_t n);
/* Decodes base32 (case-insensitive) into out; *outlen set; -EINVAL on bad digit or size. */
int pn_base32_decode(void *out, size_t cap, size_t *outlen, const char *in);

#endif
