/* The libuv runtime: the only code in parley that touches sockets, clocks and the event
 * loop (docs/ARCHITECTURE.md). One runtime drives one node:
 *
 *   - struct pn_env: monotonic clock (uv_hrtime), wall clock (time), randomness
 *     (libsodium), datagram sends (sendmsg with MSG_DONTWAIT: a datagram that does not fit
 *     in the kernel buffer right now is dropped, as UDP may drop it anyway), the host's
 *     addresses (getifaddrs, for host candidates);
 *   - one UDP socket, watched with uv_poll and read with recvmsg (at most RT_RX_BATCH
 *     datagrams per wake-up); every datagram goes to ops->recv. A socket bound to a
 *     wildcard address learns each datagram's destination address (IP_PKTINFO /
 *     IPV6_PKTINFO) and answers that peer from the same address: on a host with several
 *     addresses the kernel's own choice may be another one, which a NAT or stateful
 *     firewall in front of the peer then drops;
 *   - one uv_timer re-armed at ops->next_deadline() after every input and every tick
 *     (the pull-based timer model of include/parley/env.h);
 *   - the control API on a Unix socket (mode 0600) feeding src/api;
 *   - SIGINT/SIGTERM stop the loop; pn_rt_free closes every handle and runs the loop
 *     until their close callbacks have run.
 *
 * Handles are freed only in their close callbacks (libuv handle.rst). */
#include "parley/runtime.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "base/addr.h"
#include "base/log.h"

enum rt_limits {
	RT_READ_BUF = 65536,             /* one datagram or one API read */
	RT_API_WRITE_MAX = 4 << 20,      /* pending output of one API client before it is dropped */
	RT_API_READ_PAUSE = 1 << 20,     /* stop reading requests while this much output waits */
	RT_API_MAX_CONNS = 64,
	RT_API_BACKLOG = 16,
};

/* Which of our addresses a peer last wrote to, for answering from it: a direct-mapped
 * cache (a collision only means the kernel picks the source address for that peer). */
enum { RT_SRC_CACHE = 4096, RT_RX_BATCH = 32 };
struct rt_src {
	struct pn_addr peer;
	uint8_t local[16]; /* IPv6, or v4-mapped IPv4 on a dual-stack socket, or IPv4 */
	bool used;
};

struct rt_udp {
	uv_poll_t h;
	int fd;
	struct pn_rt *rt;
	bool v6; /* AF_INET6 socket: IPv4 peers are reached as v4-mapped addresses */
	bool any; /* bound to a wildcard address: answer from the arrival address */
	struct pn_addr local; /* what the socket is bound to (wildcard or one address) */
	struct rt_src *src;   /* RT_SRC_CACHE entries when any */
	uint64_t pktinfo_sends;
};

struct rt_conn {
	uv_pipe_t h;
	struct pn_rt *rt;
	struct pn_api_conn *ac;
	size_t pending; /* bytes queued in uv_write requests */
	bool closing;
	bool reading;
	struct rt_conn *prev, *next;
};

struct rt_write {
	uv_write_t req;
	struct rt_conn *conn;
	size_t len;
	char data[];
};

struct rt_server {
	uv_pipe_t h;
	struct pn_rt *rt;
};

struct pn_rt {
	uv_loop_t loop;
	struct pn_env env;
	void *node;
	const struct pn_node_ops *ops;
	uv_timer_t timer;
	uv_signal_t sigint, sigterm;
	uv_check_t check;
	bool (*exit_check)(void *arg);
	void *exit_arg;
	bool stop;
	bool in_tick;

	struct rt_udp *udp;

	struct rt_server *server;
	struct pn_api *api;
	char *sock_path;   /* unlinked at free if it is still our socket */
	dev_t sock_dev;
	ino_t sock_ino;
	struct rt_conn *conns;
	unsigned n_conns;

	char rbuf[RT_READ_BUF];
	bool rbuf_busy;
};

/* ---- log sink ------------------------------------------------------------------------ */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void log_sink(void *arg, enum pn_log_level lvl, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000L,
		(unsigned)lvl < 4 ? level_names[lvl] : "?", msg);
}

/* ---- address conversion ---------------------------------------------------------------- */

