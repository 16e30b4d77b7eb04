#!/usr/bin/env bash
# Relay throughput: parley's supernode against Debian's coturn, in the same run, on
# loopback, with the same number of concurrent relayed sessions and 100-byte packets.
#
#   bench/bench_relay.sh [BUILD_DIR]   (SESSIONS=1000 SECONDS_RUN=10 TURN_SESSIONS=400 RATE=10)
#
# parley: bench-relay attaches 2 x SESSIONS devices to one real parley-supernode and
#   streams FORWARD frames between partners; relayed = packets delivered to the partner.
# coturn: turnserver (one process, UDP, long-term credentials) with turnutils_peer as the
#   echoing peer and turnutils_uclient -m TURN_SESSIONS -l 100 sending through its relays;
#   relayed = 2 x the messages that came back (each crossed the relay twice).
# The comparable figure is relayed packets per CPU-second of the relay process (utime +
# stime from /proc), i.e. the capacity of one core: the load generators differ, so the
# wall-clock rates say more about them than about the relays.
# coturn's own client takes long to set up many allocations on this machine and fails
# with "437 allocation mismatch" retries above a few hundred at once, hence its own count.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$root/build}
LN_BIN=$BUILD/cmd
SESSIONS=${SESSIONS:-1000}
SECS=${SECONDS_RUN:-10}
TURN_SESSIONS=${TURN_SESSIONS:-400}
RATE=${RATE:-10} # packets/s per device (2 x SESSIONS devices); 0 = as fast as possible
# shellcheck source=../scripts/localnet.sh
. "$root/scripts/localnet.sh"
turn_pids=()
cleanup() {
	for p in "${turn_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ln_cleanup
}
trap cleanup EXIT
json() { echo "{\"bench\": \"relay\", \"figure\": \"$1\", \"value\": $2, \"unit\": \"$3\"}"; }
cpu_s() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }

ln_setup
ln_start_supernode sn
echo "== parley supernode: $SESSIONS relayed sessions, 100-byte packets, ${SECS} s"
"$BUILD/bench/bench-relay" "$LN_NET" "$LN_DIR/login/root.key" "$LN_PID_sn" "$SESSIONS" "$SECS" 100 "$RATE" |
	tee "$LN_DIR/relay.out"
ours=$(sed -n 's/.*"relayed_per_cpu_s", "value": \([0-9.]*\).*/\1/p' "$LN_DIR/relay.out")

command -v turnserver >/dev/null || { echo "bench_relay: coturn is missing (scripts/deps.sh bench)" >&2; exit 1; }
tport=$(ln_free_udp_port); pport=$(ln_free_udp_port)
turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$tport" \
	--user=bench:bench --realm=bench --lt-cred-mech --no-tls --no-dtls --allow-loopback-peers \
	--no-cli --log-file=/dev/null --no-stdout-log --total-quota=0 --user-quota=0 \
	>"$LN_DIR/turn.log" 2>&1 &
turn_pids+=($!); tpid=$!
turnutils_peer -L 127.0.0.1 -p "$pport" >"$LN_DIR/peer.log" 2>&1 &
turn_pids+=($!)
sleep 1
n=$(( SECS * 200 ))  # 200 messages per second per session offered (-z 5)
echo "== coturn: $TURN_SESSIONS relayed sessions, 100-byte packets, $n messages each"
c0=$(cpu_s "$tpid")
t0=$(date +%s.%N)
timeout 300 turnutils_uclient -u bench -w bench -p "$tport" -m "$TURN_SESSIONS" -n "$n" -l 100 -z 5 \
	-c -e 127.0.0.1 -r "$pport" -X 127.0.0.1 >"$LN_DIR/uclient.log" 2>&1 || true
t1=$(date +%s.%N)
c1=$(cpu_s "$tpid")
recv=$(grep -o 'tot_recv_msgs=[0-9]*' "$LN_DIR/uclient.log" | tail -1 | cut -d= -f2)
recv=${recv:-0}
grep -E "Total (transmit|lost)" "$LN_DIR/uclient.log" | tail -2 | sed 's/^[0-9]*: : /  /'
relayed=$(( 2 * recv ))
cpu=$(echo "$c1 - $c0" | bc -l)
theirs=$(echo "if ($cpu > 0) $relayed / $cpu else 0" | bc -l)
printf '  coturn relayed %d packets with %.2f CPU-s (over %.1f s including allocations)\n' \
	"$relayed" "$cpu" "$(echo "$t1 - $t0" | bc -l)"
json coturn_relayed_per_cpu_s "$(printf %.1f "$theirs")" packets/cpu-s
if [ "$(echo "$theirs > 0" | bc -l)" = 1 ]; then
	json parley_vs_coturn_per_cpu "$(printf %.2f "$(echo "$ours / $theirs" | bc -l)")" ratio
fi
