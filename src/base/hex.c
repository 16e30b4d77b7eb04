#include "base/hex.h"

#include <errno.h>
#include <string.h>

char *pn_hex_encode(char *out, size_t cap, const void *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = in;

	if (cap < 2 * n + 1) {
		if (cap)
			out[0] = 0;
		return out;
	}
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = 0;
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pn_hex_decode(void *out, size_t n, const char *in)
{
	uint8_t *b = out;

	if (!in || strlen(in) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

char *pn_base32_encode(char *out, size_t cap, const void *in, size_t n)
{
	const uint8_t *b = in;
	size_t need = (n * 8 + 4) / 5, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (cap < need + 1)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | b[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = 0;
	return out;
}

int pn_base32_decode(void *out, size_t cap, size_t *outlen, const char *in)
{
	uint8_t *b = out;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (const char *p = in; *p; p++) {
		char c = *p;
		const char *d;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		d = strchr(b32, c);
		if (!d || !c)
			return -EINVAL;
		acc = (acc << 5) | (uint32_t)(d - b32);
		bits += 5;
		if (bits >= 8) {
			if (o >= cap)
				return -EINVAL;
			b[o++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* Leftover bits must be zero padding, fewer than 5. */
	if (bits >= 5 || (acc & ((1u << bits) - 1)))
		return -EINVAL;
	*outlen = o;
	return 0;
}
