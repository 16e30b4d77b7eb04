#!/usr/bin/env python3
"""bench_login: registrations/s and logins/s on the parley login server.

Starts a private network on loopback (login server, one supernode, parleyd clients),
then drives N accounts through the clients' control API sockets, W requests in flight at
once (a parleyd runs one login/registration at a time and says "busy" otherwise). The
login server hashes passwords (Argon2id) synchronously on one core, so its rate is about
1 / hash time. The rate limiter is set
far out of the way (--register-per-min/--login-per-min 1000000).

A "login" reply from parleyd comes once the device is logged in AND attached to its
supernode, so logins/s includes one attachment per login (about a millisecond on
loopback; the Argon2id hash dominates).

Runs twice: at the server's default Argon2id parameters (ops 2, 19456 KiB) and at
libsodium's "interactive" parameters (ops 2, 65536 KiB).

This file also holds the small harness (LocalNet, Api, ...) that bench_startup.py and
bench_latency.py import.

A device belongs to one account for good (the login server answers another account's
login from it with "device_revoked"), so every account gets its own parleyd: W lanes
(default 4) run at once, each sending its share of requests back to back, each request
on the daemon of that account. Registrations could share daemons; they use the same
lanes so that both figures are measured the same way.

usage: bench_login.py [--build DIR] [--accounts N] [--clients W] [--params OPS:KIB ...]
Prints a human-readable table and JSON lines
  {"bench":"login","figure":...,"value":...,"unit":...}
"""

import argparse
import atexit
import json
import os
import queue
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# ---------------------------------------------------------------------------------------
# harness (shared with bench_startup.py and bench_latency.py)
# ---------------------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("parley-login", "parley-supernode", "parleyd", "parley")


class BenchError(Exception):
    pass


class ApiError(BenchError):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


def find_bindir(build=None):
    """Directory holding the programs: --build DIR, else $BUILD, else REPO/build-bench."""
    build = build or os.environ.get("BUILD") or os.path.join(REPO, "build-bench")
    bindir = os.path.join(build, "cmd")
    missing = [p for p in PROGRAMS if not os.access(os.path.join(bindir, p), os.X_OK)]
    if missing:
        raise BenchError(
            "build missing: %s not found in %s\n"
            "  build first:  bench/run.sh  (or: meson setup %s --buildtype=release && ninja -C %s)\n"
            "  or point BUILD=DIR (or --build DIR) at an existing build directory"
            % (", ".join(missing), bindir, build, build))
    return bindir


def free_udp_port(taken=()):
    """A UDP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in taken:
            return port
    raise BenchError("cannot find a free UDP port")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def emit(bench, figure, value, unit, sink=None):
    """One result line in the common format, on stdout (and appended to sink, a list)."""
    line = json.dumps({"bench": bench, "figure": figure, "value": round(value, 3), "unit": unit},
                      separators=(",", ":"))
    print(line, flush=True)
    if sink is not None:
        sink.append(line)


class Proc:
    """A child program whose stdout is read by a thread (ready line) and stderr goes to a log."""

    def __init__(self, name, argv, logdir):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.lines = queue.Queue()
        self.t_spawn = time.perf_counter()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self._log, start_new_session=True)
        self.pid = self.p.pid
        self.ready_line = None
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for raw in self.p.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, timeout=10.0):
        """Waits for the program's "NAME: ready ..." line; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("%s did not print its ready line within %.1f s; log %s:\n%s"
                                 % (self.name, timeout, self.log_path, self.log_tail()))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                rc = self.p.wait(timeout=5)
                raise BenchError("%s exited (status %s) before it was ready; log %s:\n%s"
                                 % (self.name, rc, self.log_path, self.log_tail()))
            if ": ready" in line:
                self.ready_line = line
                return line

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.p.returncode

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError("%s (pid %d) did not exit within %.1f s" % (self.name, self.pid, timeout))


