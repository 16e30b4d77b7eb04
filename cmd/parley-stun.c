/* parley-stun: asks STUN servers (RFC 8489 Binding; parley supernodes, coturn, any other)
 * which address and port they see us at, from one UDP socket, so the answers of several
 * servers can be compared (same mapped port towards two servers = endpoint-independent
 * mapping; different = symmetric NAT).
 *
 * Requests are padded by default: a parley supernode answers only requests at least as
 * large as its answer (docs/PROTOCOL.md "STUN"). A server that does not know PADDING
 * answers 420 listing it; such a server is asked once more without padding.
 * Retransmission follows RFC 8489 section 6.2.1 (RTO doubling from --rto), cut short by
 * --timeout. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/addr.h"
#include "cmdutil.h"
#include "nat/stun.h"

enum { MAX_SERVERS = 16, RC_SENDS = 7 /* RFC 8489 Rc */ };

struct server {
	const char *arg;
	struct pn_addr addr;
	struct pn_stun_req_opts o;
	uint8_t req[PN_STUN_PAD_MAX + 64];
	size_t req_len;
	uint64_t first_sent, next_send, rto;
	unsigned sends;
	bool done, retried_unpadded;
	/* outcome */
	struct pn_addr mapped;
	uint64_t rtt_ms;
	size_t answer_len;
	int error_code;
	char error[160];
};

static const char *prog = "parley-stun";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parley-stun [options] HOST:PORT...\n"
		"Sends a STUN Binding request (RFC 8489) to each server from one UDP socket and\n"
		"prints the address and port each server saw the request come from (the mapped,\n"
		"or server-reflexive, address). HOST is a numeric IPv4 address or a bracketed\n"
		"IPv6 one: 198.18.0.10:3478, [2001:db8::10]:3478. All servers must be of one family.\n"
		"\n"
		"options:\n"
		"  --pad N         pad each request to at least N bytes with a PADDING attribute\n"
		"                  (default 64: parley supernodes answer only requests at least as\n"
		"                  large as their answer; 0 sends the bare 28-byte request)\n"
		"  --no-fingerprint  leave out the FINGERPRINT attribute\n"
		"  --bind ADDR     local address: IP or IP:PORT (default any address, any port)\n"
		"  --timeout MS    give up on a server after MS milliseconds (default 3000)\n"
		"  --rto MS        first retransmission timeout, doubled per resend (default 500)\n"
		"  --json          print one JSON object instead of one line per server\n"
		"  --help, --version\n"
		"\n"
		"output: one line per server, in argument order:\n"
		"  SERVER mapped ADDR rtt_ms N       or   SERVER error MESSAGE\n"
		"exit status: 0 every server answered with an address, 1 some did not (timeout or\n"
		"STUN error), 2 usage error\n");
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static socklen_t to_sockaddr(const struct pn_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == PN_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(a->port);
		memcpy(&s->sin_addr, a->ip, 4);
		return sizeof(*s);
	}
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(a->port);
	memcpy(&s->sin6_addr, a->ip, 16);
	return sizeof(*s);
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct pn_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		a->family = PN_AF_INET;
		a->port = ntohs(s->sin_port);
		memcpy(a->ip, &s->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		a->family = PN_AF_INET6;
		a->port = ntohs(s->sin6_port);
		memcpy(a->ip, &s->sin6_addr, 16);
	}
}

/* --bind: "IP:PORT", "[IPv6]:PORT", or a bare IP, bracketed or not (port 0). */
static int parse_bind(const char *s, struct pn_addr *a)
{
	char buf[PN_ADDR_STRLEN + 8];

	if (!pn_addr_parse(a, s))
		return 0;
	if (strlen(s) > PN_ADDR_STRLEN)
		return -EINVAL;
	if (s[0] == '[')
		snprintf(buf, sizeof(buf), "%s:0", s);
	else
		snprintf(buf, sizeof(buf), strchr(s, ':') ? "[%s]:0" : "%s:0", s);
	return pn_addr_parse(a, buf);
}

static int build(struct server *sv, size_t pad, bool fp)
{
	randombytes_buf(sv->o.tid, sizeof(sv->o.tid));
	sv->o.fingerprint = fp;
	sv->o.pad_to = pad;
	return pn_stun_build_request(sv->req, sizeof(sv->req), &sv->req_len, &sv->o);
}

static void transmit(int fd, struct server *sv, uint64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl = to_sockaddr(&sv->addr, &ss);

	if (sendto(fd, sv->req, sv->req_len, 0, (struct sockaddr *)&ss, sl) < 0 &&
	    errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
		sv->done = true;
		snprintf(sv->error, sizeof(sv->error), "send failed: %s", strerror(errno));
		return;
	}
	if (!sv->sends)
		sv->first_sent = now;
	sv->sends++;
	sv->next_send = now + sv->rto;
	sv->rto *= 2;
}

