/* parley-login: creates a network (root key + network file), enrolls supernodes, and
 * serves registrations and logins. */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/addr.h"
#include "base/hex.h"
#include "base/log.h"
#include "cmdutil.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "parley/login.h"
#include "parley/network.h"
#include "parley/runtime.h"

static const char prog[] = "parley-login";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parley-login [serve] [options]\n"
		"       parley-login init --listen ADDR [--name NAME] [options]\n"
		"       parley-login enroll --supernode-pub FILE --address ADDR [--out FILE] [options]\n"
		"\n"
		"The parley login server. `init' creates a network: the root signing key, this\n"
		"server's transport key and the network file (DIR/network.conf) that every client\n"
		"and supernode loads. `enroll' signs a supernode's certificate and adds it to the\n"
		"network file as a bootstrap supernode. `serve' (the default) answers registrations,\n"
		"logins and certificate renewals.\n"
		"\n"
		"options:\n"
		"  --data-dir DIR        state directory (default $XDG_DATA_HOME/parley-login or\n"
		"                        ~/.local/share/parley-login)\n"
		"  --network FILE        network file (default DIR/network.conf)\n"
		"  --listen ADDR         UDP address, e.g. 127.0.0.1:7700 or [::]:7700\n"
		"                        (serve: default from the network file's login line)\n"
		"  --public-addr ADDR    init: the address clients use, if not --listen\n"
		"  --name NAME           init: the network's name (default \"parley\")\n"
		"  --db PATH             account database (default DIR/accounts.db)\n"
		"  --cert-lifetime SECS  device certificate lifetime (default 86400)\n"
		"  --argon2-ops N        Argon2id passes (default 2)\n"
		"  --argon2-mem-kib N    Argon2id memory in KiB (default 19456 = 19 MiB)\n"
		"  --register-per-min N  registrations per source host per minute (default 10)\n"
		"  --login-per-min N     logins per source host per minute (default 30)\n"
		"  --supernode-pub FILE  enroll: the supernode's public key file\n"
		"                        (written by `parley-supernode init')\n"
		"  --address ADDR        enroll: where clients reach that supernode\n"
		"  --days N              enroll: certificate validity (default 365)\n"
		"  --out FILE            enroll: where to write the certificate\n"
		"                        (default: next to the .pub file, named supernode.cert)\n"
		"  --config FILE         \"key = value\" lines with the long option names\n"
		"  --log-level LEVEL     error, warn, info (default) or debug\n"
		"  --help, --version\n"
		"\n"
		"serve prints \"parley-login: ready udp=ADDR\" on stdout when it listens.\n"
		"exit status: 0 success, 1 runtime error, 2 usage error\n");
}

enum opt_ix {
	O_DATA_DIR, O_NETWORK, O_LISTEN, O_PUBLIC, O_NAME, O_DB, O_LIFETIME, O_OPS, O_MEM,
	O_REG, O_LOGIN, O_SNPUB, O_ADDRESS, O_DAYS, O_OUT, O_LOGLEVEL, O_CONFIG, O_COUNT
};
static const char *const opt_names[O_COUNT] = {
	"data-dir", "network", "listen", "public-addr", "name", "db", "cert-lifetime",
	"argon2-ops", "argon2-mem-kib", "register-per-min", "login-per-min", "supernode-pub",
	"address", "days", "out", "log-level", "config"};
static char *opt[O_COUNT];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int cmd_init(const char *dir, const char *netpath)
{
	uint8_t root_seed[32], login_seed[32];
	struct pn_keys root, lk;
	struct pn_network net;
	char *rootf = cu_path_join(dir, "root.key"), *loginf = cu_path_join(dir, "login.key");
	const char *pub = opt[O_PUBLIC] ? opt[O_PUBLIC] : opt[O_LISTEN];
	char hex[65];
	int rc = 1;

	memset(&net, 0, sizeof(net));
	if (!pub) {
		fprintf(stderr, "%s init: --listen ADDR (or --public-addr ADDR) is required, e.g. "
				"--listen 127.0.0.1:7700\n", prog);
		rc = 2;
		goto out;
	}
	if (pn_addr_parse(&net.login.addr, pub)) {
		die("init: `%s' is not an address like 127.0.0.1:7700 or [::1]:7700", pub);
		rc = 2;
		goto out;
	}
	if (access(rootf, F_OK) == 0 || access(netpath, F_OK) == 0) {
		die("init: a network already exists here (`%s'); refusing to overwrite it", rootf);
		goto out;
	}
	randombytes_buf(root_seed, 32);
	randombytes_buf(login_seed, 32);
	if (cu_seed_create(rootf, root_seed) || cu_seed_create(loginf, login_seed)) {
		die("init: cannot write key files in `%s'", dir);
		goto out;
	}
	pn_keys_from_seed(&root, root_seed);
	pn_keys_from_seed(&lk, login_seed);
	snprintf(net.name, sizeof(net.name), "%s", opt[O_NAME] ? opt[O_NAME] : "parley");
	memcpy(net.root_pk, root.sign_pk, 32);
	memcpy(net.login.key, lk.dh_pk, 32);
	net.login.has_key = true;
	if (pn_network_save(&net, netpath)) {
		die("init: cannot write the network file `%s'", netpath);
		goto out;
	}
	printf("created network \"%s\"\n  root key:     %s (keep it secret: %s)\n", net.name,
	       pn_hex_encode(hex, sizeof(hex), root.sign_pk, 32), rootf);
	printf("  network file: %s (give it to clients and supernodes)\n", netpath);
	printf("next: `parley-supernode init', then `parley-login enroll --supernode-pub FILE "
	       "--address ADDR'\n");
	rc = 0;
	pn_keys_wipe(&root);
	pn_keys_wipe(&lk);
out:
	sodium_memzero(root_seed, sizeof(root_seed));
	sodium_memzero(login_seed, sizeof(login_seed));
	free(rootf);
	free(loginf);
	return rc;
}

