/* parley: the command-line client of parleyd. It only speaks the control API (JSON lines
 * over the daemon's Unix socket, docs/API.md); it links the core library for jansson and
 * libsodium only. A blocking socket with poll() deadlines is enough here. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#define PARLEY_VERSION "0.1.0"

enum exit_code {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_NO_DAEMON = 3,
	EXIT_TIMEOUT = 4,
};

enum limits {
	PASSWORD_MAX = 1024,
	READ_MAX = 64 << 20, /* a reply line larger than this is treated as a broken daemon */
};

struct cli {
	char *data_dir;
	char *sock_path;
	bool json;
	bool explicit_socket; /* from --socket or $PARLEY_SOCKET */
	double timeout_s; /* 0: wait forever */
	int fd;
	char *rbuf;
	size_t rlen, rcap;
	int next_id;
};

/* ---- help ------------------------------------------------------------------------------ */

static const char exit_codes_help[] =
	"exit status:\n"
	"  0  success\n"
	"  1  the daemon reported an error (printed as \"parley: <message> (<code>)\")\n"
	"  2  usage error\n"
	"  3  cannot reach the daemon\n"
	"  4  no answer within --timeout\n";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parley [global options] COMMAND [ARGS...]\n"
		"\n"
		"Talks to the parley daemon (parleyd) over its control socket.\n"
		"\n"
		"commands:\n"
		"  register USER [--password-stdin]         create an account\n"
		"  login USER [--password-stdin] [--device-name NAME]\n"
		"                                           log this device in\n"
		"  logout                                   log this device out\n"
		"  status                                   connection state\n"
		"  contacts add USER [--note TEXT] | remove USER | list | requests\n"
		"           | accept USER | decline USER | block USER | unblock USER\n"
		"                                           manage contacts and requests\n"
		"  whois USER                               look up a user's devices\n"
		"  send USER TEXT...                        send a message (words joined by spaces)\n"
		"  history USER [--limit N]                 conversation history (default 50)\n"
		"  search-history TEXT... [--limit N]       find messages by their words\n"
		"  read USER                                mark USER's messages read (they see it)\n"
		"  group create NAME [USER...] | invite GROUP USER... | remove GROUP USER\n"
		"        | leave GROUP | rename GROUP NAME... | list | members GROUP\n"
		"        | send GROUP TEXT... | history GROUP [--limit N] | read GROUP\n"
		"                                           group chats (GROUP: id or name)\n"
		"  profile set [--name N] [--city C] [--country CC] [--languages en,de] [--hidden]\n"
		"                                           publish this account's profile\n"
		"  search TEXT... [--limit N]               find people by their published profiles\n"
		"  call USER [--play WAV] [--record WAV] [--duration S] [--detach]\n"
		"                                           call USER (every device rings)\n"
		"  call stats [ID]                          statistics of the current call\n"
		"  answer [ID] [--play WAV] [--record WAV]  answer the ringing call\n"
		"  decline [ID] | hangup [ID]               refuse a ringing call / end a call\n"
		"  hold [ID] | resume [ID]                  put the call on hold and back\n"
		"  calls [--limit N]                        current call and the call log\n"
		"  settings [calls-from|messages-from contacts|anyone | mailbox-ttl S]\n"
		"                                           show or change settings\n"
		"  devices | devices revoke DEVICE-ID       this account's devices; revoke one\n"
		"  presence [online|away|dnd|invisible] [--mood TEXT]\n"
		"                                           your status, and your contacts'\n"
		"  events [--count N]                       print events as they happen\n"
		"  ping                                     check that the daemon answers\n"
		"  shutdown                                 stop the daemon\n"
		"\n"
		"global options:\n"
		"  --data-dir DIR     the daemon's data directory (socket DIR/parleyd.sock)\n"
		"  --socket PATH      the daemon's socket (default: $PARLEY_SOCKET, else\n"
		"                     DIR/parleyd.sock, DIR defaulting to $XDG_DATA_HOME/parley\n"
		"                     or ~/.local/share/parley)\n"
		"  --json             print results and events as JSON lines\n"
		"  --timeout SECONDS  how long to wait for an answer (default 30; 0 = forever)\n"
		"  --help             this help; `parley COMMAND --help' for one command\n"
		"  --version          show the version\n"
		"\n"
		"Passwords are read from the terminal without echo, or as one line from standard\n"
		"input when it is not a terminal (--password-stdin makes that explicit).\n"
		"\n%s",
		exit_codes_help);
}

struct cmd_help {
	const char *name;
	const char *text;
};

static const struct cmd_help cmd_helps[] = {
	{"register", "usage: parley register USER [--password-stdin]\n"
		     "Creates the account USER on the network's login server. The password\n"
		     "(at least 8 characters) is asked twice on a terminal.\n"},
	{"login", "usage: parley login USER [--password-stdin] [--device-name NAME]\n"
		  "Logs this device in as USER and attaches it to the network.\n"},
	{"logout", "usage: parley logout\nLogs this device out.\n"},
	{"status", "usage: parley status\nShows whether this device is logged out, connecting "
		   "or online.\n"},
	{"contacts", "usage: parley contacts add USER [--note TEXT]\n"
		     "       parley contacts remove USER\n"
		     "       parley contacts list\n"
		     "       parley contacts requests\n"
		     "       parley contacts accept USER | decline USER\n"
		     "       parley contacts block USER | unblock USER\n"
		     "Manages the contact list. `add' asks USER to add you back, with an optional\n"
		     "note (at most 200 bytes); they see it as a request they can accept (adding you)\n"
		     "or decline (silently). `list' shows each contact's presence; `requests' the\n"
		     "requests you got and sent (with the messages held from each stranger), and\n"
		     "who is blocked. A blocked user's requests, messages and calls are dropped\n"
		     "without telling them.\n"},
	{"whois", "usage: parley whois USER\n"
		  "Looks USER up in the directory: online devices and their supernodes.\n"},
	{"send", "usage: parley send USER TEXT...\n"
		 "Sends a message (the remaining arguments joined by spaces; at most 800 bytes).\n"
		 "Use `--' before text that starts with a dash.\n"},
	{"history", "usage: parley history USER [--limit N]\n"
		    "Shows the last N (default 50, at most 1000) messages with USER.\n"},
	{"read", "usage: parley read USER\n"
		 "Marks every message from USER read: USER's devices see \"read\", and so do your\n"
		 "other devices.\n"},
	{"group", "usage: parley group create NAME [USER...]\n"
		  "       parley group invite GROUP USER...\n"
		  "       parley group remove GROUP USER\n"
		  "       parley group leave GROUP\n"
		  "       parley group rename GROUP NAME...\n"
		  "       parley group list\n"
		  "       parley group members GROUP\n"
		  "       parley group send GROUP TEXT...\n"
		  "       parley group history GROUP [--limit N]\n"
		  "       parley group read GROUP\n"
		  "Group chats of up to 256 members. `create' makes a group (NAME: 1..64 bytes)\n"
		  "with you as its admin and invites the USERs; only the admin invites, removes\n"
		  "and renames; anyone leaves (an admin who leaves hands the role to the first\n"
		  "member by name). An invitation is only taken from a contact: people you invite\n"
		  "must have added you. GROUP is the group id (32 hex digits, from `list') or the\n"
		  "name of exactly one of your groups. `send' reaches every member's devices;\n"
		  "`history' shows the last N (default 50) messages, with delivered/read counts\n"
		  "for yours; `read' marks the group's messages read (their senders see it).\n"},
	{"search-history", "usage: parley search-history TEXT... [--limit N]\n"
			   "Finds messages in this device's history holding every word of TEXT (each\n"
			   "as a word prefix, any order, accents and case ignored), newest first, up\n"
			   "to N (default 50).\n"},
	{"profile", "usage: parley profile set [--name NAME] [--city CITY] [--country CC]\n"
		    "                          [--languages LL,LL...] [--hidden]\n"
		    "Publishes this account's profile on the login server, replacing the last one\n"
		    "(an option left out is stored empty). --country is an ISO 3166 two-letter code\n"
		    "(CH), --languages ISO 639-1 codes separated by commas (de,en). Others can find\n"
		    "the profile with `parley search' unless --hidden is given. Needs a login.\n"},
	{"search", "usage: parley search TEXT... [--limit N]\n"
		   "Searches the published profiles (name, city, country, languages, username)\n"
		   "for every word of TEXT, each as a word prefix; accents and case do not\n"
		   "matter (zurich finds Zürich). Shows up to N (default 20, at most 50) people.\n"
		   "Hidden profiles are never shown. To reach a known username, use `whois'.\n"},
	{"call", "usage: parley call USER [--play WAV] [--record WAV] [--duration S] [--detach]\n"
		 "       parley call stats [ID]\n"
		 "Calls USER: every online device of USER rings and the first to answer takes\n"
		 "the call. Follows the call until it ends, printing its progress and, every\n"
		 "second, its statistics; Ctrl-C hangs up. --play sends a WAV file (any rate,\n"
		 "mono or stereo) instead of silence, --record writes what is heard to a WAV\n"
		 "file (48 kHz mono), --duration hangs up S seconds after the answer, --detach\n"
		 "returns once the call is placed. `call stats' shows path, RTT, jitter, loss\n"
		 "before and after FEC, bitrate, jitter-buffer delay, concealment and MOS.\n"
		 "Exit status 0 when the call was answered, 1 otherwise (busy, declined, ...).\n"},
	{"answer", "usage: parley answer [ID] [--play WAV] [--record WAV]\n"
		   "Answers the ringing call (or call ID); --play/--record as for `call'.\n"},
	{"decline", "usage: parley decline [ID]\nRefuses the ringing call on every device.\n"},
	{"hangup", "usage: parley hangup [ID]\nEnds the current call (or cancels it while it rings).\n"},
	{"hold", "usage: parley hold [ID]\nPuts the current call on hold (no audio either way).\n"},
	{"resume", "usage: parley resume [ID]\nTakes the call off hold.\n"},
	{"calls", "usage: parley calls [--limit N]\nShows the current call and the last N (default 20) calls.\n"},
	{"devices", "usage: parley devices\n"
		    "       parley devices revoke DEVICE-ID\n"
		    "Lists the devices of this account, as the login server knows them (the one\n"
		    "you are on is marked), or revokes one: the login server will not log it in or\n"
		    "renew its certificate again (the certificate it holds runs out within 24 h).\n"},
	{"presence", "usage: parley presence [online|away|dnd|invisible] [--mood TEXT]\n"
		     "Without arguments shows your status and your contacts'. With a status (and/or\n"
		     "--mood, at most 100 bytes; --mood '' clears it) sets yours: your contacts see\n"
		     "it within a second, nobody else ever does. Invisible looks offline to them.\n"},
	{"settings", "usage: parley settings [calls-from contacts|anyone]\n"
		     "       parley settings [messages-from contacts|anyone]\n"
		     "       parley settings [mailbox-ttl SECONDS]\n"
		     "       parley settings [always-relay on|off]\n"
		     "Shows the settings, or sets who may call, and whose messages go straight to\n"
		     "your history: only contacts (the default) or anyone. A message from someone\n"
		     "else is held as a message request (`parley contacts requests'); accepting\n"
		     "them moves it into the history, declining or blocking deletes it.\n"
		     "mailbox-ttl: how long your messages wait in an offline recipient's mailbox\n"
		     "(60 to 7776000 seconds, default 2592000 = 30 days).\n"
		     "always-relay: never tell anyone, contacts included, our addresses (every\n"
		     "session then goes through the supernodes).\n"},
	{"paths", "usage: parley paths [USER]\n"
		  "Shows each end-to-end session and whether it goes directly or through the\n"
		  "supernodes' relay, with the time the session and the direct path took.\n"},
	{"nat-stream", "usage: parley nat-stream USER [--count N]\n"
		       "Test traffic: sends N (default 500) 160-byte frames, one every 20 ms, over\n"
		       "the session with USER's devices; `parley paths' on their side counts them.\n"},
	{"events", "usage: parley events [--count N]\n"
		   "Prints events (messages, delivery states, status changes) as they happen,\n"
		   "until N events were printed or it is interrupted.\n"},
	{"ping", "usage: parley ping\nChecks that the daemon answers.\n"},
	{"shutdown", "usage: parley shutdown\nStops the daemon.\n"},
};

