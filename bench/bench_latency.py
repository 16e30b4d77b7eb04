#!/usr/bin/env python3
"""bench_latency: message latency alice -> bob on loopback, and a pipelined burst.

A private network (login server, supernode, two parleyd: alice and bob, both logged in).
bob's API connection is subscribed to events. One process holds both sockets and one
clock (time.perf_counter):

  sequential  for each of M messages: write the "send" request on alice's socket, wait
              for bob's message.received event carrying that text; latency = event
              arrival - request write. Includes both API hops (JSON over Unix sockets),
              alice's SQLite insert, the end-to-end encrypted path through the
              supernode relay, bob's SQLite insert and event.
  burst       write M "send" requests back to back without waiting, then time until bob
              has received all M (messages/s).

The first message opens the end-to-end session (directory lookup + Noise handshake); it
is reported on its own ("first_message_ms") and a few warm-up messages are not counted.

usage: bench_latency.py [--build DIR] [--messages M] [--warmup K]
Prints a table and JSON lines {"bench":"latency","figure":...,"value":...,"unit":...}.
"""

import argparse
import os
import re
import selectors
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_login import (PASSWORD, BenchError, LocalNet, close_net, emit,  # noqa: E402
                         find_bindir, main_wrapper, percentile)

STEP_TIMEOUT = 15.0


def is_msg(ev):
    return ev.get("event") == "message.received"


def one_message(alice, bob, text, timeout=STEP_TIMEOUT):
    """Sends text alice -> bob; returns seconds from the request write to bob's event."""
    sel = selectors.DefaultSelector()
    sel.register(alice.sock, selectors.EVENT_READ, alice)
    sel.register(bob.sock, selectors.EVENT_READ, bob)
    t0 = time.perf_counter()
    rid = alice.send("send", {"to": "bob", "text": text})
    got_reply = got_event = None
    deadline = time.monotonic() + timeout
    try:
        while got_reply is None or got_event is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("message %r: no %s within %.0f s" % (
                    text, "reply" if got_reply is None else "message.received at bob", timeout))
            for key, _ in sel.select(timeout=min(left, 1.0)):
                api = key.data
                data = api.sock.recv(1 << 16)
                now = time.perf_counter()
                if not data:
                    raise BenchError("a daemon closed its API connection")
                api.feed(data, now)
            if got_reply is None and rid in alice.replies:
                got_reply = alice.replies.pop(rid)
                if not got_reply.get("ok"):
                    raise BenchError("send failed: %s" % got_reply.get("error"))
            alice.events.clear()
            if got_event is None:
                for i, (t, ev) in enumerate(bob.events):
                    if is_msg(ev) and (ev.get("data") or {}).get("text") == text:
                        got_event = t
                        del bob.events[i]
                        break
                bob.events = [(t, ev) for (t, ev) in bob.events if not is_msg(ev)]
    finally:
        sel.close()
    return got_event - t0


