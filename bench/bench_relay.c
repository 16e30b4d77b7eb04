/* Relay throughput of a real parley-supernode process on loopback: N concurrent relayed
 * sessions (2N attached devices, each paired with one other), each device sending
 * SIZE-byte end-to-end packets to its partner through the supernode (FORWARD in, DELIVER
 * out), as fast as the supernode takes them or paced at RATE packets/s per device.
 *
 * The generator is one thread with one UDP socket per device (so the supernode sees 2N
 * distinct attachments); the packets are sealed before the clock starts and sent with
 * sendmmsg, so the generator's crypto does not cap the rate; every device attaches for real: Noise IK handshake with the
 * supernode's key from the network file and a device certificate that this program signs
 * with the network's root key (the operator's root.key, which a benchmark may read).
 *
 * Figures: packets relayed per second (delivered to the partner, counted by the
 * generator), and packets relayed per CPU-second of the supernode process (its utime +
 * stime from /proc/PID/stat over the measured interval): the second is the one-core
 * capacity that bench/bench_relay.sh compares with coturn in the same run.
 *
 * Usage: bench-relay NETWORK-FILE ROOT-KEY-FILE SUPERNODE-PID [sessions [seconds [size
 *        [rate]]]]   (defaults 1000 10 100 0 = unpaced) */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/hex.h"
#include "base/log.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "parley/network.h"
#include "session/link.h"
#include "wire/wire.h"

struct dev {
	int fd;
	struct pn_addr addr;
	struct pn_keys keys;
	uint8_t cert[PN_CERT_MAX];
	size_t cert_len;
	uint8_t id[16];
	struct pn_link link;
	bool up, attached;
	unsigned partner;
	uint64_t sent, recvd, bad;
	double credit; /* paced mode: packets it may send now */
	uint8_t *pre;  /* pre-sealed FORWARD packets, in nonce order */
	uint16_t *pre_len;
	unsigned n_pre, next_pre;
};

enum { PRE_SLOT = 256 };

static struct dev *devs;
static unsigned n_devs;
static struct sockaddr_in sn_sa;
static uint8_t sn_key[32];

