#!/usr/bin/env bash
# Every NAT kind of the lab (tests/net/lab.sh), probed with STUN against coturn and a
# parley supernode on the public segment. Prints one line per check, then a table of the
# observed mapping and filtering behaviour per kind (docs/NAT.md is made from it), and
# exits non-zero if any check failed.
#
#   tests/net/nat_kinds.sh BINDIR           BINDIR holds parley-stun, parley-login,
#                                           parley-supernode (build/cmd)
#
# Needs root (namespaces, nftables) and coturn, nftables, iproute2, jq, python3
# (scripts/deps.sh check). Without root it says so and exits 2: it never reports a pass
# for a lab it could not build.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:?usage: nat_kinds.sh BINDIR}" && pwd) || exit 2
PROBE=$here/udp_probe.py

if [ "$(id -u)" -ne 0 ]; then
	echo "nat_kinds.sh: NOT RUN: the NAT lab needs root (network namespaces, nftables)." >&2
	echo "nat_kinds.sh: run it as root: sudo $0 $1" >&2
	exit 2
fi
for t in "$BIN/parley-stun" "$BIN/parley-login" "$BIN/parley-supernode"; do
	[ -x "$t" ] || { echo "nat_kinds.sh: $t is missing (build first)" >&2; exit 1; }
done
for t in turnserver turnutils_stunclient turnutils_natdiscovery jq python3 nft ip; do
	command -v "$t" >/dev/null || { echo "nat_kinds.sh: $t is missing (scripts/deps.sh check)" >&2; exit 1; }
done

# shellcheck source=tests/net/lab.sh
. "$here/lab.sh"

