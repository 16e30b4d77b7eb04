#!/usr/bin/env bash
# The parley demo: a complete network on this machine's loopback — a login server, a
# supernode and two client daemons (alice and bob) in a temporary directory — registering,
# logging in, adding a contact, exchanging end-to-end encrypted messages and calling the
# echo test service (a third daemon), narrated with timings. Usage: scripts/demo.sh BINDIR   (make demo does this)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=$(cd "${1:?usage: demo.sh BINDIR}" && pwd)
# shellcheck source=localnet.sh
. "$here/localnet.sh"

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' C=$'\e[36m' R=$'\e[0m'; else B= D= G= C= R=; fi
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
step() { printf '\n%s[%6.3fs] %s%s\n' "$B" "$(echo "scale=3; ($(date +%s%N) - $t0) / 1000000000" | bc)" "$*" "$R"; }
say() { printf '          %s\n' "$*"; }
run() { # LABEL CMD...: show LABEL, run CMD, show its output and time
	local label=$1 s out rc; shift; s=$(date +%s%N)
	out=$("$@" 2>&1); rc=$?
	printf '          %s$ %s%s\n' "$D" "$label" "$R"
	printf '%s\n' "$out" | sed 's/^/            /'
	printf '          %s(%d ms)%s\n' "$D" "$(ms "$s")" "$R"
	return $rc
}
cleanup() {
	[ -n "${evpid:-}" ] && kill "$evpid" 2>/dev/null
	ln_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v bc >/dev/null || bc() { python3 -c "import sys; print(round(eval(sys.stdin.read()), 3))"; }

printf '%sparley demo%s: a whole network on loopback, end-to-end encrypted messages and a call\n' "$B" "$R"

step "1. Create the network: root key, login server key, network file"
ln_setup || { echo "demo: setup failed" >&2; exit 1; }
sed 's/^/          /' "$LN_DIR/init.log"
say "network file ($LN_NET):"
grep -v '^#' "$LN_NET" | sed 's/^/            /'

step "2. Start the login server, the supernode, two client daemons and the echo service"
s=$(date +%s%N); ln_start_login || exit 1; say "login server  ready on 127.0.0.1:$LN_LOGIN_PORT ($(ms "$s") ms)"
s=$(date +%s%N); ln_start_supernode || exit 1; say "supernode     ready on 127.0.0.1:$LN_SN_PORT ($(ms "$s") ms)"
for u in alice bob; do
	s=$(date +%s%N); ln_start_client $u || exit 1
	say "parleyd $u  ready, API socket $LN_DIR/$u/parleyd.sock ($(ms "$s") ms)"
done
s=$(date +%s%N); ln_start_client echo "$LN_NET" --echo || exit 1
say "parleyd echo   ready: the echo test service, answers any call ($(ms "$s") ms)"

step "3. Register the accounts (the password travels only inside a Noise session)"
for u in alice bob echo; do
	run "parley register $u" sh -c "echo 'demo password for $u' | '$LN_BIN/parley' --data-dir '$LN_DIR/$u' register $u --password-stdin" || exit 1
done

step "4. Log the devices in: each gets a 24 h certificate and attaches to the supernode"
for u in alice bob echo; do
	run "parley login $u" sh -c "echo 'demo password for $u' | '$LN_BIN/parley' --data-dir '$LN_DIR/$u' login $u --password-stdin" || exit 1
done
run "parley status    (alice)" ln_cli alice status || exit 1

step "5. alice asks bob to be her contact; bob accepts; they see each other's presence"
run "parley contacts add bob --note 'hi bob, it is alice'    (alice)" \
	ln_cli alice contacts add bob --note 'hi bob, it is alice'
run "parley whois bob    (alice)" ln_cli alice whois bob || exit 1
say "(the directory names bob's supernode, never bob's own address)"
for i in $(seq 1 30); do ln_cli bob --json contacts requests 2>/dev/null | grep -q alice && break; sleep 0.1; done
run "parley contacts requests    (bob)" ln_cli bob contacts requests
run "parley contacts accept alice    (bob)" ln_cli bob contacts accept alice
for i in $(seq 1 30); do
	ln_cli bob --json presence 2>/dev/null | jq -e '.contacts[] | select(.username == "alice") | .status == "online"' >/dev/null 2>&1 && break
	sleep 0.1
done
run "parley presence away --mood 'making coffee'    (bob)" ln_cli bob presence away --mood 'making coffee'
for i in $(seq 1 30); do ln_cli alice --json presence 2>/dev/null | grep -q coffee && break; sleep 0.1; done
run "parley contacts list    (alice)" ln_cli alice contacts list
ln_cli bob presence online --mood '' >/dev/null

step "6. Messages both ways — bob's event stream is shown as it happens"
ln_cli bob events > >(sed -u "s/^/          ${C}[bob's events]${R} /") 2>/dev/null &
evpid=$!
sleep 0.3
# Sends through alice's API socket and waits for the delivery receipt event: the time shown
# is API request -> message on bob's device -> receipt back at alice.
send_timed() { # FROM TO TEXT
	python3 - "$LN_DIR/$1/parleyd.sock" "$2" "$3" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
f = s.makefile("rwb")
def call(obj):
    f.write((json.dumps(obj) + "\n").encode()); f.flush()
call({"id": 1, "cmd": "events.subscribe"}); json.loads(f.readline())
t = time.perf_counter()
call({"id": 2, "cmd": "send", "args": {"to": sys.argv[2], "text": sys.argv[3]}})
mid = None
while True:
    m = json.loads(f.readline())
    if m.get("id") == 2: mid = m["result"]["id"]
    elif m.get("event") == "message.state" and m["data"]["id"] == mid and m["data"]["state"] == "delivered":
        print("%s %.1f" % (mid, (time.perf_counter() - t) * 1000)); break
PY
}
for text in "hi bob, it's alice" "this travels end-to-end encrypted" "the supernode only sees ciphertext"; do
	r=$(send_timed alice bob "$text") || { echo "demo: sending failed" >&2; exit 1; }
	say "${G}alice → bob${R} \"$text\" — delivered, receipt back after ${r#* } ms"
done
r=$(send_timed bob alice "hello alice, got all three") || exit 1
say "${G}bob → alice${R} \"hello alice, got all three\" — delivered, receipt back after ${r#* } ms"
sleep 0.2
kill "$evpid" 2>/dev/null; wait "$evpid" 2>/dev/null; evpid=

step "7. History on both devices (SQLite, with delivery states)"
run "parley history bob    (alice)" ln_cli alice history bob
run "parley history alice    (bob)" ln_cli bob history alice

step "8. alice calls the echo test service: it plays back what it hears a second later"
speech=$LN_DIR/speech.wav
if espeak-ng -s 150 -w "$speech" "Hello, this is alice testing her microphone on parley." 2>/dev/null; then
	say "speech for the call made with espeak-ng ($speech)"
	run "parley call echo --play speech.wav --record heard.wav --duration 6    (alice)" \
		ln_cli alice call echo --play "$speech" --record "$LN_DIR/heard.wav" --duration 6
	if [ -x "$LN_BIN/../tests/wavcmp" ]; then
		q=$("$LN_BIN/../tests/wavcmp" "$speech" "$LN_DIR/heard.wav" --skip-ms 1000 2>/dev/null)
		[ -n "$q" ] && say "what came back, compared with what alice sent: $q"
	fi
	run "parley calls    (alice)" ln_cli alice calls
else
	say "(espeak-ng is not installed: skipping the call; scripts/deps.sh check installs it)"
fi

step "9. Shut everything down cleanly"
for u in alice bob echo; do ln_cli $u shutdown >/dev/null && say "parleyd $u stopped"; done
ln_stop sn && say "supernode stopped"
ln_stop login && say "login server stopped"
say "supernode summary: $(grep -o 'stopping:.*' "$LN_DIR/sn.log" | head -1)"
printf '\n%sdone%s in %s ms. Try it by hand: see README.md, "Running a network by hand".\n' "$B" "$R" "$(ms "$t0")"
