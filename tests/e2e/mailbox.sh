#!/usr/bin/env bash
# Mailboxes end to end with the real programs on loopback: five supernodes; bob's daemon
# stops; alice sends 100 messages, which go into bob's mailbox on the r = 3 supernodes
# closest to its key (alice sees each "stored" on 3 of 3); two of those supernodes are
# killed with SIGKILL, and the third is killed too and started again (its mailboxes come
# back from its SQLite file); bob's daemon starts again: all 100 arrive once and in order,
# and alice sees every one delivered.
# Usage: tests/e2e/mailbox.sh BINDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=$(cd "${1:?usage: mailbox.sh BINDIR}" && pwd)
# shellcheck source=../../scripts/localnet.sh
. "$here/../../scripts/localnet.sh"
WAIT_S=5
# shellcheck source=lib.sh
. "$here/lib.sh"

trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
N=${MAILBOX_MESSAGES:-100}
ln_setup || exit 1
sns=(sn s2 s3 s4 s5)
for s in "${sns[@]:1}"; do ln_add_supernode "$s" || exit 1; done
ln_start_login || exit 1
for s in "${sns[@]}"; do ln_start_supernode "$s" || exit 1; done
sleep 1 # the supernodes join the overlay

# alice's network file lists supernode 1 first, bob's supernode 2
mapfile -t snlines < <(grep '^supernode' "$LN_NET")
i=0
for u in alice bob; do
	f=$LN_DIR/net-$u.conf
	grep -v '^supernode' "$LN_NET" >"$f"
	for k in 0 1 2 3 4; do echo "${snlines[$(((i + k) % 5))]}" >>"$f"; done
	ln_start_client "$u" "$f" || exit 1
	echo "password-$u" | ln_cli "$u" --json register "$u" --password-stdin >/dev/null &&
	echo "password-$u" | ln_cli "$u" --json login "$u" --password-stdin >"$LN_DIR/$u.login" ||
		fail "$u logs in" "$(cat "$LN_DIR/$u.login" 2>/dev/null)"
	i=$((i + 1))
done
r=$(ln_cli alice --json settings mailbox-ttl 86400)
printf '%s' "$r" | jq -e '.mailbox_ttl_s == 86400' >/dev/null && ok "alice sets her mailbox time to live (1 day)" ||
	fail "alice sets her mailbox time to live" "$r"
ln_cli alice settings mailbox-ttl 5 >/dev/null 2>&1; [ $? = 1 ] && ok "a time to live under 60 s is refused" ||
	fail "a time to live under 60 s is refused"
ln_cli alice --json contacts add bob >/dev/null && ln_cli bob --json contacts add alice >/dev/null &&
	ok "alice and bob are each other's contacts" || fail "alice and bob are each other's contacts"

wait_state() { # USER PEER ID STATE TRIES
	local st="" t
	for t in $(seq 1 "$5"); do
		st=$(ln_cli "$1" --json history "$2" --limit 1000 | jq -r ".messages[] | select(.id == \"$3\") | .state")
		[ "$st" = "$4" ] && return 0
		sleep 0.1
	done
	echo "$st"
	return 1
}
# one message each way: the sessions come up and each hands the other a mailbox pass
id=$(ln_cli alice --json send bob "hello bob" | jq -r .id)
wait_state alice bob "$id" delivered 100 >/dev/null && ok "alice → bob online: delivered" || fail "alice → bob online"
id=$(ln_cli bob --json send alice "hello alice" | jq -r .id)
wait_state bob alice "$id" delivered 100 >/dev/null && ok "bob → alice online: delivered" || fail "bob → alice online"

ln_stop bob && ok "bob's daemon stops" || fail "bob's daemon stops"
for k in $(seq 1 "$N"); do
	ln_cli alice --json send bob "$(printf 'offline %03d' "$k")" >/dev/null || fail "alice sends message $k"
done
ok "alice sent $N messages to bob while he is offline"
stored=0
for t in $(seq 1 300); do
	stored=$(ln_cli alice --json history bob --limit 1000 | jq '[.messages[] | select(.direction == "out" and .state == "stored")] | length')
	[ "$stored" -ge "$N" ] && break
	sleep 0.2
