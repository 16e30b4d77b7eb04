#!/usr/bin/env bash
# Group chats with the real programs on loopback: login server, two supernodes, four
# daemons (alice on two devices, bob, carol), driven through the `parley' CLI and asserted
# on --json output. Usage: tests/e2e/groups.sh BINDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LN_BIN=${1:?usage: groups.sh BINDIR}
LN_BIN=$(cd "$LN_BIN" && pwd)
# shellcheck source=../../scripts/localnet.sh
. "$here/../../scripts/localnet.sh"
WAIT_S=15
# shellcheck source=lib.sh
. "$here/lib.sh"


trap 'ln_cleanup' EXIT
trap 'exit 130' INT TERM
LN_LOGIN_ARGS=(--argon2-ops 1 --argon2-mem-kib 8192)
ln_setup && ln_add_supernode sn2 || { echo "groups: setup failed"; exit 1; }
ln_start_login && ln_start_supernode && ln_start_supernode sn2 ||
	{ echo "groups: could not start the network"; exit 1; }
for d in alice alice2 bob carol; do
	ln_start_client "$d" || { echo "groups: could not start $d"; exit 1; }
done
for u in alice bob carol; do
	echo "pass phrase $u" | ln_cli "$u" register "$u" --password-stdin >/dev/null &&
		echo "pass phrase $u" | ln_cli "$u" login "$u" --password-stdin >/dev/null ||
		{ echo "groups: could not log $u in"; exit 1; }
done
echo "pass phrase alice" | ln_cli alice2 login alice --password-stdin >/dev/null ||
	{ echo "groups: could not log alice's second device in"; exit 1; }
echo "groups: network up in $LN_DIR"

# -- the CLI's own checks
expect_rc "group --help works (exit 0)" 0 ln_cli alice group --help
case "$out" in *"group create NAME"*) ok "group help lists the subcommands";; *) fail "group help lists the subcommands" "$out";; esac
expect_rc "an unknown group subcommand is a usage error (exit 2)" 2 ln_cli alice group frobnicate x
expect_rc "group remove needs a user (exit 2)" 2 ln_cli alice group remove x
expect_rc "--limit goes with group history only (exit 2)" 2 ln_cli alice group list --limit 3

# -- invitations are taken from contacts: bob and carol add alice
for u in bob carol; do
	check "$u adds alice" '.username == "alice"' "$(ln_cli "$u" --json contacts add alice)"
done
# alice's devices learn of each other (the own-account lookup on a presence change)
ln_cli alice presence online >/dev/null
ln_cli alice2 presence online >/dev/null
wait_for "alice sees both of her devices" '(.devices | length) == 1' ln_cli alice --json whois alice
sleep 1

# -- create, with bob; invite carol
r=$(ln_cli alice --json group create team bob)
check "alice creates \"team\" with bob" '.name == "team" and .members == 2 and .admin == "alice" and .version == 1' "$r"
gid=$(printf '%s' "$r" | jq -r .group)
expect_rc "a bad group name is refused (exit 1)" 1 ln_cli alice group create "$(printf 'a\tb')"
case "$out" in *bad_name*) ok "bad group name names its code";; *) fail "bad group name names its code" "$out";; esac
check "alice invites carol (by group name)" '.members == 3 and .version == 2' "$(ln_cli alice --json group invite team carol)"
for d in bob carol alice2; do
	wait_for "$d has the group at version 2 with 3 members" \
		".groups[] | select(.group == \"$gid\") | .version == 2 and .members == 3 and .member" \
		ln_cli "$d" --json group list
done
check "members lists alice, bob, carol" '.list == ["alice","bob","carol"]' "$(ln_cli bob --json group members "$gid")"
expect_rc "bob is not the admin: his invite is refused (exit 1)" 1 ln_cli bob group invite "$gid" alice
case "$out" in *not_admin*) ok "refused invite names not_admin";; *) fail "refused invite names not_admin" "$out";; esac

# -- messages
r=$(ln_cli alice --json group send "$gid" hello team)
check "alice posts to the group" '(.id | length) == 32 and .members == 2' "$r"
m1=$(printf '%s' "$r" | jq -r .id)
for d in bob carol alice2; do
	wait_for "$d has alice's message once" \
		"[.messages[] | select(.id == \"$m1\")] | length == 1 and .[0].text == \"hello team\" and .[0].from == \"alice\"" \
		ln_cli "$d" --json group history "$gid"
done
wait_for "alice sees it delivered to 2 of 2" \
	"[.messages[] | select(.id == \"$m1\")][0] | .state == \"delivered\" and .delivered == 2 and .members == 2" \
	ln_cli alice --json group history "$gid"