static bool listed(const struct pn_stun_msg *m, uint16_t type)
{
	for (unsigned i = 0; i < m->n_err_unknown; i++)
		if (m->err_unknown[i] == type)
			return true;
	return false;
}

/* One datagram in: find its transaction and record the outcome. */
static void on_datagram(int fd, struct server *svs, int n, const uint8_t *buf, size_t len,
			uint64_t now, uint64_t rto0)
{
	struct pn_stun_msg m;

	for (int i = 0; i < n; i++) {
		struct server *sv = &svs[i];
		int rc;

		if (sv->done)
			continue;
		rc = pn_stun_parse_response(&m, buf, len, sv->o.tid);
		if (rc == -ENOMSG || rc == -EBADMSG)
			continue;
		if (rc == 0 && m.type == PN_STUN_BINDING_ERROR && m.error_code == 420 &&
		    sv->o.pad_to && listed(&m, PN_STUN_A_PADDING) && !sv->retried_unpadded) {
			/* a server without RFC 5780's PADDING: ask again bare */
			sv->retried_unpadded = true;
			if (build(sv, 0, sv->o.fingerprint) == 0) {
				sv->sends = 0;
				sv->rto = rto0;
				transmit(fd, sv, now);
				return;
			}
		}
		sv->done = true;
		sv->rtt_ms = now - sv->first_sent;
		sv->answer_len = len;
		if (rc == -EPROTO)
			snprintf(sv->error, sizeof(sv->error),
				 "malformed answer (no address or an unknown mandatory attribute)");
		else if (m.type == PN_STUN_BINDING_ERROR) {
			sv->error_code = m.error_code;
			snprintf(sv->error, sizeof(sv->error), "STUN error %u %s", m.error_code,
				 m.reason);
		} else
			sv->mapped = *pn_stun_mapped(&m);
		return;
	}
}

static int run(int fd, struct server *svs, int n, uint64_t timeout, uint64_t rto0)
{
	uint64_t start = mono_ms(), now = start;
	uint8_t buf[PN_STUN_MAX];

	for (int i = 0; i < n; i++) {
		svs[i].rto = rto0;
		transmit(fd, &svs[i], now);
	}
	for (;;) {
		uint64_t next = start + timeout;
		bool open = false;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int w;

		for (int i = 0; i < n; i++) {
			struct server *sv = &svs[i];
			if (sv->done)
				continue;
			if (now >= start + timeout) {
				sv->done = true;
				snprintf(sv->error, sizeof(sv->error),
					 "timeout: no answer in %llu ms (%u requests of %zu bytes sent)",
					 (unsigned long long)timeout, sv->sends, sv->req_len);
				continue;
			}
			open = true;
			if (sv->sends < RC_SENDS && now >= sv->next_send)
				transmit(fd, sv, now);
			if (!sv->done && sv->sends < RC_SENDS && sv->next_send < next)
				next = sv->next_send;
		}
		if (!open)
			return 0;
		w = next > now ? (int)(next - now) : 0;
		if (poll(&pfd, 1, w) < 0 && errno != EINTR) {
			fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
			return -1;
		}
		now = mono_ms();
		if (pfd.revents & POLLIN) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			ssize_t r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss,
					     &sl);
			if (r > 0)
				on_datagram(fd, svs, n, buf, (size_t)r, now, rto0);
		}
	}
}