class Api:
    """One connection to a parleyd control socket: JSON lines, requests with ids, events."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = connect_unix(path, timeout)
        self.buf = b""
        self.next_id = 1
        self.events = []      # (perf_counter at arrival, event dict) not yet taken
        self.replies = {}     # id -> reply dict

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self):
        return self.sock.fileno()

    def encode(self, cmd, args=None):
        """A request line with a fresh id: (id, bytes), for callers that write themselves."""
        rid = self.next_id
        self.next_id += 1
        req = {"id": rid, "cmd": cmd}
        if args is not None:
            req["args"] = args
        return rid, json.dumps(req, separators=(",", ":")).encode() + b"\n"

    def send(self, cmd, args=None, timeout=30.0):
        """Writes one request without waiting for the reply; returns its id."""
        rid, line = self.encode(cmd, args)
        self.sock.settimeout(timeout)
        self.sock.sendall(line)
        return rid

    def pump(self, timeout):
        """Reads what is there (waiting at most timeout s); files replies and events.
        Returns the number of lines read."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, BlockingIOError):
            return 0
        now = time.perf_counter()
        if not data:
            raise BenchError("parleyd closed the API connection %s" % self.path)
        return self.feed(data, now)

    def feed(self, data, now):
        self.buf += data
        n = 0
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                return n
            line, self.buf = self.buf[:nl], self.buf[nl + 1:]
            if not line.strip():
                continue
            n += 1
            msg = json.loads(line)
            if "event" in msg:
                self.events.append((now, msg))
            else:
                self.replies[msg.get("id")] = msg

    def wait_reply(self, rid, timeout):
        deadline = time.monotonic() + timeout
        while rid not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no reply to request %s on %s within %.1f s" % (rid, self.path, timeout))
            self.pump(min(left, 1.0))
        return self.replies.pop(rid)

    def request(self, cmd, args=None, timeout=30.0):
        """Sends a request and waits for its reply; returns the result or raises ApiError."""
        rep = self.wait_reply(self.send(cmd, args), timeout)
        if not rep.get("ok"):
            e = rep.get("error") or {}
            raise ApiError(e.get("code", "?"), e.get("message", ""))
        return rep.get("result") or {}

    def wait_event(self, pred, timeout):
        """Returns (t_arrival, event) of the first buffered or arriving event with pred(ev)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (t, ev) in enumerate(self.events):
                if pred(ev):
                    del self.events[i]
                    return t, ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("expected event did not arrive on %s within %.1f s" % (self.path, timeout))
            self.pump(min(left, 1.0))


def connect_unix(path, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() >= deadline:
                raise BenchError("cannot connect to %s within %.1f s" % (path, timeout))
            time.sleep(0.001)


class Daemon:
    def __init__(self, net, name, proc):
        self.net = net
        self.name = name
        self.proc = proc
        self.dir = os.path.join(net.dir, name)
        self.sock = os.path.join(self.dir, "parleyd.sock")

    def api(self, timeout=10.0):
        return Api(self.sock, timeout)


class LocalNet:
    """A whole network on loopback in a temp dir: login server, supernode, daemons.
    Every process it starts is stopped by cleanup(), which also runs at exit and on
    SIGINT/SIGTERM."""

    def __init__(self, bindir, name="bench", keep=False):
        self.bin = bindir
        self.keep = keep or os.environ.get("BENCH_KEEP") == "1"
        # Unix socket paths are limited to 107 bytes: keep the directory short.
        # BENCH_TMPDIR=/dev/shm puts every store on tmpfs (fsync becomes free).
        self.dir = tempfile.mkdtemp(prefix="pb.", dir=os.environ.get("BENCH_TMPDIR", "/tmp"))
        self.procs = []
        self.login_port = free_udp_port()
        self.sn_port = free_udp_port({self.login_port})
        self.netfile = os.path.join(self.dir, "login", "network.conf")
        _install_cleanup(self)
        self._run([self.exe("parley-login"), "init", "--data-dir", self.path("login"),
                   "--listen", "127.0.0.1:%d" % self.login_port, "--name", name])
        self._run([self.exe("parley-supernode"), "init", "--data-dir", self.path("sn")])
        self._run([self.exe("parley-login"), "enroll", "--data-dir", self.path("login"),
                   "--supernode-pub", self.path("sn", "supernode.pub"),
                   "--address", "127.0.0.1:%d" % self.sn_port])

    def exe(self, prog):
        return os.path.join(self.bin, prog)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _run(self, argv):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise BenchError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                     r.stderr.decode(errors="replace")))

    def spawn(self, name, argv):
        p = Proc(name, argv, self.dir)
        self.procs.append(p)
        return p

    def start_login(self, extra=(), ready_timeout=10.0):
        p = self.spawn("login", [self.exe("parley-login"), "--data-dir", self.path("login")]
                       + list(extra))
        p.wait_ready(ready_timeout)
        self.login = p
        return p

    def start_supernode(self, extra=(), ready_timeout=10.0):
        p = self.spawn("sn", [self.exe("parley-supernode"), "--data-dir", self.path("sn"),
                              "--network", self.netfile,
                              "--listen", "127.0.0.1:%d" % self.sn_port] + list(extra))
        p.wait_ready(ready_timeout)
        self.sn = p
        return p

    def daemon_argv(self, name):
        return [self.exe("parleyd"), "--data-dir", self.path(name), "--network", self.netfile,
                "--listen", "127.0.0.1:0", "--device-name", name + "-bench", "--audio", "none"]

    def start_daemon(self, name, wait=True, ready_timeout=10.0):
        p = self.spawn(name, self.daemon_argv(name))
        if wait:
            p.wait_ready(ready_timeout)
        return Daemon(self, name, p)

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop(timeout=3)
            except Exception:
                pass
        self.procs = []
        if self.keep:
            print("(kept %s)" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


_nets = []


def _cleanup_all():
    while _nets:
        _nets.pop().cleanup()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


def _install_cleanup(net):
    if not _nets and not getattr(_install_cleanup, "done", False):
        atexit.register(_cleanup_all)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGHUP, _on_signal)
        _install_cleanup.done = True
    _nets.append(net)


def close_net(net):
    if net in _nets:
        _nets.remove(net)
    net.cleanup()


def main_wrapper(fn):
    """Runs fn(); turns BenchError into a clear message and exit status 1."""
    try:
        fn()
    except BenchError as e:
        print("error: %s" % e, file=sys.stderr)
        _cleanup_all()
        sys.exit(1)


PASSWORD = "bench-password-1"

# ---------------------------------------------------------------------------------------
# the login benchmark
# ---------------------------------------------------------------------------------------


def drive(lanes, cmd, timeout_s):
    """Runs `cmd` for every (daemon, username) of every lane; the lanes run at once, each
    sending its requests back to back (one in flight per lane). Returns (elapsed seconds
    from the first send to the last reply, busy retries, per-request latencies). Raises on
    any error other than "busy"."""
    apis = {}
    for lane in lanes:
        for d, _ in lane:
            if d.name not in apis:
                apis[d.name] = d.api()
    queues = [list(lane) for lane in lanes]
    sel = selectors.DefaultSelector()
    for name, a in apis.items():
        sel.register(a.sock, selectors.EVENT_READ, name)
    inflight = {}  # daemon name -> (lane, rid, username, t_sent)
    busy = 0
    lat = []
    done = 0
    total = sum(len(q) for q in queues)

    def send_next(li):
        if queues[li]:
            d, user = queues[li].pop(0)
            rid = apis[d.name].send(cmd, {"username": user, "password": PASSWORD})
            inflight[d.name] = (li, rid, user, time.perf_counter(), d)

    t0 = time.perf_counter()
    for li in range(len(queues)):
        send_next(li)
    deadline = time.monotonic() + timeout_s
    while done < total:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("%s: only %d of %d done within %.0f s" % (cmd, done, total, timeout_s))
        for key, _ in sel.select(timeout=min(left, 1.0)):
            dname = key.data
            a = apis[dname]
            data = a.sock.recv(1 << 16)
            now = time.perf_counter()
            if not data:
                raise BenchError("daemon %s closed its API connection" % dname)
            a.feed(data, now)
            a.events.clear()
            if dname not in inflight or inflight[dname][1] not in a.replies:
                continue
            li, rid, user, ts, d = inflight.pop(dname)
            rep = a.replies.pop(rid)
            if rep.get("ok"):
                lat.append(now - ts)
                done += 1
            elif (rep.get("error") or {}).get("code") == "busy":
                busy += 1
                queues[li].insert(0, (d, user))
                time.sleep(0.001)
            else:
                e = rep.get("error") or {}
                raise BenchError("%s %s on %s: %s: %s" % (cmd, user, dname,
                                                          e.get("code"), e.get("message")))
            send_next(li)
    elapsed = time.perf_counter() - t0
    sel.close()
    for a in apis.values():
        a.close()
    return elapsed, busy, lat


def start_daemons(net, names, batch=50, ready_timeout=30.0):
    """Starts many daemons, batch at a time (spawn all of a batch, then wait for each)."""
    out = []
    for i in range(0, len(names), batch):
        ds = [net.start_daemon(n, wait=False) for n in names[i:i + batch]]
        for d in ds:
            d.proc.wait_ready(ready_timeout)
        out += ds
    return out


def run_one(bindir, ops, kib, accounts, clients, results):
    net = LocalNet(bindir)
    try:
        net.start_login(["--argon2-ops", str(ops), "--argon2-mem-kib", str(kib),
                         "--register-per-min", "1000000", "--login-per-min", "1000000"])
        net.start_supernode()
        users = ["u%04d" % i for i in range(accounts)]
        # A device belongs to one account for good (the login server refuses another
        # account's login from it), so each account logs in from its own daemon:
        # daemon d<i> registers and logs in u<i>. `clients' lanes run at once.
        daemons = start_daemons(net, ["d%04d" % i for i in range(accounts)])
        pairs = list(zip(daemons, users))
        lanes = [pairs[i::clients] for i in range(clients)]
        # The hash time grows with the memory cost; allow 1 s per request at least.
        budget = 60 + accounts * 1.0
        t_reg, busy_r, lat_r = drive(lanes, "register", budget)
        t_log, busy_l, lat_l = drive(lanes, "login", budget)
        tag = "argon2id_ops%d_m%dkib" % (ops, kib)
        reg_rate = accounts / t_reg
        log_rate = accounts / t_log
        print("Argon2id ops=%d mem=%d KiB, %d accounts, %d requests in flight:" % (ops, kib, accounts, clients))
        print("  registrations: %7.1f /s  (%.2f s total, %.1f ms/request at the server, "
              "client-side latency p50 %.1f ms, busy retries %d)"
              % (reg_rate, t_reg, 1000 * t_reg / accounts, 1000 * statistics.median(lat_r), busy_r))
        print("  logins:        %7.1f /s  (%.2f s total, %.1f ms/request at the server, "
              "client-side latency p50 %.1f ms, busy retries %d)"
              % (log_rate, t_log, 1000 * t_log / accounts, 1000 * statistics.median(lat_l), busy_l))
        emit("login", "registrations_per_s_" + tag, reg_rate, "1/s", results)
        emit("login", "logins_per_s_" + tag, log_rate, "1/s", results)
    finally:
        close_net(net)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build directory (default $BUILD or build-bench/)")
    ap.add_argument("--accounts", type=int, default=200, help="accounts (default 200)")
    ap.add_argument("--clients", type=int, default=4,
                    help="lanes: requests in flight at once, each lane back to back (default 4)")
    ap.add_argument("--params", nargs="*", default=["2:19456", "2:65536"],
                    help="Argon2id OPS:KIB pairs (default 2:19456 2:65536)")
    a = ap.parse_args()
    bindir = find_bindir(a.build)
    if a.accounts < 1 or a.clients < 1:
        raise BenchError("--accounts and --clients must be >= 1")
    results = []
    print("== bench_login: %d accounts (one parleyd each), %d requests in flight, login server "
          "on one core" % (a.accounts, a.clients))
    for pk in a.params:
        try:
            ops, kib = (int(x) for x in pk.split(":"))
        except ValueError:
            raise BenchError("--params wants OPS:KIB, not %r" % pk)
        run_one(bindir, ops, kib, a.accounts, a.clients, results)


if __name__ == "__main__":
    main_wrapper(main)
