#!/usr/bin/env python3
"""bench_startup: how long parleyd takes from process spawn to logged in, attached and
reachable.

Warm path (the common case: a device that logged in before). The data dir already holds
a valid certificate: log in once, stop the daemon with the API "shutdown", then for each
run spawn parleyd again and time
  ready      spawn -> the "parleyd: ready" line (API socket listening)
  online     spawn -> the daemon reports state "online" (status, or the status.changed
             event), i.e. it attached to its supernode with its stored certificate
  reachable  spawn -> another client's `whois` returns the record this run published
             (its seq is newer than any seen before), i.e. the user can be found
then shut it down again through the API.

Between a stop and the next start the bench waits --gap seconds (default 1.2). A device's
handshake timestamp must be newer than its previous one at the supernode (replay
protection), and parleyd's millisecond wall clock starts from the whole second at process
start, so a restart within about a second of the previous handshake is refused as a replay
and comes online only after ~2.4 s of retries. --gap 0 shows that (see docs/BENCHMARKS.md);
the gap keeps the figure about start-up itself. The refused handshakes are counted.

Cold path: a fresh data dir (new device key, no certificate): spawn -> ready -> "login"
-> reply (the reply comes once logged in and attached). This includes one Argon2id hash at
the login server (default parameters: ops 2, 19456 KiB).

usage: bench_startup.py [--build DIR] [--runs N] [--cold-runs N] [--gap SECONDS]
Prints a table and JSON lines {"bench":"startup","figure":...,"value":...,"unit":"ms"}.
"""

import argparse
import os
import re
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_login import (PASSWORD, ApiError, BenchError, LocalNet, close_net, emit,  # noqa: E402
                         find_bindir, main_wrapper, percentile)

STEP_TIMEOUT = 15.0  # seconds for any single wait
SEQ_BACKWARDS = [0]  # restarts whose record seq was lower than the previous one


def whois_seq(api, user, timeout=STEP_TIMEOUT):
    """Highest record seq of user's devices, or None when no device is reachable."""
    try:
        r = api.request("whois", {"username": user}, timeout=timeout)
    except ApiError as e:
        if e.code in ("no_such_user", "timeout"):
            return None
        raise
    seqs = [d.get("seq", 0) for d in r.get("devices", [])]
    return max(seqs) if seqs else None


def stop_via_api(daemon, api):
    try:
        api.request("shutdown", timeout=STEP_TIMEOUT)
    except BenchError:
        pass  # the reply may be lost when the daemon exits first
    api.close()
    daemon.proc.wait_exit(STEP_TIMEOUT)
    daemon.proc.stop()  # closes its log
    if daemon.proc in daemon.net.procs:
        daemon.net.procs.remove(daemon.proc)


def wait_online(api, timeout=STEP_TIMEOUT):
    """Subscribes, then returns the perf_counter time at which the daemon was seen online."""
    api.request("events.subscribe", timeout=timeout)
    st = api.request("status", timeout=timeout)
    if st.get("state") == "online":
        return time.perf_counter()
    t, _ = api.wait_event(lambda ev: ev.get("event") == "status.changed"
                          and (ev.get("data") or {}).get("state") == "online", timeout)
    return t


def warm_runs(net, watcher, runs, last_seq, gap):
    ready, online, reach = [], [], []
    for i in range(runs):
        time.sleep(gap)
        d = net.start_daemon("alice", wait=False)
        t0 = d.proc.t_spawn
        d.proc.wait_ready(STEP_TIMEOUT)
        t_ready = time.perf_counter()
        api = d.api(timeout=STEP_TIMEOUT)
        t_online = wait_online(api)
        # Reachable: the directory answers with the record published by this run. The
        # supernode drops the old record when the device's new session replaces the old
        # one, so any other seq is the new record. (Not "a higher seq": parleyd derives
        # seq from wall-clock seconds plus the monotonic clock's milliseconds, which can
        # go backwards across a restart; counted below.)
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            seq = whois_seq(watcher, "alice")
            if seq is not None and seq != last_seq:
                t_reach = time.perf_counter()
                if seq < last_seq:
                    SEQ_BACKWARDS[0] += 1
                last_seq = seq
                break
            if time.monotonic() > deadline:
                raise BenchError("run %d: alice's new record never showed up in whois" % i)
        stop_via_api(d, api)
        ready.append(1000 * (t_ready - t0))
        online.append(1000 * (t_online - t0))
        reach.append(1000 * (t_reach - t0))
        print("  warm run %2d: ready %6.1f ms  online %6.1f ms  reachable %6.1f ms"
              % (i + 1, ready[-1], online[-1], reach[-1]), flush=True)
    return ready, online, reach


