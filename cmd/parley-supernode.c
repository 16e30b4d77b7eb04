/* parley-supernode: attaches clients, keeps their records, answers lookups and forwards
 * end-to-end envelopes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "base/addr.h"
#include "base/hex.h"
#include "base/log.h"
#include "cmdutil.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "parley/network.h"
#include "parley/runtime.h"
#include "parley/supernode.h"

static const char prog[] = "parley-supernode";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parley-supernode [serve] --listen ADDR [options]\n"
		"       parley-supernode init [--name NAME] [options]\n"
		"\n"
		"A parley supernode. `init' creates its key (DIR/supernode.key) and a public key\n"
		"file (DIR/supernode.pub) for the network operator to enroll with\n"
		"`parley-login enroll --supernode-pub DIR/supernode.pub --address ADDR', which\n"
		"writes DIR/supernode.cert. `serve' (the default) then accepts clients.\n"
		"\n"
		"options:\n"
		"  --data-dir DIR      state directory (default $XDG_DATA_HOME/parley-supernode or\n"
		"                      ~/.local/share/parley-supernode)\n"
		"  --network FILE      network file (default DIR/network.conf)\n"
		"  --listen ADDR       UDP address, e.g. 127.0.0.1:7701 or [::]:7701 (required)\n"
		"  --public-addr ADDR  the address clients reach (default: --listen)\n"
		"  --cert FILE         certificate from the login server (default DIR/supernode.cert)\n"
		"  --max-clients N     attached devices at most (default 10000)\n"
		"  --overlay-per-prefix N  overlay contacts from one IPv4 /24 or IPv6 /48 per\n"
		"                      routing bucket (default 2; raise it for networks on one\n"
		"                      host or LAN, e.g. tests on loopback)\n"
		"  --name NAME         init: a label for this supernode (default \"supernode\")\n"
		"  --config FILE       \"key = value\" lines with the long option names\n"
		"  --log-level LEVEL   error, warn, info (default) or debug\n"
		"  --help, --version\n"
		"\n"
		"serve prints \"parley-supernode: ready udp=ADDR\" on stdout when it listens.\n"
		"exit status: 0 success, 1 runtime error, 2 usage error\n");
}

enum opt_ix {
	O_DATA_DIR, O_NETWORK, O_LISTEN, O_PUBLIC, O_CERT, O_MAX, O_NAME, O_LOGLEVEL, O_CONFIG,
	O_PER_PREFIX, O_COUNT
};
static const char *const opt_names[O_COUNT] = {
	"data-dir", "network", "listen", "public-addr", "cert", "max-clients", "name", "log-level",
	"config", "overlay-per-prefix"};
static char *opt[O_COUNT];

static int cmd_init(const char *dir)
{
	uint8_t seed[32];
	struct pn_keys k;
	char *keyf = cu_path_join(dir, "supernode.key"), *pubf = cu_path_join(dir, "supernode.pub");
	char buf[512], h1[65], h2[65];
	int rc = 1, n;

	if (access(keyf, F_OK) == 0) {
		fprintf(stderr, "%s init: `%s' already exists; refusing to overwrite the key\n", prog,
			keyf);
		goto out;
	}
	randombytes_buf(seed, sizeof(seed));
	if (cu_seed_create(keyf, seed)) {
		fprintf(stderr, "%s init: cannot write `%s'\n", prog, keyf);
		goto out;
	}
	pn_keys_from_seed(&k, seed);
	sodium_memzero(seed, sizeof(seed));
	n = snprintf(buf, sizeof(buf),
		     "# public keys of a parley supernode: give this file to the network operator\n"
		     "name = %s\nsign_pk = %s\ndh_pk = %s\n",
		     opt[O_NAME] ? opt[O_NAME] : "supernode", pn_hex_encode(h1, sizeof(h1), k.sign_pk, 32),
		     pn_hex_encode(h2, sizeof(h2), k.dh_pk, 32));
	pn_keys_wipe(&k);
	unlink(pubf);
	if (cu_write_file(pubf, buf, (size_t)n, 0644)) {
		fprintf(stderr, "%s init: cannot write `%s'\n", prog, pubf);
		goto out;
	}
	printf("created supernode key %s\npublic keys: %s\nnext: parley-login enroll "
	       "--supernode-pub %s --address ADDR --out %s/supernode.cert\n",
	       keyf, pubf, pubf, dir);
	rc = 0;
out:
	free(keyf);
	free(pubf);
	return rc;
}

static int cmd_serve(const char *dir, const char *netpath)
{
	struct pn_network net;
	struct pn_supernode_config sc;
	struct pn_supernode *sn = NULL;
	struct pn_rt *rt = NULL;
	struct pn_addr listen, bound;
	char err[512], a[PN_ADDR_STRLEN], *keyf = cu_path_join(dir, "supernode.key"),
					  *certf = opt[O_CERT] ? strdup(opt[O_CERT])
							       : cu_path_join(dir, "supernode.cert"),
					  *mbf = cu_path_join(dir, "mailboxes.db");
	uint8_t *cert = NULL;
	size_t cert_len = 0;
	uint64_t v;
	int rc = 1;

	memset(&sc, 0, sizeof(sc));
	if (!opt[O_LISTEN] || pn_addr_parse(&listen, opt[O_LISTEN])) {
		fprintf(stderr, "%s: --listen ADDR is required, like 127.0.0.1:7701 (got `%s')\n", prog,
			opt[O_LISTEN] ? opt[O_LISTEN] : "");
		rc = 2;
		goto out;
	}
	sc.public_addr = listen;
	if (opt[O_PUBLIC] && pn_addr_parse(&sc.public_addr, opt[O_PUBLIC])) {
		fprintf(stderr, "%s: --public-addr `%s' is not an address\n", prog, opt[O_PUBLIC]);
		rc = 2;
		goto out;
	}
	if (opt[O_MAX]) {
		if (cu_parse_u64(opt[O_MAX], 1, 1000000, &v)) {
			fprintf(stderr, "%s: --max-clients must be 1..1000000, not `%s'\n", prog, opt[O_MAX]);
			rc = 2;
			goto out;
		}
		sc.max_clients = (uint32_t)v;
	}
	if (opt[O_PER_PREFIX]) {
		if (cu_parse_u64(opt[O_PER_PREFIX], 1, 256, &v)) {
			fprintf(stderr, "%s: --overlay-per-prefix must be 1..256, not `%s'\n", prog,
				opt[O_PER_PREFIX]);
			rc = 2;
			goto out;
		}
		sc.kad_per_prefix = (uint32_t)v;
	}
	if (pn_network_load(&net, netpath, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	if (cu_seed_load(keyf, sc.seed)) {
		fprintf(stderr, "%s: cannot read `%s' (run `%s init --data-dir %s' first)\n", prog, keyf,
			prog, dir);
		goto out;
	}
	if (cu_read_file(certf, &cert, &cert_len)) {
		if (!net.open_policy || opt[O_CERT]) {
			fprintf(stderr, "%s: cannot read the certificate `%s' (have the operator run "
					"`parley-login enroll')\n", prog, certf);
			goto out;
		}
		/* an open network: serving without enrollment is allowed */
		cert = NULL;
		cert_len = 0;
		fprintf(stderr, "%s: no certificate; network `%s' is open, so serving without one\n",
			prog, net.name);
	}
	if (pn_rt_new(&rt)) {
		fprintf(stderr, "%s: cannot start the event loop\n", prog);
		goto out;
	}
	if (cu_set_log_level(prog, opt[O_LOGLEVEL])) {
		rc = 2;
		goto out;
	}
	sc.env = pn_rt_env(rt);
	sc.net = &net;
	sc.cert = cert;
	sc.cert_len = cert_len;
	sc.mailbox_db = mbf; /* mailboxes survive a restart */
	rc = pn_supernode_new(&sn, &sc);
	if (rc) {
		fprintf(stderr, "%s: certificate `%s' rejected: %s (is it for this key and network, "
				"and still valid?)\n", prog, certf, strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = pn_rt_udp_bind(rt, &listen, &bound);
	if (rc) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, pn_addr_str(&listen, a),
			strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = cu_serve(prog, rt, &bound, sn, &pn_supernode_ops);
	{
		struct pn_supernode_stats st;
		pn_supernode_stats(sn, &st);
		pn_info("stopping: %llu clients, %llu records, %llu lookups, %llu forwarded, "
			"%llu bad packets, %llu refused certificates, %llu replays",
			(unsigned long long)st.clients, (unsigned long long)st.records,
			(unsigned long long)st.lookups, (unsigned long long)st.forwarded,
			(unsigned long long)st.bad_packets, (unsigned long long)st.rejected_certs,
			(unsigned long long)st.replays);
		pn_info("mailboxes: %llu entries (%llu bytes) in %llu mailboxes, %llu stored, "
			"%llu deleted, %llu expired; refused: %llu envelopes, %llu acknowledgements, "
			"%llu replays, %llu over quota, %llu oversized",
			(unsigned long long)st.mb_entries, (unsigned long long)st.mb_bytes,
			(unsigned long long)st.mb_mailboxes, (unsigned long long)st.mb_stored,
			(unsigned long long)st.mb_deleted, (unsigned long long)st.mb_expired,
			(unsigned long long)st.mb_bad_envelopes, (unsigned long long)st.mb_bad_acks,
			(unsigned long long)st.mb_replays, (unsigned long long)st.mb_quota_refused,
			(unsigned long long)st.mb_oversized);
	}
out:
	pn_supernode_free(sn);
	pn_rt_free(rt);
	sodium_memzero(&sc, sizeof(sc));
	free(cert);
	free(keyf);
	free(certf);
	free(mbf);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const subs[] = {"serve", "init", NULL};
	const struct cu_prog p = {prog, "parley-supernode", opt_names, opt, O_COUNT, subs, usage};
	const char *sub;
	char *dir, *netpath;
	bool stop;
	int rc;

	rc = cu_prelude(&p, argc, argv, &sub, &dir, &netpath, &stop);
	if (!stop) {
		rc = strcmp(sub, "init") == 0 ? cmd_init(dir) : cmd_serve(dir, netpath);
	}
	free(dir);
	free(netpath);
	cu_opts_free(&p);
	return rc;
}