done
[ "$stored" -ge "$N" ] && ok "alice sees all $N stored in bob's mailbox" || fail "alice sees all $N stored" "$stored stored; states: $(ln_cli alice --json history bob --limit 1000 | jq -c '[.messages[].state] | group_by(.) | map({(.[0]): length}) | add')"

# which supernodes keep bob's mailbox (each logs it once)
mapfile -t holders < <(grep -l "keeping entries of the mailbox of bob" "$LN_DIR"/sn.log "$LN_DIR"/s[2-5].log 2>/dev/null | xargs -n1 basename | sed 's/\.log$//')
[ "${#holders[@]}" = 3 ] && ok "bob's mailbox is on 3 supernodes: ${holders[*]}" || fail "bob's mailbox is on 3 supernodes" "${holders[*]}"
# kill two of them, sparing alice's own supernode when we can
victims=()
for s in "${holders[@]}"; do [ "$s" != sn ] && [ ${#victims[@]} -lt 2 ] && victims+=("$s"); done
for s in "${holders[@]}"; do [ ${#victims[@]} -lt 2 ] && [[ " ${victims[*]} " != *" $s "* ]] && victims+=("$s"); done
for s in "${victims[@]}"; do var="LN_PID_$s"; kill -KILL "${!var}"; done
ok "killed ${victims[*]} with SIGKILL"
# the last copy: SIGKILL and start again; it serves bob's mailbox from its file
for s in "${holders[@]}"; do [[ " ${victims[*]} " != *" $s "* ]] && last=$s; done
var="LN_PID_$last"; kill -KILL "${!var}"; wait "${!var}" 2>/dev/null
mv "$LN_DIR/$last.log" "$LN_DIR/$last.log.1"
ln_start_supernode "$last" || exit 1
grep -q "mailboxes: $N entries in" "$LN_DIR/$last.log" &&
	ok "$last killed and restarted: its $N mailbox entries are back from disk" ||
	fail "$last restarted with its mailboxes" "$(grep mailboxes: "$LN_DIR/$last.log")"

start=$(date +%s.%N)
ln_start_client bob "$LN_DIR/net-bob.conf" || exit 1
got=0
for t in $(seq 1 600); do
	got=$(ln_cli bob --json history alice --limit 1000 | jq '[.messages[] | select(.direction == "in" and (.text | startswith("offline")))] | length')
	[ "$got" -ge "$N" ] && break
	sleep 0.2
done
end=$(date +%s.%N)
[ "$got" = "$N" ] && ok "bob received all $N ($(awk "BEGIN{printf \"%.1f\", $end - $start}") s after his daemon started)" ||
	fail "bob received all $N" "$got received"
ln_cli bob --json history alice --limit 1000 |
	jq -r '.messages[] | select(.direction == "in" and (.text | startswith("offline"))) | .text' >"$LN_DIR/bob.texts"
seq 1 "$N" | while read -r k; do printf 'offline %03d\n' "$k"; done >"$LN_DIR/want.texts"
cmp -s "$LN_DIR/bob.texts" "$LN_DIR/want.texts" && ok "each once, in the order sent" ||
	fail "each once, in the order sent" "$(diff "$LN_DIR/want.texts" "$LN_DIR/bob.texts" | head -5)"
dl=0
for t in $(seq 1 600); do
	dl=$(ln_cli alice --json history bob --limit 1000 | jq '[.messages[] | select(.direction == "out" and (.text | startswith("offline")) and (.state == "delivered" or .state == "read"))] | length')
	[ "$dl" -ge "$N" ] && break
	sleep 0.2
done
[ "$dl" = "$N" ] && ok "alice sees all $N delivered" || fail "alice sees all $N delivered" "$dl delivered"
if grep -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$LN_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports" "$(grep -h -A5 -E '[A-Za-z]+Sanitizer|runtime error:' "$LN_DIR"/*.log | head -20)"
else ok "no sanitizer reports in any log"; fi
echo "mailbox: $steps checks, $fails failed"
[ $fails = 0 ]