static const char *find_cmd_help(const char *name)
{
	for (size_t i = 0; i < sizeof(cmd_helps) / sizeof(cmd_helps[0]); i++) {
		if (strcmp(cmd_helps[i].name, name) == 0)
			return cmd_helps[i].text;
	}
	return NULL;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("parley: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry `parley --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- output helpers ---------------------------------------------------------------------- */

/* Prints untrusted text (from other users) without control characters: a message must
 * not be able to drive the terminal with escape sequences or fake extra lines. */
static void put_clean(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\n' || ch == '\t')
			fputc(' ', f);
		else if (ch < 0x20 || ch == 0x7f)
			fputc('?', f);
		else
			fputc(ch, f);
	}
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void fmt_time(char out[32], json_int_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "%lld", (long long)secs);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s) {
		puts(s);
		free(s);
	}
}

/* ---- socket ------------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cli_connect(struct cli *c)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (strlen(c->sock_path) >= sizeof(sun.sun_path))
		return usage_error("socket path `%s' is too long", c->sock_path);
	memcpy(sun.sun_path, c->sock_path, strlen(c->sock_path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "parley: socket: %s\n", strerror(errno));
		return EXIT_NO_DAEMON;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if ((errno == ENOENT || errno == ECONNREFUSED) && c->explicit_socket)
			fprintf(stderr,
				"parley: no daemon at `%s' (is parleyd running? start it with "
				"`parleyd --socket %s')\n",
				c->sock_path, c->sock_path);
		else if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr,
				"parley: no daemon at `%s' (is parleyd running? start it with "
				"`parleyd --data-dir %s')\n",
				c->sock_path, c->data_dir);
		else
			fprintf(stderr, "parley: cannot connect to `%s': %s\n", c->sock_path,
				strerror(errno));
		return EXIT_NO_DAEMON;
	}
	return EXIT_OK;
}

static int cli_send(struct cli *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "parley: lost the daemon at `%s': %s\n", c->sock_path,
				strerror(errno));
			return EXIT_NO_DAEMON;
		}
		p += n;
		len -= (size_t)n;
	}
	return EXIT_OK;
}

/* Reads one line (NUL-terminated in place, valid until the next call) before deadline
 * (-1: none). Returns EXIT_OK, EXIT_TIMEOUT or EXIT_NO_DAEMON. */
static int cli_read_line(struct cli *c, int64_t deadline, char **line, size_t *consumed)
{
	for (;;) {
		char *nl = c->rbuf ? memchr(c->rbuf, '\n', c->rlen) : NULL;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int wait_ms = -1, r;
		ssize_t n;

		if (nl) {
			*nl = 0;
			*line = c->rbuf;
			*consumed = (size_t)(nl - c->rbuf) + 1;
			return EXIT_OK;
		}
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return EXIT_TIMEOUT;
			wait_ms = left > 86400000 ? 86400000 : (int)left;
		}
		r = poll(&pfd, 1, wait_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return EXIT_NO_DAEMON;
		if (r == 0)
			continue; /* the deadline check above decides */
		if (c->rcap - c->rlen < 65536) {
			size_t cap = c->rcap ? c->rcap * 2 : 131072;
			char *nb;

			if (cap > READ_MAX) {
				fprintf(stderr, "parley: reply from the daemon is too large\n");
				return EXIT_NO_DAEMON;
			}
			nb = realloc(c->rbuf, cap);
			if (!nb) {
				fprintf(stderr, "parley: out of memory\n");
				return EXIT_NO_DAEMON;
			}
			c->rbuf = nb;
			c->rcap = cap;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "parley: the daemon at `%s' closed the connection\n",
				c->sock_path);
			return EXIT_NO_DAEMON;
		}
		c->rlen += (size_t)n;
	}
}

static void cli_consume(struct cli *c, size_t n)
{
	memmove(c->rbuf, c->rbuf + n, c->rlen - n);
	c->rlen -= n;
}

static int64_t cli_deadline(const struct cli *c)
{
	if (c->timeout_s <= 0)
		return -1;
	return now_ms() + (int64_t)(c->timeout_s * 1000.0);
}

/* Waits for the response to request id; events that arrive meanwhile are skipped. On
 * success *result is a new reference to the result object. */
static int cli_wait_reply(struct cli *c, int id, json_t **result)
{
	int64_t deadline = cli_deadline(c);

	for (;;) {
		char *line;
		size_t used;
		json_t *j, *e;
		int r = cli_read_line(c, deadline, &line, &used);

		if (r == EXIT_TIMEOUT) {
			fprintf(stderr, "parley: no answer from the daemon within %g s (timeout)\n",
				c->timeout_s);
			return r;
		}
		if (r != EXIT_OK)
			return r;
		j = json_loads(line, 0, NULL);
		cli_consume(c, used);
		if (!j)
			continue;
		if (json_integer_value(json_object_get(j, "id")) != id ||
		    !json_is_integer(json_object_get(j, "id"))) {
			json_decref(j);
			continue;
		}
		if (json_is_true(json_object_get(j, "ok"))) {
			*result = json_incref(json_object_get(j, "result"));
			if (!*result)
				*result = json_object();
			json_decref(j);
			return EXIT_OK;
		}
		e = json_object_get(j, "error");
		fputs("parley: ", stderr);
		put_clean(stderr, json_string_value(json_object_get(e, "message")));
		fputs(" (", stderr);
		put_clean(stderr, jstr(e, "code"));
		fputs(")\n", stderr);
		json_decref(j);
		return EXIT_DAEMON_ERROR;
	}
}

