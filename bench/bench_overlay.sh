#!/bin/sh
# The supernode directory at scale, in the simulator (docs/BENCHMARKS.md, "Directory at
# scale (simulator)"). Runs parley-sim over a matrix of network sizes, k-bucket sizes,
# churn rates and malicious shares; appends JSON lines to bench/results/overlay.jsonl;
# writes data files and PNG plots (gnuplot) into docs/img/.
#
#   bench/bench_overlay.sh [BUILD_DIR]            (default: build)
#
# Environment (defaults in brackets):
#   SIZES="100 1000 10000"  KS="20 32 128"  CHURNS="10 50"
#   HOURS=1  LOOKUPS=1000  SEED=1
#   MAL_N=1000  MALS="10 25"  MAL_KINDS="drop lie"  MAL_HOURS=0.25
#   SIM=path/to/parley-sim (default BUILD_DIR/cmd/parley-sim)
#   LABEL=tag added to file names (to keep runs of different builds apart)
#   OUT=JSON lines file, IMG=plot directory (defaults: bench/results/overlay.jsonl, docs/img)
# A run that is still going after MAX_S seconds [1800] is stopped and reported as such.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
sim=${SIM:-$build/cmd/parley-sim}
SIZES=${SIZES:-"100 1000 10000"}
KS=${KS:-"20 32 128"}
CHURNS=${CHURNS:-"10 50"}
HOURS=${HOURS:-1}
LOOKUPS=${LOOKUPS:-1000}
SEED=${SEED:-1}
MAL_N=${MAL_N:-1000}
MALS=${MALS:-"10 25"}
MAL_KINDS=${MAL_KINDS:-"drop lie"}
MAL_HOURS=${MAL_HOURS:-0.25}
MAX_S=${MAX_S:-1800}
LABEL=${LABEL:-}
out=${OUT:-$root/bench/results/overlay$LABEL.jsonl}
img=${IMG:-$root/docs/img}
data=$img/overlay-data

[ -x "$sim" ] || { echo "bench_overlay: no parley-sim at \`$sim' (build first)" >&2; exit 1; }
mkdir -p "$root/bench/results" "$data"

# one run: tag, then parley-sim arguments
run() {
	tag=$1
	shift
	echo "== parley-sim $*" >&2
	if timeout "$MAX_S" "$sim" --quiet --json --hist "$data/$tag$LABEL" "$@" \
		>"$data/$tag$LABEL.txt"; then
		grep '^{' "$data/$tag$LABEL.txt" >>"$out"
		grep -v '^{' "$data/$tag$LABEL.txt" >&2
	else
		echo "   did not finish within ${MAX_S} s (or failed); see $data/$tag$LABEL.txt" >&2
		printf '{"bench":"overlay_sim","figure":"%s.unfinished_after_s","value":%s,"unit":"s"}\n' \
			"$tag" "$MAX_S" >>"$out"
	fi
}

for n in $SIZES; do
	for k in $KS; do
		for c in $CHURNS; do
			run "n${n}_k${k}_churn${c}" --supernodes "$n" --clients-per-sn 10 --k "$k" \
				--alpha 3 --churn-per-hour "$c" --hours "$HOURS" --lookups "$LOOKUPS" \
				--seed "$SEED"
		done
	done
done
for m in $MALS; do
	for kind in $MAL_KINDS; do
		run "n${MAL_N}_k32_mal${m}${kind}" --supernodes "$MAL_N" --clients-per-sn 10 \
			--k 32 --malicious "$m" --misbehave "$kind" --hours "$MAL_HOURS" \
			--lookups "$LOOKUPS" --seed "$SEED"
	done
done

# ---- plots ----------------------------------------------------------------------------------
command -v gnuplot >/dev/null || { echo "bench_overlay: gnuplot missing; no plots" >&2; exit 0; }

# success vs churn: one line per (N, k), from the summary lines
succ=$data/success$LABEL.dat
: >"$succ"
for n in $SIZES; do
	for k in $KS; do
		for c in $CHURNS; do
			f=$data/n${n}_k${k}_churn${c}$LABEL.txt
			[ -f "$f" ] || continue
			v=$(sed -n 's/.*"figure":"[^"]*\.lookup_success","value":\([^,]*\),.*/\1/p' "$f")
			[ -n "$v" ] && echo "$n $k $c $v" >>"$succ"
		done
	done
done

plots=""
for n in $SIZES; do
	for k in $KS; do
		f=$data/n${n}_k${k}_churn10$LABEL.hops
		[ -f "$f" ] && plots="$plots${plots:+, }'$f' using (\$1+0.25*($k==20?-1:$k==32?0:1)):3 with boxes title 'k=$k'"
	done
	[ -z "$plots" ] || gnuplot <<EOF
set terminal pngcairo size 800,480 font ',11'
set output '$img/overlay-hops-n$n$LABEL.png'
set title 'Overlay hops of found lookups, N=$n supernodes, churn 10 %/h'
set xlabel 'overlay hops (0 = answered from the own store of the supernode)'
set ylabel 'fraction of found lookups'
set boxwidth 0.25
set style fill solid 0.7
set xrange [-0.5:6.5]
set yrange [0:1]
set key top right
plot $plots
EOF
	plots=""
done

plots=""
for n in $SIZES; do
	for k in $KS; do
		f=$data/success-n${n}-k${k}$LABEL.dat
		awk -v n="$n" -v k="$k" '$1==n && $2==k' "$succ" >"$f"
		[ -s "$f" ] || continue
		plots="$plots${plots:+, }'$f' using 3:(100*\$4) with linespoints title 'N=$n k=$k'"
	done
done
[ -z "$plots" ] || gnuplot <<EOF
set terminal pngcairo size 800,480 font ',11'
set output '$img/overlay-success-vs-churn$LABEL.png'
set title 'Lookup success vs churn (supernodes replaced per hour)'
set xlabel 'churn (% of supernodes replaced per hour)'
set ylabel 'lookups that found the record (%)'
set key bottom left
set xrange [0:60]
plot $plots
EOF

plots=""
for n in $SIZES; do
	for k in $KS; do
		f=$data/n${n}_k${k}_churn10$LABEL.lat
		[ -s "$f" ] && [ "$(wc -l <"$f")" -gt 1 ] &&
			plots="$plots${plots:+, }'$f' using 1:2 with lines title 'N=$n k=$k'"
	done
done
[ -z "$plots" ] || gnuplot <<EOF
set terminal pngcairo size 800,480 font ',11'
set output '$img/overlay-latency-cdf$LABEL.png'
set title 'Lookup latency seen by the client (found lookups), churn 10 %/h'
set xlabel 'ms (log scale)'
set ylabel 'CDF'
set logscale x
set key bottom right
set yrange [0:1]
plot $plots
EOF
echo "bench_overlay: JSON lines in $out, plots in $img" >&2
