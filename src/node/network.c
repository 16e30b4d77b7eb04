/* The network file (format in include/parley/network.h). */
#include "parley/network.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/hex.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* "addr [hexkey]" */
static int parse_peer(struct pn_net_peer *p, char *v, bool key_required)
{
	char *sp = strpbrk(v, " \t");

	memset(p, 0, sizeof(*p));
	if (sp) {
		*sp = 0;
		char *k = trim(sp + 1);
		if (*k) {
			if (pn_hex_decode(p->key, 32, k))
				return -EINVAL;
			p->has_key = true;
		}
	}
	if (pn_addr_parse(&p->addr, v))
		return -EINVAL;
	if (key_required && !p->has_key)
		return -EINVAL;
	return 0;
}

int pn_network_load(struct pn_network *n, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char line[512];
	unsigned lineno = 0;
	bool have_root = false, have_login = false;
	int rc = 0;

	memset(n, 0, sizeof(*n));
	f = fopen(path, "r");
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "cannot read network file `%s': %s", path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k, *v, *eq, orig[sizeof(line)];
		bool truncated = !strchr(line, '\n') && !feof(f);
		lineno++;
		if (truncated) { /* drop the rest of an over-long line */
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
		}
		k = trim(line);
		if (!*k || *k == '#')
			continue;
		if (truncated) {
			snprintf(err, errlen, "%s:%u: line longer than %zu bytes", path, lineno,
				 sizeof(line) - 2);
			rc = -EINVAL;
			goto out;
		}
		eq = strchr(k, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected `key = value', got `%s'", path, lineno, k);
			rc = -EINVAL;
			goto out;
		}
		*eq = 0;
		v = trim(eq + 1);
		k = trim(k);
		snprintf(orig, sizeof(orig), "%s", v); /* parse_peer cuts v; errors quote all */
		if (strcmp(k, "version") == 0) {
			if (strcmp(v, "1") != 0) {
				snprintf(err, errlen, "%s:%u: unsupported version `%s'", path, lineno, v);
				rc = -EINVAL;
				goto out;
			}
		} else if (strcmp(k, "name") == 0) {
			if (strlen(v) > PN_NET_NAME_MAX) {
				snprintf(err, errlen, "%s:%u: name too long", path, lineno);
				rc = -EINVAL;
				goto out;
			}
			strcpy(n->name, v);
		} else if (strcmp(k, "root_key") == 0) {
			if (pn_hex_decode(n->root_pk, 32, v)) {
				snprintf(err, errlen, "%s:%u: root_key is not 64 hex digits: `%s'", path,
					 lineno, v);
				rc = -EINVAL;
				goto out;
			}
			have_root = true;
		} else if (strcmp(k, "login") == 0) {
			if (parse_peer(&n->login, v, true)) {
				snprintf(err, errlen,
					 "%s:%u: login must be `ADDR:PORT HEXKEY', got `%s'", path,
					 lineno, orig);
				rc = -EINVAL;
				goto out;
			}
			have_login = true;
		} else if (strcmp(k, "supernode") == 0) {
			if (n->n_supernodes >= PN_NET_MAX_SUPERNODES) {
				snprintf(err, errlen, "%s:%u: more than %d supernodes", path, lineno,
					 PN_NET_MAX_SUPERNODES);
				rc = -EINVAL;
				goto out;
			}
			if (parse_peer(&n->supernodes[n->n_supernodes], v, false)) {
				snprintf(err, errlen,
					 "%s:%u: supernode must be `ADDR:PORT [HEXKEY]', got `%s'",
					 path, lineno, orig);
				rc = -EINVAL;
				goto out;
			}
			n->n_supernodes++;
		} else if (strcmp(k, "policy") == 0) {
			if (strcmp(v, "enrolled") == 0)
				n->open_policy = false;
			else if (strcmp(v, "open") == 0)
				n->open_policy = true;
			else {
				snprintf(err, errlen, "%s:%u: policy is `enrolled' or `open', not `%s'",
					 path, lineno, v);
				rc = -EINVAL;
				goto out;
			}
		} else {
			snprintf(err, errlen, "%s:%u: unknown key `%s'", path, lineno, k);
			rc = -EINVAL;
			goto out;
		}
	}
	if (!have_root || !have_login) {
		snprintf(err, errlen, "%s: missing %s", path, !have_root ? "root_key" : "login");
		rc = -EINVAL;
	}
out:
	fclose(f);
	return rc;
}

static void write_peer(FILE *f, const char *key, const struct pn_net_peer *p)
{
	char a[PN_ADDR_STRLEN], k[65];

	fprintf(f, "%s = %s", key, pn_addr_str(&p->addr, a));
	if (p->has_key)
		fprintf(f, " %s", pn_hex_encode(k, sizeof(k), p->key, 32));
	fputc('\n', f);
}

int pn_network_save(const struct pn_network *n, const char *path)
{
	char tmp[4096], hex[65];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -EINVAL;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "# parley network file: give it to every client and supernode of the network.\n");
	fprintf(f, "version = 1\nname = %s\n", n->name[0] ? n->name : "parley");
	fprintf(f, "root_key = %s\n", pn_hex_encode(hex, sizeof(hex), n->root_pk, 32));
	write_peer(f, "login", &n->login);
	for (unsigned i = 0; i < n->n_supernodes; i++)
		write_peer(f, "supernode", &n->supernodes[i]);
	fprintf(f, "policy = %s\n", n->open_policy ? "open" : "enrolled");
	if (fflush(f) || fsync(fileno(f))) {
		fclose(f);
		unlink(tmp);
		return -EIO;
	}
	fclose(f);
	if (rename(tmp, path)) {
		unlink(tmp);
		return -errno;
	}
	return 0;
}