/* Escapes s as the inside of a JSON string into out (cap >= 6*strlen(s)+1). */
static size_t json_escape_into(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[ch >> 4];
			out[n + 5] = hex[ch & 15];
			n += 6;
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = 0;
	return n;
}

/* Sends {"id":N,"cmd":cmd,"args":args} and waits for the reply. The password, if any, is
 * spliced into the args text by hand so that it never lands in jansson's memory, and the
 * request bytes are wiped after sending. */
static int cli_request(struct cli *c, const char *cmd, json_t *args, const char *password,
		       json_t **result)
{
	char *args_s = NULL, *req = NULL, *cmd_s = NULL;
	size_t cap, n;
	int id = ++c->next_id, rc;
	json_t *cmdj;

	*result = NULL;
	args_s = args ? json_dumps(args, JSON_COMPACT) : strdup("{}");
	cmdj = json_string(cmd);
	cmd_s = cmdj ? json_dumps(cmdj, JSON_ENCODE_ANY) : NULL;
	json_decref(cmdj);
	if (!args_s || !cmd_s) {
		fprintf(stderr, "parley: out of memory\n");
		rc = EXIT_USAGE;
		goto out;
	}
	cap = strlen(args_s) + strlen(cmd_s) + 64 + (password ? 6 * strlen(password) + 16 : 0);
	req = malloc(cap);
	if (!req) {
		fprintf(stderr, "parley: out of memory\n");
		rc = EXIT_USAGE;
		goto out;
	}
	n = (size_t)snprintf(req, cap, "{\"id\":%d,\"cmd\":%s,\"args\":", id, cmd_s);
	if (password) {
		n += (size_t)snprintf(req + n, cap - n, "{\"password\":\"");
		n += json_escape_into(req + n, password);
		req[n++] = '"';
		if (strcmp(args_s, "{}") != 0)
			req[n++] = ',';
		n += (size_t)snprintf(req + n, cap - n, "%s", args_s + 1);
	} else {
		n += (size_t)snprintf(req + n, cap - n, "%s", args_s);
	}
	n += (size_t)snprintf(req + n, cap - n, "}\n");
	rc = cli_send(c, req, n);
	if (rc == EXIT_OK)
		rc = cli_wait_reply(c, id, result);
out:
	if (req) {
		sodium_memzero(req, cap);
		free(req);
	}
	free(args_s);
	free(cmd_s);
	return rc;
}

