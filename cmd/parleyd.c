/* parleyd: the client daemon. Loads the network file, runs one client node on the libuv
 * runtime and serves the control API (docs/API.md) on a Unix socket. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/log.h"
#include "parley/api.h"
#include "parley/audio_device.h"
#include "parley/client.h"
#include "parley/network.h"
#include "parley/runtime.h"
#include "cmdutil.h"


enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* One setting: from a flag (highest), the environment, the config file, or a default. */
struct opts {
	char *data_dir;
	char *network;
	char *listen;
	char *socket;
	char *log_level;
	char *device_name;
	char *audio;
	char *config;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parleyd [options]\n"
		"\n"
		"The parley client daemon: keeps this device on the network and serves the\n"
		"control API (JSON lines, docs/API.md) that the `parley' CLI talks to.\n"
		"\n"
		"options:\n"
		"  --data-dir DIR      state directory (default $XDG_DATA_HOME/parley or\n"
		"                      ~/.local/share/parley; created with mode 0700)\n"
		"  --network FILE      network file (default DIR/network.conf)\n"
		"  --listen ADDR       UDP address to bind (default 0.0.0.0:0; [::]:0 for dual stack)\n"
		"  --socket PATH       API socket (default $PARLEY_SOCKET, else DIR/parleyd.sock)\n"
		"  --config FILE       read \"key = value\" lines; keys: data-dir, network, listen,\n"
		"                      socket, log-level, device-name, audio. Flags override the file.\n"
		"  --log-level LEVEL   error, warn, info (default) or debug\n"
		"  --device-name NAME  name of this device in device lists (default: host name)\n"
		"  --audio default|none  the sound device for calls without --play/--record files:\n"
		"                      the system's default input and output (PortAudio; with\n"
		"                      echo cancellation and noise suppression), or none\n"
		"                      (silence). Default: default.\n"
		"  --echo              be an echo test service: answer every call (from anyone)\n"
		"                      and play back what the caller said, a second later\n"
		"  --help              show this help\n"
		"  --version           show the version\n"
		"\n"
		"When ready, prints one line to stdout: \"parleyd: ready socket=PATH udp=ADDR\".\n"
		"Stops on SIGINT, SIGTERM or the API command \"shutdown\".\n"
		"exit status: 0 clean stop, 1 runtime error, 2 usage error\n");
}

static void opts_free(struct opts *o)
{
	free(o->data_dir);
	free(o->network);
	free(o->listen);
	free(o->socket);
	free(o->log_level);
	free(o->device_name);
	free(o->audio);
	free(o->config);
}

/* Sets *slot to a copy of v unless a higher-priority source already set it. */
static int set_once(char **slot, const char *v)
{
	if (*slot)
		return 0;
	*slot = strdup(v);
	return *slot ? 0 : -ENOMEM;
}

/* Fills the settings the flags left unset from the config file's "key = value" lines. */
static int read_config(struct opts *o)
{
	static const char *const keys[] = {"data-dir", "network",   "listen",
					   "socket",   "log-level", "device-name", "audio"};
	char **slots[] = {&o->data_dir, &o->network,   &o->listen,
			  &o->socket,   &o->log_level, &o->device_name, &o->audio};

	return cu_read_config("parleyd", o->config, keys, slots, 7);
}

/* True if a process accepts connections on the socket path: checked before the client
 * opens the database, so that a second daemon does not touch the first one's state. */
static bool socket_is_live(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	bool live;
	int fd;

	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	live = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return live;
}