/* The .pub file: "sign_pk = HEX" and "dh_pk = HEX" lines. */
static int read_pub(const char *path, uint8_t sign_pk[32], uint8_t dh_pk[32], char *name,
		    size_t nlen)
{
	static const char *const keys[] = {"sign_pk", "dh_pk", "name"};
	char *v[3] = {NULL, NULL, NULL};
	char **slots[3] = {&v[0], &v[1], &v[2]};
	int rc = cu_read_config(prog, path, keys, slots, 3);

	if (!rc && (!v[0] || !v[1] || pn_hex_decode(sign_pk, 32, v[0]) ||
		    pn_hex_decode(dh_pk, 32, v[1]))) {
		fprintf(stderr, "%s: `%s' needs sign_pk and dh_pk lines of 64 hex digits\n", prog,
			path);
		rc = -EINVAL;
	}
	snprintf(name, nlen, "%s", v[2] ? v[2] : "supernode");
	for (int i = 0; i < 3; i++)
		free(v[i]);
	return rc;
}

static int cmd_enroll(const char *dir, const char *netpath)
{
	uint8_t root_seed[32], cb[PN_CERT_MAX];
	struct pn_keys root;
	struct pn_network net;
	struct pn_cert c;
	struct pn_net_peer *p = NULL;
	char err[512], *rootf = cu_path_join(dir, "root.key"), *out = NULL, name[PN_CERT_NAME_MAX + 1];
	uint64_t days = 365;
	int rc = 1, cl;

	if (!opt[O_SNPUB] || !opt[O_ADDRESS]) {
		fprintf(stderr, "%s enroll: --supernode-pub FILE and --address ADDR are required\n", prog);
		rc = 2;
		goto out;
	}
	if (opt[O_DAYS] && cu_parse_u64(opt[O_DAYS], 1, 3650, &days)) {
		die("enroll: --days must be 1..3650, not `%s'", opt[O_DAYS]);
		rc = 2;
		goto out;
	}
	if (pn_network_load(&net, netpath, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	memset(&c, 0, sizeof(c));
	if (read_pub(opt[O_SNPUB], c.sign_pk, c.dh_pk, name, sizeof(name)))
		goto out;
	if (net.n_supernodes >= PN_NET_MAX_SUPERNODES) {
		die("enroll: the network file already lists the maximum of supernodes");
		goto out;
	}
	p = &net.supernodes[net.n_supernodes];
	if (pn_addr_parse(&p->addr, opt[O_ADDRESS])) {
		die("enroll: `%s' is not an address like 127.0.0.1:7701", opt[O_ADDRESS]);
		rc = 2;
		goto out;
	}
	if (cu_seed_load(rootf, root_seed)) {
		die("enroll: cannot read the root key `%s' (run `parley-login init' first)", rootf);
		goto out;
	}
	pn_keys_from_seed(&root, root_seed);
	sodium_memzero(root_seed, sizeof(root_seed));
	if (!pn_ct_eq(root.sign_pk, net.root_pk, 32)) {
		die("enroll: `%s' belongs to another network than `%s'", rootf, netpath);
		goto out;
	}
	c.version = 1;
	c.flags = PN_CERT_SUPERNODE;
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.not_before = (uint64_t)time(NULL) - 300;
	c.not_after = (uint64_t)time(NULL) + days * 86400;
	if (pn_cert_sign(&c, root.sign_sk) || (cl = pn_cert_encode(&c, cb, sizeof(cb))) < 0) {
		die("enroll: cannot sign the certificate");
		goto out;
	}
	if (opt[O_OUT]) {
		out = strdup(opt[O_OUT]);
	} else {
		char *d = strdup(opt[O_SNPUB]), *slash = strrchr(d, '/');
		if (slash)
			*slash = 0;
		out = cu_path_join(slash ? d : ".", "supernode.cert");
		free(d);
	}
	unlink(out);
	if (cu_write_file(out, cb, (size_t)cl, 0644)) {
		die("enroll: cannot write `%s'", out);
		goto out;
	}
	memcpy(p->key, c.dh_pk, 32);
	p->has_key = true;
	net.n_supernodes++;
	if (pn_network_save(&net, netpath)) {
		die("enroll: cannot update `%s'", netpath);
		goto out;
	}
	printf("enrolled supernode \"%s\" at %s\n  certificate: %s\n  added to %s\n", c.name,
	       opt[O_ADDRESS], out, netpath);
	rc = 0;
out:
	pn_keys_wipe(&root);
	free(rootf);
	free(out);
	return rc;
}

static int cmd_serve(const char *dir, const char *netpath)
{
	struct pn_network net;
	struct pn_login_config lc;
	struct pn_login_server *ls = NULL;
	struct pn_rt *rt = NULL;
	struct pn_addr listen, bound;
	char err[512], a[PN_ADDR_STRLEN], *rootf = cu_path_join(dir, "root.key"),
				      *loginf = cu_path_join(dir, "login.key"),
				      *db = opt[O_DB] ? strdup(opt[O_DB]) : cu_path_join(dir, "accounts.db");
	uint64_t v;
	int rc = 1;

	memset(&lc, 0, sizeof(lc));
	if (pn_network_load(&net, netpath, err, sizeof(err))) {
		fprintf(stderr, "%s: %s (create one with `parley-login init')\n", prog, err);
		goto out;
	}
	if (opt[O_LISTEN]) {
		if (pn_addr_parse(&listen, opt[O_LISTEN])) {
			die("--listen `%s' is not an address like 127.0.0.1:7700", opt[O_LISTEN]);
			rc = 2;
			goto out;
		}
	} else {
		listen = net.login.addr;
	}
#define NUMOPT(ix, lo, hi, field, mul)                                                             \
	if (opt[ix]) {                                                                             \
		if (cu_parse_u64(opt[ix], lo, hi, &v)) {                                           \
			fprintf(stderr, "%s: --%s must be %llu..%llu, not `%s'\n", prog,           \
				opt_names[ix], (unsigned long long)(lo), (unsigned long long)(hi), \
				opt[ix]);                                                          \
			rc = 2;                                                                    \
			goto out;                                                                  \
		}                                                                                  \
		lc.field = v * (mul);                                                              \
	}
	NUMOPT(O_LIFETIME, 60, 30 * 86400, cert_lifetime_s, 1)
	NUMOPT(O_OPS, 1, 100, pwhash_ops, 1)
	NUMOPT(O_MEM, 8, 4 * 1024 * 1024, pwhash_mem, 1024)
	NUMOPT(O_REG, 1, 1000000, register_per_min, 1)
	NUMOPT(O_LOGIN, 1, 1000000, login_per_min, 1)
#undef NUMOPT
	if (cu_seed_load(rootf, lc.root_seed) || cu_seed_load(loginf, lc.login_seed)) {
		die("cannot read the keys in `%s' (run `parley-login init --data-dir %s' first)", dir,
		    dir);
		goto out;
	}
	if (pn_rt_new(&rt)) {
		die("cannot start the event loop");
		goto out;
	}
	if (cu_set_log_level(prog, opt[O_LOGLEVEL])) {
		rc = 2;
		goto out;
	}
	rc = pn_rt_udp_bind(rt, &listen, &bound);
	if (rc) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, pn_addr_str(&listen, a),
			strerror(-rc));
		rc = 1;
		goto out;
	}
	lc.env = pn_rt_env(rt);
	lc.net = &net;
	lc.db_path = db;
	rc = pn_login_server_new(&ls, &lc);
	if (rc) {
		fprintf(stderr, "%s: cannot open the account database `%s': %s\n", prog, db,
			strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = cu_serve(prog, rt, &bound, ls, &pn_login_server_ops);
	{
		struct pn_login_stats st;
		pn_login_server_stats(ls, &st);
		pn_info("stopping: %llu registered, %llu logins, %llu renewals, %llu rate-limited, "
			"%llu refused, %llu bad packets",
			(unsigned long long)st.registered, (unsigned long long)st.logins,
			(unsigned long long)st.renewals, (unsigned long long)st.rejected_rate,
			(unsigned long long)st.rejected_auth, (unsigned long long)st.bad_packets);
	}
out:
	pn_login_server_free(ls);
	pn_rt_free(rt);
	sodium_memzero(&lc, sizeof(lc));
	free(rootf);
	free(loginf);
	free(db);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const subs[] = {"serve", "init", "enroll", NULL};
	const struct cu_prog p = {prog, "parley-login", opt_names, opt, O_COUNT, subs, usage};
	const char *sub;
	char *dir, *netpath;
	bool stop;
	int rc;

	rc = cu_prelude(&p, argc, argv, &sub, &dir, &netpath, &stop);
	if (!stop) {
		if (strcmp(sub, "init") == 0)
			rc = cmd_init(dir, netpath);
		else if (strcmp(sub, "enroll") == 0)
			rc = cmd_enroll(dir, netpath);
		else
			rc = cmd_serve(dir, netpath);
	}
	free(dir);
	free(netpath);
	cu_opts_free(&p);
	return rc;
}
