#!/usr/bin/env python3
"""bench_call: call set-up time on loopback, `call` request to first audio played at the callee.

A private network (login server, supernode, two parleyd: alice and bob, both logged in; bob
has alice as a contact). One process holds both API sockets and one clock
(time.perf_counter). For each call:

  t0      alice's "call" request is written (alice plays a speech file)
  ring    bob's call.state "ringing" event arrives; bob's "call.answer" is written at once
          (a machine answering: the human part of answering is not the stack's)
  audio   bob's media reports the first decoded frame played, first_audio_at_ms after its
          start (the answer); set-up = (answer written - t0) + first_audio_at_ms

Two kinds, reported separately:
  established  alice and bob exchanged a message before, so the lookup is cached and the
               end-to-end session is up: signaling + media start only
  cold         alice's daemon is restarted just before (stored certificate, attaches to the
               supernode), then calls at once: lookup + Noise handshake + call

usage: bench_call.py [--build DIR] [--calls N] [--cold N]
Prints a table and JSON lines {"bench":"call","figure":...,"value":...,"unit":...}.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_login import (PASSWORD, BenchError, LocalNet, emit, find_bindir,  # noqa: E402
                         main_wrapper, percentile)

STEP = 15.0


def is_state(ev, st):
    d = ev.get("data") or {}
    return ev.get("event") == "call.state" and d.get("state") == st


def one_call(alice, bob, speech):
    bob.events.clear()
    t0 = time.perf_counter()
    rid = alice.send("call", {"username": "bob", "play": speech})
    t_ring, ev = bob.wait_event(lambda e: is_state(e, "ringing"), STEP)
    cid = ev["data"]["id"]
    t_ans = time.perf_counter()
    bob.request("call.answer", {"id": cid}, timeout=STEP)
    rep = alice.wait_reply(rid, STEP)
    if not rep.get("ok"):
        raise BenchError("call failed: %s" % rep.get("error"))
    # the first stats event (a second after media start) carries first_audio_at_ms
    while True:
        _, st = bob.wait_event(lambda e: e.get("event") == "call.stats"
                               and (e.get("data") or {}).get("id") == cid, STEP)
        fa = ((st["data"].get("stats") or {}).get("first_audio_at_ms") or 0)
        if fa > 0:
            break
    alice.request("call.hangup", {"id": cid}, timeout=STEP)
    bob.wait_event(lambda e: is_state(e, "ended") and e["data"]["id"] == cid, STEP)
    alice.events.clear()
    return 1000 * (t_ring - t0), 1000 * (t_ans - t0) + fa, fa


def summary(name, xs):
    print("%-34s p50 %7.1f  p90 %7.1f  max %7.1f ms  (n=%d)"
          % (name, statistics.median(xs), percentile(xs, 90), max(xs), len(xs)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build directory (default $BUILD or build-bench/)")
    ap.add_argument("--calls", type=int, default=20, help="calls with an established session")
    ap.add_argument("--cold", type=int, default=10, help="calls right after alice's daemon starts")
    a = ap.parse_args()
    bindir = find_bindir(a.build)
    net = LocalNet(bindir)
    speech = net.path("speech.wav")
    r = subprocess.run(["espeak-ng", "-s", "150", "-w", speech,
                        "Hello bob, this is alice. Can you hear me?"], capture_output=True)
    if r.returncode != 0:
        raise BenchError("espeak-ng failed (scripts/deps.sh bench installs it)")
    net.start_login(["--register-per-min", "1000000", "--login-per-min", "1000000"])
    net.start_supernode()
    d = {}
    apis = {}
    for name in ("alice", "bob"):
        d[name] = net.start_daemon(name)
        api = d[name].api()
        api.request("register", {"username": name, "password": PASSWORD}, timeout=STEP)
        api.request("login", {"username": name, "password": PASSWORD}, timeout=STEP)
        apis[name] = api
    alice, bob = apis["alice"], apis["bob"]
    bob.request("contacts.add", {"username": "alice"}, timeout=STEP)
    bob.request("events.subscribe", timeout=STEP)
    print("== bench_call: alice calls bob on loopback, %d calls with an established session, "
          "%d from a cold start" % (a.calls, a.cold))
    alice.request("send", {"to": "bob", "text": "warm up"}, timeout=STEP)
    bob.wait_event(lambda e: e.get("event") == "message.received", STEP)
    one_call(alice, bob, speech)  # warm-up, not counted
    ring, setup, media = [], [], []
    for _ in range(a.calls):
        r1, s1, m1 = one_call(alice, bob, speech)
        ring.append(r1)
        setup.append(s1)
        media.append(m1)
    cring, csetup = [], []
    for _ in range(a.cold):
        alice.close()
        d["alice"].proc.stop()
        d["alice"] = net.start_daemon("alice")
        alice = d["alice"].api()
        deadline = time.monotonic() + STEP
        while alice.request("status", timeout=STEP).get("state") != "online":
            if time.monotonic() > deadline:
                raise BenchError("alice did not come back online")
            time.sleep(0.002)
        r1, s1, _ = one_call(alice, bob, speech)
        cring.append(r1)
        csetup.append(s1)
    summary("established: call -> ringing", ring)
    summary("established: answer -> first audio", media)
    summary("established: call -> first audio", setup)
    summary("cold start: call -> ringing", cring)
    summary("cold start: call -> first audio", csetup)
    emit("call", "setup_established_ms_p50", statistics.median(setup), "ms")
    emit("call", "setup_established_ms_p90", percentile(setup, 90), "ms")
    emit("call", "ringing_established_ms_p50", statistics.median(ring), "ms")
    emit("call", "answer_to_audio_ms_p50", statistics.median(media), "ms")
    emit("call", "setup_cold_ms_p50", statistics.median(csetup), "ms")
    emit("call", "setup_cold_ms_p90", percentile(csetup, 90), "ms")
    emit("call", "ringing_cold_ms_p50", statistics.median(cring), "ms")


if __name__ == "__main__":
    main_wrapper(main)
