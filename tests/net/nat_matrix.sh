#!/usr/bin/env bash
# The NAT traversal matrix on real kernel NATs (tests/net/lab.sh): for every pair of site
# kinds, two parleyd devices that are each other's contacts exchange a message; the path
# their session settles on is asserted (direct or relayed, per docs/NAT.md), a 10-second
# audio-sized stream (500 x 160 bytes, one every 20 ms, started while the session is still
# on the relay, so it crosses the switch to the direct path) must arrive complete, and the
# time to session is measured over several runs (the daemons restart between runs, so
# every run makes new sessions).
#
#   tests/net/nat_matrix.sh BINDIR               2 runs (the make check-net setting)
#   NAT_RUNS=10 tests/net/nat_matrix.sh BINDIR --doc docs/NAT.md
#                                                10 runs; rewrites the matrix section of
#                                                docs/NAT.md (make nat-matrix)
#
# Needs root (namespaces, nftables), jq. Without root it says so and exits 2.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:?usage: nat_matrix.sh BINDIR [--doc FILE]}" && pwd) || exit 2
DOC=
[ "${2:-}" = --doc ] && DOC=${3:?--doc needs a file}
RUNS=${NAT_RUNS:-2}

if [ "$(id -u)" -ne 0 ]; then
	echo "nat_matrix.sh: NOT RUN: the NAT lab needs root (network namespaces, nftables)." >&2
	exit 2
fi
for t in parley parleyd parley-login parley-supernode; do
	[ -x "$BIN/$t" ] || { echo "nat_matrix.sh: $BIN/$t is missing (build first)" >&2; exit 1; }
done
for t in jq nft ip; do
	command -v "$t" >/dev/null || { echo "nat_matrix.sh: $t is missing (scripts/deps.sh check)" >&2; exit 1; }
done

# its own namespace prefix: nat_kinds.sh's lab (pnlab-*) is never swept by this one
LAB_PFX=${LAB_PFX:-pnmx}
# shellcheck source=tests/net/lab.sh
. "$here/lab.sh"

