#include "base/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int pn_addr_parse(struct pn_addr *a, const char *s)
{
	char host[64];
	const char *colon;
	size_t hl;
	struct pn_addr out;

	memset(&out, 0, sizeof(out));
	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		hl = (size_t)(rb - s - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = 0;
		if (inet_pton(AF_INET6, host, out.ip) != 1)
			return -EINVAL;
		out.family = PN_AF_INET6;
		if (parse_port(rb + 2, &out.port))
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = 0;
		if (inet_pton(AF_INET, host, out.ip) != 1)
			return -EINVAL;
		out.family = PN_AF_INET;
		if (parse_port(colon + 1, &out.port))
			return -EINVAL;
	}
	*a = out;
	return 0;
}

char *pn_addr_str(const struct pn_addr *a, char out[PN_ADDR_STRLEN])
{
	char host[INET6_ADDRSTRLEN];

	if (a->family == PN_AF_INET) {
		inet_ntop(AF_INET, a->ip, host, sizeof(host));
		snprintf(out, PN_ADDR_STRLEN, "%s:%u", host, a->port);
	} else if (a->family == PN_AF_INET6) {
		inet_ntop(AF_INET6, a->ip, host, sizeof(host));
		snprintf(out, PN_ADDR_STRLEN, "[%s]:%u", host, a->port);
	} else {
		snprintf(out, PN_ADDR_STRLEN, "(none)");
	}
	return out;
}

static size_t iplen(uint8_t family)
{
	return family == PN_AF_INET ? 4 : family == PN_AF_INET6 ? 16 : 0;
}

bool pn_addr_same_host(const struct pn_addr *a, const struct pn_addr *b)
{
	return a->family == b->family && memcmp(a->ip, b->ip, iplen(a->family)) == 0;
}

bool pn_addr_eq(const struct pn_addr *a, const struct pn_addr *b)
{
	return pn_addr_same_host(a, b) && a->port == b->port;
}

int pn_addr_write(struct pn_wr *w, const struct pn_addr *a)
{
	size_t n = iplen(a->family);

	if (!n) {
		w->err = -EINVAL;
		return -EINVAL;
	}
	pn_wr_u8(w, a->family);
	pn_wr_bytes(w, a->ip, n);
	return pn_wr_u16(w, a->port);
}

int pn_addr_read(struct pn_rd *r, struct pn_addr *a)
{
	uint8_t fam;
	size_t n;

	memset(a, 0, sizeof(*a));
	if (pn_rd_u8(r, &fam))
		return -EBADMSG;
	n = iplen(fam);
	if (!n) {
		r->err = -EBADMSG;
		return -EBADMSG;
	}
	a->family = fam;
	pn_rd_bytes(r, a->ip, n);
	return pn_rd_u16(r, &a->port);
}