def burst(alice, bob, n, tag, timeout):
    """n sends written back to back without waiting; returns seconds from the first write
    until bob received all n. Writes are non-blocking and interleaved with reading both
    sockets, so no socket buffer can fill up and stall the measurement."""
    texts = ["%s-%05d" % (tag, i) for i in range(n)]
    want = set(texts)
    out = b"".join(alice.encode("send", {"to": "bob", "text": t})[1] for t in texts)
    off = 0
    errors = 0
    replies = 0
    t_last = t_replies = None
    sel = selectors.DefaultSelector()
    alice.sock.setblocking(False)
    bob.sock.setblocking(False)
    sel.register(alice.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, alice)
    sel.register(bob.sock, selectors.EVENT_READ, bob)
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    try:
        while want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("burst: bob received %d of %d within %.0f s"
                                 % (n - len(want), n, timeout))
            for key, mask in sel.select(timeout=min(left, 1.0)):
                api = key.data
                if mask & selectors.EVENT_WRITE:
                    try:
                        off += api.sock.send(out[off:off + 65536])
                    except BlockingIOError:
                        pass
                    if off == len(out):
                        sel.modify(api.sock, selectors.EVENT_READ, api)
                if mask & selectors.EVENT_READ:
                    try:
                        data = api.sock.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    now = time.perf_counter()
                    if not data:
                        raise BenchError("a daemon closed its API connection")
                    api.feed(data, now)
            for rep in alice.replies.values():
                replies += 1
                if not rep.get("ok"):
                    errors += 1
            if alice.replies and replies == n:
                t_replies = time.perf_counter()
            alice.replies.clear()
            alice.events.clear()
            for t, ev in bob.events:
                if is_msg(ev):
                    txt = (ev.get("data") or {}).get("text")
                    if txt in want:
                        want.discard(txt)
                        t_last = t
            bob.events.clear()
            if errors:
                raise BenchError("burst: %d send requests failed" % errors)
        # The send replies may still be on their way; collect them (for the report only).
        while replies < n and time.monotonic() < deadline:
            alice.sock.setblocking(True)
            alice.pump(1.0)
            replies += len(alice.replies)
            alice.replies.clear()
            alice.events.clear()
            t_replies = time.perf_counter()
    finally:
        sel.close()
        alice.sock.setblocking(True)
        bob.sock.setblocking(True)
    return t_last - t0, (t_replies - t0) if t_replies else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build directory (default $BUILD or build-bench/)")
    ap.add_argument("--messages", type=int, default=1000, help="messages (default 1000)")
    ap.add_argument("--warmup", type=int, default=20, help="uncounted warm-up messages (default 20)")
    a = ap.parse_args()
    bindir = find_bindir(a.build)
    if a.messages < 1 or a.warmup < 0:
        raise BenchError("--messages must be >= 1 and --warmup >= 0")
    net = LocalNet(bindir)
    try:
        net.start_login(["--register-per-min", "1000000", "--login-per-min", "1000000"])
        net.start_supernode()
        apis = {}
        for name in ("alice", "bob"):
            d = net.start_daemon(name)
            api = d.api()
            api.request("register", {"username": name, "password": PASSWORD}, timeout=STEP_TIMEOUT)
            api.request("login", {"username": name, "password": PASSWORD}, timeout=STEP_TIMEOUT)
            apis[name] = api
        alice, bob = apis["alice"], apis["bob"]
        # bob takes messages from contacts only (a stranger's are held as requests)
        bob.request("contacts.add", {"username": "alice"}, timeout=STEP_TIMEOUT)
        bob.request("events.subscribe", timeout=STEP_TIMEOUT)

        print("== bench_latency: alice -> bob on loopback, %d messages sequential, %d in a burst"
              % (a.messages, a.messages))
        first = one_message(alice, bob, "first message")
        for i in range(a.warmup):
            one_message(alice, bob, "warm-up %d" % i)
        lat = []
        for i in range(a.messages):
            lat.append(1000 * one_message(alice, bob, "seq-%05d the quick brown fox" % i))
        el, el_acc = burst(alice, bob, a.messages, "burst", timeout=60 + a.messages * 0.1)
        rate = a.messages / el
        print("first message (lookup + handshake): %.2f ms" % (1000 * first))
        print("sequential, %d messages: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f ms"
              % (len(lat), statistics.median(lat), percentile(lat, 90), percentile(lat, 99),
                 max(lat), statistics.mean(lat)))
        print("burst of %d: all received in %.3f s = %.0f messages/s (alice answered all %d "
              "send requests after %.3f s)" % (a.messages, el, rate, a.messages, el_acc))
        emit("latency", "message_latency_ms_p50", statistics.median(lat), "ms")
        emit("latency", "message_latency_ms_p90", percentile(lat, 90), "ms")
        emit("latency", "message_latency_ms_p99", percentile(lat, 99), "ms")
        emit("latency", "message_latency_ms_max", max(lat), "ms")
        emit("latency", "first_message_ms", 1000 * first, "ms")
        emit("latency", "burst_throughput_msgs_per_s", rate, "msg/s")
        # The supernode prints its counters when it stops: how many packets it relayed
        # for these messages (ideal: about 2 per message, the chat frame and its receipt)
        # and how many its per-device forward limiter dropped (counted as "bad packets").
        net.sn.stop()
        m = re.search(r"(\d+) forwarded, (\d+) bad packets", net.sn.log_tail(50))
        if m:
            total = 1 + a.warmup + 2 * a.messages
            fwd, bad = int(m.group(1)), int(m.group(2))
            print("supernode relayed %d packets for %d messages (%.1f per message; ideal ~2) "
                  "and dropped %d at its forward limiter" % (fwd, total, fwd / total, bad))
            emit("latency", "supernode_forwards_per_message", fwd / total, "packets/msg")
    finally:
        close_net(net)


if __name__ == "__main__":
    main_wrapper(main)
