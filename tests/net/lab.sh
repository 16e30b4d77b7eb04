# shellcheck shell=bash disable=SC2034 # LAB_* arrays are read by the scripts that source this
# The NAT lab: a small internet in network namespaces, for tests that need real NATs
# (docs/NAT.md draws it). Source this file, then:
#
#   lab_init                 sweeps leftovers of earlier runs, makes the public segment
#                            and registers lab_cleanup on EXIT, INT and TERM
#   lab_site NAME KIND       one client site; KIND is one of
#                              public    host on the public segment, no NAT
#                              prc       port-restricted cone NAT (nftables masquerade)
#                              sym       symmetric NAT (masquerade fully-random)
#                              fullcone  full cone (masquerade + static DNAT of UDP 1024-65535)
#                              udpblock  NAT that drops all forwarded UDP (TCP only)
#                              v6only    IPv6 only, no translation, stateful firewall
#   lab_exec SITE CMD...     runs CMD in the site's host namespace ("wan" = public segment)
#   lab_spawn SITE NAME CMD...  the same in the background, output in $LAB_DIR/NAME.{out,log};
#                            its PID in LAB_PID_NAME
#   lab_cleanup              kills every process in the lab, deletes every namespace and
#                            $LAB_DIR; idempotent
#
# Addresses (only 198.18.0.0/15 and 2001:db8::/32; no namespace has a default route, so
# nothing leaves the lab):
#   public segment   198.18.0.0/24, 2001:db8::/64, a bridge in namespace ${LAB_PFX}-wan
#                    servers: 198.18.0.1 .. 198.18.0.9 and 2001:db8::1 .. ::9 on that bridge
#   site number i    router (or public host) at 198.18.0.(100+i), 2001:db8::1:i
#                    LAN 198.19.i.0/24 and 2001:db8:i::/64: router .1 / ::1, host .2 / ::2
# After lab_site, LAB_HOST4[NAME], LAB_HOST6[NAME] hold the host's own addresses and
# LAB_PUB4[NAME], LAB_PUB6[NAME] the address the public segment sees (empty if none).
#
# Every namespace name starts with "$LAB_PFX-" (default pnlab): lab_init and lab_cleanup
# remove all of them, so a crashed run never poisons the next one. Two labs cannot run at
# once on one machine with the same prefix.

LAB_PFX=${LAB_PFX:-pnlab}
LAB_DIR=${LAB_DIR:-}
LAB_NSITES=0
LAB_PIDS=()
declare -gA LAB_KIND=() LAB_HOST4=() LAB_HOST6=() LAB_PUB4=() LAB_PUB6=() LAB_NS=()

lab_log() { echo "lab: $*" >&2; }

# Every namespace of ours, and then the processes inside them, by PID.
lab__namespaces() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep "^${LAB_PFX}-" || true
}

lab__sweep() {
	local ns pid
	for ns in $(lab__namespaces); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	for ns in $(lab__namespaces); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns delete "$ns" 2>/dev/null || lab_log "could not delete namespace $ns"
	done
}

lab_cleanup() {
	local pid
	for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	sleep 0.1
	for pid in "${LAB_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	LAB_PIDS=()
	lab__sweep
	if [ -n "$LAB_DIR" ] && [ "${LAB_KEEP:-0}" != 1 ]; then rm -rf "$LAB_DIR"; fi
	LAB_DIR=
	return 0
}

lab__trap() {
	trap 'lab_cleanup' EXIT
	trap 'lab_cleanup; trap - EXIT; exit 130' INT
	trap 'lab_cleanup; trap - EXIT; exit 143' TERM
}

# lab__ns_new NS: a fresh namespace with loopback up and forwarding as asked.
lab__ns_new() {
	ip netns add "$1" || return 1
	ip -n "$1" link set lo up || return 1
	# no router advertisements or autoconfiguration: addresses are only those we set
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
		net.ipv6.conf.default.autoconf=0 >/dev/null || return 1
}

lab_init() {
	local i
	if [ "$(id -u)" -ne 0 ]; then
		lab_log "needs root (network namespaces, veth, nftables)"
		return 1
	fi
	for t in ip nft; do
		command -v "$t" >/dev/null || { lab_log "$t is missing (scripts/deps.sh check)"; return 1; }
	done
	lab__trap
	lab__sweep
	# the temp directories of crashed runs (a live lab of this prefix was just swept too)
	rm -rf "/tmp/$LAB_PFX".??????
	LAB_DIR=$(mktemp -d "/tmp/$LAB_PFX.XXXXXX") || return 1
	local wan="${LAB_PFX}-wan"
	lab__ns_new "$wan" || return 1
	LAB_NS[wan]=$wan
	ip -n "$wan" link add br0 type bridge || return 1
	ip netns exec "$wan" sysctl -qw net.ipv6.conf.br0.accept_dad=0 >/dev/null
	ip -n "$wan" link set br0 up || return 1
	for i in 1 2 3 4 5 6 7 8 9; do
		ip -n "$wan" addr add "198.18.0.$i/24" dev br0 || return 1
		ip -n "$wan" addr add "2001:db8::$i/64" dev br0 nodad || return 1
	done
}