static void addr_from_sockaddr(struct pn_addr *a, const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		a->family = PN_AF_INET;
		memcpy(a->ip, &s4->sin_addr, 4);
		a->port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		a->port = ntohs(s6->sin6_port);
		if (memcmp(s6->sin6_addr.s6_addr, v4mapped, 12) == 0) {
			a->family = PN_AF_INET;
			memcpy(a->ip, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = PN_AF_INET6;
			memcpy(a->ip, s6->sin6_addr.s6_addr, 16);
		}
	}
}

/* v6 selects the socket's family: an IPv4 address on an IPv6 socket becomes v4-mapped. */
static int addr_to_sockaddr(struct sockaddr_storage *ss, const struct pn_addr *a, bool v6)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == PN_AF_INET && !v6) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a->ip, 4);
		s4->sin_port = htons(a->port);
		return 0;
	}
	if (a->family == PN_AF_INET) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6->sin6_addr.s6_addr + 12, a->ip, 4);
		s6->sin6_port = htons(a->port);
		return 0;
	}
	if (a->family == PN_AF_INET6 && v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		memcpy(s6->sin6_addr.s6_addr, a->ip, 16);
		s6->sin6_port = htons(a->port);
		return 0;
	}
	return a->family == PN_AF_INET6 ? -EAFNOSUPPORT : -EINVAL;
}

/* ---- env ------------------------------------------------------------------------------- */

static uint64_t env_now_ms(void *ctx)
{
	return uv_hrtime() / 1000000u;
}

static uint64_t env_wall_s(void *ctx)
{
	return (uint64_t)time(NULL);
}

static void env_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static size_t src_slot(const struct pn_addr *a)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < 16; i++)
		h = (h ^ a->ip[i]) * 16777619u;
	h = (h ^ a->port) * 16777619u;
	return h % RT_SRC_CACHE;
}