r=$(ln_cli bob --json group send team hi from bob)
m2=$(printf '%s' "$r" | jq -r .id)
for d in alice alice2 carol; do
	wait_for "$d has bob's message" "[.messages[] | select(.id == \"$m2\")] | length == 1" \
		ln_cli "$d" --json group history "$gid"
done
check "carol reads the group" '.marked == 2' "$(ln_cli carol --json group read "$gid")"
wait_for "bob sees carol's read receipt (read 1 of 2)" \
	"[.messages[] | select(.id == \"$m2\")][0] | .read == 1" ln_cli bob --json group history "$gid"
check "group messages stay out of the one-to-one history" '.messages == []' "$(ln_cli bob --json history alice)"

# -- rename, leave
check "alice renames the group" '.name == "the team" and .version == 3' "$(ln_cli alice --json group rename "$gid" the team)"
for d in bob carol alice2; do
	wait_for "$d sees the new name" ".groups[] | select(.group == \"$gid\") | .name == \"the team\"" \
		ln_cli "$d" --json group list
done
check "carol leaves" '.member == false' "$(ln_cli carol --json group leave "$gid")"
for d in alice alice2 bob; do
	wait_for "$d sees carol gone (version 4, 2 members)" \
		".groups[] | select(.group == \"$gid\") | .version == 4 and .members == 2" \
		ln_cli "$d" --json group list
done
wait_for "carol gets the admin's answer to her leave (version 4, not a member)" \
	".groups[] | select(.group == \"$gid\") | .version == 4 and .members == 2 and (.member | not)" \
	ln_cli carol --json group list
expect_rc "carol can no longer post (exit 1)" 1 ln_cli carol group send "$gid" still here
case "$out" in *not_a_member*) ok "refused post names not_a_member";; *) fail "refused post names not_a_member" "$out";; esac
r=$(ln_cli alice2 --json group send "$gid" after carol left)
m3=$(printf '%s' "$r" | jq -r .id)
for d in alice bob; do
	wait_for "$d has the message alice sent from her second device" \
		"[.messages[] | select(.id == \"$m3\")] | length == 1" ln_cli "$d" --json group history "$gid"
done
sleep 1
check "carol, who left, did not get it" "[.messages[] | select(.id == \"$m3\")] | length == 0" \
	"$(ln_cli carol --json group history "$gid")"

# -- bob's daemon stops; a message sent meanwhile reaches him after the restart, and his
#    groups and history come back from his database
ln_stop bob && ok "bob's daemon stops" || fail "bob's daemon stops"
r=$(ln_cli alice --json group send "$gid" while bob was away)
m4=$(printf '%s' "$r" | jq -r .id)
sleep 1
ln_start_client bob && ok "bob's daemon starts again" || fail "bob's daemon starts again"
check "bob still has the group after the restart" \
	".groups[] | select(.group == \"$gid\") | .version == 4 and .members == 2" "$(ln_cli bob --json group list)"
wait_for_long() { # as wait_for, 60 s: the sender retries on its backoff schedule
	local desc=$1 expr=$2 i last; shift 2
	for i in $(seq 1 600); do
		last=$("$@" 2>&1)
		if printf '%s' "$last" | jq -e "$expr" >/dev/null 2>&1; then ok "$desc"; return 0; fi
		sleep 0.1
	done
	fail "$desc" "last: $last"
}
wait_for_long "bob gets the message sent while he was away, once" \
	"[.messages[] | select(.id == \"$m4\")] | length == 1" ln_cli bob --json group history "$gid"
wait_for_long "alice sees it delivered (1 of 1 member left)" \
	"[.messages[] | select(.id == \"$m4\")][0] | .delivered == 1 and .members == 1 and .state == \"delivered\"" \
	ln_cli alice --json group history "$gid"

# -- one history, one order, on every device of a member
h=$(ln_cli alice --json group history "$gid" | jq -c '[.messages[].id]')
for d in alice2 bob; do
	check "$d shows the group's history in alice's order" ". == $h" \
		"$(ln_cli "$d" --json group history "$gid" | jq -c '[.messages[].id]')"
done
check "the history holds the four messages" 'length == 4' "$h"
check "rejected counters are in status" '.rejected.group_frames >= 0' "$(ln_cli bob --json status)"

# -- every daemon stops cleanly, and (under ASan) nothing was reported
for d in alice alice2 bob carol sn sn2 login; do
	ln_stop "$d" && ok "$d stops cleanly" || fail "$d stops cleanly"
done
if grep -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$LN_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports in any log" "$(grep -h -A5 -E '[A-Za-z]+Sanitizer|runtime error:' "$LN_DIR"/*.log | head -20)"
else ok "no sanitizer reports in any log"; fi

echo "groups: $steps steps, $fails failed"
[ "$fails" = 0 ]
