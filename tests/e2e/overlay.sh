#!/usr/bin/env bash
# Overlay end to end: 5 supernodes on loopback form the Kademlia overlay; 5 users, each
# attached to a different supernode, find every other user and exchange messages across
# supernodes; then two supernodes are killed with SIGKILL and lookups still succeed.
# Usage: tests/e2e/overlay.sh BINDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=$(cd "${1:?usage: overlay.sh BINDIR}" && pwd)
# shellcheck source=../../scripts/localnet.sh
. "$here/../../scripts/localnet.sh"
WAIT_S=5
# shellcheck source=lib.sh
. "$here/lib.sh"

trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
ln_setup || exit 1
sns=(sn s2 s3 s4 s5)
for s in "${sns[@]:1}"; do ln_add_supernode "$s" || exit 1; done
ln_start_login || exit 1
for s in "${sns[@]}"; do ln_start_supernode "$s" || exit 1; done
sleep 1 # the supernodes join the overlay

# user i's network file lists supernode i first: that one becomes its primary
mapfile -t snlines < <(grep '^supernode' "$LN_NET")
for i in 0 1 2 3 4; do
	f=$LN_DIR/net-u$i.conf
	grep -v '^supernode' "$LN_NET" >"$f"
	for k in 0 1 2 3 4; do echo "${snlines[$(((i + k) % 5))]}" >>"$f"; done
	ln_start_client "u$i" "$f" || exit 1
	echo "password-u$i" | ln_cli "u$i" --json register "user$i" --password-stdin >/dev/null &&
	echo "password-u$i" | ln_cli "u$i" --json login "user$i" --password-stdin >"$LN_DIR/u$i.login" ||
		fail "u$i logs in" "$(cat "$LN_DIR/u$i.login" 2>/dev/null)"
	want=$(echo "${snlines[$i]}" | awk '{print $3}')
	got=$(jq -r .supernode "$LN_DIR/u$i.login")
	[ "$got" = "$want" ] && ok "u$i is attached to supernode $((i + 1)) ($got)" || fail "u$i is attached to supernode $((i + 1))" "got $got, want $want"
done
sleep 0.5

found=0
for i in 0 1 2 3 4; do for j in 0 1 2 3 4; do
	[ $i = $j ] && continue
	r=$(ln_cli "u$i" --json whois "user$j" 2>&1)
	if printf '%s' "$r" | jq -e '.online == true' >/dev/null 2>&1; then found=$((found + 1)); else
		fail "u$i finds u$j" "$r"; fi
done; done
[ $found = 20 ] && ok "every user finds every other (20/20 lookups)"

id=$(ln_cli u0 --json send user4 "from supernode 1 to supernode 5" | jq -r .id)
for t in $(seq 1 50); do
	st=$(ln_cli u0 --json history user4 | jq -r ".messages[] | select(.id == \"$id\") | .state")
	[ "$st" = delivered ] && break
	sleep 0.1
done
[ "$st" = delivered ] && ok "u0 → u4 across supernodes: delivered" || fail "u0 → u4 across supernodes" "state $st"

# kill -9 two supernodes that neither u0 nor u4 is attached to
kill -KILL "$LN_PID_s2" "$LN_PID_s3"
ok "killed supernodes 2 and 3 with SIGKILL"
r=$(ln_cli u0 --json whois user4 2>&1)
printf '%s' "$r" | jq -e '.online == true' >/dev/null 2>&1 && ok "u0 still finds u4" || fail "u0 still finds u4" "$r"
id=$(ln_cli u4 --json send user0 "still here" | jq -r .id)
for t in $(seq 1 80); do
	st=$(ln_cli u4 --json history user0 | jq -r ".messages[] | select(.id == \"$id\") | .state")
	[ "$st" = delivered ] && break
	sleep 0.1
done
[ "$st" = delivered ] && ok "u4 → u0 after the kills: delivered" || fail "u4 → u0 after the kills" "state $st"
if grep -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$LN_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports" "$(grep -h -A5 -E '[A-Za-z]+Sanitizer|runtime error:' "$LN_DIR"/*.log | head -20)"
else ok "no sanitizer reports in any log"; fi
echo "overlay: $steps checks, $fails failed"
[ $fails = 0 ]