static int env_send(void *ctx, const struct pn_addr *to, const uint8_t *buf, size_t len)
{
	struct pn_rt *rt = ctx;
	struct rt_udp *u = rt->udp;
	struct sockaddr_storage ss;
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh;
	union {
		char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} cm;
	int r;

	if (!u)
		return -ENOTCONN;
	r = addr_to_sockaddr(&ss, to, u->v6);
	if (r < 0)
		return r;
	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &ss;
	mh.msg_namelen = u->v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (u->any && u->src) {
		const struct rt_src *e = &u->src[src_slot(to)];
		if (e->used && pn_addr_eq(&e->peer, to)) {
			struct cmsghdr *c;
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.b;
			if (u->v6) {
				/* also for v4-mapped peers: the kernel takes a v4-mapped source */
				struct in6_pktinfo pi = {0};
				memcpy(&pi.ipi6_addr, e->local, 16);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				c = CMSG_FIRSTHDR(&mh);
				c->cmsg_level = IPPROTO_IPV6;
				c->cmsg_type = IPV6_PKTINFO;
				c->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			} else {
				struct in_pktinfo pi = {0};
				memcpy(&pi.ipi_spec_dst, e->local, 4);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				c = CMSG_FIRSTHDR(&mh);
				c->cmsg_level = IPPROTO_IP;
				c->cmsg_type = IP_PKTINFO;
				c->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			}
			u->pktinfo_sends++;
		}
	}
	if (sendmsg(u->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static bool addr_is_any(const struct pn_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->ip, zero, a->family == PN_AF_INET ? 4 : 16) == 0;
}

/* Host candidates: the socket's own address when it is bound to one, else every
 * interface's (getifaddrs), with the socket's port. Loopback and IPv6 link-local
 * addresses are of no use to a peer elsewhere; an IPv4 socket cannot send IPv6. */
static unsigned env_local_addrs(void *ctx, struct pn_addr *out, unsigned max)
{
	struct pn_rt *rt = ctx;
	struct ifaddrs *ifs, *i;
	unsigned n = 0;

	if (!rt->udp || max == 0)
		return 0;
	if (!addr_is_any(&rt->udp->local)) {
		out[0] = rt->udp->local;
		return 1;
	}
	if (getifaddrs(&ifs) != 0)
		return 0;
	for (i = ifs; i && n < max; i = i->ifa_next) {
		struct pn_addr a;
		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)
			continue;
		addr_from_sockaddr(&a, i->ifa_addr);
		if (a.family == PN_AF_INET6 &&
		    (!rt->udp->v6 || (a.ip[0] == 0xfe && (a.ip[1] & 0xc0) == 0x80)))
			continue;
		a.port = rt->udp->local.port;
		out[n++] = a;
	}
	freeifaddrs(ifs);
	return n;
}

/* ---- timers and the exit check -------------------------------------------------------- */

static void rt_rearm(struct pn_rt *rt);

static void rt_run_exit_check(struct pn_rt *rt)
{
	if (rt->exit_check && !rt->stop && rt->exit_check(rt->exit_arg))
		pn_rt_stop(rt);
}

static void on_timer(uv_timer_t *t)
{
	struct pn_rt *rt = t->data;

	if (rt->ops && rt->ops->tick && !rt->stop &&
	    env_now_ms(rt) >= rt->ops->next_deadline(rt->node))
		rt->ops->tick(rt->node);
	rt_rearm(rt);
	rt_run_exit_check(rt);
}

static void rt_rearm(struct pn_rt *rt)
{
	uint64_t deadline, now;

	if (rt->stop || !rt->ops || !rt->ops->next_deadline) {
		uv_timer_stop(&rt->timer);
		return;
	}
	deadline = rt->ops->next_deadline(rt->node);
	if (deadline == UINT64_MAX) {
		uv_timer_stop(&rt->timer);
		return;
	}
	/* uv timers count from the cached loop time; refresh it so the timer does not fire
	 * early (on_timer checks the deadline again anyway). */
	uv_update_time(&rt->loop);
	now = env_now_ms(rt);
	uv_timer_start(&rt->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

static void on_check(uv_check_t *c)
{
	rt_run_exit_check(c->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct pn_rt *rt = s->data;

	pn_info("received %s, stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
	pn_rt_stop(rt);
}

/* ---- UDP ------------------------------------------------------------------------------- */

/* The destination address of a received datagram, from its IP_PKTINFO / IPV6_PKTINFO. */
static bool rx_local(struct msghdr *mh, bool v6, uint8_t out[16])
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			memcpy(out, &pi.ipi6_addr, 16);
			return true;
		}
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			memset(out, 0, 16);
			if (v6) { /* a v4-mapped source for a dual-stack socket */
				out[10] = out[11] = 0xff;
				memcpy(out + 12, &pi.ipi_addr, 4);
			} else {
				memcpy(out, &pi.ipi_addr, 4);
			}
			return true;
		}
	}
	return false;
}

static void on_udp_readable(uv_poll_t *h, int status, int events)
{
	struct rt_udp *u = h->data;
	struct pn_rt *rt = u->rt;

	if (status < 0) {
		pn_dbg("udp poll: %s", uv_strerror(status));
		return;
	}
	/* bounded work per wake-up; the rest waits for the next loop iteration */
	for (int k = 0; k < RT_RX_BATCH && !rt->stop && rt->udp == u; k++) {
		struct sockaddr_storage ss;
		struct iovec iov = {rt->rbuf, sizeof(rt->rbuf)};
		union {
			char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
			struct cmsghdr align;
		} cm;
		struct msghdr mh = {0};
		struct pn_addr from;
		uint8_t local[16];
		ssize_t n;

		mh.msg_name = &ss;
		mh.msg_namelen = sizeof(ss);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		n = recvmsg(u->fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				pn_dbg("udp receive: %s", strerror(errno)); /* e.g. ICMP errors */
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			continue;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			pn_dbg("udp: dropped a truncated datagram");
			continue;
		}
		addr_from_sockaddr(&from, (struct sockaddr *)&ss);
		if (!from.family)
			continue;
		if (u->any && u->src && rx_local(&mh, u->v6, local)) {
			struct rt_src *e = &u->src[src_slot(&from)];
			e->peer = from;
			memcpy(e->local, local, 16);
			e->used = true;
		}
		if (rt->ops && rt->ops->recv)
			rt->ops->recv(rt->node, &from, (const uint8_t *)rt->rbuf, (size_t)n);
	}
	rt_rearm(rt);
	rt_run_exit_check(rt);
}

static void on_udp_close(uv_handle_t *h)
{
	struct rt_udp *u = h->data;

	close(u->fd);
	free(u->src);
	free(u);
}

int pn_rt_udp_bind(struct pn_rt *rt, const struct pn_addr *addr, struct pn_addr *bound)
{
	struct sockaddr_storage ss;
	struct rt_udp *u = NULL;
	socklen_t namelen = sizeof(ss);
	int r, off = 0, on = 1, fd;
	char as[PN_ADDR_STRLEN];

	if (!rt || !addr)
		return -EINVAL;
	if (rt->udp)
		return -EALREADY;
	r = addr_to_sockaddr(&ss, addr, addr->family == PN_AF_INET6);
	if (r < 0)
		return r;
	fd = socket(addr->family == PN_AF_INET6 ? AF_INET6 : AF_INET,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	u->fd = fd;
	u->rt = rt;
	u->v6 = addr->family == PN_AF_INET6;
	u->h.data = u;
	/* Dual stack regardless of the net.ipv6.bindv6only sysctl. */
	if (u->v6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	if (bind(fd, (const struct sockaddr *)&ss,
		 u->v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0) {
		r = -errno;
		pn_err("cannot bind UDP to `%s': %s", pn_addr_str(addr, as), strerror(-r));
		close(fd);
		free(u);
		return r;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &namelen) < 0) {
		r = -errno;
		close(fd);
		free(u);
		return r;
	}
	addr_from_sockaddr(&u->local, (struct sockaddr *)&ss);
	if (u->v6 && addr->family == PN_AF_INET6)
		u->local.family = PN_AF_INET6; /* [::] is not v4-mapped, keep its family */
	u->any = addr_is_any(addr);
	if (u->any) {
		/* learn each datagram's destination address (ours) to answer from it */
		if (u->v6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
		u->src = calloc(RT_SRC_CACHE, sizeof(*u->src));
		if (!u->src) {
			close(fd);
			free(u);
			return -ENOMEM;
		}
	}
	r = uv_poll_init_socket(&rt->loop, &u->h, fd);
	if (r < 0) {
		close(fd);
		free(u->src);
		free(u);
		return r;
	}
	r = uv_poll_start(&u->h, UV_READABLE, on_udp_readable);
	if (r < 0) {
		uv_close((uv_handle_t *)&u->h, on_udp_close);
		return r;
	}
	if (bound)
		*bound = u->local;
	rt->udp = u;
	return 0;
}

/* ---- API server ------------------------------------------------------------------------ */

static void conn_close(struct rt_conn *conn);
static void on_api_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_api_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write_done(uv_write_t *req, int status)
{
	struct rt_write *w = (struct rt_write *)req;
	struct rt_conn *conn = w->conn;

	conn->pending -= w->len;
	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED)
			pn_dbg("api: write failed: %s", uv_strerror(status));
		conn_close(conn);
		return;
	}
	/* Resume reading requests once the client has drained its replies. */
	if (!conn->closing && !conn->reading && conn->pending < RT_API_READ_PAUSE / 2)
		conn->reading =
			uv_read_start((uv_stream_t *)&conn->h, on_api_alloc, on_api_read) == 0;
}

static void conn_write_cb(void *arg, const char *data, size_t len)
{
	struct rt_conn *conn = arg;
	struct rt_write *w;
	uv_buf_t b;
	int r;

	if (conn->closing)
		return;
	/* A client that does not read its events must not grow our memory without bound. A
	 * single large reply always fits into an empty queue. */
	if (conn->pending > RT_API_WRITE_MAX) {
		pn_warn("api: dropping a client with %zu bytes of unread output", conn->pending);
		conn_close(conn);
		return;
	}
	w = malloc(sizeof(*w) + len);
	if (!w) {
		conn_close(conn);
		return;
	}
	w->conn = conn;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&conn->h, &b, 1, on_write_done);
	if (r < 0) {
		free(w);
		conn_close(conn);
		return;
	}
	conn->pending += len;
	if (conn->reading && conn->pending > RT_API_READ_PAUSE) {
		uv_read_stop((uv_stream_t *)&conn->h);
		conn->reading = false;
	}
}

static void on_api_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct rt_conn *conn = h->data;
	struct pn_rt *rt = conn->rt;

	if (rt->rbuf_busy) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	rt->rbuf_busy = true;
	*buf = uv_buf_init(rt->rbuf, sizeof(rt->rbuf));
}

