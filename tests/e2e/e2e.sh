#!/usr/bin/env bash
# End-to-end test with the real programs on loopback: login server, supernode, two client
# daemons, driven only through the `parley' CLI (and one raw API connection), asserting
# every step on --json output. Usage: tests/e2e/e2e.sh BINDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=${1:?usage: e2e.sh BINDIR}
LN_BIN=$(cd "$LN_BIN" && pwd)
# shellcheck source=../../scripts/localnet.sh
. "$here/../../scripts/localnet.sh"
WAIT_S=5
# shellcheck source=lib.sh
. "$here/lib.sh"


trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
ln_setup || { echo "e2e: setup failed"; exit 1; }
ln_start_login && ln_start_supernode && ln_start_client alice && ln_start_client bob ||
	{ echo "e2e: could not start the network"; exit 1; }
echo "e2e: network up in $LN_DIR (login :$LN_LOGIN_PORT, supernode :$LN_SN_PORT)"

# -- the API socket is private
mode=$(stat -c %a "$LN_DIR/alice/parleyd.sock")
[ "$mode" = 600 ] && ok "API socket mode is 0600" || fail "API socket mode is 0600" "mode $mode"

check "a new device is logged out" '.state == "logged_out"' "$(ln_cli alice --json status)"

# -- registration
expect_rc "bad username is refused (exit 1)" 1 sh -c "echo 'password-1' | '$LN_BIN/parley' --data-dir '$LN_DIR/alice' register 'Not OK' --password-stdin"
case "$out" in *bad_username*) ok "bad username error names its code";; *) fail "bad username error names its code" "$out";; esac
expect_rc "short password is refused" 1 sh -c "echo 'short' | '$LN_BIN/parley' --data-dir '$LN_DIR/alice' register alice --password-stdin"
for u in alice bob; do
	r=$(echo "correct horse $u" | ln_cli "$u" --json register "$u" --password-stdin)
	check "register $u" ".username == \"$u\"" "$r"
done
expect_rc "a taken username is refused" 1 sh -c "echo 'another-pass' | '$LN_BIN/parley' --data-dir '$LN_DIR/bob' register alice --password-stdin"
case "$out" in *username_taken*) ok "taken username error names its code";; *) fail "taken username error names its code" "$out";; esac

# -- login
expect_rc "wrong password is refused" 1 sh -c "echo 'wrong wrong' | '$LN_BIN/parley' --data-dir '$LN_DIR/bob' login bob --password-stdin"
case "$out" in *wrong_password*) ok "wrong password error names its code";; *) fail "wrong password error names its code" "$out";; esac
for u in alice bob; do
	r=$(echo "correct horse $u" | ln_cli "$u" --json login "$u" --password-stdin)
	check "login $u returns a certificate expiry and a supernode" \
		".username == \"$u\" and (.device_id | length) == 32 and .cert_expires > now and (.supernode | length) > 0" "$r"
	check "$u is online" '.state == "online"' "$(ln_cli "$u" --json status)"
