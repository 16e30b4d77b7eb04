/* libFuzzer target: the network file parser, pn_network_load().
 *
 * pn_network_load() takes a path, so each input is written to a file under /tmp named
 * after this process (parallel fuzzing jobs do not collide). Whatever loads is saved and
 * loaded again, and must come back the same: the saver writes only what the loader
 * reads. The one normalisation is the name: an empty name is saved as "parley". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/addr.h"
#include "parley/network.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char in_path[64], out_path[64];

static void paths_remove(void)
{
	char tmp[80];

	unlink(in_path);
	unlink(out_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
	unlink(tmp);
}

static void paths_once(void)
{
	if (in_path[0])
		return;
	snprintf(in_path, sizeof(in_path), "/tmp/parley-fuzz-network-%ld.in", (long)getpid());
	snprintf(out_path, sizeof(out_path), "/tmp/parley-fuzz-network-%ld.out", (long)getpid());
	atexit(paths_remove);
}

static bool peer_eq(const struct pn_net_peer *a, const struct pn_net_peer *b)
{
	return pn_addr_eq(&a->addr, &b->addr) && a->has_key == b->has_key &&
	       memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

static void check_same(const struct pn_network *a, const struct pn_network *b)
{
	const char *want = a->name[0] ? a->name : "parley";

	if (strcmp(want, b->name) != 0 || memcmp(a->root_pk, b->root_pk, 32) != 0 ||
	    !peer_eq(&a->login, &b->login) || a->n_supernodes != b->n_supernodes ||
	    a->open_policy != b->open_policy)
		abort();
	for (unsigned i = 0; i < a->n_supernodes; i++)
		if (!peer_eq(&a->supernodes[i], &b->supernodes[i]))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pn_network n, m;
	char err[256];
	FILE *f;

	paths_once();
	f = fopen(in_path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	if (fclose(f))
		abort();
	memset(err, 0x55, sizeof(err));
	if (pn_network_load(&n, in_path, err, sizeof(err)) != 0) {
		if (!memchr(err, 0, sizeof(err)))
			abort(); /* the message must be terminated inside the buffer */
		return 0;
	}
	if (n.n_supernodes > PN_NET_MAX_SUPERNODES || strlen(n.name) > PN_NET_NAME_MAX ||
	    !n.login.has_key)
		abort();
	if (pn_network_save(&n, out_path) != 0)
		abort();
	if (pn_network_load(&m, out_path, err, sizeof(err)) != 0)
		abort();
	check_same(&n, &m);
	unlink(out_path);
	return 0;
}