static bool want_exit(void *arg)
{
	return pn_client_wants_exit(arg);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"network", required_argument, NULL, 'n'},
		{"listen", required_argument, NULL, 'l'},
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'L'},
		{"device-name", required_argument, NULL, 'N'},
		{"echo", no_argument, NULL, 'E'},
		{"audio", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	struct pn_network net;
	struct pn_client_config cfg = {0};
	struct pn_client *client = NULL;
	struct pn_api *api = NULL;
	struct pn_rt *rt = NULL;
	struct pn_rt_audio *audio = NULL;
	struct pn_addr listen_addr, bound;
	enum pn_log_level level = PN_LOG_INFO;
	char hostname[65] = "";
	char *db_path = NULL;
	char err[512];
	char as[PN_ADDR_STRLEN];
	struct stat st;
	int rc = EXIT_RUNTIME, c, r;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char **slot = NULL;

		switch (c) {
		case 'd': slot = &o.data_dir; break;
		case 'n': slot = &o.network; break;
		case 'l': slot = &o.listen; break;
		case 's': slot = &o.socket; break;
		case 'c': slot = &o.config; break;
		case 'L': slot = &o.log_level; break;
		case 'N': slot = &o.device_name; break;
		case 'A': slot = &o.audio; break;
		case 'E':
			cfg.echo_bot = true;
			continue;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		case 'V':
			printf("parleyd %s\n", PARLEY_VERSION);
			rc = 0;
			goto out;
		default:
			fprintf(stderr, "Try `parleyd --help'.\n");
			rc = EXIT_USAGE;
			goto out;
		}
		free(*slot);
		*slot = strdup(optarg);
		if (!*slot)
			goto out;
	}
	if (optind < argc) {
		fprintf(stderr, "parleyd: unexpected argument `%s'\nTry `parleyd --help'.\n",
			argv[optind]);
		rc = EXIT_USAGE;
		goto out;
	}
	/* Priority: flags, then PARLEY_SOCKET (socket only), then the config file. */
	if (getenv("PARLEY_SOCKET") && *getenv("PARLEY_SOCKET") &&
	    set_once(&o.socket, getenv("PARLEY_SOCKET")) < 0)
		goto out;
	if (o.config && read_config(&o) < 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (o.log_level && pn_log_parse_level(o.log_level, &level) < 0) {
		fprintf(stderr, "parleyd: invalid log level `%s' (use error, warn, info or debug)\n",
			o.log_level);
		rc = EXIT_USAGE;
		goto out;
	}
	pn_log_set_level(level);
	if (!o.data_dir) {
		o.data_dir = cu_default_data_dir("parley");
		if (!o.data_dir) {
			fprintf(stderr, "parleyd: neither HOME nor XDG_DATA_HOME is set; "
					"use --data-dir DIR\n");
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (!o.network && !(o.network = cu_path_join(o.data_dir, "network.conf")))
		goto out;
	if (!o.socket && !(o.socket = cu_path_join(o.data_dir, "parleyd.sock")))
		goto out;
	if (set_once(&o.listen, "0.0.0.0:0") < 0)
		goto out;
	if (pn_addr_parse(&listen_addr, o.listen) < 0) {
		fprintf(stderr,
			"parleyd: invalid listen address `%s' (expected e.g. 0.0.0.0:7000 or "
			"[::]:7000)\n",
			o.listen);
		rc = EXIT_USAGE;
		goto out;
	}
	if (strlen(o.socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "parleyd: socket path `%s' is too long (at most %zu bytes)\n",
			o.socket, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		rc = EXIT_USAGE;
		goto out;
	}
	if (o.device_name && (!*o.device_name || strlen(o.device_name) > 64)) {
		fprintf(stderr, "parleyd: invalid device name `%s' (1 to 64 bytes)\n",
			o.device_name);
		rc = EXIT_USAGE;
		goto out;
	}
	if (!o.device_name && gethostname(hostname, sizeof(hostname) - 1) == 0 && *hostname)
		o.device_name = strdup(hostname);

	r = cu_make_dirs(o.data_dir);
	if (r < 0) {
		fprintf(stderr, "parleyd: cannot create data directory `%s': %s\n", o.data_dir,
			strerror(-r));
		goto out;
	}
	if (stat(o.data_dir, &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "parleyd: warning: data directory `%s' is accessible to other "
				"users (mode %03o); chmod 700 it\n",
			o.data_dir, (unsigned)(st.st_mode & 0777));

	if (access(o.network, R_OK) < 0) {
		fprintf(stderr,
			"parleyd: cannot read network file `%s': %s (create one with "
			"`parley-login init`)\n",
			o.network, strerror(errno));
		goto out;
	}
	r = pn_network_load(&net, o.network, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "parleyd: %s\n", err);
		goto out;
	}
	if (socket_is_live(o.socket)) {
		fprintf(stderr, "parleyd: socket `%s' is in use (is another parleyd running?)\n",
			o.socket);
		goto out;
	}
	db_path = cu_path_join(o.data_dir, "parley.db");
	if (!db_path)
		goto out;

	r = pn_rt_new(&rt);
	if (r < 0) {
		fprintf(stderr, "parleyd: cannot start the event loop: %s\n", strerror(-r));
		goto out;
	}
	if (!o.audio || strcmp(o.audio, "default") == 0) {
		/* opened only while a call runs */
		r = pn_rt_audio_new(&audio);
		if (r < 0)
			goto out;
		cfg.audio = pn_rt_audio_ops(audio);
	} else if (strcmp(o.audio, "none") != 0) {
		fprintf(stderr, "parleyd: --audio must be `default' or `none', not `%s'\n", o.audio);
		rc = EXIT_USAGE;
		goto out;
	}
	cfg.env = pn_rt_env(rt);
	cfg.net = &net;
	cfg.db_path = db_path;
	cfg.device_name = o.device_name;
	r = pn_client_new(&client, &cfg);
	if (r < 0) {
		fprintf(stderr, "parleyd: cannot start the client with database `%s': %s\n",
			db_path, strerror(-r));
		goto out;
	}
	r = pn_api_new(&api, client);
	if (r < 0)
		goto out;
	pn_rt_set_node(rt, client, &pn_client_ops);
	r = pn_rt_udp_bind(rt, &listen_addr, &bound);
	if (r < 0) {
		fprintf(stderr, "parleyd: cannot bind UDP to `%s': %s\n", o.listen, strerror(-r));
		goto out;
	}
	r = pn_rt_api_listen(rt, o.socket, api);
	if (r == -EADDRINUSE) {
		fprintf(stderr, "parleyd: socket `%s' is in use (is another parleyd running?)\n",
			o.socket);
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "parleyd: cannot listen on socket `%s': %s\n", o.socket,
			strerror(-r));
		goto out;
	}
	pn_rt_set_exit_check(rt, want_exit, client);
	pn_info("parleyd %s on network `%s', data in `%s'", PARLEY_VERSION, net.name,
		o.data_dir);
	printf("parleyd: ready socket=%s udp=%s\n", o.socket, pn_addr_str(&bound, as));
	fflush(stdout);
	r = pn_rt_run(rt);
	if (r < 0) {
		fprintf(stderr, "parleyd: event loop failed: %s\n", strerror(-r));
		goto out;
	}
	pn_info("stopped");
	rc = 0;
out:
	/* The runtime first: closing its API connections frees them in the api. */
	pn_rt_free(rt);
	pn_api_free(api);
	pn_client_free(client);
	pn_rt_audio_free(audio);
	free(db_path);
	opts_free(&o);
	return rc;
}
