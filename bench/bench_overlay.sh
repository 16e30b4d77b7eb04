#!/bin/sh
# The supernode directory at scale, in the simulator (docs/BENCHMARKS.md, "Directory at
# scale (simulator)"). Runs parley-sim for our configuration and for a plain Kademlia
# baseline over a matrix of network sizes and churn rates, appends JSON lines to
# bench/results/overlay.jsonl, keeps each run's text and histogram files in
# docs/img/overlay-data/ and then draws the plots (bench/plot_overlay.sh).
#
#   bench/bench_overlay.sh [BUILD_DIR]            (default: build)
#
# Environment (defaults in brackets):
#   SIZES="100 1000"  CHURNS="10 50"  VARIANTS="ours plain"
#   HOURS=1  LOOKUPS=1000  CPS=10 (clients per supernode)  SEED=1
#   MALS=""  MAL_KINDS="drop lie"  MAL_N=1000  MAL_HOURS=0.25  MAL_PATHS="1 3"
#        (malicious runs, ours only, once per number of disjoint lookup paths)
#   SIM=path/to/parley-sim (default BUILD_DIR/cmd/parley-sim)
#   OUT=JSON lines file, IMG=plot directory (defaults: bench/results/overlay.jsonl, docs/img)
#   MAX_S=7200: a run still going after that many seconds is stopped and reported as such
#   NICE=10: runs go under nice -n NICE (the simulator is one long CPU-bound process)
#
# The variants (what "plain" means is documented in BENCHMARKS.md):
#   ours   the supernode as shipped: k = 256, at most 2 contacts per /24 in a bucket
#   plain  k = 20, no per-prefix limit (--per-prefix 20 = k), everything else the same
#          engine: alpha = 3, lookup window 8, r = 3 replicas, bucket refresh
#   k32    k = 32 (the shipped default before large tables)
#
# The 10,000-supernode point is run on its own, with fewer clients per supernode (see
# BENCHMARKS.md for why):
#   SIZES=10000 CHURNS=10 HOURS=0.2 LOOKUPS=1000 CPS=2 bench/bench_overlay.sh build
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
sim=${SIM:-$build/cmd/parley-sim}
SIZES=${SIZES:-"100 1000"}
CHURNS=${CHURNS:-"10 50"}
VARIANTS=${VARIANTS:-"ours plain"}
HOURS=${HOURS:-1}
LOOKUPS=${LOOKUPS:-1000}
CPS=${CPS:-10}
SEED=${SEED:-1}
MALS=${MALS:-}
MAL_KINDS=${MAL_KINDS:-"drop lie"}
MAL_N=${MAL_N:-1000}
MAL_HOURS=${MAL_HOURS:-0.25}
MAL_PATHS=${MAL_PATHS:-"1 3"}
MAX_S=${MAX_S:-7200}
NICE=${NICE:-10}
out=${OUT:-$root/bench/results/overlay.jsonl}
img=${IMG:-$root/docs/img}
data=$img/overlay-data

[ -x "$sim" ] || { echo "bench_overlay: no parley-sim at \`$sim' (build first)" >&2; exit 1; }
mkdir -p "$(dirname "$out")" "$data"

variant_args() {
	case $1 in
	ours) echo "--k 256" ;;
	plain) echo "--k 20 --per-prefix 20" ;;
	k32) echo "--k 32" ;;
	*) echo "bench_overlay: unknown variant \`$1'" >&2; exit 2 ;;
	esac
}

# one run: tag, then parley-sim arguments. The JSON lines are rewritten so that their
# figure names start with the tag (variant-n-churn), which the plots and the docs use.
run() {
	tag=$1
	shift
	echo "== $tag: parley-sim $*" >&2
	if timeout "$MAX_S" nice -n "$NICE" "$sim" --json --hist "$data/$tag" "$@" \
		>"$data/$tag.txt"; then
		grep '^{' "$data/$tag.txt" |
			sed "s/\"figure\":\"[^.\"]*\./\"figure\":\"$tag./" >>"$out"
		grep -v '^{' "$data/$tag.txt" >&2
	else
		echo "   did not finish within ${MAX_S} s (or failed); see $data/$tag.txt" >&2
		printf '{"bench":"overlay_sim","figure":"%s.unfinished_after_s","value":%s,"unit":"s"}\n' \
			"$tag" "$MAX_S" >>"$out"
	fi
}

for n in $SIZES; do
	for v in $VARIANTS; do
		for c in $CHURNS; do
			tag="$v-n$n-churn$c"
			[ "$CPS" = 10 ] || tag="$tag-c$CPS"
			# shellcheck disable=SC2046
			run "$tag" --supernodes "$n" --clients-per-sn "$CPS" $(variant_args "$v") \
				--churn-per-hour "$c" --hours "$HOURS" --lookups "$LOOKUPS" --seed "$SEED"
		done
	done
done
for m in $MALS; do
	for kind in $MAL_KINDS; do
		for d in $MAL_PATHS; do
			# shellcheck disable=SC2046
			run "ours-n$MAL_N-mal$m$kind-d$d" --supernodes "$MAL_N" \
				--clients-per-sn "$CPS" $(variant_args ours) --malicious "$m" \
				--misbehave "$kind" --paths "$d" --hours "$MAL_HOURS" \
				--lookups "$LOOKUPS" --seed "$SEED"
		done
	done
done

"$here/plot_overlay.sh" "$data" "$img"
echo "bench_overlay: JSON lines in $out, plots in $img" >&2