static void die(const char *what)
{
	fprintf(stderr, "bench-relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a process, in seconds */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		die("reading the supernode's /proc stat");
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		die("reading the supernode's /proc stat");
	}
	fclose(f);
	p = strrchr(buf, ')'); /* after the command name */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("parsing /proc stat");
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void send_raw(struct dev *d, const uint8_t *pkt, size_t len)
{
	if (sendto(d->fd, pkt, len, 0, (const struct sockaddr *)&sn_sa, sizeof(sn_sa)) < 0 &&
	    errno != EAGAIN && errno != ENOBUFS)
		die("sendto");
}

static void dev_connect(struct dev *d)
{
	struct pn_link_params lp;
	uint8_t e_sk[32];
	uint32_t idx;

	randombytes_buf(e_sk, sizeof(e_sk));
	do
		randombytes_buf(&idx, sizeof(idx));
	while (idx == 0);
	memset(&lp, 0, sizeof(lp));
	lp.pattern = PN_PATTERN_IK;
	lp.purpose = PN_PURPOSE_ATTACH;
	lp.s_sk = d->keys.dh_sk;
	lp.rs = sn_key;
	lp.e_sk = e_sk;
	lp.local_idx = idx;
	lp.timestamp_ms = (uint64_t)time(NULL) * 1000u;
	lp.cert = d->cert;
	lp.cert_len = d->cert_len;
	lp.now = mono_ms();
	if (pn_link_connect(&d->link, &lp))
		die("pn_link_connect");
	send_raw(d, d->link.hs_pkt, d->link.hs_pkt_len);
	sodium_memzero(e_sk, sizeof(e_sk));
}

static void dev_input(struct dev *d, const uint8_t *buf, size_t len)
{
	struct pn_pkt_hdr h;
	uint8_t f[PN_PKT_RX_MAX];
	size_t n;
	enum pn_link_event ev;

	if (d->attached && len > 1 && buf[0] == PN_PKT_DATA && len >= 4) {
		/* the stream: count it; open one in 16 to check it is the partner's */
		if ((d->recvd++ & 15) != 0)
			return;
		if (pn_pkt_parse(&h, buf, len) || h.receiver_idx != d->link.local_idx ||
		    pn_link_input(&d->link, &h, mono_ms(), f, sizeof(f), &n, &ev) ||
		    ev != PN_LINK_EV_DATA || n < 17 ||
		    (f[0] == PN_F_DELIVER && memcmp(f + 1, devs[d->partner].id, 16) != 0)) {
			d->recvd--;
			d->bad++;
		}
		return;
	}
	if (pn_pkt_parse(&h, buf, len) || h.receiver_idx != d->link.local_idx ||
	    pn_link_input(&d->link, &h, mono_ms(), f, sizeof(f), &n, &ev)) {
		d->bad++;
		return;
	}
	if (ev == PN_LINK_EV_UP) {
		d->up = true;
	} else if (ev == PN_LINK_EV_DATA && n > 0) {
		if (f[0] == PN_F_ATTACHED)
			d->attached = true;
		else if (f[0] != PN_F_PONG && f[0] != PN_F_SUPERNODES)
			d->bad++;
	}
}

static void pump(int ep, int timeout_ms)
{
	struct epoll_event evs[256];
	uint8_t buf[PN_PKT_RX_MAX];
	int n = epoll_wait(ep, evs, 256, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct dev *d = &devs[evs[i].data.u32];
		for (;;) {
			ssize_t r = recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r < 0)
				break;
			dev_input(d, buf, (size_t)r);
		}
	}
}

static void make_cert(struct dev *d, const struct pn_keys *root, unsigned i)
{
	struct pn_cert c;
	uint64_t now = (uint64_t)time(NULL);
	int cl;

	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.flags = PN_CERT_DEVICE;
	snprintf(c.name, sizeof(c.name), "relay%05u", i);
	memcpy(c.sign_pk, d->keys.sign_pk, 32);
	memcpy(c.dh_pk, d->keys.dh_pk, 32);
	c.not_before = now - 60;
	c.not_after = now + 3600;
	if (pn_cert_sign(&c, root->sign_sk))
		die("signing a device certificate");
	cl = pn_cert_encode(&c, d->cert, sizeof(d->cert));
	if (cl <= 0)
		die("encoding a device certificate");
	d->cert_len = (size_t)cl;
	memcpy(d->id, c.device_id, 16);
}

static void load_root(const char *path, struct pn_keys *root)
{
	char hex[80];
	uint8_t seed[32];
	FILE *f = fopen(path, "r");

	if (!f || !fgets(hex, sizeof(hex), f))
		die("reading the root key file");
	fclose(f);
	hex[strcspn(hex, "\r\n")] = 0;
	if (pn_hex_decode(seed, 32, hex) || pn_keys_from_seed(root, seed)) {
		fprintf(stderr, "bench-relay: %s does not hold a 64-hex-digit seed\n", path);
		exit(1);
	}
	sodium_memzero(seed, sizeof(seed));
}

static void figure(const char *name, double v, const char *unit)
{
	printf("{\"bench\": \"relay\", \"figure\": \"%s\", \"value\": %.1f, \"unit\": \"%s\"}\n", name,
	       v, unit);
}