def cold_runs(net, registrar, runs):
    ready, total, login = [], [], []
    users = ["cold%02d" % i for i in range(runs)]
    for u in users:  # registration is not part of the figure
        registrar.request("register", {"username": u, "password": PASSWORD}, timeout=STEP_TIMEOUT)
    for i, u in enumerate(users):
        d = net.start_daemon("c-" + u, wait=False)
        t0 = d.proc.t_spawn
        d.proc.wait_ready(STEP_TIMEOUT)
        t_ready = time.perf_counter()
        api = d.api(timeout=STEP_TIMEOUT)
        t_login = time.perf_counter()
        api.request("login", {"username": u, "password": PASSWORD}, timeout=STEP_TIMEOUT)
        t_done = time.perf_counter()
        stop_via_api(d, api)
        ready.append(1000 * (t_ready - t0))
        total.append(1000 * (t_done - t0))
        login.append(1000 * (t_done - t_login))
        print("  cold run %2d: ready %6.1f ms  login->attached %6.1f ms  total %6.1f ms"
              % (i + 1, ready[-1], login[-1], total[-1]), flush=True)
    return ready, login, total


def summary(name, xs):
    return "%-34s median %7.1f  p90 %7.1f  max %7.1f  min %7.1f ms" % (
        name, statistics.median(xs), percentile(xs, 90), max(xs), min(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build directory (default $BUILD or build-bench/)")
    ap.add_argument("--runs", type=int, default=20, help="warm runs (default 20)")
    ap.add_argument("--cold-runs", type=int, default=20, help="cold runs (default 20)")
    ap.add_argument("--gap", type=float, default=1.2,
                    help="seconds between a daemon's stop and the next warm start (default 1.2)")
    a = ap.parse_args()
    bindir = find_bindir(a.build)
    if a.runs < 1 or a.cold_runs < 1 or a.gap < 0:
        raise BenchError("--runs and --cold-runs must be >= 1")
    net = LocalNet(bindir)
    try:
        net.start_login(["--register-per-min", "1000000", "--login-per-min", "1000000"])
        net.start_supernode()
        bob = net.start_daemon("bob")
        watcher = bob.api()
        watcher.request("register", {"username": "bob", "password": PASSWORD}, timeout=STEP_TIMEOUT)
        watcher.request("login", {"username": "bob", "password": PASSWORD}, timeout=STEP_TIMEOUT)
        alice = net.start_daemon("alice")
        api = alice.api()
        api.request("register", {"username": "alice", "password": PASSWORD}, timeout=STEP_TIMEOUT)
        api.request("login", {"username": "alice", "password": PASSWORD}, timeout=STEP_TIMEOUT)
        last_seq = whois_seq(watcher, "alice")
        if last_seq is None:
            raise BenchError("alice is not reachable right after her first login")
        stop_via_api(alice, api)

        print("== bench_startup: %d warm runs (stored certificate, %.1f s apart), %d cold runs "
              "(fresh device)" % (a.runs, a.gap, a.cold_runs))
        w_ready, w_online, w_reach = warm_runs(net, watcher, a.runs, last_seq, a.gap)
        c_ready, c_login, c_total = cold_runs(net, watcher, a.cold_runs)
        print()
        if SEQ_BACKWARDS[0]:
            print("note: in %d of %d restarts the new directory record had a LOWER seq than the "
                  "previous one (parleyd's wall_ms() is not monotonic)" % (SEQ_BACKWARDS[0], a.runs))
        print(summary("warm: spawn -> ready", w_ready))
        print(summary("warm: spawn -> online", w_online))
        print(summary("warm: spawn -> reachable (whois)", w_reach))
        print(summary("cold: spawn -> ready", c_ready))
        print(summary("cold: login -> attached", c_login))
        print(summary("cold: spawn -> logged in+attached", c_total))
        # The supernode prints its counters when it stops; "replays" counts handshakes it
        # refused because their timestamp was not newer than the device's previous one.
        net.sn.stop()
        m = re.search(r"(\d+) replays", net.sn.log_tail(50))
        if m:
            print("supernode refused %s handshakes as replays (timestamp not newer than the "
                  "device's previous handshake)" % m.group(1))
            emit("startup", "handshakes_refused_as_replay", int(m.group(1)), "count")
        for fig, xs in (("warm_reachable", w_reach), ("warm_online", w_online)):
            emit("startup", fig + "_ms_median", statistics.median(xs), "ms")
            emit("startup", fig + "_ms_p90", percentile(xs, 90), "ms")
            emit("startup", fig + "_ms_max", max(xs), "ms")
        emit("startup", "warm_ready_ms_median", statistics.median(w_ready), "ms")
        emit("startup", "cold_login_attached_ms_median", statistics.median(c_total), "ms")
        emit("startup", "cold_login_to_attached_ms_median", statistics.median(c_login), "ms")
    finally:
        close_net(net)


if __name__ == "__main__":
    main_wrapper(main)
