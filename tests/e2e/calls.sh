#!/usr/bin/env bash
# Calls with the real programs on loopback: login server, supernode, three daemons (alice,
# bob, and an echo test service), driven through the `parley' CLI. Speech made with
# espeak-ng goes in as a WAV file; what comes out is scored against it (tests/tools/wavcmp,
# the measure of src/call/quality.c). Usage: tests/e2e/calls.sh BINDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=${1:?usage: calls.sh BINDIR}
LN_BIN=$(cd "$LN_BIN" && pwd)
WAVCMP=$LN_BIN/../tests/wavcmp
# shellcheck source=../../scripts/localnet.sh
. "$here/../../scripts/localnet.sh"
WAIT_S=10
# shellcheck source=lib.sh
. "$here/lib.sh"


[ -x "$WAVCMP" ] || { echo "calls: $WAVCMP is missing (build the tests)"; exit 1; }
command -v espeak-ng >/dev/null || { echo "calls: espeak-ng is missing (scripts/deps.sh check)"; exit 1; }
trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
ln_setup || { echo "calls: setup failed"; exit 1; }
ln_start_login && ln_start_supernode && ln_start_client alice && ln_start_client bob &&
	ln_start_client echo "$LN_NET" --echo || { echo "calls: could not start the network"; exit 1; }
for u in alice bob echo; do
	echo "pass phrase $u" | ln_cli "$u" register "$u" --password-stdin >/dev/null &&
		echo "pass phrase $u" | ln_cli "$u" login "$u" --password-stdin >/dev/null ||
		{ echo "calls: could not log $u in"; exit 1; }
done
echo "calls: network up in $LN_DIR"
ref=$LN_DIR/speech.wav
espeak-ng -s 150 -w "$ref" "Hello bob, this is alice calling over parley. The quick brown fox jumps over the lazy dog." ||
	{ echo "calls: espeak-ng failed"; exit 1; }

# -- not a contact: refused by bob's default setting
out=$(ln_cli alice --json call bob 2>&1); rc=$?
[ $rc = 1 ] && ok "a call to someone who has not added you ends unanswered (exit 1)" ||
	fail "a call to someone who has not added you ends unanswered (exit 1)" "exit $rc: $out"
check "... with reason refused" '.data.state == "ended" and .data.reason == "refused"' "$(printf '%s' "$out" | tail -n 1)"

# -- alice calls bob, bob answers and records, alice plays speech and hangs up
ln_cli bob contacts add alice >/dev/null
ln_cli alice --json call bob --play "$ref" --duration 8 >"$LN_DIR/alice-call.json" 2>&1 &
callpid=$!
wait_for "bob's device rings" '.current[0].state == "ringing" and .current[0].peer == "alice"' ln_cli bob --json calls
t0=$(date +%s%N)
check "bob answers with a recording" '.state == "answering" or .state == "active"' \
	"$(ln_cli bob --json answer --record "$LN_DIR/heard.wav")"
wait_for "the call is active at alice" '.state == "active"' ln_cli alice --json call stats
sleep 2
st=$(ln_cli bob --json call stats)
check "call stats show path, RTT, jitter, loss, bitrate, jitter buffer, concealment and MOS" \
	'.state == "active" and (.path | startswith("relayed")) and (.stats | has("rtt_ms") and has("jitter_ms") and has("loss_pre_fec") and has("loss_post_fec") and has("bitrate_bps") and has("jitter_buffer_ms") and has("concealed_pct") and has("mos"))' "$st"
check "audio is flowing to bob (50 packets/s)" '.stats.rx_packets > 60' "$st"
wait "$callpid"; rc=$?
[ $rc = 0 ] && ok "alice's \`parley call' exits 0 after --duration hangs up" || fail "alice's \`parley call' exits 0 after --duration hangs up" "exit $rc: $(tail -3 "$LN_DIR/alice-call.json")"
check "alice's call output ends with the hang-up" '.state == "ended" and .reason == "hangup"' "$(tail -n 1 "$LN_DIR/alice-call.json")"
wait_for "bob's call log holds the call, ended by hangup" '.history[-1].peer == "alice" and .history[-1].reason == "hangup" and .history[-1].answered_at > 0' ln_cli bob --json calls
q=$("$WAVCMP" "$ref" "$LN_DIR/heard.wav")
check "what bob heard is alice's speech (NCC >= 0.6, < 35 % bad segments)" '.ncc >= 0.6 and .bad_pct < 35' "$q"
echo "       (bob's copy: $q)"

# -- the echo test service
out=$(ln_cli alice --json call echo --play "$ref" --record "$LN_DIR/echo.wav" --duration 9 2>&1); rc=$?
[ $rc = 0 ] && ok "the echo service answers a call from a stranger" || fail "the echo service answers a call from a stranger" "exit $rc: $out"
q=$("$WAVCMP" "$ref" "$LN_DIR/echo.wav" --skip-ms 1000)
check "the echo service plays back what alice said, a second later (NCC >= 0.5)" \
	'.ncc >= 0.5 and .delay_ms >= 0 and .delay_ms < 500' "$q"
echo "       (echo: $q)"
check "the echo service's call log scored the call" '.history[-1].peer == "alice" and .history[-1].mos > 1' "$(ln_cli echo --json calls)"

# -- hold and resume, decline and cancel
ln_cli alice contacts add bob >/dev/null
ln_cli bob --json call alice --detach >/dev/null
wait_for "alice's device rings" '.current[0].state == "ringing"' ln_cli alice --json calls
ln_cli alice answer >/dev/null
wait_for "bob's call is active" '.state == "active"' ln_cli bob --json call stats
check "bob puts the call on hold" '.local_hold == true' "$(ln_cli bob --json hold)"
wait_for "hold shows at alice" '.remote_hold == true' ln_cli alice --json call stats
check "bob resumes" '.local_hold == false' "$(ln_cli bob --json resume)"
wait_for "resume shows at alice" '.remote_hold == false' ln_cli alice --json call stats
ln_cli alice hangup >/dev/null
wait_for "alice hangs up: bob's call is over" '.current == [] and .history[-1].reason == "hangup"' ln_cli bob --json calls
ln_cli bob --json call alice >"$LN_DIR/bob-call.json" 2>&1 &
callpid=$!
wait_for "alice's device rings for the next call" '.current[0].state == "ringing"' ln_cli alice --json calls
ln_cli alice decline >/dev/null
wait "$callpid"; rc=$?
[ $rc = 1 ] && ok "a declined call: \`parley call' exits 1" || fail "a declined call: \`parley call' exits 1" "exit $rc"
check "... with reason declined" '.data.state == "ended" and .data.reason == "declined"' "$(tail -n 1 "$LN_DIR/bob-call.json")"
ln_cli bob --json call alice --detach >/dev/null
wait_for "alice's device rings again" '.current[0].state == "ringing"' ln_cli alice --json calls
ln_cli bob hangup >/dev/null
wait_for "bob cancels: alice's call log shows cancelled" '.current == [] and .history[-1].reason == "cancelled"' ln_cli alice --json calls

for n in alice bob echo sn login; do ln_stop "$n" || fail "$n stops cleanly"; done
if grep -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$LN_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports in any log" "$(grep -h -A5 -E '[A-Za-z]+Sanitizer|runtime error:' "$LN_DIR"/*.log | head -20)"
else ok "no sanitizer reports in any log"; fi
echo "calls: $steps checks, $fails failed"
[ $fails = 0 ]
