/* Shared plumbing for the programs in cmd/: option files, directories, key files. */
#ifndef PARLEY_CMD_CMDUTIL_H
#define PARLEY_CMD_CMDUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PARLEY_VERSION "0.1.0"

/* Reads "key = value" lines ('#' comments) into slots[i] for keys[i] unless that slot is
 * already set (flags win over the file). Errors are printed as "prog: file:line: ...".
 * 0 or -errno. Slots are malloc'd strings. */
int cu_read_config(const char *prog, const char *path, const char *const *keys, char ***slots,
		   size_t n);
/* mkdir -p, mode 0700 for what it creates. */
int cu_make_dirs(const char *path);
/* malloc'd "dir/name". */
char *cu_path_join(const char *dir, const char *name);
/* $XDG_DATA_HOME/<sub> or ~/.local/share/<sub>; malloc'd, NULL if neither is set. */
char *cu_default_data_dir(const char *sub);
/* A 32-byte secret seed stored as 64 hex digits in a file of mode 0600. create fails with
 * -EEXIST rather than overwrite an existing key. */
int cu_seed_create(const char *path, const uint8_t seed[32]);
int cu_seed_load(const char *path, uint8_t seed[32]);
/* Whole small file into a malloc'd buffer (max 64 KiB). */
int cu_read_file(const char *path, uint8_t **buf, size_t *len);
int cu_write_file(const char *path, const void *buf, size_t len, int mode);
/* Parses an unsigned decimal within [min, max]; -EINVAL otherwise. */
int cu_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Installs a stderr log sink with UTC timestamps at the given level name (NULL = info). */
int cu_set_log_level(const char *prog, const char *level);

/* The common start of an operator program: `prog [SUBCOMMAND] --long-option VALUE ...`.
 * opt[i] receives the value of --names[i] (malloc'd); names must include "config",
 * "data-dir" and "network". subs lists the accepted subcommands (the first is the
 * default). Then reads the config file, initialises libsodium, creates the data
 * directory (default: cu_default_data_dir(data_sub)) and fills *dir and *netpath
 * (DIR/network.conf unless --network).
 * Returns 0 to go on, or an exit status (0 after --help/--version) with *stop set. */
struct cu_prog {
	const char *prog;
	const char *data_sub;
	const char *const *names;
	char **opt;
	size_t n;
	const char *const *subs; /* NULL-terminated */
	void (*usage)(FILE *f);
};
int cu_prelude(const struct cu_prog *p, int argc, char **argv, const char **sub, char **dir,
	       char **netpath, bool *stop);
void cu_opts_free(const struct cu_prog *p);

struct pn_rt;
struct pn_addr;
struct pn_node_ops;
/* Hands node to the runtime, prints "prog: ready udp=ADDR" (scripts wait for it) and runs
 * until a signal. Returns the exit status (0 clean stop, 1 runtime error). */
int cu_serve(const char *prog, struct pn_rt *rt, const struct pn_addr *bound, void *node,
	     const struct pn_node_ops *ops);

#endif