checks=0 fails=0
pass() { checks=$((checks + 1)); echo "ok   $1${NL_TIMES:+ [${SECONDS}s]}"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $1${2:+ -- $2}"; }
expect() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then pass "$1 ($2)"; else fail "$1" "got \`$2', want \`$3'"; fi
}
port_of() { echo "${1##*:}"; }
ip_of() { local a=${1%:*}; a=${a#[}; echo "${a%]}"; }

start=$(date +%s)
lab_init || { echo "FAIL the lab could not be built"; exit 1; }

# ---- sites ---------------------------------------------------------------------------
SITES=(public prc sym fullcone udpblock v6only)
for s in "${SITES[@]}"; do
	lab_site "$s" "$s" || { echo "FAIL site $s could not be built"; exit 1; }
done
pass "lab built: public segment + ${#SITES[@]} sites"

# ---- servers on the public segment -----------------------------------------------------
# coturn: plain STUN only (no TURN relay, no TLS, no auth), on two IPv4 addresses (to see
# whether a NAT keeps one mapping towards two destinations) and one IPv6 address.
COTURN_A=198.18.0.3:3478 COTURN_B=198.18.0.4:3478 COTURN_6="[2001:db8::3]:3478"
SN=198.18.0.2:7701 SN_6="[2001:db8::2]:7701" LOGIN=198.18.0.1:7700
# A third one bound to [::] on the segment's namespace, which holds 198.18.0.1-9 and
# 2001:db8::1-9: it must answer from the address each request came to (the runtime's
# IP_PKTINFO / IPV6_PKTINFO), or the NATs and the IPv6 firewall drop its answers.
SN_ANY=198.18.0.2:7702
# Two supernodes, each bound to its one address: a socket bound to [::] on a host with
# several addresses answers from whichever address the route prefers, and a NAT or
# stateful firewall drops an answer from an address the request did not go to.
lab_spawn wan coturn turnserver -n --stun-only --no-tls --no-dtls --no-cli \
	--listening-ip 198.18.0.3 --listening-ip 198.18.0.4 --listening-ip 2001:db8::3 \
	--listening-port 3478 --userdb "$LAB_DIR/turndb" --pidfile "$LAB_DIR/turnserver.pid" \
	--log-file stdout --simple-log --no-stdout-log

d=$LAB_DIR
{
	"$BIN/parley-login" init --data-dir "$d/login" --listen "$LOGIN" --name natlab &&
		for sn in sn sn6 snany; do
			"$BIN/parley-supernode" init --data-dir "$d/$sn" --name "$sn" || exit 1
		done &&
		"$BIN/parley-login" enroll --data-dir "$d/login" --supernode-pub "$d/sn/supernode.pub" \
			--address "$SN" &&
		"$BIN/parley-login" enroll --data-dir "$d/login" --supernode-pub "$d/sn6/supernode.pub" \
			--address "$SN_6" &&
		"$BIN/parley-login" enroll --data-dir "$d/login" --supernode-pub "$d/snany/supernode.pub" \
			--address "$SN_ANY" --out "$d/snany/supernode.cert"
} >"$d/init.log" 2>&1 || { echo "FAIL network init"; cat "$d/init.log"; exit 1; }
lab_spawn wan login "$BIN/parley-login" --data-dir "$d/login" --argon2-ops 1 --argon2-mem-kib 8192
lab_spawn wan sn "$BIN/parley-supernode" --data-dir "$d/sn" --network "$d/login/network.conf" \
	--listen "$SN"
lab_spawn wan sn6 "$BIN/parley-supernode" --data-dir "$d/sn6" --network "$d/login/network.conf" \
	--listen "$SN_6"
lab_spawn wan snany "$BIN/parley-supernode" --data-dir "$d/snany" --network "$d/login/network.conf" \
	--listen "[::]:7702" --public-addr "$SN_ANY"
for p in login sn sn6 snany; do
	lab_wait_line "$d/$p.out" ': ready' 10 || { fail "$p ready" "$(tail -5 "$d/$p.log")"; exit 1; }
done
# coturn has no ready line we can rely on: ask it until it answers
ready=0
for _ in $(seq 1 50); do
	if lab_exec wan "$BIN/parley-stun" --timeout 200 --rto 100 "$COTURN_A" >/dev/null 2>&1; then
		ready=1
		break
	fi
done
[ $ready = 1 ] || { fail "coturn answers" "$(tail -5 "$d/coturn.out" "$d/coturn.log")"; exit 1; }
pass "servers up: coturn $COTURN_A $COTURN_B $COTURN_6, supernode $SN $SN_6, login $LOGIN"

# ---- per-site STUN ----------------------------------------------------------------------
declare -A MAP FILT
stun() { # SITE ARGS...: parley-stun's JSON in $j, its exit status in $stun_rc
	local site=$1
	shift
	j=$(lab_exec "$site" "$BIN/parley-stun" --json --rto 200 "$@" 2>/dev/null)
	stun_rc=$?
}
mapped() { jq -r ".results[$2].mapped // \"none\"" <<<"$1"; }

# Filtering: with the mapping fresh, can strangers reach the mapped address? Every site
# listens on its host at once; then one sender on the public segment sends each site a
# datagram from the server's IP but another port ("same-ip", from port 3999) and one from
# another IP ("other-ip"). Measured for all sites together at the end (Python starts
# slowly on a busy machine: one window for all of them keeps the test short).
declare -A PROBE_LISTEN=() PROBE_TO=()
filtering_later() { # SITE HOSTIP PORT MAPPED_IP MAPPED_PORT SAME_IP OTHER_IP
	PROBE_LISTEN[$1]="$2 $3"
	PROBE_TO[$1]="$6 3999 $4 $5 same-ip $7 3478 $4 $5 other-ip"
}
filtering_run() { # fills FILT[site] for every site registered with filtering_later
	local s args=()
	for s in "${!PROBE_LISTEN[@]}"; do
		# shellcheck disable=SC2086
		lab_spawn "$s" "probe_$s" python3 "$PROBE" listen ${PROBE_LISTEN[$s]} "$LAB_DIR/probes-sent"
	done
	for s in "${!PROBE_LISTEN[@]}"; do
		lab_wait_line "$LAB_DIR/probe_$s.out" listening 10 || fail "$s: probe listener starts"
		# shellcheck disable=SC2206
		args+=(${PROBE_TO[$s]})
	done
	lab_exec wan python3 "$PROBE" send "${args[@]}" || fail "probes sent"
	touch "$LAB_DIR/probes-sent"
	for s in "${!PROBE_LISTEN[@]}"; do
		lab_wait_line "$LAB_DIR/probe_$s.out" "done" 35 || fail "$s: probe listener ends"
		f="$(grep -c same-ip "$LAB_DIR/probe_$s.out") $(grep -c other-ip "$LAB_DIR/probe_$s.out")"
		FILT[$s]=$(filt_name "$f")
	done
}
filt_name() {
	case $1 in
	"1 1") echo "endpoint-independent" ;;
	"0 1") echo "impossible?" ;;
	"1 0") echo "address-dependent" ;;
	"0 0") echo "address-and-port-dependent" ;;
	*) echo "unmeasured ($1)" ;;
	esac
}

