# shellcheck shell=bash
# A complete parley network on loopback, for the demo, the end-to-end tests and benches.
# Source it, set LN_BIN (directory holding the programs) and call:
#   ln_setup          temp dir, free ports, network created, supernode enrolled
#   ln_start_login    ln_start_supernode    ln_start_client NAME
#   ln_cli NAME ARGS...   runs `parley --data-dir DIR/NAME ARGS...`
#   ln_cleanup        stops every process started here and removes the temp dir
# Every process is started with its own log in $LN_DIR/NAME.log.

LN_PIDS=()
LN_DIR=${LN_DIR:-}
LN_KEEP=${LN_KEEP:-0}

ln_free_udp_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ln_setup() {
	: "${LN_BIN:?LN_BIN must name the directory with the parley programs}"
	for p in parley-login parley-supernode parleyd parley; do
		[ -x "$LN_BIN/$p" ] || { echo "localnet: $LN_BIN/$p is missing (build first: make)" >&2; return 1; }
	done
	# Unix socket paths are limited to 107 bytes: keep the directory short.
	LN_DIR=$(mktemp -d /tmp/parley.XXXXXX)
	LN_LOGIN_PORT=$(ln_free_udp_port)
	LN_SN_PORT=$(ln_free_udp_port)
	while [ "$LN_SN_PORT" = "$LN_LOGIN_PORT" ]; do LN_SN_PORT=$(ln_free_udp_port); done
	LN_NET=$LN_DIR/login/network.conf
	"$LN_BIN/parley-login" init --data-dir "$LN_DIR/login" --listen "127.0.0.1:$LN_LOGIN_PORT" \
		--name localnet >"$LN_DIR/init.log" || return 1
	"$LN_BIN/parley-supernode" init --data-dir "$LN_DIR/sn" >>"$LN_DIR/init.log" || return 1
	"$LN_BIN/parley-login" enroll --data-dir "$LN_DIR/login" \
		--supernode-pub "$LN_DIR/sn/supernode.pub" --address "127.0.0.1:$LN_SN_PORT" \
		>>"$LN_DIR/init.log" || return 1
}

# ln_add_supernode NAME: one more supernode (key, enrollment, own port), started later
# with ln_start_supernode NAME. Its port is in LN_PORT_<NAME>.
ln_add_supernode() {
	local port
	port=$(ln_free_udp_port)
	"$LN_BIN/parley-supernode" init --data-dir "$LN_DIR/$1" --name "$1" >>"$LN_DIR/init.log" || return 1
	"$LN_BIN/parley-login" enroll --data-dir "$LN_DIR/login" \
		--supernode-pub "$LN_DIR/$1/supernode.pub" --address "127.0.0.1:$port" \
		>>"$LN_DIR/init.log" || return 1
	eval "LN_PORT_$1=$port"
}

# ln_wait_ready NAME: waits (up to 10 s) for the "ready" line on the program's stdout.
ln_wait_ready() {
	local out=$LN_DIR/$1.out i
	for i in $(seq 1 200); do
		if grep -q ': ready' "$out" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "localnet: $1 did not become ready; its log:" >&2
	tail -n 20 "$LN_DIR/$1.log" >&2
	return 1
}

ln_spawn() { # NAME CMD...
	local name=$1; shift
	"$@" >"$LN_DIR/$name.out" 2>"$LN_DIR/$name.log" &
	LN_PIDS+=($!)
	eval "LN_PID_$name=$!"
	ln_wait_ready "$name"
}

ln_start_login() {
	ln_spawn login "$LN_BIN/parley-login" --data-dir "$LN_DIR/login" "${LN_LOGIN_ARGS[@]}"
}

ln_start_supernode() { # [NAME] (default: the first supernode, "sn")
	local name=${1:-sn} var port
	var="LN_PORT_$name"
	port=${!var:-$LN_SN_PORT}
	# every supernode here shares 127.0.0.0/24: lift the per-prefix routing limit
	ln_spawn "$name" "$LN_BIN/parley-supernode" --data-dir "$LN_DIR/$name" --network "$LN_NET" \
		--listen "127.0.0.1:$port" --overlay-per-prefix 64
}

ln_start_client() { # NAME [NETWORK-FILE [PARLEYD-OPTIONS...]]
	ln_spawn "$1" "$LN_BIN/parleyd" --data-dir "$LN_DIR/$1" --network "${2:-$LN_NET}" \
		--listen 127.0.0.1:0 --device-name "$1-laptop" --audio none "${@:3}"
}

ln_cli() { # NAME ARGS...
	local name=$1; shift
	"$LN_BIN/parley" --data-dir "$LN_DIR/$name" "$@"
}

ln_stop() { # NAME: SIGTERM, then wait (up to 5 s) for a clean exit
	local var="LN_PID_$1" pid i
	pid=${!var:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return $?; }
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	return 1
}

ln_cleanup() {
	local pid
	for pid in "${LN_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	sleep 0.2
	for pid in "${LN_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	LN_PIDS=()
	if [ -n "$LN_DIR" ] && [ "$LN_KEEP" != 1 ]; then rm -rf "$LN_DIR"; fi
}
