#!/usr/bin/env bash
# bench_rss: resident memory (VmRSS from /proc/PID/status, KiB) of parleyd and
# parley-supernode.
#
#   parleyd_start_kib            a parleyd right after its ready line (median over all started)
#   parleyd_idle_kib             a parleyd logged in, attached, then idle IDLE s
#   parleyd_idle_median_kib      median of that over all MANY daemons, after the second idle
#   supernode_start_kib          parley-supernode right after its ready line
#   supernode_2_clients_kib      with 2 attached clients, after IDLE s
#   supernode_<MANY>_clients_kib with MANY attached clients (default 200), after IDLE s
#
# The login server runs with the cheapest Argon2id parameters (ops 1, 8 KiB) so that MANY
# registrations and logins take seconds; that does not change the memory of parleyd or
# the supernode.
#
# usage: bench/bench_rss.sh            (BUILD=DIR selects the build, default build-bench/)
#   env: RSS_CLIENTS=N (default 200)  RSS_IDLE=SECONDS (default 5)  BENCH_KEEP=1 (keep dir)
#        RSS_SN_ARGS="--max-clients 1000" (extra supernode options, default none)
# Prints a table and JSON lines {"bench":"rss","figure":...,"value":...,"unit":"KiB"}.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${BUILD:-$REPO/build-bench}
BIN=$BUILD/cmd
MANY=${RSS_CLIENTS:-200}
IDLE=${RSS_IDLE:-5}
PW=bench-password-1

for p in parley-login parley-supernode parleyd parley; do
	if [ ! -x "$BIN/$p" ]; then
		echo "bench_rss: build missing: $BIN/$p not found." >&2
		echo "  build first: bench/run.sh (or meson setup $BUILD --buildtype=release && ninja -C $BUILD)," >&2
		echo "  or set BUILD=DIR to an existing build directory" >&2
		exit 1
	fi
done
case $MANY in '' | *[!0-9]*) echo "bench_rss: RSS_CLIENTS must be a number" >&2; exit 2 ;; esac
[ "$MANY" -ge 2 ] || { echo "bench_rss: RSS_CLIENTS must be >= 2" >&2; exit 2; }

PIDS=()
# Unix socket paths are limited to 107 bytes: keep the directory short.
DIR=$(mktemp -d /tmp/pr.XXXXXX)

cleanup() {
	local pid
	trap - EXIT INT TERM HUP
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 1 50); do
		local alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1 && break; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "(kept $DIR)" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

die() { echo "bench_rss: $*" >&2; exit 1; }

free_udp_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rss() { # PID -> VmRSS in KiB
	awk '/^VmRSS:/ {print $2; found=1} END {if (!found) exit 1}' "/proc/$1/status" ||
		die "process $1 is gone (no /proc/$1/status)"
}

median() { # numbers on stdin -> median (lower middle for an even count)
	sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print a[int((NR + 1) / 2)]}'
}

emit() { # FIGURE VALUE
	printf '{"bench":"rss","figure":"%s","value":%s,"unit":"KiB"}\n' "$1" "$2"
}

# spawn NAME CMD...: starts a program with stdout in DIR/NAME.out, stderr in DIR/NAME.log
spawn() {
	local name=$1
	shift
	"$@" </dev/null >"$DIR/$name.out" 2>"$DIR/$name.log" &
	PIDS+=($!)
	eval "PID_${name//-/_}=$!"
}

# wait_ready NAME [SECONDS]: waits for the "ready" line on the program's stdout
wait_ready() {
	local name=$1 t=${2:-15} i
	for i in $(seq 1 $((t * 100))); do
		grep -q ': ready' "$DIR/$name.out" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "bench_rss: $name did not become ready within ${t}s; its log:" >&2
	tail -n 20 "$DIR/$name.log" >&2
	exit 1
}

pid_of() { local v="PID_${1//-/_}"; echo "${!v}"; }

# client NAME: register and log in user NAME on the daemon with data dir DIR/NAME
client_login() {
	local d=$DIR/$1
	echo "$PW" | "$BIN/parley" --data-dir "$d" --timeout 30 register "$1" --password-stdin >/dev/null ||
		{ echo "bench_rss: register $1 failed" >&2; return 1; }
	echo "$PW" | "$BIN/parley" --data-dir "$d" --timeout 30 login "$1" --password-stdin >/dev/null ||
		{ echo "bench_rss: login $1 failed" >&2; return 1; }
}