for s in public prc sym fullcone; do
	h=${LAB_HOST4[$s]} pub=${LAB_PUB4[$s]} port=$((40000 + ${#s}))
	stun "$s" --timeout 3000 --bind "$h:$port" "$COTURN_A" "$COTURN_B" "$SN"
	if [ "$stun_rc" = 0 ]; then
		pass "$s: coturn A, coturn B and the supernode answer"
	else
		fail "$s: all three servers answer" "$(jq -c '.results[] | .error // empty' <<<"$j")"
	fi
	a=$(mapped "$j" 0) b=$(mapped "$j" 1) c=$(mapped "$j" 2)
	if [ "$s" = public ]; then
		expect "$s: coturn sees the host address itself" "$a" "$h:$port"
		expect "$s: the supernode sees the host address itself" "$c" "$h:$port"
	else
		expect "$s: coturn sees the router's public address" "$(ip_of "$a")" "$pub"
		expect "$s: the supernode sees the router's public address" "$(ip_of "$c")" "$pub"
	fi
	if [ "$s" = sym ]; then
		if [ "$(port_of "$a")" != "$(port_of "$b")" ] && [ "$(port_of "$a")" != "$(port_of "$c")" ]; then
			pass "$s: a new mapped port per destination ($a, $b, $c)"
		else
			fail "$s: a new mapped port per destination" "$a $b $c"
		fi
		MAP[$s]="address-and-port-dependent"
	else
		if [ "$(port_of "$a")" = "$(port_of "$b")" ] && [ "$(port_of "$a")" = "$(port_of "$c")" ]; then
			pass "$s: one mapped port towards all destinations ($a, $b, $c)"
		else
			fail "$s: one mapped port towards all destinations" "$a $b $c"
		fi
		MAP[$s]="endpoint-independent"
		[ "$s" = public ] && MAP[$s]="none (no NAT)"
	fi
	# an answer never larger than its request, from the supernode
	rq=$(jq -r '.results[2].request_bytes' <<<"$j") an=$(jq -r '.results[2].answer_bytes // 0' <<<"$j")
	if [ "$an" -gt 0 ] && [ "$an" -le "$rq" ]; then
		pass "$s: supernode answer $an bytes <= request $rq bytes"
	else
		fail "$s: supernode answer no larger than the request" "answer $an, request $rq"
	fi
	filtering_later "$s" "$h" "$port" "$(ip_of "$a")" "$(port_of "$a")" 198.18.0.3 198.18.0.5
done

# UDP blocked: no answer from anyone, but TCP gets out.
s=udpblock h=${LAB_HOST4[$s]}
stun "$s" --timeout 1200 --bind "$h:40100" "$COTURN_A" "$SN"
expect "$s: parley-stun fails (exit 1)" "$stun_rc" 1
expect "$s: no mapped address from coturn" "$(mapped "$j" 0)" none
expect "$s: no mapped address from the supernode" "$(mapped "$j" 1)" none
if lab_exec "$s" timeout 3 bash -c 'exec 3<>/dev/tcp/198.18.0.3/3478' 2>/dev/null; then
	pass "$s: TCP to coturn 198.18.0.3:3478 connects"
else
	fail "$s: TCP to coturn 198.18.0.3:3478 connects"
fi
MAP[$s]="- (no UDP)" FILT[$s]="- (no UDP)"

# IPv6 only: the mapped address is the host's own IPv6 address; no IPv4 at all.
s=v6only h=${LAB_HOST6[$s]} port=40200
stun "$s" --timeout 3000 --bind "[$h]:$port" "$COTURN_6" "$SN_6"
if [ "$stun_rc" = 0 ]; then
	pass "$s: coturn and the supernode answer over IPv6"
else
	fail "$s: coturn and the supernode answer over IPv6" "$(jq -c '.results[] | .error // empty' <<<"$j")"
fi
expect "$s: coturn sees the host's IPv6 address" "$(mapped "$j" 0)" "[$h]:$port"
expect "$s: the supernode sees the host's IPv6 address" "$(mapped "$j" 1)" "[$h]:$port"
stun "$s" --timeout 500 "$COTURN_A"
expect "$s: no IPv4 path (parley-stun exit 1)" "$stun_rc" 1
MAP[$s]="none (no translation)"
filtering_later "$s" "$h" "$port" "$h" "$port" 2001:db8::3 2001:db8::5

# ---- filtering, all sites at once (mappings made above are seconds old) -----------------
filtering_run
for s in public prc sym fullcone v6only; do
	case $s in
	public | fullcone) want="endpoint-independent" ;;
	*) want="address-and-port-dependent" ;;
	esac
	expect "$s: unsolicited UDP from strangers to the mapped address: filtering" "${FILT[$s]}" "$want"
done

# ---- standard clients against the supernode ----------------------------------------------
# coturn's NAT discovery tool pads its requests with a 1500-byte PADDING: it gets an answer.
out=$(lab_exec prc timeout 3 turnutils_natdiscovery -m -P -p 7701 198.18.0.2 2>&1)
if grep -q "${LAB_PUB4[prc]}" <<<"$out"; then
	pass "turnutils_natdiscovery -P (padded) gets the reflexive address from the supernode"
else
	fail "turnutils_natdiscovery -P gets an answer from the supernode" "$(tail -3 <<<"$out")"
fi
# turnutils_stunclient sends a bare 20-byte request: coturn answers it, the supernode
# does not (its 32-byte answer would be larger than the request).
out=$(lab_exec prc timeout 2 turnutils_stunclient -p 3478 198.18.0.3 2>&1)
if grep -q "${LAB_PUB4[prc]}" <<<"$out"; then
	pass "turnutils_stunclient (20 bytes) gets an answer from coturn"
else
	fail "turnutils_stunclient gets an answer from coturn" "$(tail -3 <<<"$out")"
fi
lab_exec prc timeout 2 turnutils_stunclient -p 7701 198.18.0.2 >/dev/null 2>&1
expect "turnutils_stunclient (20 bytes): no answer from the supernode (timeout)" "$?" 124
stun public --timeout 1000 --pad 0 --no-fingerprint "$SN"
expect "a 20-byte request gets no answer from the supernode" \
	"$stun_rc:$(jq -r '.results[0].request_bytes' <<<"$j"):$(mapped "$j" 0)" "1:20:none"
stun public --timeout 1000 --pad 0 --no-fingerprint "$COTURN_A"
expect "the same 20-byte request gets an answer from coturn" "$stun_rc" 0

# ---- a supernode bound to [::] on a host with several addresses --------------------------
for s in prc sym; do
	stun "$s" --timeout 2000 198.18.0.5:7702
	expect "$s: the [::]-bound supernode answers from 198.18.0.5 (the address asked)" \
		"$stun_rc:$(ip_of "$(mapped "$j" 0)")" "0:${LAB_PUB4[$s]}"
done
stun v6only --timeout 2000 "[2001:db8::7]:7702"
expect "v6only: the [::]-bound supernode answers from 2001:db8::7 through the firewall" \
	"$stun_rc:$(ip_of "$(mapped "$j" 0)")" "0:${LAB_HOST6[v6only]}"

# ---- sanitizers, summary ----------------------------------------------------------------------
if grep -lE "ERROR: AddressSanitizer|runtime error:" "$LAB_DIR"/*.log >/dev/null 2>&1; then
	fail "no sanitizer reports" "$(grep -h -A5 -E 'AddressSanitizer|runtime error:' "$LAB_DIR"/*.log | head -20)"
fi

echo
echo "| kind | mapping (RFC 4787) | filtering (RFC 4787) |"
echo "|---|---|---|"
for s in "${SITES[@]}"; do
	echo "| $s | ${MAP[$s]:-?} | ${FILT[$s]:-?} |"
done
echo
echo "nat_kinds.sh: $((checks - fails)) of $checks checks passed in $(($(date +%s) - start)) s"
[ "$fails" = 0 ]