# lab__veth NS_A NAME_A NS_B NAME_B: a veth pair between two namespaces, both ends up.
lab__veth() {
	local tmp="pnl$$x$RANDOM"
	ip -n "$1" link add "$2" type veth peer name "$tmp" || return 1
	ip -n "$1" link set "$tmp" netns "$3" || return 1
	ip -n "$3" link set "$tmp" name "$4" || return 1
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0" >/dev/null
	ip netns exec "$3" sysctl -qw "net.ipv6.conf.$4.accept_dad=0" >/dev/null
	ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

# The nftables ruleset of a router of each kind (NETLAB-NOTES.md has the observed RFC 4787
# behaviour of each).
lab__nft_rules() { # KIND HOST4
	case $1 in
	prc | sym | fullcone | udpblock)
		local mq=masquerade
		[ "$1" = sym ] && mq="masquerade fully-random"
		echo "table ip nat {"
		echo "  chain lab_post { type nat hook postrouting priority srcnat; policy accept;"
		echo "    oifname \"wan0\" $mq; }"
		if [ "$1" = fullcone ]; then
			echo "  chain lab_pre { type nat hook prerouting priority dstnat; policy accept;"
			echo "    iifname \"wan0\" udp dport 1024-65535 dnat to $2; }"
		fi
		echo "}"
		if [ "$1" = udpblock ]; then
			echo "table inet filter {"
			echo "  chain lab_forward { type filter hook forward priority filter; policy accept;"
			echo "    meta l4proto udp drop; }"
			echo "}"
		fi
		;;
	v6only)
		echo "table ip6 filter {"
		echo "  chain lab_forward { type filter hook forward priority filter; policy drop;"
		echo "    iifname \"lan0\" oifname \"wan0\" accept;"
		echo "    ct state established,related accept; }"
		echo "}"
		;;
	esac
}

lab_site() { # NAME KIND
	local name=$1 kind=$2 i wan="${LAB_PFX}-wan" r h pub4 pub6
	case $kind in
	public | prc | sym | fullcone | udpblock | v6only) ;;
	*) lab_log "unknown site kind \`$kind' (public prc sym fullcone udpblock v6only)"; return 1 ;;
	esac
	[ -n "$LAB_DIR" ] || { lab_log "lab_site before lab_init"; return 1; }
	[ -z "${LAB_KIND[$name]:-}" ] || { lab_log "site $name exists"; return 1; }
	LAB_NSITES=$((LAB_NSITES + 1))
	i=$LAB_NSITES
	[ "$i" -le 99 ] || { lab_log "at most 99 sites"; return 1; }
	pub4="198.18.0.$((100 + i))"
	pub6="2001:db8::1:$i"
	h="${LAB_PFX}-h-$name"
	lab__ns_new "$h" || return 1
	LAB_KIND[$name]=$kind
	LAB_NS[$name]=$h
	if [ "$kind" = public ]; then
		lab__veth "$wan" "s$i" "$h" eth0 || return 1
		ip -n "$wan" link set "s$i" master br0 || return 1
		ip -n "$h" addr add "$pub4/24" dev eth0 || return 1
		ip -n "$h" addr add "$pub6/64" dev eth0 nodad || return 1
		LAB_HOST4[$name]=$pub4 LAB_HOST6[$name]=$pub6 LAB_PUB4[$name]=$pub4 LAB_PUB6[$name]=$pub6
		return 0
	fi
	r="${LAB_PFX}-r-$name"
	lab__ns_new "$r" || return 1
	lab__veth "$wan" "s$i" "$r" wan0 || return 1
	ip -n "$wan" link set "s$i" master br0 || return 1
	lab__veth "$r" lan0 "$h" eth0 || return 1
	if [ "$kind" = v6only ]; then
		ip -n "$r" addr add "$pub6/64" dev wan0 nodad || return 1
		ip -n "$r" addr add "2001:db8:$i::1/64" dev lan0 nodad || return 1
		ip netns exec "$r" sysctl -qw net.ipv6.conf.all.forwarding=1 >/dev/null || return 1
		ip -n "$h" addr add "2001:db8:$i::2/64" dev eth0 nodad || return 1
		ip -n "$h" -6 route add 2001:db8::/64 via "2001:db8:$i::1" || return 1
		# no translation: the public segment routes the site's prefix to its router
		ip -n "$wan" -6 route add "2001:db8:$i::/64" via "$pub6" || return 1
		LAB_HOST4[$name]='' LAB_HOST6[$name]="2001:db8:$i::2" LAB_PUB4[$name]='' LAB_PUB6[$name]=''
	else
		ip -n "$r" addr add "$pub4/24" dev wan0 || return 1
		ip -n "$r" addr add "198.19.$i.1/24" dev lan0 || return 1
		ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 >/dev/null || return 1
		ip -n "$h" addr add "198.19.$i.2/24" dev eth0 || return 1
		ip -n "$h" route add 198.18.0.0/24 via "198.19.$i.1" || return 1
		LAB_HOST4[$name]="198.19.$i.2" LAB_HOST6[$name]='' LAB_PUB4[$name]=$pub4 LAB_PUB6[$name]=''
	fi
	lab__nft_rules "$kind" "198.19.$i.2" >"$LAB_DIR/nft-$name.conf"
	ip netns exec "$r" nft -f "$LAB_DIR/nft-$name.conf" || {
		lab_log "nft rejected the $kind ruleset of $name:"; cat "$LAB_DIR/nft-$name.conf" >&2
		return 1
	}
}

lab_exec() { # SITE CMD...
	local ns=${LAB_NS[$1]:-}
	[ -n "$ns" ] || { lab_log "no site \`$1'"; return 1; }
	shift
	ip netns exec "$ns" "$@"
}

lab_spawn() { # SITE NAME CMD...
	local ns=${LAB_NS[$1]:-} name=$2
	[ -n "$ns" ] || { lab_log "no site \`$1'"; return 1; }
	shift 2
	ip netns exec "$ns" "$@" >"$LAB_DIR/$name.out" 2>"$LAB_DIR/$name.log" &
	LAB_PIDS+=($!)
	printf -v "LAB_PID_$name" '%s' "$!"
}

# lab_wait_line FILE REGEX [SECONDS]: waits for a line in a spawned program's output.
lab_wait_line() {
	local i n=$((${3:-10} * 20))
	for ((i = 0; i < n; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
