# shellcheck shell=bash
# Shared by the end-to-end scripts: a step counter and the assertions. Source it after
# setting WAIT_S (how long wait_for polls, in seconds; default 5).
#   ok DESC / fail DESC [DETAIL]   count a step
#   check DESC JQ-EXPR JSON        passes when jq -e EXPR holds on JSON
#   wait_for DESC JQ-EXPR CMD...   polls CMD's JSON every 0.1 s until EXPR holds (WAIT_S)
#   expect_rc DESC WANT CMD...     runs CMD, checks its exit status; its output stays in $out
fails=0 steps=0
ok() { steps=$((steps + 1)); printf '  ok   %s\n' "$1"; }
fail() {
	steps=$((steps + 1)) fails=$((fails + 1))
	printf '  FAIL %s\n' "$1"
	[ -n "${2:-}" ] && printf '       %s\n' "$2"
	return 0
}
check() {
	if printf '%s' "$3" | jq -e "$2" >/dev/null 2>&1; then ok "$1"; else fail "$1" "got: $3"; fi
}
wait_for() {
	local desc=$1 expr=$2 last
	shift 2
	for _ in $(seq 1 $((${WAIT_S:-5} * 10))); do
		last=$("$@" 2>&1)
		if printf '%s' "$last" | jq -e "$expr" >/dev/null 2>&1; then ok "$desc"; return 0; fi
		sleep 0.1
	done
	fail "$desc" "last: $last"
	return 1
}
expect_rc() {
	local desc=$1 want=$2 rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want" ]; then ok "$desc"; else fail "$desc" "exit $rc (want $want): $out"; fi
}