start_daemons() { # FIRST LAST: starts c<FIRST>..c<LAST>, waits, records each start RSS
	local i name
	for i in $(seq "$1" "$2"); do
		name=$(printf 'c%04d' "$i")
		spawn "$name" "$BIN/parleyd" --data-dir "$DIR/$name" --network "$NET" \
			--listen 127.0.0.1:0 --device-name "$name-bench"
	done
	for i in $(seq "$1" "$2"); do
		name=$(printf 'c%04d' "$i")
		wait_ready "$name" 30
		rss "$(pid_of "$name")" >>"$DIR/start_rss"
	done
}

login_daemons() { # FIRST LAST: register + log in c<FIRST>..c<LAST>, 8 at a time
	export -f client_login
	export BIN DIR PW
	# shellcheck disable=SC2016 # $1 is for the inner bash
	seq "$1" "$2" | awk '{printf "c%04d\n", $1}' |
		xargs -P 8 -I{} bash -c 'client_login "$1"' _ {} ||
		die "registering/logging in the clients failed"
}

LOGIN_PORT=$(free_udp_port)
SN_PORT=$(free_udp_port)
while [ "$SN_PORT" = "$LOGIN_PORT" ]; do SN_PORT=$(free_udp_port); done
NET=$DIR/login/network.conf
{
	"$BIN/parley-login" init --data-dir "$DIR/login" --listen "127.0.0.1:$LOGIN_PORT" --name rss &&
		"$BIN/parley-supernode" init --data-dir "$DIR/sn" &&
		"$BIN/parley-login" enroll --data-dir "$DIR/login" --supernode-pub "$DIR/sn/supernode.pub" \
			--address "127.0.0.1:$SN_PORT"
} >"$DIR/init.log" 2>&1 || { cat "$DIR/init.log" >&2; die "creating the network failed"; }

echo "== bench_rss: VmRSS of parleyd and parley-supernode (idle ${IDLE}s, up to $MANY clients)"
spawn login "$BIN/parley-login" --data-dir "$DIR/login" --argon2-ops 1 --argon2-mem-kib 8 \
	--register-per-min 1000000 --login-per-min 1000000
wait_ready login
# shellcheck disable=SC2086 # RSS_SN_ARGS is a list of words
spawn sn "$BIN/parley-supernode" --data-dir "$DIR/sn" --network "$NET" --listen "127.0.0.1:$SN_PORT" \
	${RSS_SN_ARGS:-}
wait_ready sn
SN=$(pid_of sn)
sn_start=$(rss "$SN")

t0=$(date +%s.%N)
start_daemons 0 1
c0_start=$(head -n 1 "$DIR/start_rss")
login_daemons 0 1
C0=$(pid_of c0000)
sleep "$IDLE"
c0_idle=$(rss "$C0")
sn_2=$(rss "$SN")

start_daemons 2 $((MANY - 1))
login_daemons 2 $((MANY - 1))
t1=$(date +%s.%N)
attached=$(grep -c 'attached' "$DIR/sn.log" || true)
sleep "$IDLE"
sn_many=$(rss "$SN")
c0_idle2=$(rss "$C0")
for i in $(seq 0 $((MANY - 1))); do rss "$(pid_of "$(printf 'c%04d' "$i")")"; done >"$DIR/idle_rss"
start_med=$(median <"$DIR/start_rss")
idle_med=$(median <"$DIR/idle_rss")
idle_max=$(sort -n "$DIR/idle_rss" | tail -n 1)
sn_hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SN/status")

printf '%s clients started, registered, logged in and attached in %.1f s (supernode log: %s attach lines)\n' \
	"$MANY" "$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")" "$attached"
printf '%-44s %8s KiB\n' \
	"parleyd right after start (median of $MANY)" "$start_med" \
	"parleyd right after start (first)" "$c0_start" \
	"parleyd logged in, attached, idle ${IDLE}s" "$c0_idle" \
	"  same daemon, later (${MANY} clients up)" "$c0_idle2" \
	"  median over all $MANY daemons" "$idle_med" \
	"  max over all $MANY daemons" "$idle_max" \
	"parley-supernode right after start" "$sn_start" \
	"parley-supernode, 2 attached clients" "$sn_2" \
	"parley-supernode, $MANY attached clients" "$sn_many" \
	"  (its peak, VmHWM)" "$sn_hwm"
emit parleyd_start_kib "$start_med"
emit parleyd_idle_kib "$c0_idle"
emit parleyd_idle_median_kib "$idle_med"
emit supernode_start_kib "$sn_start"
emit supernode_2_clients_kib "$sn_2"
emit "supernode_${MANY}_clients_kib" "$sn_many"