static void on_api_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct rt_conn *conn = s->data;
	struct pn_rt *rt = conn->rt;

	if (buf && buf->base == rt->rbuf)
		rt->rbuf_busy = false;
	if (nread < 0) {
		if (nread != UV_EOF)
			pn_dbg("api: read failed: %s", uv_strerror((int)nread));
		conn_close(conn);
		return;
	}
	if (nread == 0 || conn->closing)
		return;
	pn_api_conn_input(conn->ac, buf->base, (size_t)nread);
	rt_rearm(rt);
	rt_run_exit_check(rt);
}

static void on_conn_close(uv_handle_t *h)
{
	struct rt_conn *conn = h->data;
	struct pn_rt *rt = conn->rt;

	/* Cancels the connection's pending requests in the client. */
	pn_api_conn_free(conn->ac);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		rt->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	rt->n_conns--;
	free(conn);
}

static void conn_close(struct rt_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	uv_close((uv_handle_t *)&conn->h, on_conn_close);
}

static void on_reject_close(uv_handle_t *h)
{
	free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct rt_server *srv = server->data;
	struct pn_rt *rt = srv->rt;
	struct rt_conn *conn = NULL;
	int r;

	if (status < 0) {
		pn_warn("api: accept failed: %s", uv_strerror(status));
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return;
	conn->rt = rt;
	conn->h.data = conn;
	r = uv_pipe_init(&rt->loop, &conn->h, 0);
	if (r < 0) {
		free(conn);
		return;
	}
	r = uv_accept(server, (uv_stream_t *)&conn->h);
	if (r < 0 || rt->stop || rt->n_conns >= RT_API_MAX_CONNS) {
		if (r == 0)
			pn_warn("api: refusing a connection (%u open)", rt->n_conns);
		uv_close((uv_handle_t *)&conn->h, on_reject_close);
		return;
	}
	/* Linked before anything can fail so that the close callback can unlink it. */
	conn->next = rt->conns;
	if (rt->conns)
		rt->conns->prev = conn;
	rt->conns = conn;
	rt->n_conns++;
	r = pn_api_conn_new(&conn->ac, rt->api, conn_write_cb, conn);
	if (r < 0) {
		conn_close(conn);
		return;
	}
	r = uv_read_start((uv_stream_t *)&conn->h, on_api_alloc, on_api_read);
	if (r < 0) {
		conn_close(conn);
		return;
	}
	conn->reading = true;
}

static void on_server_close(uv_handle_t *h)
{
	free(h->data);
}

/* 1 if a process accepts connections on path, 0 if the socket is stale, -errno if path
 * cannot be probed (or is not a socket: we never unlink anything else). */
static int probe_socket(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (r == 0)
		r = 1;
	else if (errno == ECONNREFUSED)
		r = 0;
	else
		r = -errno;
	close(fd);
	return r;
}

static int bind_private(uv_pipe_t *h, const char *path)
{
	mode_t old;
	int r;

	/* Created 0600 from the start: no window in which another user could connect. */
	old = umask(0177);
	r = uv_pipe_bind(h, path);
	umask(old);
	return r;
}

int pn_rt_api_listen(struct pn_rt *rt, const char *path, struct pn_api *api)
{
	struct rt_server *srv = NULL;
	struct stat st;
	int r;

	if (!rt || !path || !api || !*path)
		return -EINVAL;
	if (rt->server)
		return -EALREADY;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		pn_err("api socket path `%s' is too long (at most %zu bytes)", path,
		       sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->rt = rt;
	srv->h.data = srv;
	r = uv_pipe_init(&rt->loop, &srv->h, 0);
	if (r < 0) {
		free(srv);
		return r;
	}
	r = bind_private(&srv->h, path);
	if (r == UV_EADDRINUSE) {
		int p = probe_socket(path);

		if (p == 1) {
			pn_err("api socket `%s' is in use by a running process", path);
			r = -EADDRINUSE;
			goto fail;
		}
		if (p < 0) {
			pn_err("api socket path `%s' exists and cannot be replaced: %s", path,
			       strerror(-p));
			r = -EADDRINUSE;
			goto fail;
		}
		pn_info("replacing stale api socket `%s'", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			pn_err("cannot remove stale socket `%s': %s", path, strerror(errno));
			goto fail;
		}
		r = bind_private(&srv->h, path);
	}
	if (r < 0) {
		pn_err("cannot bind api socket `%s': %s", path, uv_strerror(r));
		goto fail;
	}
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
		r = -errno;
		pn_err("cannot set mode 0600 on `%s': %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	r = uv_listen((uv_stream_t *)&srv->h, RT_API_BACKLOG, on_connection);
	if (r < 0) {
		pn_err("cannot listen on `%s': %s", path, uv_strerror(r));
		unlink(path);
		goto fail;
	}
	rt->sock_path = strdup(path);
	if (!rt->sock_path) {
		unlink(path);
		r = -ENOMEM;
		goto fail;
	}
	rt->sock_dev = st.st_dev;
	rt->sock_ino = st.st_ino;
	rt->server = srv;
	rt->api = api;
	return 0;
fail:
	uv_close((uv_handle_t *)&srv->h, on_server_close);
	return r;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int pn_rt_new(struct pn_rt **out)
{
	struct pn_rt *rt;
	int r;

	if (!out)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	r = uv_loop_init(&rt->loop);
	if (r < 0) {
		free(rt);
		return r;
	}
	rt->env = (struct pn_env){rt, env_now_ms, env_wall_s, env_random, env_send, env_local_addrs};
	uv_timer_init(&rt->loop, &rt->timer);
	rt->timer.data = rt;
	uv_check_init(&rt->loop, &rt->check);
	rt->check.data = rt;
	uv_check_start(&rt->check, on_check);
	uv_unref((uv_handle_t *)&rt->check);
	uv_signal_init(&rt->loop, &rt->sigint);
	uv_signal_init(&rt->loop, &rt->sigterm);
	rt->sigint.data = rt;
	rt->sigterm.data = rt;
	uv_signal_start(&rt->sigint, on_signal, SIGINT);
	uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
	/* Signals alone do not keep the loop running: a runtime with nothing to do returns. */
	uv_unref((uv_handle_t *)&rt->sigint);
	uv_unref((uv_handle_t *)&rt->sigterm);
	/* A peer closing the API socket must not kill the daemon with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	pn_log_set_sink(log_sink, NULL);
	*out = rt;
	return 0;
}

const struct pn_env *pn_rt_env(struct pn_rt *rt)
{
	return rt ? &rt->env : NULL;
}

void pn_rt_set_node(struct pn_rt *rt, void *node, const struct pn_node_ops *ops)
{
	if (!rt)
		return;
	rt->node = node;
	rt->ops = ops;
	rt_rearm(rt);
}

void pn_rt_set_exit_check(struct pn_rt *rt, bool (*check)(void *arg), void *arg)
{
	if (!rt)
		return;
	rt->exit_check = check;
	rt->exit_arg = arg;
}

int pn_rt_run(struct pn_rt *rt)
{
	if (!rt)
		return -EINVAL;
	rt->stop = false;
	rt_rearm(rt);
	rt_run_exit_check(rt);
	if (!rt->stop)
		uv_run(&rt->loop, UV_RUN_DEFAULT);
	return 0;
}

void pn_rt_stop(struct pn_rt *rt)
{
	if (!rt)
		return;
	rt->stop = true;
	uv_timer_stop(&rt->timer);
	uv_stop(&rt->loop);
}

static void on_noop_close(uv_handle_t *h)
{
}

void pn_rt_free(struct pn_rt *rt)
{
	struct rt_conn *conn;
	struct stat st;
	int r;

	if (!rt)
		return;
	rt->stop = true;
	for (conn = rt->conns; conn; conn = conn->next)
		conn_close(conn);
	if (rt->server) {
		uv_close((uv_handle_t *)&rt->server->h, on_server_close);
		rt->server = NULL;
	}
	if (rt->udp) {
		uv_close((uv_handle_t *)&rt->udp->h, on_udp_close);
		rt->udp = NULL;
	}
	uv_close((uv_handle_t *)&rt->timer, on_noop_close);
	uv_close((uv_handle_t *)&rt->check, on_noop_close);
	uv_close((uv_handle_t *)&rt->sigint, on_noop_close);
	uv_close((uv_handle_t *)&rt->sigterm, on_noop_close);
	/* Close callbacks run on the next loop iterations. A pending uv_stop() makes the
	 * first uv_run() return at once (and clears it), hence the loop. */
	while (uv_run(&rt->loop, UV_RUN_DEFAULT) != 0)
		;
	r = uv_loop_close(&rt->loop);
	if (r < 0)
		pn_warn("runtime: event loop still busy at exit: %s", uv_strerror(r));
	if (rt->sock_path && stat(rt->sock_path, &st) == 0 && st.st_dev == rt->sock_dev &&
	    st.st_ino == rt->sock_ino)
		unlink(rt->sock_path);
	free(rt->sock_path);
	pn_log_set_sink(NULL, NULL);
	free(rt);
}