int main(int argc, char **argv)
{
	struct pn_network net;
	struct pn_keys root;
	char err[256];
	unsigned sessions = 1000, secs = 10, size = 100, rate = 0;
	int pid, ep;
	struct rlimit rl;
	uint64_t t_end, sent = 0, recvd = 0;
	double t0, t1, c0, c1;
	uint8_t f[PN_PKT_MAX];

	if (argc < 4) {
		fprintf(stderr, "usage: bench-relay NETWORK-FILE ROOT-KEY-FILE SUPERNODE-PID "
				"[sessions [seconds [size [rate]]]]\n");
		return 2;
	}
	pid = atoi(argv[3]);
	if (argc > 4)
		sessions = (unsigned)atoi(argv[4]);
	if (argc > 5)
		secs = (unsigned)atoi(argv[5]);
	if (argc > 6)
		size = (unsigned)atoi(argv[6]);
	if (argc > 7)
		rate = (unsigned)atoi(argv[7]);
	if (sodium_init() < 0 || sessions < 1 || sessions > 20000 || size < 1 || size > 1200 || secs < 1)
		die("bad arguments");
	pn_log_set_level(PN_LOG_WARN);
	if (pn_network_load(&net, argv[1], err, sizeof(err))) {
		fprintf(stderr, "bench-relay: %s\n", err);
		return 1;
	}
	if (net.n_supernodes < 1 || !net.supernodes[0].has_key) {
		fprintf(stderr, "bench-relay: the network file names no enrolled supernode\n");
		return 1;
	}
	memcpy(sn_key, net.supernodes[0].key, 32);
	memset(&sn_sa, 0, sizeof(sn_sa));
	sn_sa.sin_family = AF_INET;
	memcpy(&sn_sa.sin_addr, net.supernodes[0].addr.ip, 4);
	sn_sa.sin_port = htons(net.supernodes[0].addr.port);
	load_root(argv[2], &root);

	n_devs = 2 * sessions;
	rl.rlim_cur = rl.rlim_max = n_devs + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("raising the open-file limit");
	devs = calloc(n_devs, sizeof(*devs));
	ep = epoll_create1(0);
	if (!devs || ep < 0)
		die("setup");
	for (unsigned i = 0; i < n_devs; i++) {
		struct dev *d = &devs[i];
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		uint8_t seed[32];
		int bufsz = 1 << 20;

		d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (d->fd < 0 || bind(d->fd, (struct sockaddr *)&a, sizeof(a)))
			die("socket");
		setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		if (epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &ev))
			die("epoll_ctl");
		randombytes_buf(seed, sizeof(seed));
		if (pn_keys_from_seed(&d->keys, seed))
			die("keys");
		make_cert(d, &root, i);
		d->partner = i ^ 1u;
	}

	/* attach everybody, 100 handshakes in flight at a time, retrying the slow ones */
	{
		unsigned next = 0, attached = 0;
		uint64_t deadline = mono_ms() + 60000;
		while (attached < n_devs && mono_ms() < deadline) {
			unsigned inflight = 0;
			for (unsigned i = 0; i < next; i++)
				inflight += !devs[i].attached;
			while (next < n_devs && inflight < 100) {
				dev_connect(&devs[next++]);
				inflight++;
			}
			pump(ep, 5);
			attached = 0;
			for (unsigned i = 0; i < next; i++)
				attached += devs[i].attached;
		}
		if (attached < n_devs) {
			fprintf(stderr, "bench-relay: only %u of %u devices attached in 60 s\n", attached,
				n_devs);
			return 1;
		}
		printf("bench-relay: %u devices attached (%u relayed sessions), %u-byte packets, %s\n",
		       n_devs, sessions, size, rate ? "paced" : "unpaced");
	}

	/* The relayed stream. Every FORWARD packet is sealed before the clock starts (so the
	 * generator's own crypto does not cap the rate), then sent round robin, up to 8 per
	 * device per turn with sendmmsg; deliveries are counted on arrival. */
	{
		struct pn_wr w;
		uint8_t payload[1200];
		unsigned per = rate ? rate * secs + 16 : 60 * secs;
		uint64_t last, start;

		randombytes_buf(payload, sizeof(payload));
		for (unsigned i = 0; i < n_devs; i++) {
			struct dev *d = &devs[i];
			d->pre = malloc((size_t)per * PRE_SLOT);
			d->pre_len = malloc(per * sizeof(*d->pre_len));
			if (!d->pre || !d->pre_len)
				die("memory for the pre-sealed packets");
			pn_wr_init(&w, f, sizeof(f));
			pn_wr_u8(&w, PN_F_FORWARD);
			pn_wr_bytes(&w, devs[d->partner].id, 16);
			pn_wr_vec16(&w, payload, size);
			for (unsigned k = 0; k < per; k++) {
				size_t len;
				if (w.err || pn_link_seal(&d->link, f, w.len, mono_ms(), d->pre + (size_t)k * PRE_SLOT,
							  PRE_SLOT, &len))
					die("sealing (size too large for the pre-sealed slots?)");
				d->pre_len[k] = (uint16_t)len;
			}
			d->n_pre = per;
			if ((i & 127) == 0)
				pump(ep, 0); /* keep the sessions' keepalives answered */
		}
		t0 = mono_s();
		c0 = proc_cpu_s(pid);
		start = last = mono_ms();
		t_end = start + (uint64_t)secs * 1000u;
		for (;;) {
			uint64_t now = mono_ms();
			bool any = false;
			if (now >= t_end)
				break;
			for (unsigned i = 0; i < n_devs; i++) {
				struct dev *d = &devs[i];
				struct mmsghdr mm[8];
				struct iovec iov[8];
				unsigned want = 8, k;
				int r;
				if (rate) {
					d->credit += (double)(now - last) * rate / 1000.0;
					want = d->credit >= 8 ? 8 : (unsigned)d->credit;
				}
				if (want > d->n_pre - d->next_pre)
					want = d->n_pre - d->next_pre;
				if (!want)
					continue;
				any = true;
				for (k = 0; k < want; k++) {
					iov[k].iov_base = d->pre + (size_t)(d->next_pre + k) * PRE_SLOT;
					iov[k].iov_len = d->pre_len[d->next_pre + k];
					memset(&mm[k], 0, sizeof(mm[k]));
					mm[k].msg_hdr.msg_iov = &iov[k];
					mm[k].msg_hdr.msg_iovlen = 1;
					mm[k].msg_hdr.msg_name = &sn_sa;
					mm[k].msg_hdr.msg_namelen = sizeof(sn_sa);
				}
				r = sendmmsg(d->fd, mm, want, 0);
				if (r > 0) {
					d->next_pre += (unsigned)r;
					d->sent += (unsigned)r;
					if (rate)
						d->credit -= r;
				}
				if ((i & 31) == 31)
					pump(ep, 0);
			}
			last = now;
			if (!any && !rate)
				break; /* everything pre-sealed is out */
			pump(ep, rate ? 1 : 0);
		}
		t1 = mono_s();
		c1 = proc_cpu_s(pid);
		/* the last packets in flight */
		for (int k = 0; k < 50; k++)
			pump(ep, 2);
	}
	for (unsigned i = 0; i < n_devs; i++) {
		sent += devs[i].sent;
		recvd += devs[i].recvd;
	}
	printf("bench-relay: sent %llu, relayed to the partner %llu (%.1f %%) in %.2f s; supernode "
	       "CPU %.2f s\n",
	       (unsigned long long)sent, (unsigned long long)recvd,
	       sent ? 100.0 * (double)recvd / (double)sent : 0.0, t1 - t0, c1 - c0);
	figure("relayed_pps", (double)recvd / (t1 - t0), "packets/s");
	figure("relayed_per_cpu_s", c1 > c0 ? (double)recvd / (c1 - c0) : 0.0, "packets/cpu-s");
	figure("supernode_cpu", 100.0 * (c1 - c0) / (t1 - t0), "% of a core");
	figure("delivered_share", sent ? 100.0 * (double)recvd / (double)sent : 0.0, "%");
	return 0;
}
