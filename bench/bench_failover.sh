#!/usr/bin/env bash
# Failover of a client's primary supernode, with real processes on loopback: 3 supernodes,
# alice (primary = supernode 1, plus a warm standby) and bob (primary = supernode 3).
# Each trial builds a fresh network, waits until alice's standby is attached and named in
# her record, kills alice's primary with SIGKILL and, at the same instant, bob sends alice a
# message; the figure is the time from the kill to alice's message.received event.
# Usage: bench/bench_failover.sh [BINDIR] [TRIALS]   (JSON lines on stdout at the end)
#        FAILOVER_SESSION=1 ...: bob and alice already have an end-to-end session
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=$(cd "${1:-$here/../build/cmd}" && pwd)
trials=${2:-10}
# shellcheck source=../scripts/localnet.sh
. "$here/../scripts/localnet.sh"
trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
results=()
for t in $(seq 1 "$trials"); do
	ln_cleanup
	LN_DIR=
	ln_setup || exit 1
	ln_add_supernode s2 && ln_add_supernode s3 || exit 1
	ln_start_login && ln_start_supernode sn && ln_start_supernode s2 && ln_start_supernode s3 || exit 1
	mapfile -t snl < <(grep '^supernode' "$LN_NET")
	mk_net() { grep -v '^supernode' "$LN_NET" >"$2"; for k in 0 1 2; do echo "${snl[$((($1 + k) % 3))]}" >>"$2"; done; }
	mk_net 0 "$LN_DIR/net-alice.conf"
	mk_net 2 "$LN_DIR/net-bob.conf"
	ln_start_client alice "$LN_DIR/net-alice.conf" && ln_start_client bob "$LN_DIR/net-bob.conf" || exit 1
	for u in alice bob; do
		echo "password-$u" | ln_cli $u register $u --password-stdin >/dev/null &&
			echo "password-$u" | ln_cli $u login $u --password-stdin >/dev/null || exit 1
	done
	ln_cli alice contacts add bob >/dev/null || exit 1 # messages from strangers are held
	# the standby attaches 2 s after the primary; then bob's view of alice must name both
	for i in $(seq 1 100); do
		n=$(ln_cli bob --json whois alice 2>/dev/null | jq '.devices[0].supernodes | length' 2>/dev/null)
		[ "$n" = 2 ] && break
		sleep 0.1
	done
	[ "$n" = 2 ] || { echo "trial $t: alice's standby never showed up in her record" >&2; results+=(timeout); continue; }
	if [ "${FAILOVER_SESSION:-0}" = 1 ]; then
		# an end-to-end session already carries messages: failover then rides on the
		# message retransmission (1 s) rather than the handshake's (300 ms)
		ln_cli bob send alice "warm-up" >/dev/null; sleep 0.5
	fi
	ms=$(VICTIM_PID=$LN_PID_sn python3 - "$LN_DIR/alice/parleyd.sock" "$LN_DIR/bob/parleyd.sock" <<'PY'
import json, os, signal, socket, sys, time
def conn(path):
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(15)
    return s, s.makefile("rwb")
a, af = conn(sys.argv[1]); b, bf = conn(sys.argv[2])
af.write(b'{"id":1,"cmd":"events.subscribe"}\n'); af.flush(); af.readline()
os.kill(int(os.environ["VICTIM_PID"]), signal.SIGKILL)
t0 = time.perf_counter()
bf.write(json.dumps({"id": 2, "cmd": "send", "args": {"to": "alice", "text": "failover probe"}}).encode() + b"\n"); bf.flush()
try:
    while True:
        m = json.loads(af.readline())
        if m.get("event") == "message.received":
            print("%.1f" % ((time.perf_counter() - t0) * 1000)); break
except socket.timeout:
    print("timeout")
PY
)
	echo "trial $t: killed alice's primary: message reached alice after $ms ms"
	results+=("$ms")
done 2> >(grep -v Killed >&2)
python3 - "${results[@]}" <<'PY'
import json, os, sys
v = sorted(float(x) for x in sys.argv[1:] if x != "timeout")
lost = sum(1 for x in sys.argv[1:] if x == "timeout")
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
print("failover: %d trials, %d timed out; median %.0f ms, p90 %.0f ms, max %.0f ms, min %.0f ms"
      % (len(sys.argv) - 1, lost, q(0.5), q(0.9), v[-1] if v else 0, v[0] if v else 0))
for fig, val in (("median_ms", q(0.5)), ("p90_ms", q(0.9)), ("max_ms", v[-1] if v else 0),
                 ("within_2s_fraction", sum(1 for x in v if x <= 2000) / max(1, len(v) + lost))):
    print(json.dumps({"bench": "failover", "figure": ("session_" if os.environ.get("FAILOVER_SESSION") == "1" else "") + fig, "value": round(val, 3),
                      "unit": "ratio" if fig.endswith("fraction") else "ms"}))
PY