static int report(const struct server *svs, int n, const struct pn_addr *local, bool json)
{
	char a[PN_ADDR_STRLEN], b[PN_ADDR_STRLEN];
	int status = 0;
	json_t *root = NULL, *arr = NULL;

	if (json) {
		root = json_object();
		arr = json_array();
		json_object_set_new(root, "local", json_string(pn_addr_str(local, a)));
		json_object_set_new(root, "results", arr);
	}
	for (int i = 0; i < n; i++) {
		const struct server *sv = &svs[i];
		bool ok = sv->mapped.family != 0;

		if (!ok)
			status = 1;
		pn_addr_str(&sv->addr, a);
		if (!json) {
			if (ok)
				printf("%s mapped %s rtt_ms %llu\n", a, pn_addr_str(&sv->mapped, b),
				       (unsigned long long)sv->rtt_ms);
			else
				printf("%s error %s\n", a, sv->error);
			continue;
		}
		json_t *o = json_object();
		json_object_set_new(o, "server", json_string(a));
		json_object_set_new(o, "request_bytes", json_integer((json_int_t)sv->req_len));
		json_object_set_new(o, "requests_sent", json_integer(sv->sends));
		if (ok) {
			json_object_set_new(o, "mapped", json_string(pn_addr_str(&sv->mapped, b)));
			json_object_set_new(o, "rtt_ms", json_integer((json_int_t)sv->rtt_ms));
			json_object_set_new(o, "answer_bytes", json_integer((json_int_t)sv->answer_len));
		} else {
			json_object_set_new(o, "error", json_string(sv->error));
			if (sv->error_code)
				json_object_set_new(o, "error_code", json_integer(sv->error_code));
		}
		json_array_append_new(arr, o);
	}
	if (json) {
		char *s = json_dumps(root, JSON_COMPACT);
		if (s)
			puts(s);
		free(s);
		json_decref(root);
	}
	if (status && !json) {
		int bad = 0;
		for (int i = 0; i < n; i++)
			bad += !svs[i].mapped.family;
		fprintf(stderr, "%s: %d of %d servers gave no mapped address\n", prog, bad, n);
	}
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"pad", required_argument, NULL, 'p'},
		{"no-fingerprint", no_argument, NULL, 'F'},
		{"bind", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 't'},
		{"rto", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct server svs[MAX_SERVERS];
	struct pn_addr bind_addr = {0}, local;
	struct sockaddr_storage ss;
	socklen_t sl;
	uint64_t pad = 64, timeout = 3000, rto = 500;
	bool fp = true, json = false, have_bind = false;
	int ch, n, fd, status;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (cu_parse_u64(optarg, 0, PN_STUN_PAD_MAX, &pad)) {
				fprintf(stderr, "%s: --pad must be 0..%d bytes, not `%s'\n", prog,
					PN_STUN_PAD_MAX, optarg);
				return 2;
			}
			break;
		case 'F':
			fp = false;
			break;
		case 'b':
			if (parse_bind(optarg, &bind_addr)) {
				fprintf(stderr, "%s: --bind `%s' is not an IP or IP:PORT\n", prog, optarg);
				return 2;
			}
			have_bind = true;
			break;
		case 't':
			if (cu_parse_u64(optarg, 1, 600000, &timeout)) {
				fprintf(stderr, "%s: --timeout must be 1..600000 ms, not `%s'\n", prog,
					optarg);
				return 2;
			}
			break;
		case 'r':
			if (cu_parse_u64(optarg, 1, 60000, &rto)) {
				fprintf(stderr, "%s: --rto must be 1..60000 ms, not `%s'\n", prog, optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("parley-stun %s\n", PARLEY_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	n = argc - optind;
	if (n < 1 || n > MAX_SERVERS) {
		fprintf(stderr, "%s: give 1..%d servers as HOST:PORT (got %d); see --help\n", prog,
			MAX_SERVERS, n);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
		return 1;
	}
	memset(svs, 0, sizeof(svs));
	for (int i = 0; i < n; i++) {
		struct server *sv = &svs[i];
		sv->arg = argv[optind + i];
		if (pn_addr_parse(&sv->addr, sv->arg) || sv->addr.port == 0) {
			fprintf(stderr, "%s: `%s' is not a server address like 198.18.0.10:3478 or "
				"[2001:db8::10]:3478\n", prog, sv->arg);
			return 2;
		}
		if (sv->addr.family != svs[0].addr.family ||
		    (have_bind && sv->addr.family != bind_addr.family)) {
			fprintf(stderr, "%s: `%s' is of another address family than %s; one socket "
				"serves one family\n", prog, sv->arg, have_bind ? "--bind" : svs[0].arg);
			return 2;
		}
		if (build(sv, (size_t)pad, fp)) {
			fprintf(stderr, "%s: cannot build a request padded to %llu bytes\n", prog,
				(unsigned long long)pad);
			return 2;
		}
	}
	fd = socket(svs[0].addr.family == PN_AF_INET ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return 1;
	}
	if (have_bind) {
		sl = to_sockaddr(&bind_addr, &ss);
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
			char a[PN_ADDR_STRLEN];
			fprintf(stderr, "%s: cannot bind to %s: %s\n", prog, pn_addr_str(&bind_addr, a),
				strerror(errno));
			close(fd);
			return 1;
		}
	}
	if (run(fd, svs, n, timeout, rto)) {
		close(fd);
		return 1;
	}
	sl = sizeof(ss);
	memset(&local, 0, sizeof(local));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		from_sockaddr(&ss, &local);
	close(fd);
	status = report(svs, n, &local, json);
	return status;
}
