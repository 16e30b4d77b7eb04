/* Endpoint parsing and formatting: "198.18.0.1:7700", "[2001:db8::1]:7700". */
#ifndef PARLEY_BASE_ADDR_H
#define PARLEY_BASE_ADDR_H

#include <stdbool.h>

#include "parley/env.h"

/* Parses "host:port" with a numeric IPv4 or bracketed IPv6 host; port 0..65535.
 * Returns 0 or -EINVAL. */
int pn_addr_parse(struct pn_addr *a, const char *s);
/* Formats into out[PN_ADDR_STRLEN]; returns out. */
char *pn_addr_str(const struct pn_addr *a, char out[PN_ADDR_STRLEN]);
bool pn_addr_eq(const struct pn_addr *a, const struct pn_addr *b);
/* Same host, any port (rate limits are per source host). */
bool pn_addr_same_host(const struct pn_addr *a, const struct pn_addr *b);

struct pn_wr;
struct pn_rd;
/* Wire form: family u8 (4|6), ip (4|16 bytes), port u16. */
int pn_addr_write(struct pn_wr *w, const struct pn_addr *a);
int pn_addr_read(struct pn_rd *r, struct pn_addr *a);

#endif
