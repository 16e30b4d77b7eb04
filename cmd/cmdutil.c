#include "cmdutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/addr.h"
#include "base/hex.h"
#include "parley/runtime.h"
#include "base/log.h"

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

int cu_read_config(const char *prog, const char *path, const char *const *keys, char ***slots,
		   size_t n)
{
	char line[1024];
	unsigned lineno = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "%s: cannot read config file `%s': %s\n", prog, path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *k, *v;
		size_t i;

		lineno++;
		s = trim(line);
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "%s: %s:%u: expected \"key = value\", got `%s'\n", prog, path,
				lineno, s);
			rc = -EINVAL;
			break;
		}
		*eq = 0;
		k = trim(s);
		v = trim(eq + 1);
		for (i = 0; i < n && strcmp(k, keys[i]) != 0; i++)
			;
		if (i == n) {
			fprintf(stderr, "%s: %s:%u: unknown key `%s'\n", prog, path, lineno, k);
			rc = -EINVAL;
			break;
		}
		if (!*slots[i] && !(*slots[i] = strdup(v))) {
			rc = -ENOMEM;
			break;
		}
	}
	fclose(f);
	return rc;
}

int cu_make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

char *cu_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *cu_default_data_dir(const char *sub)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char tmp[PATH_MAX];

	if (x && x[0] == '/')
		return cu_path_join(x, sub);
	if (home && *home) {
		snprintf(tmp, sizeof(tmp), "%s/.local/share", home);
		return cu_path_join(tmp, sub);
	}
	return NULL;
}

int cu_write_file(const char *path, const void *buf, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd))
		rc = -EIO;
	close(fd);
	if (rc)
		unlink(path);
	return rc;
}

int cu_read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;

	if (!f)
		return -errno;
	b = malloc(65536 + 1);
	if (!b) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(b, 1, 65536 + 1, f);
	fclose(f);
	if (n > 65536) {
		free(b);
		return -EFBIG;
	}
	*buf = b;
	*len = n;
	return 0;
}

int cu_seed_create(const char *path, const uint8_t seed[32])
{
	char hex[66];

	pn_hex_encode(hex, sizeof(hex), seed, 32);
	hex[64] = '\n';
	hex[65] = 0;
	int rc = cu_write_file(path, hex, 65, 0600);
	sodium_memzero(hex, sizeof(hex));
	return rc;
}

int cu_seed_load(const char *path, uint8_t seed[32])
{
	uint8_t *b;
	size_t n;
	char hex[65];
	struct stat st;
	int rc;

	if (stat(path, &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "warning: key file `%s' is readable by others (mode %o); chmod 600 it\n",
			path, st.st_mode & 0777);
	rc = cu_read_file(path, &b, &n);
	if (rc)
		return rc;
	while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
		n--;
	rc = -EINVAL;
	if (n == 64) {
		memcpy(hex, b, 64);
		hex[64] = 0;
		rc = pn_hex_decode(seed, 32, hex);
	}
	sodium_memzero(b, n);
	sodium_memzero(hex, sizeof(hex));
	free(b);
	return rc;
}

int cu_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void log_sink(void *arg, enum pn_log_level lvl, const char *msg)
{
	static const char *const names[] = {"error", "warn ", "info ", "debug"};
	char ts[32];
	struct timespec t;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", ts, t.tv_nsec / 1000000, names[lvl],
		(const char *)arg, msg);
}

int cu_set_log_level(const char *prog, const char *level)
{
	enum pn_log_level l = PN_LOG_INFO;

	if (level && pn_log_parse_level(level, &l)) {
		fprintf(stderr, "%s: --log-level must be error, warn, info or debug, not `%s'\n", prog,
			level);
		return -EINVAL;
	}
	pn_log_set_level(l);
	pn_log_set_sink(log_sink, (void *)prog);
	return 0;
}

static int opt_index(const struct cu_prog *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return (int)i;
	return -1;
}

int cu_prelude(const struct cu_prog *p, int argc, char **argv, const char **sub, char **dir,
	       char **netpath, bool *stop)
{
	struct option lopts[64];
	int c, ic = opt_index(p, "config"), id = opt_index(p, "data-dir"),
	       in = opt_index(p, "network");
	size_t k;

	*stop = true;
	*dir = *netpath = NULL;
	if (p->n + 3 > sizeof(lopts) / sizeof(lopts[0]) || ic < 0 || id < 0 || in < 0)
		return 1;
	for (size_t i = 0; i < p->n; i++)
		lopts[i] = (struct option){p->names[i], required_argument, NULL, 1000 + (int)i};
	lopts[p->n] = (struct option){"help", no_argument, NULL, 'h'};
	lopts[p->n + 1] = (struct option){"version", no_argument, NULL, 'V'};
	lopts[p->n + 2] = (struct option){NULL, 0, NULL, 0};
	*sub = p->subs[0];
	if (argc > 1 && argv[1][0] != '-') {
		*sub = argv[1];
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		if (c == 'h') {
			p->usage(stdout);
			return 0;
		}
		if (c == 'V') {
			printf("%s %s\n", p->prog, PARLEY_VERSION);
			return 0;
		}
		if (c < 1000 || c >= 1000 + (int)p->n) {
			p->usage(stderr);
			return 2;
		}
		free(p->opt[c - 1000]);
		p->opt[c - 1000] = strdup(optarg);
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument `%s' (see --help)\n", p->prog, argv[optind]);
		return 2;
	}
	for (k = 0; p->subs[k] && strcmp(*sub, p->subs[k]) != 0; k++)
		;
	if (!p->subs[k]) {
		fprintf(stderr, "%s: unknown command `%s' (see --help)\n", p->prog, *sub);
		return 2;
	}
	if (p->opt[ic]) {
		char **slots[64];
		for (size_t i = 0; i < p->n; i++)
			slots[i] = &p->opt[i];
		if (cu_read_config(p->prog, p->opt[ic], p->names, slots, p->n))
			return 2;
	}
	if (sodium_init() < 0)
		return 1;
	*dir = p->opt[id] ? strdup(p->opt[id]) : cu_default_data_dir(p->data_sub);
	if (!*dir) {
		fprintf(stderr, "%s: set --data-dir (neither XDG_DATA_HOME nor HOME is set)\n",
			p->prog);
		return 2;
	}
	if (cu_make_dirs(*dir)) {
		fprintf(stderr, "%s: cannot create `%s': %s\n", p->prog, *dir, strerror(errno));
		return 1;
	}
	*netpath = p->opt[in] ? strdup(p->opt[in]) : cu_path_join(*dir, "network.conf");
	*stop = false;
	return 0;
}

void cu_opts_free(const struct cu_prog *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->opt[i]);
		p->opt[i] = NULL;
	}
}

int cu_serve(const char *prog, struct pn_rt *rt, const struct pn_addr *bound, void *node,
	     const struct pn_node_ops *ops)
{
	char a[PN_ADDR_STRLEN];

	pn_rt_set_node(rt, node, ops);
	printf("%s: ready udp=%s\n", prog, pn_addr_str(bound, a));
	fflush(stdout);
	return pn_rt_run(rt) ? 1 : 0;
}
