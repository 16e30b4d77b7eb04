#!/usr/bin/env python3
"""bench_idle: what an idle, attached client costs, measured on the real daemon.

A private network on loopback (login server, supernode, parleyd alice and bob). alice's
parleyd is traced with strace for DURATION seconds in two states:

  alone     alice logged in and attached, no session with anyone (bob not started)
  session   bob is alice's contact, they exchanged a message; their end-to-end session
            went direct (loopback), so alice also keeps that path alive

Counted from the trace: datagrams and bytes sent (sendmsg) and received (recvmsg) by the
daemon's UDP socket, and wake-ups (returns from epoll_wait / epoll_pwait: every time the
event loop woke the process, timer or packet). "Wire" bytes add 28 bytes of IPv4 + UDP
header per datagram (loopback has no link layer worth counting).

usage: bench_idle.py [--build DIR] [--duration S]
Prints a table and JSON lines {"bench":"idle","figure":...,"value":...,"unit":...}.
Needs strace (ptrace of our own child: works as root or with ptrace_scope 0).
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_login import (PASSWORD, BenchError, LocalNet, emit, find_bindir,  # noqa: E402
                         main_wrapper)

SYSCALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(.*\)\s+=\s+(-?\d+)")


def trace(pid, seconds, out):
    """strace the process for `seconds`; returns (sent_n, sent_b, recv_n, recv_b, wakeups)."""
    p = subprocess.Popen(["strace", "-f", "-qq", "-e",
                          "trace=sendmsg,sendto,recvmsg,recvfrom,epoll_wait,epoll_pwait",
                          "-o", out, "-p", str(pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(seconds)
    p.terminate()
    p.wait(timeout=10)
    sent_n = sent_b = recv_n = recv_b = wake = 0
    with open(out, errors="replace") as f:
        for line in f:
            m = SYSCALL.match(line.strip())
            if not m:
                continue
            name, rv = m.group(1), int(m.group(2))
            if name in ("epoll_wait", "epoll_pwait"):
                wake += 1
            elif rv <= 0:
                continue
            elif name in ("sendmsg", "sendto") and "sun_family=AF_UNIX" not in line:
                sent_n += 1
                sent_b += rv
            elif name in ("recvmsg", "recvfrom"):
                recv_n += 1
                recv_b += rv
    return sent_n, sent_b, recv_n, recv_b, wake


def report(state, seconds, r):
    sent_n, sent_b, recv_n, recv_b, wake = r
    payload = (sent_b + recv_b) / seconds
    wire = (sent_b + recv_b + 28 * (sent_n + recv_n)) / seconds
    print("%-8s %6.1f B/s payload  %6.1f B/s wire  %5.2f datagrams/s  %5.1f wake-ups/min"
          % (state, payload, wire, (sent_n + recv_n) / seconds, wake * 60.0 / seconds))
    emit("idle", "%s_payload_bytes_per_s" % state, round(payload, 2), "B/s")
    emit("idle", "%s_wire_bytes_per_s" % state, round(wire, 2), "B/s")
    emit("idle", "%s_datagrams_per_s" % state, round((sent_n + recv_n) / seconds, 3), "1/s")
    emit("idle", "%s_wakeups_per_min" % state, round(wake * 60.0 / seconds, 2), "1/min")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build")
    ap.add_argument("--duration", type=float, default=120.0)
    a = ap.parse_args()
    net = LocalNet(find_bindir(a.build), name="idle")
    net.start_login(["--register-per-min", "1000000", "--login-per-min", "1000000",
                     "--argon2-ops", "1", "--argon2-mem-kib", "8192"])
    net.start_supernode()
    alice = net.start_daemon("alice")
    api_a = alice.api()
    api_a.request("register", {"username": "alice", "password": PASSWORD}, timeout=30)
    api_a.request("login", {"username": "alice", "password": PASSWORD}, timeout=30)
    api_a.request("contacts.add", {"username": "bob"})
    time.sleep(3)  # attachment, record publication, first keepalives settle
    r = trace(alice.proc.pid, a.duration, net.path("alone.strace"))
    report("alone", a.duration, r)

    bob = net.start_daemon("bob")
    api_b = bob.api()
    api_b.request("register", {"username": "bob", "password": PASSWORD}, timeout=30)
    api_b.request("login", {"username": "bob", "password": PASSWORD}, timeout=30)
    api_b.request("contacts.add", {"username": "alice"})
    api_a.request("send", {"to": "bob", "text": "hello"}, timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline:
        s = api_a.request("paths", {"user": "bob"})["sessions"]
        if s and s[0]["path"] == "direct":
            break
        time.sleep(0.2)
    else:
        raise BenchError("alice and bob did not get a direct path")
    time.sleep(3)
    r = trace(alice.proc.pid, a.duration, net.path("session.strace"))
    report("session", a.duration, r)


if __name__ == "__main__":
    main_wrapper(main)