/* ---- passwords --------------------------------------------------------------------------- */

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty_and_die(int sig)
{
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from fd 0 byte by byte (no stdio buffer keeps a copy). */
static int read_secret_line(char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(STDIN_FILENO, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (n + 1 >= cap) {
			sodium_memzero(buf, cap);
			return -EMSGSIZE;
		}
		buf[n++] = ch;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = 0;
	return (int)n;
}

static int read_password(const char *prompt, char *buf, size_t cap, bool from_stdin)
{
	struct termios t;
	int r;

	if (from_stdin || !isatty(STDIN_FILENO))
		return read_secret_line(buf, cap);
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return read_secret_line(buf, cap);
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;
	signal(SIGINT, restore_tty_and_die);
	signal(SIGTERM, restore_tty_and_die);
	fputs(prompt, stderr);
	fflush(stderr);
	tty_changed = 1;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	r = read_secret_line(buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_changed = 0;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return r;
}

/* Gets the password for register (twice on a terminal) or login into pw[PASSWORD_MAX]. */
static int get_password(char *pw, bool from_stdin, bool confirm)
{
	char again[PASSWORD_MAX];
	int r;

	r = read_password("Password: ", pw, PASSWORD_MAX, from_stdin);
	if (r == -EMSGSIZE) {
		fprintf(stderr, "parley: password longer than %d bytes\n", PASSWORD_MAX - 1);
		return EXIT_USAGE;
	}
	if (r <= 0) {
		fprintf(stderr, "parley: empty password\n");
		return EXIT_USAGE;
	}
	if (!confirm || from_stdin || !isatty(STDIN_FILENO))
		return EXIT_OK;
	r = read_password("Repeat password: ", again, sizeof(again), false);
	if (r < 0 || strcmp(pw, again) != 0) {
		sodium_memzero(again, sizeof(again));
		sodium_memzero(pw, PASSWORD_MAX);
		fprintf(stderr, "parley: the passwords do not match\n");
		return EXIT_USAGE;
	}
	sodium_memzero(again, sizeof(again));
	return EXIT_OK;
}

/* ---- human output per command ------------------------------------------------------------ */

static void show_status(json_t *r)
{
	const char *state = jstr(r, "state");
	json_t *net = json_object_get(r, "network");
	char when[32];

	if (strcmp(state, "logged_out") == 0) {
		printf("logged out");
	} else {
		printf("%s as ", state);
		put_clean(stdout, jstr(r, "username"));
		if (json_object_get(r, "device_id"))
			printf(", device %s", jstr(r, "device_id"));
		if (json_object_get(r, "supernode"))
			printf(", via %s", jstr(r, "supernode"));
		if (json_is_integer(json_object_get(r, "cert_expires"))) {
			fmt_time(when, json_integer_value(json_object_get(r, "cert_expires")));
			printf(", certificate valid until %s", when);
		}
	}
	if (json_is_string(net)) {
		printf(" (network ");
		put_clean(stdout, json_string_value(net));
		printf(")");
	} else if (json_is_object(net) && json_is_string(json_object_get(net, "name"))) {
		printf(" (network ");
		put_clean(stdout, jstr(net, "name"));
		printf(")");
	}
	putchar('\n');
}

static void show_whois(json_t *r)
{
	json_t *devs = json_object_get(r, "devices"), *d;
	size_t i, n = json_array_size(devs);
	char when[32];

	put_clean(stdout, jstr(r, "username"));
	if (json_is_true(json_object_get(r, "online")))
		printf(" is online with %zu device%s\n", n, n == 1 ? "" : "s");
	else
		printf(" is offline\n");
	json_array_foreach(devs, i, d)
	{
		json_t *sns = json_object_get(d, "supernodes"), *sn;
		size_t k;

		printf("  device %s  via ", jstr(d, "device_id"));
		json_array_foreach(sns, k, sn)
		{
			if (k)
				putchar(',');
			put_clean(stdout, json_string_value(sn));
		}
		if (json_array_size(sns) == 0)
			printf("-");
		fmt_time(when, json_integer_value(json_object_get(d, "expires")));
		printf("  until %s  seq %lld\n", when,
		       (long long)json_integer_value(json_object_get(d, "seq")));
	}
}

static void show_history(json_t *r)
{
	json_t *msgs = json_object_get(r, "messages"), *m;
	size_t i;
	char when[32];

	if (json_array_size(msgs) == 0)
		fprintf(stderr, "no messages\n");
	json_array_foreach(msgs, i, m)
	{
		json_int_t ms = json_integer_value(json_object_get(m, "sent_at"));

		fmt_time(when, ms / 1000);
		printf("%s  ", when);
		put_clean(stdout, jstr(m, "from"));
		printf(" \u2192 ");
		put_clean(stdout, jstr(m, "to"));
		printf("  ");
		put_clean(stdout, jstr(m, "text"));
		printf("  [%s]\n", jstr(m, "state"));
	}
}

static void show_contacts(json_t *r)
{
	json_t *list = json_object_get(r, "contacts"), *ct;
	size_t i;
	char when[32];

	if (json_array_size(list) == 0)
		fprintf(stderr, "no contacts\n");
	json_array_foreach(list, i, ct)
	{
		put_clean(stdout, jstr(ct, "username"));
		if (json_object_get(ct, "status")) {
			printf("  %s", jstr(ct, "status"));
			if (*jstr(ct, "mood")) {
				printf(" — ");
				put_clean(stdout, jstr(ct, "mood"));
			}
		}
		if (json_is_integer(json_object_get(ct, "added_at"))) {
			fmt_time(when, json_integer_value(json_object_get(ct, "added_at")));
			printf("  (added %s)", when);
		}
		putchar('\n');
	}
}

static void show_search(json_t *r)
{
	json_t *list = json_object_get(r, "results"), *p;
	size_t i;

	if (json_array_size(list) == 0)
		fprintf(stderr, "nobody found\n");
	json_array_foreach(list, i, p)
	{
		put_clean(stdout, jstr(p, "username"));
		if (*jstr(p, "display_name")) {
			printf("  ");
			put_clean(stdout, jstr(p, "display_name"));
		}
		if (*jstr(p, "city") || *jstr(p, "country")) {
			printf("  (");
			put_clean(stdout, jstr(p, "city"));
			if (*jstr(p, "city") && *jstr(p, "country"))
				printf(", ");
			put_clean(stdout, jstr(p, "country"));
			printf(")");
		}
		if (*jstr(p, "languages")) {
			printf("  speaks ");
			put_clean(stdout, jstr(p, "languages"));
		}
		putchar('\n');
	}
}

static void show_call(json_t *r, bool stats)
{
	json_t *st = json_object_get(r, "stats");

	printf("call %s %s ", jstr(r, "id"), strcmp(jstr(r, "direction"), "outgoing") == 0 ? "to" : "from");
	put_clean(stdout, jstr(r, "peer"));
	printf(": %s", jstr(r, "state"));
	if (json_object_get(r, "reason"))
		printf(" (%s)", jstr(r, "reason"));
	if (json_is_true(json_object_get(r, "local_hold")))
		printf(", on hold");
	if (json_is_true(json_object_get(r, "remote_hold")))
		printf(", held by the other side");
	if (json_is_integer(json_object_get(r, "duration_ms")))
		printf(", %.1f s", (double)json_integer_value(json_object_get(r, "duration_ms")) / 1000.0);
	putchar('\n');
	if (stats && st) {
		printf("  path %s, rtt %.0f ms, jitter %.1f ms, loss %.1f %% before FEC, %.1f %% after\n",
		       json_object_get(r, "path") ? jstr(r, "path") : "relayed",
		       json_number_value(json_object_get(st, "rtt_ms")),
		       json_number_value(json_object_get(st, "jitter_ms")),
		       100 * json_number_value(json_object_get(st, "loss_pre_fec")),
		       100 * json_number_value(json_object_get(st, "loss_post_fec")));
		printf("  bitrate %.1f kbit/s%s, jitter buffer %.0f ms, concealed %.1f %%, MOS %.2f\n",
		       (double)json_integer_value(json_object_get(st, "bitrate_bps")) / 1000.0,
		       json_is_true(json_object_get(st, "fec")) ? " + FEC" : "",
		       json_number_value(json_object_get(st, "jitter_buffer_ms")),
		       json_number_value(json_object_get(st, "concealed_pct")),
		       json_number_value(json_object_get(st, "mos")));
	}
}

static void show_calls(json_t *r)
{
	json_t *cur = json_object_get(r, "current"), *hist = json_object_get(r, "history"), *e;
	size_t i;
	char when[32];

	json_array_foreach(cur, i, e)
		show_call(e, false);
	if (json_array_size(cur) == 0)
		printf("no call in progress\n");
	json_array_foreach(hist, i, e) {
		json_int_t a = json_integer_value(json_object_get(e, "answered_at"));
		json_int_t z = json_integer_value(json_object_get(e, "ended_at"));
		fmt_time(when, json_integer_value(json_object_get(e, "started_at")) / 1000);
		printf("%s  %s ", when, strcmp(jstr(e, "direction"), "outgoing") == 0 ? "to  " : "from");
		put_clean(stdout, jstr(e, "peer"));
		printf("  %s", jstr(e, "reason"));
		if (a)
			printf(", %.0f s", (double)(z - a) / 1000.0);
		if (json_is_number(json_object_get(e, "mos")))
			printf(", MOS %.2f", json_number_value(json_object_get(e, "mos")));
		putchar('\n');
	}
}

static void show_event(json_t *ev)
{
	const char *name = jstr(ev, "event");
	json_t *d = json_object_get(ev, "data");
	char when[32];

	if (strcmp(name, "message.received") == 0) {
		fmt_time(when, json_integer_value(json_object_get(d, "sent_at")) / 1000);
		printf("%s  message from ", when);
		put_clean(stdout, jstr(d, "from"));
		if (json_object_get(d, "group"))
			printf(" in group %s", jstr(d, "group"));
		printf(": ");
		put_clean(stdout, jstr(d, "text"));
		printf("  [%s]\n", jstr(d, "id"));
	} else if (strcmp(name, "message.state") == 0 && json_object_get(d, "members")) {
		printf("message %s to group %s: %s, delivered %lld/%lld, read %lld/%lld\n",
		       jstr(d, "id"), jstr(d, "group"), jstr(d, "state"),
		       (long long)json_integer_value(json_object_get(d, "delivered")),
		       (long long)json_integer_value(json_object_get(d, "members")),
		       (long long)json_integer_value(json_object_get(d, "read")),
		       (long long)json_integer_value(json_object_get(d, "members")));
	} else if (strcmp(name, "message.state") == 0) {
		printf("message %s to ", jstr(d, "id"));
		put_clean(stdout, jstr(d, "to"));
		printf(": %s\n", jstr(d, "state"));
	} else if (strcmp(name, "call.state") == 0) {
		show_call(d, false);
	} else if (strcmp(name, "call.stats") == 0) {
		show_call(d, true);
	} else if (strcmp(name, "contact.request") == 0) {
		printf("contact request from ");
		put_clean(stdout, jstr(d, "from"));
		if (*jstr(d, "note")) {
			printf(": ");
			put_clean(stdout, jstr(d, "note"));
		}
		printf("  (parley contacts accept|decline|block USER)\n");
	} else if (strcmp(name, "contact.accepted") == 0) {
		put_clean(stdout, jstr(d, "username"));
		printf(" accepted: you are contacts now\n");
	} else if (strcmp(name, "presence.changed") == 0) {
		put_clean(stdout, jstr(d, "username"));
		printf(" is now %s", jstr(d, "status"));
		if (*jstr(d, "mood")) {
			printf(" — ");
			put_clean(stdout, jstr(d, "mood"));
		}
		putchar('\n');
	} else if (strcmp(name, "status.changed") == 0) {
		printf("status: %s", jstr(d, "state"));
		if (json_object_get(d, "supernode"))
			printf(" (supernode %s)", jstr(d, "supernode"));
		putchar('\n');
	} else {
		char *s = json_dumps(d, JSON_COMPACT);

		put_clean(stdout, name);
		putchar(' ');
		put_clean(stdout, s);
		putchar('\n');
		free(s);
	}
	fflush(stdout);
}

static void show_group_line(json_t *g)
{
	printf("%s  ", jstr(g, "group"));
	put_clean(stdout, jstr(g, "name"));
	printf("  %lld member(s), admin ", (long long)json_integer_value(json_object_get(g, "members")));
	put_clean(stdout, jstr(g, "admin"));
	printf(", version %lld%s\n", (long long)json_integer_value(json_object_get(g, "version")),
	       json_is_true(json_object_get(g, "member")) ? "" : "  (you are not a member)");
}

static void show_group(const char *sub, json_t *r)
{
	json_t *e;
	size_t i;
	char when[32];

	if (strcmp(sub, "list") == 0) {
		if (json_array_size(json_object_get(r, "groups")) == 0)
			fprintf(stderr, "no groups\n");
		json_array_foreach(json_object_get(r, "groups"), i, e)
			show_group_line(e);
	} else if (strcmp(sub, "members") == 0) {
		show_group_line(r);
		json_array_foreach(json_object_get(r, "list"), i, e) {
			printf("  ");
			put_clean(stdout, json_string_value(e));
			putchar('\n');
		}
	} else if (strcmp(sub, "send") == 0) {
		printf("message %s %s (to %lld member(s))\n", jstr(r, "id"), jstr(r, "state"),
		       (long long)json_integer_value(json_object_get(r, "members")));
	} else if (strcmp(sub, "history") == 0) {
		if (json_array_size(json_object_get(r, "messages")) == 0)
			fprintf(stderr, "no messages\n");
		json_array_foreach(json_object_get(r, "messages"), i, e) {
			fmt_time(when, json_integer_value(json_object_get(e, "sent_at")) / 1000);
			printf("%s  ", when);
			put_clean(stdout, jstr(e, "from"));
			printf(": ");
			put_clean(stdout, jstr(e, "text"));
			if (json_object_get(e, "members"))
				printf("  [%s, delivered %lld/%lld, read %lld/%lld]\n", jstr(e, "state"),
				       (long long)json_integer_value(json_object_get(e, "delivered")),
				       (long long)json_integer_value(json_object_get(e, "members")),
				       (long long)json_integer_value(json_object_get(e, "read")),
				       (long long)json_integer_value(json_object_get(e, "members")));
			else
				printf("  [%s]\n", jstr(e, "state"));
		}
	} else if (strcmp(sub, "read") == 0) {
		printf("%lld message(s) marked read\n",
		       (long long)json_integer_value(json_object_get(r, "marked")));
	} else {
		show_group_line(r);
	}
}

static void show_result(const char *cmd, const char *sub, json_t *r)
{
	char when[32];

	if (strcmp(cmd, "register") == 0) {
		printf("registered ");
		put_clean(stdout, jstr(r, "username"));
		putchar('\n');
	} else if (strcmp(cmd, "login") == 0) {
		printf("logged in as ");
		put_clean(stdout, jstr(r, "username"));
		printf(" (device %s", jstr(r, "device_id"));
		if (json_object_get(r, "supernode"))
			printf(", via %s", jstr(r, "supernode"));
		if (json_is_integer(json_object_get(r, "cert_expires"))) {
			fmt_time(when, json_integer_value(json_object_get(r, "cert_expires")));
			printf(", certificate valid until %s", when);
		}
		printf(")\n");
	} else if (strcmp(cmd, "logout") == 0) {
		printf("logged out\n");
	} else if (strcmp(cmd, "status") == 0) {
		show_status(r);
	} else if (strcmp(cmd, "contacts") == 0) {
		if (strcmp(sub, "list") == 0) {
			show_contacts(r);
		} else if (strcmp(sub, "requests") == 0) {
			json_t *e;
			size_t i;
			if (json_array_size(json_object_get(r, "requests")) == 0)
				fprintf(stderr, "no requests, nobody blocked\n");
			json_array_foreach(json_object_get(r, "requests"), i, e) {
				const char *k = jstr(e, "kind");
				printf("%s ", strcmp(k, "incoming") == 0 ? "from   " :
					      strcmp(k, "outgoing") == 0 ? "to     " : "blocked");
				put_clean(stdout, jstr(e, "username"));
				if (*jstr(e, "note")) {
					printf(": ");
					put_clean(stdout, jstr(e, "note"));
				}
				putchar('\n');
				{
					json_t *m;
					size_t j;
					json_array_foreach(json_object_get(e, "messages"), j, m) {
						printf("        message: ");
						put_clean(stdout, jstr(m, "text"));
						putchar('\n');
					}
				}
			}
		} else {
			static const char *const done[][2] = {
				{"add", "added contact (a request is on its way)"}, {"remove", "removed contact"},
				{"accept", "accepted"}, {"decline", "declined the request of"},
				{"block", "blocked"}, {"unblock", "unblocked"}};
			for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++)
				if (strcmp(sub, done[i][0]) == 0)
					printf("%s ", done[i][1]);
			put_clean(stdout, jstr(r, "username"));
			putchar('\n');
		}
	} else if (strcmp(cmd, "whois") == 0) {
		show_whois(r);
	} else if (strcmp(cmd, "send") == 0) {
		const char *st = jstr(r, "state");

		printf("message %s %s%s\n", jstr(r, "id"), st,
		       strcmp(st, "queued") == 0 ? " (recipient offline; kept in their mailbox)"
						 : "");
	} else if (strcmp(cmd, "history") == 0 || strcmp(cmd, "search-history") == 0) {
		show_history(r);
	} else if (strcmp(cmd, "profile") == 0) {
		printf("profile published\n");
	} else if (strcmp(cmd, "search") == 0) {
		show_search(r);
	} else if (strcmp(cmd, "call") == 0 || strcmp(cmd, "answer") == 0 ||
		   strcmp(cmd, "decline") == 0 || strcmp(cmd, "hangup") == 0 ||
		   strcmp(cmd, "hold") == 0 || strcmp(cmd, "resume") == 0) {
		show_call(r, strcmp(sub, "stats") == 0);
	} else if (strcmp(cmd, "calls") == 0) {
		show_calls(r);
	} else if (strcmp(cmd, "group") == 0) {
		show_group(sub, r);
	} else if (strcmp(cmd, "read") == 0) {
		printf("%lld message(s) from ", (long long)json_integer_value(json_object_get(r, "marked")));
		put_clean(stdout, jstr(r, "with"));
		printf(" marked read\n");
	} else if (strcmp(cmd, "devices") == 0) {
		json_t *e;
		size_t i;
		if (*sub)
			printf("device revoked\n");
		json_array_foreach(json_object_get(r, "devices"), i, e) {
			fmt_time(when, json_integer_value(json_object_get(e, "last_seen")));
			printf("%s  ", jstr(e, "device_id"));
			put_clean(stdout, jstr(e, "name"));
			printf("  last seen %s%s%s\n", when,
			       json_is_true(json_object_get(e, "revoked")) ? "  REVOKED" : "",
			       json_is_true(json_object_get(e, "this_device")) ? "  (this device)" : "");
		}
	} else if (strcmp(cmd, "presence") == 0) {
		json_t *e;
		size_t i;
		printf("you: %s", jstr(r, "status"));
		if (*jstr(r, "mood")) {
			printf(" — ");
			put_clean(stdout, jstr(r, "mood"));
		}
		putchar('\n');
		json_array_foreach(json_object_get(r, "contacts"), i, e) {
			put_clean(stdout, jstr(e, "username"));
			printf(": %s", jstr(e, "status"));
			if (*jstr(e, "mood")) {
				printf(" — ");
				put_clean(stdout, jstr(e, "mood"));
			}
			putchar('\n');
		}
	} else if (strcmp(cmd, "paths") == 0) {
		json_t *e;
		size_t i;
		json_array_foreach(json_object_get(r, "sessions"), i, e) {
			put_clean(stdout, jstr(e, "user"));
			printf(" %.8s  %s", jstr(e, "device"), jstr(e, "path"));
			if (*jstr(e, "address"))
				printf(" %s", jstr(e, "address"));
			if (json_object_get(e, "direct_ms"))
				printf("  (direct after %lld ms)",
				       (long long)json_integer_value(json_object_get(e, "direct_ms")));
			putchar('\n');
		}
	} else if (strcmp(cmd, "nat-stream") == 0) {
		printf("streaming to %lld device(s)\n", (long long)json_integer_value(json_object_get(r, "devices")));
	} else if (strcmp(cmd, "settings") == 0) {
		printf("calls from: %s\n", jstr(r, "calls_from"));
		printf("messages from: %s\n", jstr(r, "messages_from"));
		printf("mailbox time to live: %lld s\n",
		       (long long)json_integer_value(json_object_get(r, "mailbox_ttl_s")));
		if (json_is_true(json_object_get(r, "always_relay")))
			printf("always relay: on (no address of ours goes to anyone)\n");
		if (json_is_true(json_object_get(r, "echo_bot")))
			printf("echo test service: on\n");
	} else if (strcmp(cmd, "ping") == 0) {
		printf("pong from parleyd %s\n", jstr(r, "version"));
	} else if (strcmp(cmd, "shutdown") == 0) {
		printf("the daemon is shutting down\n");
	}
}

/* ---- main -------------------------------------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int parse_uint(const char *opt, const char *s, unsigned long lo, unsigned long hi,
		      unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		goto bad;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "parley: %s must be a number from %lu to %lu, not `%s'\n", opt, lo, hi,
		s);
	return -EINVAL;
}

/* Adds a string argument; the value must be UTF-8 to travel in JSON. */
static int add_str(json_t *args, const char *key, const char *val)
{
	if (json_object_set_new(args, key, json_string(val)) < 0) {
		fprintf(stderr, "parley: `%s' is not valid UTF-8\n", val);
		return -EINVAL;
	}
	return 0;
}

/* Options only some commands accept. */
enum cmd_opt {
	OPT_PASSWORD_STDIN = 1 << 0,
	OPT_DEVICE_NAME = 1 << 1,
	OPT_LIMIT = 1 << 2,
	OPT_COUNT = 1 << 3,
	OPT_NAME = 1 << 4,
	OPT_CITY = 1 << 5,
	OPT_COUNTRY = 1 << 6,
	OPT_LANGUAGES = 1 << 7,
	OPT_HIDDEN = 1 << 8,
	OPT_PLAY = 1 << 9,
	OPT_RECORD = 1 << 10,
	OPT_DURATION = 1 << 11,
	OPT_DETACH = 1 << 12,
	OPT_MOOD = 1 << 13,
	OPT_NOTE = 1 << 14,
	OPT_PROFILE = OPT_NAME | OPT_CITY | OPT_COUNTRY | OPT_LANGUAGES | OPT_HIDDEN,
	OPT_MEDIA = OPT_PLAY | OPT_RECORD,
};

struct cmd_spec {
	const char *name;
	int min_args, max_args; /* after the command (and its subcommand); -1: no limit */
	unsigned opts;
};

static const struct cmd_spec cmd_specs[] = {
	{"register", 1, 1, OPT_PASSWORD_STDIN},
	{"login", 1, 1, OPT_PASSWORD_STDIN | OPT_DEVICE_NAME},
	{"logout", 0, 0, 0},
	{"status", 0, 0, 0},
	{"contacts", 1, 2, OPT_NOTE},
	{"whois", 1, 1, 0},
	{"send", 2, -1, 0},
	{"history", 1, 1, OPT_LIMIT},
	{"search-history", 1, -1, OPT_LIMIT},
	{"read", 1, 1, 0},
	{"group", 1, -1, OPT_LIMIT},
	{"profile", 1, 1, OPT_PROFILE},
	{"search", 1, -1, OPT_LIMIT},
	{"call", 1, 2, OPT_MEDIA | OPT_DURATION | OPT_DETACH},
	{"answer", 0, 1, OPT_MEDIA},
	{"decline", 0, 1, 0},
	{"hangup", 0, 1, 0},
	{"hold", 0, 1, 0},
	{"resume", 0, 1, 0},
	{"calls", 0, 0, OPT_LIMIT},
	{"settings", 0, 2, 0},
	{"presence", 0, 1, OPT_MOOD},
	{"devices", 0, 2, 0},
	{"events", 0, 0, OPT_COUNT},
	{"paths", 0, 1, 0},
	{"nat-stream", 1, 1, OPT_COUNT},
	{"ping", 0, 0, 0},
	{"shutdown", 0, 0, 0},
};

static const char *const opt_names[] = {"--password-stdin", "--device-name", "--limit",
					"--count", "--name", "--city", "--country", "--languages",
					"--hidden", "--play", "--record", "--duration", "--detach",
					"--mood", "--note"};

static int run_events(struct cli *c, unsigned long count)
{
	unsigned long seen = 0;
	json_t *res = NULL;
	int rc;

	rc = cli_request(c, "events.subscribe", NULL, NULL, &res);
	json_decref(res);
	if (rc != EXIT_OK)
		return rc;
	if (!c->json)
		fprintf(stderr, "waiting for events (Ctrl-C to stop)\n");
	while (count == 0 || seen < count) {
		char *line;
		size_t used;
		json_t *j;

		rc = cli_read_line(c, -1, &line, &used);
		if (rc != EXIT_OK)
			return rc;
		j = json_loads(line, 0, NULL);
		cli_consume(c, used);
		if (!j || !json_is_string(json_object_get(j, "event"))) {
			json_decref(j);
			continue;
		}
		if (c->json) {
			print_json(j);
			fflush(stdout);
		} else {
			show_event(j);
		}
		json_decref(j);
		seen++;
	}
	return EXIT_OK;
}

/* ---- calls ------------------------------------------------------------------------------- */

/* The daemon opens the files, maybe in another directory: send absolute paths. */
static char *abs_path(const char *p, bool must_exist)
{
	char *r;

	if (must_exist) {
		r = realpath(p, NULL);
		if (!r)
			fprintf(stderr, "parley: cannot open `%s': %s\n", p, strerror(errno));
		return r;
	}
	if (p[0] == '/')
		return strdup(p);
	{
		char *cwd = getcwd(NULL, 0);
		r = cwd ? path_join(cwd, p) : NULL;
		if (!cwd)
			fprintf(stderr, "parley: cannot find the current directory: %s\n", strerror(errno));
		free(cwd);
	}
	return r;
}

static volatile sig_atomic_t call_interrupted;

static void on_call_signal(int sig)
{
	(void)sig;
	call_interrupted = 1;
}

/* `parley call USER': places the call, then follows its events until it ends. Ctrl-C
 * (or --duration after the answer) hangs up. 0 when the call was answered. */
static int run_call(struct cli *c, json_t *args, bool detach, unsigned long duration)
{
	json_t *res = NULL;
	char id[40];
	bool answered = false;
	int64_t hangup_at = -1;
	int rc;

	rc = cli_request(c, "events.subscribe", NULL, NULL, &res);
	json_decref(res);
	res = NULL;
	if (rc != EXIT_OK)
		return rc;
	rc = cli_request(c, "call", args, NULL, &res);
	if (rc != EXIT_OK)
		return rc;
	snprintf(id, sizeof(id), "%s", jstr(res, "id"));
	if (c->json)
		print_json(res);
	else
		show_call(res, false);
	fflush(stdout);
	json_decref(res);
	if (detach)
		return EXIT_OK;
	signal(SIGINT, on_call_signal);
	signal(SIGTERM, on_call_signal);
	for (;;) {
		char *line;
		size_t used;
		json_t *j, *d;
		const char *ev;

		if (call_interrupted || (hangup_at >= 0 && now_ms() >= hangup_at)) {
			json_t *ha = json_pack("{s:s}", "id", id);
			call_interrupted = 0;
			hangup_at = -1;
			rc = cli_request(c, "call.hangup", ha, NULL, &res);
			json_decref(ha);
			if (rc == EXIT_OK) {
				if (c->json)
					print_json(res);
				else
					show_call(res, false);
				json_decref(res);
				res = NULL;
				rc = answered ? EXIT_OK : EXIT_DAEMON_ERROR;
			}
			break;
		}
		rc = cli_read_line(c, now_ms() + 200, &line, &used);
		if (rc == EXIT_TIMEOUT)
			continue;
		if (rc != EXIT_OK)
			break;
		j = json_loads(line, 0, NULL);
		cli_consume(c, used);
		ev = j ? jstr(j, "event") : "";
		d = j ? json_object_get(j, "data") : NULL;
		if (!d || (strcmp(ev, "call.state") != 0 && strcmp(ev, "call.stats") != 0) ||
		    strcmp(jstr(d, "id"), id) != 0) {
			json_decref(j);
			continue;
		}
		if (c->json)
			print_json(j);
		else
			show_call(d, strcmp(ev, "call.stats") == 0);
		fflush(stdout);
		if (strcmp(jstr(d, "state"), "active") == 0 && !answered) {
			answered = true;
			if (duration)
				hangup_at = now_ms() + (int64_t)duration * 1000;
		}
		if (strcmp(jstr(d, "state"), "ended") == 0) {
			rc = answered ? EXIT_OK : EXIT_DAEMON_ERROR;
			json_decref(j);
			break;
		}
		json_decref(j);
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return rc;
}

/* Joins words with single spaces into a new string (*out, freed by the caller). */
static char *join_words(char **w, int n)
{
	size_t len = 1;
	char *t;

	for (int i = 0; i < n; i++)
		len += strlen(w[i]) + 1;
	t = malloc(len);
	if (!t)
		return NULL;
	t[0] = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strcat(t, " ");
		strcat(t, w[i]);
	}
	return t;
}

/* The API arguments of `group SUB ARGS...' (counts already checked). */
static int group_args(const char *sub, char **a, int n, unsigned long limit, json_t *args,
		      char **text)
{
	bool list_users = !strcmp(sub, "create") || !strcmp(sub, "invite");

	if (strcmp(sub, "list") == 0)
		return 0;
	if (add_str(args, strcmp(sub, "create") == 0 ? "name" : "group", a[0]) < 0)
		return -EINVAL;
	if (list_users) {
		json_t *users = json_array();
		for (int i = 1; i < n; i++)
			json_array_append_new(users, json_string(a[i]));
		json_object_set_new(args, "users", users);
	} else if (strcmp(sub, "remove") == 0) {
		return add_str(args, "user", a[1]);
	} else if (strcmp(sub, "rename") == 0 || strcmp(sub, "send") == 0) {
		*text = join_words(a + 1, n - 1);
		if (!*text)
			return -ENOMEM;
		return add_str(args, strcmp(sub, "send") == 0 ? "text" : "name", *text);
	} else if (strcmp(sub, "history") == 0) {
		json_object_set_new(args, "limit", json_integer((json_int_t)limit));
	}
	return 0;
}

/* GROUP may be a group id or the name of exactly one of our groups: a name is turned
 * into its id through group.list. */
static int resolve_group(struct cli *c, json_t *args)
{
	const char *g = json_string_value(json_object_get(args, "group"));
	json_t *res = NULL, *e, *found = NULL;
	size_t i, hex = 0;
	int rc, n = 0;

	while (g[hex] && isxdigit((unsigned char)g[hex]))
		hex++;
	if (hex == 32 && !g[hex])
		return EXIT_OK;
	rc = cli_request(c, "group.list", NULL, NULL, &res);
	if (rc != EXIT_OK)
		return rc;
	json_array_foreach(json_object_get(res, "groups"), i, e) {
		if (strcmp(jstr(e, "name"), g) == 0) {
			found = e;
			n++;
		}
	}
	if (n != 1) {
		fprintf(stderr, "parley: %s group named `%s'; give its id (see `parley group list')\n",
			n ? "more than one" : "no", g);
		json_decref(res);
		return EXIT_DAEMON_ERROR;
	}
	json_object_set_new(args, "group", json_string(jstr(found, "group")));
	json_decref(res);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"password-stdin", no_argument, NULL, 'P'},
		{"device-name", required_argument, NULL, 'N'},
		{"limit", required_argument, NULL, 'l'},
		{"count", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"city", required_argument, NULL, 'C'},
		{"country", required_argument, NULL, 'K'},
		{"languages", required_argument, NULL, 'L'},
		{"hidden", no_argument, NULL, 'H'},
		{"play", required_argument, NULL, 'p'},
		{"record", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'D'},
		{"detach", no_argument, NULL, 'X'},
		{"mood", required_argument, NULL, 'M'},
		{"note", required_argument, NULL, 'T'},
		{NULL, 0, NULL, 0},
	};
	struct cli c = {.timeout_s = 30, .fd = -1};
	const struct cmd_spec *spec = NULL;
	const char *device_name = NULL, *cmd, *sub = "", *env;
	const char *p_name = NULL, *p_city = NULL, *p_country = NULL, *p_langs = NULL;
	unsigned long limit = 50, count = 0, duration = 0;
	char *play = NULL, *record = NULL;
	const char *mood = NULL, *note = NULL;
	unsigned used_opts = 0;
	bool help = false, pw_stdin = false;
	char *text = NULL, *pw = NULL;
	json_t *args = NULL, *result = NULL;
	int rc = EXIT_USAGE, ch, nargs;
	char **pos;

	if (sodium_init() < 0) {
		fprintf(stderr, "parley: cannot initialise libsodium\n");
		return EXIT_USAGE;
	}
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			free(c.data_dir);
			c.data_dir = strdup(optarg);
			break;
		case 's':
			free(c.sock_path);
			c.sock_path = strdup(optarg);
			break;
		case 'j': c.json = true; break;
		case 't': {
			char *end;

			errno = 0;
			c.timeout_s = strtod(optarg, &end);
			if (errno || *end || !*optarg || !isfinite(c.timeout_s) ||
			    c.timeout_s < 0 || c.timeout_s > 86400 * 365) {
				rc = usage_error("--timeout must be a number of seconds, not `%s'",
						 optarg);
				goto out;
			}
			break;
		}
		case 'h': help = true; break;
		case 'V':
			printf("parley %s\n", PARLEY_VERSION);
			rc = EXIT_OK;
			goto out;
		case 'P':
			pw_stdin = true;
			used_opts |= OPT_PASSWORD_STDIN;
			break;
		case 'N':
			device_name = optarg;
			used_opts |= OPT_DEVICE_NAME;
			break;
		case 'l':
			if (parse_uint("--limit", optarg, 1, 1000, &limit) < 0)
				goto out;
			used_opts |= OPT_LIMIT;
			break;
		case 'c':
			if (parse_uint("--count", optarg, 1, 1000000000, &count) < 0)
				goto out;
			used_opts |= OPT_COUNT;
			break;
		case 'n':
			p_name = optarg;
			used_opts |= OPT_NAME;
			break;
		case 'C':
			p_city = optarg;
			used_opts |= OPT_CITY;
			break;
		case 'K':
			p_country = optarg;
			used_opts |= OPT_COUNTRY;
			break;
		case 'L':
			p_langs = optarg;
			used_opts |= OPT_LANGUAGES;
			break;
		case 'H':
			used_opts |= OPT_HIDDEN;
			break;
		case 'p':
			free(play);
			play = abs_path(optarg, true);
			if (!play)
				goto out;
			used_opts |= OPT_PLAY;
			break;
		case 'r':
			free(record);
			record = abs_path(optarg, false);
			if (!record)
				goto out;
			used_opts |= OPT_RECORD;
			break;
		case 'D':
			if (parse_uint("--duration", optarg, 1, 86400, &duration) < 0)
				goto out;
			used_opts |= OPT_DURATION;
			break;
		case 'X':
			used_opts |= OPT_DETACH;
			break;
		case 'M':
			mood = optarg;
			used_opts |= OPT_MOOD;
			break;
		case 'T':
			note = optarg;
			used_opts |= OPT_NOTE;
			break;
		default:
			fputs("Try `parley --help'.\n", stderr);
			goto out;
		}
	}
	pos = argv + optind;
	nargs = argc - optind;
	if (nargs > 0 && strcmp(pos[0], "help") == 0) {
		help = true;
		pos++;
		nargs--;
	}
	if (nargs == 0) {
		if (help) {
			usage(stdout);
			rc = EXIT_OK;
		} else {
			usage(stderr);
		}
		goto out;
	}
	cmd = pos[0];
	for (size_t i = 0; i < sizeof(cmd_specs) / sizeof(cmd_specs[0]); i++) {
		if (strcmp(cmd_specs[i].name, cmd) == 0)
			spec = &cmd_specs[i];
	}
	if (!spec) {
		rc = usage_error("unknown command `%s'", cmd);
		goto out;
	}
	if (help) {
		printf("%s\n%s", find_cmd_help(cmd), exit_codes_help);
		rc = EXIT_OK;
		goto out;
	}
	for (unsigned b = 0; b < sizeof(opt_names) / sizeof(opt_names[0]); b++) {
		if ((used_opts & ~spec->opts) & (1u << b)) {
			fprintf(stderr, "parley: option %s is not valid for `%s'\n", opt_names[b],
				cmd);
			fprintf(stderr, "%s", find_cmd_help(cmd));
			goto out;
		}
	}
	pos++;
	nargs--;
	if (strcmp(cmd, "contacts") == 0 && nargs >= 1) {
		sub = pos[0];
		bool one = strcmp(sub, "list") == 0 || strcmp(sub, "requests") == 0;
		bool two = strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0 ||
			   strcmp(sub, "accept") == 0 || strcmp(sub, "decline") == 0 ||
			   strcmp(sub, "block") == 0 || strcmp(sub, "unblock") == 0;
		if (one ? nargs != 1 : two ? nargs != 2 : true) {
			if (!one && !two)
				fprintf(stderr, "parley: unknown contacts command `%s'\n", sub);
			else
				fprintf(stderr, "parley: wrong number of arguments for `contacts %s'\n",
					sub);
			fprintf(stderr, "%s", find_cmd_help(cmd));
			goto out;
		}
	} else if (strcmp(cmd, "group") == 0 && nargs >= 1) {
		/* subcommand, then its minimum and maximum argument counts (-1: any) */
		static const struct { const char *sub; int min, max; } gs[] = {
			{"create", 1, -1}, {"invite", 2, -1}, {"remove", 2, 2}, {"leave", 1, 1},
			{"rename", 2, -1}, {"list", 0, 0},   {"members", 1, 1}, {"send", 2, -1},
			{"history", 1, 1}, {"read", 1, 1},
		};
		int k = -1;
		sub = pos[0];
		for (size_t i = 0; i < sizeof(gs) / sizeof(gs[0]); i++)
			if (strcmp(gs[i].sub, sub) == 0)
				k = (int)i;
		if (k < 0 || nargs - 1 < gs[k].min || (gs[k].max >= 0 && nargs - 1 > gs[k].max) ||
		    ((used_opts & OPT_LIMIT) && strcmp(sub, "history") != 0)) {
			if (k < 0)
				fprintf(stderr, "parley: unknown group command `%s'\n", sub);
			else if (used_opts & OPT_LIMIT && strcmp(sub, "history") != 0)
				fprintf(stderr, "parley: --limit goes with `group history' only\n");
			else
				fprintf(stderr, "parley: wrong number of arguments for `group %s'\n", sub);
			fprintf(stderr, "%s", find_cmd_help(cmd));
			goto out;
		}
	} else if (strcmp(cmd, "profile") == 0 && nargs >= 1) {
		sub = pos[0];
		if (strcmp(sub, "set") != 0 || nargs != 1) {
			if (strcmp(sub, "set") != 0)
				fprintf(stderr, "parley: unknown profile command `%s'\n", sub);
			else
				fprintf(stderr, "parley: wrong number of arguments for `profile set'\n");
			fprintf(stderr, "%s", find_cmd_help(cmd));
			goto out;
		}
	} else if (nargs < spec->min_args || (spec->max_args >= 0 && nargs > spec->max_args)) {
		fprintf(stderr, "parley: wrong number of arguments for `%s'\n%s", cmd,
			find_cmd_help(cmd));
		goto out;
	}

	/* Where is the daemon? --socket, $PARLEY_SOCKET, --data-dir, the XDG default. */
	if (!c.data_dir) {
		const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

		if (x && x[0] == '/')
			c.data_dir = path_join(x, "parley");
		else if (home && *home)
			c.data_dir = path_join(home, ".local/share/parley");
		else
			c.data_dir = strdup(".");
	}
	env = getenv("PARLEY_SOCKET");
	if (!c.sock_path && env && *env)
		c.sock_path = strdup(env);
	c.explicit_socket = c.sock_path != NULL;
	if (!c.sock_path)
		c.sock_path = path_join(c.data_dir, "parleyd.sock");
	if (!c.sock_path || !c.data_dir) {
		fprintf(stderr, "parley: out of memory\n");
		goto out;
	}

	/* Build the arguments (and read the password) before connecting. */
	args = json_object();
	if (!args)
		goto out;
	if (strcmp(cmd, "register") == 0 || strcmp(cmd, "login") == 0) {
		if (add_str(args, "username", pos[0]) < 0 ||
		    (device_name && add_str(args, "device_name", device_name) < 0))
			goto out;
		pw = sodium_malloc(PASSWORD_MAX);
		if (!pw) {
			fprintf(stderr, "parley: out of memory\n");
			goto out;
		}
		rc = get_password(pw, pw_stdin, strcmp(cmd, "register") == 0);
		if (rc != EXIT_OK)
			goto out;
		rc = EXIT_USAGE;
	} else if (strcmp(cmd, "contacts") == 0) {
		if (nargs == 2 && add_str(args, "username", pos[1]) < 0)
			goto out;
		if (note && (strcmp(sub, "add") != 0 || add_str(args, "note", note) < 0)) {
			if (strcmp(sub, "add") != 0)
				rc = usage_error("--note goes with `contacts add' only");
			goto out;
		}
	} else if (strcmp(cmd, "whois") == 0) {
		if (add_str(args, "username", pos[0]) < 0)
			goto out;
	} else if (strcmp(cmd, "send") == 0 || strcmp(cmd, "search") == 0 ||
		   strcmp(cmd, "search-history") == 0) {
		bool search = strcmp(cmd, "send") != 0;
		int first = search ? 0 : 1;
		size_t len = 0;

		for (int i = first; i < nargs; i++)
			len += strlen(pos[i]) + 1;
		text = malloc(len + 1);
		if (!text)
			goto out;
		text[0] = 0;
		for (int i = first; i < nargs; i++) {
			if (i > first)
				strcat(text, " ");
			strcat(text, pos[i]);
		}
		if (strcmp(cmd, "search-history") == 0) {
			if (add_str(args, "text", text) < 0)
				goto out;
			if (used_opts & OPT_LIMIT)
				json_object_set_new(args, "limit", json_integer((json_int_t)limit));
		} else if (search) {
			if (limit > 50) {
				rc = usage_error("--limit of search must be a number from 1 to 50, not `%lu'",
						 limit);
				goto out;
			}
			if (add_str(args, "query", text) < 0)
				goto out;
			if (used_opts & OPT_LIMIT)
				json_object_set_new(args, "limit", json_integer((json_int_t)limit));
		} else if (add_str(args, "to", pos[0]) < 0 || add_str(args, "text", text) < 0) {
			goto out;
		}
	} else if (strcmp(cmd, "profile") == 0) {
		if ((p_name && add_str(args, "display_name", p_name) < 0) ||
		    (p_city && add_str(args, "city", p_city) < 0) ||
		    (p_country && add_str(args, "country", p_country) < 0) ||
		    (p_langs && add_str(args, "languages", p_langs) < 0))
			goto out;
		json_object_set_new(args, "searchable", json_boolean(!(used_opts & OPT_HIDDEN)));
	} else if (strcmp(cmd, "group") == 0) {
		if (group_args(sub, pos + 1, nargs - 1, limit, args, &text) < 0)
			goto out;
	} else if (strcmp(cmd, "read") == 0) {
		if (add_str(args, "with", pos[0]) < 0)
			goto out;
	} else if (strcmp(cmd, "history") == 0) {
		if (add_str(args, "with", pos[0]) < 0)
			goto out;
		json_object_set_new(args, "limit", json_integer((json_int_t)limit));
	} else if (strcmp(cmd, "call") == 0 && strcmp(pos[0], "stats") == 0) {
		sub = "stats";
		if (nargs == 2 && add_str(args, "id", pos[1]) < 0)
			goto out;
	} else if (strcmp(cmd, "call") == 0) {
		if (nargs != 1) {
			fprintf(stderr, "parley: wrong number of arguments for `call'\n%s",
				find_cmd_help(cmd));
			goto out;
		}
		if (add_str(args, "username", pos[0]) < 0)
			goto out;
	} else if (strcmp(cmd, "answer") == 0 || strcmp(cmd, "decline") == 0 ||
		   strcmp(cmd, "hangup") == 0 || strcmp(cmd, "hold") == 0 ||
		   strcmp(cmd, "resume") == 0) {
		if (nargs == 1 && add_str(args, "id", pos[0]) < 0)
			goto out;
	} else if (strcmp(cmd, "calls") == 0) {
		if (used_opts & OPT_LIMIT)
			json_object_set_new(args, "limit", json_integer((json_int_t)limit));
	} else if (strcmp(cmd, "paths") == 0) {
		if (nargs == 1 && add_str(args, "user", pos[0]) < 0)
			goto out;
	} else if (strcmp(cmd, "nat-stream") == 0) {
		if (add_str(args, "user", pos[0]) < 0)
			goto out;
		if (used_opts & OPT_COUNT)
			json_object_set_new(args, "count", json_integer((json_int_t)count));
	} else if (strcmp(cmd, "settings") == 0 && nargs == 2 && strcmp(pos[0], "always-relay") == 0) {
		if (strcmp(pos[1], "on") != 0 && strcmp(pos[1], "off") != 0) {
			fprintf(stderr, "parley: always-relay is on or off, not `%s'\n", pos[1]);
			goto out;
		}
		sub = "set";
		json_object_set_new(args, "always_relay", json_boolean(strcmp(pos[1], "on") == 0));
	} else if (strcmp(cmd, "settings") == 0) {
		if (nargs == 1 || (nargs == 2 && strcmp(pos[0], "calls-from") != 0 &&
				   strcmp(pos[0], "messages-from") != 0 &&
				   strcmp(pos[0], "mailbox-ttl") != 0)) {
			fprintf(stderr, "parley: unknown setting `%s'\n%s", pos[0], find_cmd_help(cmd));
			goto out;
		}
		if (nargs == 2 && strcmp(pos[0], "mailbox-ttl") == 0) {
			char *end;
			long long v = strtoll(pos[1], &end, 10);
			sub = "set";
			if (*end || end == pos[1]) {
				fprintf(stderr, "parley: mailbox-ttl takes seconds\n%s", find_cmd_help(cmd));
				goto out;
			}
			json_object_set_new(args, "mailbox_ttl_s", json_integer(v));
		} else if (nargs == 2) {
			sub = "set";
			if (add_str(args, pos[0][0] == 'c' ? "calls_from" : "messages_from", pos[1]) < 0)
				goto out;
		}
	}
	if ((play && add_str(args, "play", play) < 0) || (record && add_str(args, "record", record) < 0))
		goto out;
	if (strcmp(cmd, "devices") == 0) {
		if (nargs == 1 || (nargs == 2 && strcmp(pos[0], "revoke") != 0)) {
			fprintf(stderr, "parley: wrong arguments for `devices'\n%s", find_cmd_help(cmd));
			goto out;
		}
		if (nargs == 2) {
			sub = "revoke";
			if (add_str(args, "device_id", pos[1]) < 0)
				goto out;
		}
	}
	if (strcmp(cmd, "presence") == 0) {
		if ((nargs == 1 && add_str(args, "status", pos[0]) < 0) ||
		    (mood && add_str(args, "mood", mood) < 0))
			goto out;
		if (nargs == 1 || mood)
			sub = "set";
	}

	rc = cli_connect(&c);
	if (rc != EXIT_OK)
		goto out;
	if (strcmp(cmd, "events") == 0) {
		rc = run_events(&c, count);
		goto out;
	}
	if (strcmp(cmd, "call") == 0 && !*sub) {
		rc = run_call(&c, args, (used_opts & OPT_DETACH) != 0, duration);
		goto out;
	}
	if (strcmp(cmd, "group") == 0 && json_object_get(args, "group")) {
		rc = resolve_group(&c, args);
		if (rc != EXIT_OK)
			goto out;
		rc = EXIT_USAGE;
	}
	{
		char api_cmd[32];

		if (strcmp(cmd, "group") == 0 &&
		    (!strcmp(sub, "send") || !strcmp(sub, "history") || !strcmp(sub, "read")))
			snprintf(api_cmd, sizeof(api_cmd), "%s", sub);
		else if (strcmp(cmd, "contacts") == 0 || strcmp(cmd, "profile") == 0 ||
		    strcmp(cmd, "call") == 0 || strcmp(cmd, "group") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "%s.%s", cmd, sub);
		else if (strcmp(cmd, "answer") == 0 || strcmp(cmd, "hangup") == 0 ||
			 strcmp(cmd, "hold") == 0 || strcmp(cmd, "resume") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "call.%s", cmd);
		else if (strcmp(cmd, "decline") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "call.hangup");
		else if (strcmp(cmd, "devices") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "devices%s", *sub ? ".revoke" : "");
		else if (strcmp(cmd, "search-history") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "history.search");
		else if (strcmp(cmd, "nat-stream") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "nat.stream");
		else if (strcmp(cmd, "settings") == 0 || strcmp(cmd, "presence") == 0)
			snprintf(api_cmd, sizeof(api_cmd), "%s.%s", cmd, *sub ? "set" : "get");
		else
			snprintf(api_cmd, sizeof(api_cmd), "%s", cmd);
		rc = cli_request(&c, api_cmd, args, pw, &result);
	}
	if (pw)
		sodium_memzero(pw, PASSWORD_MAX);
	if (rc != EXIT_OK)
		goto out;
	if (c.json)
		print_json(result);
	else
		show_result(cmd, sub, result);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "parley: cannot write the output: %s\n", strerror(errno));
		rc = EXIT_DAEMON_ERROR;
	}
out:
	if (pw)
		sodium_free(pw); /* wipes */
	if (c.fd >= 0)
		close(c.fd);
	json_decref(args);
	json_decref(result);
	free(text);
	free(play);
	free(record);
	free(c.rbuf);
	free(c.data_dir);
	free(c.sock_path);
	return rc;
}