done
if grep -q "correct horse" "$LN_DIR"/*.log; then fail "no password appears in any log"; else ok "no password appears in any log"; fi

# -- contacts and lookup
check "alice adds bob as a contact, with a note" '.username == "bob"' "$(ln_cli alice --json contacts add bob --note 'hi bob, alice here')"
wait_for "bob sees alice's contact request and its note" \
	'.requests == [{"username":"alice","kind":"incoming","note":"hi bob, alice here","at":.requests[0].at,"messages":[]}]' \
	ln_cli bob --json contacts requests
expect_rc "--note goes with contacts add only (usage error)" 2 ln_cli bob contacts accept alice --note x
check "contacts list holds bob" '[.contacts[].username] == ["bob"]' "$(ln_cli alice --json contacts list)"
check "bob accepts alice's request" '.username == "alice"' "$(ln_cli bob --json contacts accept alice)"
wait_for "alice sees bob online" '.contacts[] | select(.username == "bob") | .status == "online"' \
	ln_cli alice --json presence
check "alice's request is no longer pending" '.requests == []' "$(ln_cli alice --json contacts requests)"
check "bob goes away with a mood" '.status == "away" and .mood == "back at 3"' "$(ln_cli bob --json presence away --mood 'back at 3')"
wait_for "alice's contact list shows bob away, with his mood" \
	'.contacts[0].status == "away" and .contacts[0].mood == "back at 3"' ln_cli alice --json contacts list
expect_rc "an unknown presence status is refused (exit 1)" 1 ln_cli bob presence sleeping
ln_cli bob presence online --mood '' >/dev/null
check "whois bob: online with one device" '.online == true and (.devices | length) == 1' "$(ln_cli alice --json whois bob)"
expect_rc "whois of an unknown user fails" 1 ln_cli alice --json whois nosuchuser

# -- messages both ways, with the event stream
ln_cli bob --json events --count 1 >"$LN_DIR/bob-events.json" 2>&1 &
evpid=$!
sleep 0.3
r=$(ln_cli alice --json send bob "hello bob, from alice")
check "alice sends to bob" '(.id | length) == 32' "$r"
id=$(printf '%s' "$r" | jq -r .id)
wait_for "bob's history holds the message once" \
	"[.messages[] | select(.id == \"$id\")] | length == 1 and .[0].text == \"hello bob, from alice\"" \
	ln_cli bob --json history alice
wait_for "alice sees it delivered" "[.messages[] | select(.id == \"$id\")][0].state == \"delivered\"" \
	ln_cli alice --json history bob
for i in $(seq 1 50); do kill -0 $evpid 2>/dev/null || break; sleep 0.1; done
check "bob's event stream shows message.received" \
	"select(.event == \"message.received\") | .data.from == \"alice\" and .data.id == \"$id\"" \
	"$(cat "$LN_DIR/bob-events.json")"
r=$(ln_cli bob --json send alice "hi alice")
id2=$(printf '%s' "$r" | jq -r .id)
wait_for "bob → alice delivered" "[.messages[] | select(.id == \"$id2\")][0].state == \"delivered\"" \
	ln_cli bob --json history alice

# -- the control API survives malformed input
r=$(python3 - "$LN_DIR/alice/parleyd.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b'{this is not json\n{"id": 7}\n' + b'x' * 70000 + b'\n{"id": 8, "cmd": "ping"}\n')
buf = b''
while buf.count(b'\n') < 4:
    chunk = s.recv(65536)
    if not chunk: break
    buf += chunk
print(json.dumps([json.loads(l) for l in buf.splitlines()]))
PY
)
check "malformed API lines get errors and the connection stays usable" \
	'.[0].ok == false and .[0].error.code == "bad_json" and .[1].error.code == "bad_request" and .[2].error.code == "line_too_long" and .[3].id == 8 and .[3].ok == true' "$r"

# -- no lost data: a message to an offline user is queued, then delivered when it returns
ln_stop bob && ok "bob's daemon stops cleanly on SIGTERM" || fail "bob's daemon stops cleanly on SIGTERM"
r=$(ln_cli alice --json send bob "sent while you were away")
id3=$(printf '%s' "$r" | jq -r .id)
ln_start_client bob
wait_for "bob comes back online by himself (stored certificate)" '.state == "online"' ln_cli bob --json status
for i in $(seq 1 250); do
	ln_cli bob --json history alice 2>/dev/null | jq -e "[.messages[] | select(.id == \"$id3\")] | length == 1" >/dev/null 2>&1 && break
	sleep 0.2
done
check "the queued message reached bob after his restart" \
	"[.messages[] | select(.id == \"$id3\")] | length == 1" "$(ln_cli bob --json history alice)"
wait_for "and alice sees it delivered" "[.messages[] | select(.id == \"$id3\")][0].state == \"delivered\"" \
	ln_cli alice --json history bob

# -- profiles and search (the login server's full-text index of opt-in profiles)
check "alice publishes a searchable profile" '. == {}' \
	"$(ln_cli alice --json profile set --name 'Alice Smith' --city 'Zürich' --country ch --languages de,en)"
check "bob publishes a hidden one" '. == {}' \
	"$(ln_cli bob --json profile set --name 'Bob Smith' --city Bern --country CH --languages de --hidden)"
check "search smith finds alice, never hidden bob" \
	'[.results[].username] == ["alice"] and .results[0].city == "Zürich" and .results[0].country == "CH"' \
	"$(ln_cli bob --json search smith)"
check "search zurich (no umlaut) with FTS syntax around it still finds alice" \
	'[.results[].username] == ["alice"]' "$(ln_cli bob --json search '"zurich' '(alice*' 'smith)')"
check "search AND (a plain word here, not an operator) is no error" '.results == []' \
	"$(ln_cli bob --json search AND)"
expect_rc "a bad country code is refused (exit 1)" 1 ln_cli alice profile set --country Switzerland
case "$out" in *Switzerland*bad_profile*) ok "the error names the code and quotes the value";; *) fail "the error names the code and quotes the value" "$out";; esac
expect_rc "search --limit above 50 is a usage error" 2 ln_cli alice search smith --limit 51

# -- read receipts
check "bob marks alice's messages read" '.with == "alice" and .marked >= 1' "$(ln_cli bob --json read alice)"
wait_for "alice's history shows her message read" \
	'[.messages[] | select(.direction == "out")] | any(.state == "read")' ln_cli alice --json history bob

# -- history search (FTS5 over this device's messages)
check "search-history finds a message by word prefixes, any order" \
	'[.messages[].text] | any(. == "hello bob, from alice")' "$(ln_cli bob --json search-history ALI hel)"
check "search-history: quotes and FTS syntax in the text are just text" '.messages == []' \
	"$(ln_cli bob --json search-history 'he\"llo OR NEAR(x' )"
expect_rc "search-history without words is refused" 1 ln_cli bob search-history ' '

# -- a stranger's message is a message request: held, then released in order on accept
ln_start_client carol || exit 1
echo "correct horse carol" | ln_cli carol register carol --password-stdin >/dev/null
echo "correct horse carol" | ln_cli carol login carol --password-stdin >/dev/null
ln_cli carol send alice "hi alice, carol from the conference" >/dev/null
ln_cli carol send alice "here is my number" >/dev/null
wait_for "carol's two messages reach alice as a message request" \
	'[.requests[] | select(.username == "carol" and .kind == "incoming") | .messages[].text] == ["hi alice, carol from the conference", "here is my number"]' \
	ln_cli alice --json contacts requests
check "a held message is not in alice's history" '.messages == []' "$(ln_cli alice --json history carol)"
wait_for "carol sees them delivered" '[.messages[].state] == ["delivered", "delivered"]' \
	ln_cli carol --json history alice
check "the CLI lists the held messages with the request" \
	'. == "1"' "$(ln_cli alice contacts requests | grep -c 'message: here is my number' | jq -R '.')"
check "alice accepts carol" '.username == "carol"' "$(ln_cli alice --json contacts accept carol)"
check "the held messages joined alice's history, in order" \
	'[.messages[].text] == ["hi alice, carol from the conference", "here is my number"]' \
	"$(ln_cli alice --json history carol)"
check "settings: messages-from anyone is stored and shown" '.messages_from == "anyone"' \
	"$(ln_cli carol --json settings messages-from anyone)"

# -- CLI errors
expect_rc "no daemon: exit 3" 3 "$LN_BIN/parley" --socket "$LN_DIR/nothing-here.sock" status
case "$out" in *"no daemon"*) ok "no daemon: the message says so";; *) fail "no daemon: the message says so" "$out";; esac
expect_rc "unknown command: exit 2" 2 ln_cli alice frobnicate

# -- clean shutdown through the API
ln_cli alice shutdown >/dev/null
for i in $(seq 1 50); do kill -0 "$LN_PID_alice" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$LN_PID_alice" 2>/dev/null; then fail "alice's daemon exits after the shutdown command"; else
	wait "$LN_PID_alice"; rc=$?
	[ $rc = 0 ] && ok "alice's daemon exits 0 after the shutdown command" || fail "alice's daemon exits 0 after the shutdown command" "exit $rc"
fi
ln_stop sn && ok "supernode stops cleanly" || fail "supernode stops cleanly"
ln_stop login && ok "login server stops cleanly" || fail "login server stops cleanly"
if grep -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$LN_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports in any log" "$(grep -h -A5 -E '[A-Za-z]+Sanitizer|runtime error:' "$LN_DIR"/*.log | head -20)"
else ok "no sanitizer reports in any log"; fi

echo "e2e: $steps checks, $fails failed"
[ $fails = 0 ]
