#!/usr/bin/env bash
# Idle cost of an attached client: bytes/s on the wire and wake-ups per minute of a logged
# in parleyd that does nothing (primary and standby supernode attached, no contacts),
# measured over IDLE_SECONDS (default 120) after a 15 s settling time.
#
#   bench/bench_idle.sh [BUILD_DIR]          (root: nftables counters)
#
# Bytes: an nftables table counts every UDP packet from or to the daemon's port on the
# loopback interface (IP length: IP + UDP headers + payload). Wake-ups: the growth of
# voluntary + involuntary context switches of the daemon (/proc/PID/status), i.e. how often
# it left the CPU, which bounds how often it was woken.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$root/build}
LN_BIN=$BUILD/cmd
IDLE=${IDLE_SECONDS:-120}
TABLE=parley_idle_$$
# shellcheck source=../scripts/localnet.sh
. "$root/scripts/localnet.sh"
[ "$(id -u)" = 0 ] || { echo "bench_idle: needs root (nftables counters)" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench_idle: nft is missing (scripts/deps.sh check)" >&2; exit 1; }
cleanup() { nft delete table inet "$TABLE" 2>/dev/null || true; ln_cleanup; }
trap cleanup EXIT
json() { echo "{\"bench\": \"idle_nft\", \"figure\": \"$1\", \"value\": $2, \"unit\": \"$3\"}"; }
ctx() { awk '/ctxt_switches/ {s += $2} END {print s}' "/proc/$1/status"; }

ln_setup
ln_add_supernode s2
ln_start_login && ln_start_supernode sn && ln_start_supernode s2
ln_start_client alice
echo "password-alice" | ln_cli alice register alice --password-stdin >/dev/null
echo "password-alice" | ln_cli alice login alice --password-stdin >/dev/null
pid=$LN_PID_alice
port=$(ss -uanp | awk -v p="pid=$pid," 'index($0, p) {n = split($4, a, ":"); print a[n]; exit}')
[ -n "$port" ] || { echo "bench_idle: cannot find parleyd's UDP port" >&2; exit 1; }
sleep 15 # the standby attaches, the record is published twice, the own-name lookup is done
nft add table inet "$TABLE"
nft add chain inet "$TABLE" out '{ type filter hook output priority 0; policy accept; }'
nft add rule inet "$TABLE" out oif lo udp sport "$port" counter comment '"sent"'
nft add rule inet "$TABLE" out oif lo udp dport "$port" counter comment '"received"'
c0=$(ctx "$pid")
echo "== parleyd idle for $IDLE s (port $port, pid $pid): primary and standby attached"
sleep "$IDLE"
c1=$(ctx "$pid")
counts=$(nft list table inet "$TABLE")
sent=$(echo "$counts" | awk '/"sent"/ {for (i = 1; i < NF; i++) if ($i == "bytes") print $(i + 1)}')
recv=$(echo "$counts" | awk '/"received"/ {for (i = 1; i < NF; i++) if ($i == "bytes") print $(i + 1)}')
psent=$(echo "$counts" | awk '/"sent"/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}')
precv=$(echo "$counts" | awk '/"received"/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}')
bps=$(echo "($sent + $recv) / $IDLE" | bc -l)
wpm=$(echo "($c1 - $c0) * 60 / $IDLE" | bc -l)
printf '  sent %d packets / %d bytes, received %d packets / %d bytes in %d s\n' "$psent" "$sent" "$precv" "$recv" "$IDLE"
printf '  %.1f bytes/s both directions, %.1f wake-ups/min\n' "$bps" "$wpm"
json bytes_per_s "$(printf %.1f "$bps")" bytes/s
json sent_bytes_per_s "$(printf %.1f "$(echo "$sent / $IDLE" | bc -l)")" bytes/s
json wakeups_per_min "$(printf %.1f "$wpm")" wakeups/min