checks=0 fails=0
pass() { checks=$((checks + 1)); echo "ok   $1"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $1${2:+ -- $2}"; }

lab_init || { echo "FAIL the lab could not be built"; exit 1; }
d=$LAB_DIR

# ---- sites: three server hosts on the public segment, two client sites per kind ---------
# Each server has its own namespace with one IPv4 and one IPv6 address, so a program bound
# to [::] answers from the address a request came to.
# NAT_KINDS="public prc" narrows the matrix (for debugging)
read -r -a KINDS <<<"${NAT_KINDS:-public prc sym fullcone udpblock v6only}"
for s in srvl srvs1 srvs2; do lab_site "$s" public || { echo "FAIL site $s"; exit 1; }; done
for k in "${KINDS[@]}"; do
	for n in 1 2; do lab_site "$k$n" "$k" || { echo "FAIL site $k$n"; exit 1; }; done
done
# Hosts on the public segment reach an IPv6-only site's prefix through its router (the
# segment's own namespace has these routes; hosts in their own namespaces need them too).
for h in "${!LAB_KIND[@]}"; do
	[ "${LAB_KIND[$h]}" = public ] || continue
	for v in "${!LAB_KIND[@]}"; do
		[ "${LAB_KIND[$v]}" = v6only ] || continue
		i=$(cut -d: -f3 <<<"${LAB_HOST6[$v]}")
		ip -n "${LAB_NS[$h]}" -6 route add "2001:db8:$i::/64" via "2001:db8::1:$i" ||
			{ echo "FAIL route from $h to $v"; exit 1; }
	done
done
# IPv6-only sites reach each other router to router (lab.sh routes only the public /64)
for v in "${!LAB_KIND[@]}"; do
	[ "${LAB_KIND[$v]}" = v6only ] || continue
	i=$(cut -d: -f3 <<<"${LAB_HOST6[$v]}")
	ip -n "${LAB_NS[$v]}" -6 route add 2001:db8::/32 via "2001:db8:$i::1" ||
		{ echo "FAIL route out of $v"; exit 1; }
	for w in "${!LAB_KIND[@]}"; do
		[ "${LAB_KIND[$w]}" = v6only ] && [ "$w" != "$v" ] || continue
		j=$(cut -d: -f3 <<<"${LAB_HOST6[$w]}")
		ip -n "$LAB_PFX-r-$v" -6 route add "2001:db8:$j::/64" via "2001:db8::1:$j" ||
			{ echo "FAIL route from $v to $w"; exit 1; }
	done
done
pass "lab built: 3 server hosts + $((${#KINDS[@]} * 2)) client sites"

LOGIN4="${LAB_PUB4[srvl]}:7700" LOGIN6="[${LAB_PUB6[srvl]}]:7700"
SN1="${LAB_PUB4[srvs1]}:7701" SN2="[${LAB_PUB6[srvs2]}]:7701"
{
	"$BIN/parley-login" init --data-dir "$d/login" --public-addr "$LOGIN4" --name natmatrix &&
		"$BIN/parley-supernode" init --data-dir "$d/sn1" --name sn1 &&
		"$BIN/parley-supernode" init --data-dir "$d/sn2" --name sn2 &&
		"$BIN/parley-login" enroll --data-dir "$d/login" --supernode-pub "$d/sn1/supernode.pub" \
			--address "$SN1" &&
		"$BIN/parley-login" enroll --data-dir "$d/login" --supernode-pub "$d/sn2/supernode.pub" \
			--address "$SN2"
} >"$d/init.log" 2>&1 || { echo "FAIL network init"; cat "$d/init.log"; exit 1; }
NET=$d/login/network.conf
# what each kind of site can reach: IPv4 sites the IPv4 supernode, the IPv6-only site the
# IPv6 one (and the login server's IPv6 address), public sites both
grep -v '^supernode = \[' "$NET" >"$d/net4.conf"
sed -e "s|^login = [^ ]*|login = $LOGIN6|" "$NET" | grep -v '^supernode = [0-9]' >"$d/net6.conf"
lab_spawn srvl login "$BIN/parley-login" --data-dir "$d/login" --listen "[::]:7700" \
	--argon2-ops 1 --argon2-mem-kib 8192
lab_spawn srvs1 sn1 "$BIN/parley-supernode" --data-dir "$d/sn1" --network "$NET" \
	--listen "[::]:7701" --public-addr "$SN1"
lab_spawn srvs2 sn2 "$BIN/parley-supernode" --data-dir "$d/sn2" --network "$NET" \
	--listen "[::]:7701" --public-addr "$SN2"
for p in login sn1 sn2; do
	lab_wait_line "$d/$p.out" ': ready' 10 || { fail "$p ready" "$(tail -5 "$d/$p.log")"; exit 1; }
done
pass "servers up: login $LOGIN4 / $LOGIN6, supernodes $SN1 and $SN2"

# ---- clients ----------------------------------------------------------------------------
cli() { local s=$1; shift; "$BIN/parley" --data-dir "$d/c_$s" --timeout 5 "$@"; }
declare -A PID=()
netfile() { # SITE
	case ${LAB_KIND[$1]} in public) echo "$NET" ;; v6only) echo "$d/net6.conf" ;; *) echo "$d/net4.conf" ;; esac
}
client_start() { # SITE
	local s=$1
	mkdir -p -m 700 "$d/c_$s"
	lab_spawn "$s" "c_$s" "$BIN/parleyd" --data-dir "$d/c_$s" --network "$(netfile "$s")" \
		--listen "[::]:0" --device-name "$s" --audio none
	PID[$s]=$!
	lab_wait_line "$d/c_$s.out" ': ready' 10
}
client_stop() { # SITE
	local pid=${PID[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	PID[$1]=
}
online() { # SITE: waits up to 10 s for the attachment
	local i
	for i in $(seq 1 100); do
		[ "$(cli "$1" --json status 2>/dev/null | jq -r .state)" = online ] && return 0
		sleep 0.1
	done
	return 1
}

SITES=()
for k in "${KINDS[@]}"; do SITES+=("${k}1" "${k}2"); done
for s in "${SITES[@]}"; do client_start "$s" || fail "parleyd starts in $s"; done
declare -A UP=()
BG=()
wait_bg() { local j; for j in "${BG[@]}"; do wait "$j"; done; BG=(); }
for s in "${SITES[@]}"; do
	( echo "matrix password $s" | cli "$s" --json register "$s" --password-stdin >/dev/null 2>&1 &&
		echo "matrix password $s" | cli "$s" --json login "$s" --password-stdin >/dev/null 2>&1
	) &
	BG+=($!)
done
wait_bg
for s in "${SITES[@]}"; do
	if online "$s"; then
		UP[$s]=1
	elif [ "${LAB_KIND[$s]}" = udpblock ]; then
		echo "MISSING $s cannot reach any server: UDP is blocked and there is no TCP fallback yet"
	else
		fail "$s logs in and attaches" "$(tail -3 "$d/c_$s.log")"
	fi
done

# ---- pairs ------------------------------------------------------------------------------
# Expected path per pair of kinds (the order of KINDS; "none" = cannot be tested yet).
expect_path() { # KIND_A KIND_B
	local a=$1 b=$2
	case "$a $b" in
	*udpblock*) echo none ;;
	"sym sym" | "prc sym" | "sym prc") echo relay ;;
	# Two Linux masquerade NATs: the first check to reach the other router finds no
	# mapping there and leaves an unreplied conntrack entry for that (address, port)
	# pair on the router itself; the other side's own mapping then clashes with it and
	# masquerade gives it another port, which the first router's filtering refuses. With
	# the lab's sub-millisecond latency the sends can never be simultaneous enough
	# (docs/NAT.md "prc against prc").
	"prc prc") echo relay ;;
	# no common address family: the IPv6-only site and the IPv4-only NAT sites
	"v6only prc" | "prc v6only" | "v6only sym" | "sym v6only" | "v6only fullcone" | "fullcone v6only") echo relay ;;
	*) echo direct ;;
	esac
}
PAIRS=()
for ((i = 0; i < ${#KINDS[@]}; i++)); do
	for ((j = i; j < ${#KINDS[@]}; j++)); do
		a=${KINDS[i]}1 b=${KINDS[j]}2
		PAIRS+=("$a $b")
	done
done
for p in "${PAIRS[@]}"; do
	read -r a b <<<"$p"
	[ -n "${UP[$a]:-}" ] && [ -n "${UP[$b]:-}" ] || continue
	cli "$a" contacts add "$b" >/dev/null 2>&1 && cli "$b" contacts add "$a" >/dev/null 2>&1 ||
		fail "contacts $a <-> $b"
done

# path_json SITE PEER: the paths entry of SITE's session with PEER ("" if none)
path_json() { cli "$1" --json paths "$2" 2>/dev/null | jq -c '.sessions[0] // empty'; }

declare -A TIMES=() PATHSEEN=()
# pair_times A B WANT: "SESSION_MS ICE_MS" from the side that started the handshake, once
# the session is up (and, for a direct pair, once it went direct); empty while not.
pair_times() {
	local j k
	for k in "$1 $2" "$2 $1"; do
		# shellcheck disable=SC2086
		j=$(path_json $k)
		[ -n "$j" ] && [ "$(jq -r .initiator <<<"$j")" = true ] && break
	done
	[ -n "$j" ] && [ "$(jq -r .session <<<"$j")" = up ] || return 0
	if [ "$3" = direct ]; then
		[ "$(jq -r .path <<<"$j")" = direct ] || return 0
		jq -r '"\(.session_ms) \(.ice_ms)"' <<<"$j"
	else
		jq -r '"\(.session_ms) -"' <<<"$j"
	fi
}
run_once() { # RUN_NUMBER
	local run=$1 p a b want t deadline
	for p in "${PAIRS[@]}"; do
		read -r a b <<<"$p"
		[ -n "${UP[$a]:-}" ] && [ -n "${UP[$b]:-}" ] || continue
		cli "$a" send "$b" "run $run: hello $b from $a" >/dev/null 2>&1 &
		BG+=($!)
	done
	wait_bg
	# direct pairs: until direct (12 s at most); relayed ones: until the session is up
	deadline=$((SECONDS + 12))
	for p in "${PAIRS[@]}"; do
		read -r a b <<<"$p"
		[ -n "${UP[$a]:-}" ] && [ -n "${UP[$b]:-}" ] || continue
		want=$(expect_path "${LAB_KIND[$a]}" "${LAB_KIND[$b]}")
		while :; do
			t=$(pair_times "$a" "$b" "$want")
			[ -n "$t" ] && break
			[ $SECONDS -ge $deadline ] && break
			sleep 0.1
		done
		if [ -z "$t" ]; then
			fail "run $run: $a <-> $b goes $want" "$(path_json "$a" "$b")"
		else
			TIMES[$p]="${TIMES[$p]:-}${t};"
		fi
		# run 1: the stream starts right away, on the relay for every pair (the direct
		# ones switch under it)
		[ "$run" = 1 ] && [ -n "$t" ] && cli "$a" nat-stream "$b" >/dev/null 2>&1
	done
}

# Restarts the daemons, the second site of each kind first: when the first sites come
# back (and open sessions, e.g. to send their presence) their peers are already attached,
# so a session's time is not the wait for a peer that is still restarting.
restart_sites() { # SUFFIX (1 or 2)
	local s
	for s in "${SITES[@]}"; do
		[ -n "${UP[$s]:-}" ] && [ "${s: -1}" = "$1" ] && kill -TERM "${PID[$s]}" 2>/dev/null
	done
	for s in "${SITES[@]}"; do [ -n "${UP[$s]:-}" ] && [ "${s: -1}" = "$1" ] && client_stop "$s"; done
	for s in "${SITES[@]}"; do
		[ -n "${UP[$s]:-}" ] && [ "${s: -1}" = "$1" ] || continue
		lab_spawn "$s" "c_$s" "$BIN/parleyd" --data-dir "$d/c_$s" --network "$(netfile "$s")" \
			--listen "[::]:0" --device-name "$s" --audio none
		PID[$s]=$!
	done
	for s in "${SITES[@]}"; do
		[ -n "${UP[$s]:-}" ] && [ "${s: -1}" = "$1" ] || continue
		{ lab_wait_line "$d/c_$s.out" ': ready' 10 && online "$s"; } || fail "$s restarts and attaches"
	done
}
restart_clients() {
	restart_sites 2
	restart_sites 1
}

# Run 1: message, path, and the stream (10 s, then 2 s for the tail).
run_once 1
sleep 12
for p in "${PAIRS[@]}"; do
	read -r a b <<<"$p"
	[ -n "${UP[$a]:-}" ] && [ -n "${UP[$b]:-}" ] || continue
	want=$(expect_path "${LAB_KIND[$a]}" "${LAB_KIND[$b]}")
	ja=$(path_json "$a" "$b")
	jb=$(path_json "$b" "$a")
	pa=$(jq -r '.path // "none"' <<<"${ja:-{\}}")
	pb=$(jq -r '.path // "none"' <<<"${jb:-{\}}")
	PATHSEEN[$p]=$pa
	if [ "$pa" = "$want" ] && [ "$pb" = "$want" ]; then pass "$a <-> $b: $want"; else
		fail "$a <-> $b: $want" "paths $pa / $pb"; fi
	rx=$(jq -r '.stream_rx // 0' <<<"${jb:-{\}}")
	if [ "$rx" = 500 ]; then pass "$a -> $b: 500 of 500 stream frames"; else
		fail "$a -> $b: 500 of 500 stream frames" "got $rx"; fi
	if cli "$b" --json history "$a" 2>/dev/null | jq -e --arg t "run 1: hello $b from $a" \
		'[.messages[]? | select(.text == $t)] | length == 1' >/dev/null; then
		pass "$a -> $b: message arrived once"
	else
		fail "$a -> $b: message arrived once" "$(cli "$b" --json history "$a" 2>&1 | head -c 300)"
	fi
done

for ((r = 2; r <= RUNS; r++)); do
	restart_clients
	run_once "$r"
done

# ---- the matrix ---------------------------------------------------------------------------
# median FIELD: of "session ice;" records
median() { tr ';' '\n' | awk -v f="$1" 'NF && $f != "-" {print $f}' | sort -n |
	awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print int((v[NR/2]+v[NR/2+1])/2)}'; }
table() {
	local i j p cell
	printf '| |'
	for k in "${KINDS[@]}"; do printf ' %s |' "$k"; done
	printf '\n|---|'
	for k in "${KINDS[@]}"; do printf -- '---|'; done
	printf '\n'
	for ((i = 0; i < ${#KINDS[@]}; i++)); do
		printf '| **%s** |' "${KINDS[i]}"
		for ((j = 0; j < ${#KINDS[@]}; j++)); do
			if ((j < i)); then p="${KINDS[j]}1 ${KINDS[i]}2"; else p="${KINDS[i]}1 ${KINDS[j]}2"; fi
			read -r a b <<<"$p"
			if [ "$(expect_path "${LAB_KIND[$a]}" "${LAB_KIND[$b]}")" = none ]; then
				cell="no UDP: not yet (TCP fallback missing)"
			elif [ -n "${PATHSEEN[$p]:-}" ] && [ "${PATHSEEN[$p]}" = direct ]; then
				cell="direct $(echo "${TIMES[$p]:-}" | median 1) + $(echo "${TIMES[$p]:-}" | median 2) ms"
			elif [ -n "${PATHSEEN[$p]:-}" ]; then
				cell="${PATHSEEN[$p]} $(echo "${TIMES[$p]:-}" | median 1) ms"
			else
				cell="FAILED"
			fi
			printf ' %s |' "$cell"
		done
		printf '\n'
	done
}
echo
echo "per pair and run: \"SESSION ICE\" (ms): handshake start to the session up over the relay,"
echo "then session up to the direct path nominated (- for relayed pairs), on the initiator:"
for p in "${PAIRS[@]}"; do [ -n "${TIMES[$p]:-}" ] && echo "  $p:${TIMES[$p]}"; done
echo
table | tee "$d/matrix.md"
if [ -n "$DOC" ] && [ $fails = 0 ]; then
	{
		sed -n '1,/<!-- nat-matrix:begin -->/p' "$DOC"
		echo
		echo "Measured $(date -u +%Y-%m-%d), median of $RUNS runs, $checks checks passed:"
		echo
		cat "$d/matrix.md"
		echo
		sed -n '/<!-- nat-matrix:end -->/,$p' "$DOC"
	} >"$d/doc.new" && cp "$d/doc.new" "$DOC" && echo "matrix written to $DOC"
fi
echo "$((checks - fails)) of $checks checks passed in ${SECONDS}s"
[ $fails = 0 ]
