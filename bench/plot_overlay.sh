#!/bin/sh
# Draws the overlay simulation plots (PNG, gnuplot) from the files bench_overlay.sh keeps
# for each run in DATA_DIR: TAG.txt (summary + JSON lines), TAG.hops (hop histogram) and
# TAG.lat (latency CDF), where TAG = VARIANT-nN-churnC[-cCPS].
#
#   bench/plot_overlay.sh [DATA_DIR [IMG_DIR]]   (defaults: docs/img/overlay-data, docs/img)
#
# Writes IMG_DIR/overlay-hops-nN.png (one per size), overlay-latency-cdf.png,
# overlay-success.png and, when there are malicious runs (TAG =
# ours-nN-malPKIND-dD), overlay-malicious.png and overlay-malicious-p99.png. Runs that
# are missing are left out.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
data=${1:-$root/docs/img/overlay-data}
img=${2:-$root/docs/img}

command -v gnuplot >/dev/null || {
	echo "plot_overlay: gnuplot missing (scripts/deps.sh bench); no plots" >&2
	exit 0
}
[ -d "$data" ] || { echo "plot_overlay: no data dir \`$data'" >&2; exit 1; }
tmp=$(mktemp -d /tmp/plot_overlay.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# figure value from a run's JSON lines
fig() {
	sed -n "s/.*\"figure\":\"[^\"]*\\.$2\",\"value\":\\([^,]*\\),.*/\\1/p" "$data/$1.txt" | head -n 1
}

# the sizes and variants present, in a fixed order
sizes=""
for n in 100 1000 10000; do
	ls "$data"/*-n$n-churn* >/dev/null 2>&1 && sizes="$sizes $n"
done
variants="ours k32 plain"
title() {
	case $1 in
	ours) echo "ours (k=256)" ;;
	k32) echo "k=32" ;;
	plain) echo "plain Kademlia (k=20)" ;;
	esac
}
# the data file of (variant, size, churn): 10 clients per supernode if there is one,
# else the run with the fewest clients
pick() {
	if [ -f "$data/$1-n$2-churn$3.txt" ]; then
		echo "$1-n$2-churn$3"
		return
	fi
	for c in 1 2 3 4 5; do
		[ -f "$data/$1-n$2-churn$3-c$c.txt" ] && { echo "$1-n$2-churn$3-c$c"; return 0; }
	done
	return 0
}
cps_note() {
	case $1 in
	*-c*) echo " (${1##*-c} clients/SN)" ;;
	*) echo "" ;;
	esac
}

# ---- hops: one plot per size, the variants side by side, churn 10 %/h
for n in $sizes; do
	plots=""
	i=0
	for v in $variants; do
		t=$(pick "$v" "$n" 10)
		[ -n "$t" ] && [ -f "$data/$t.hops" ] || continue
		off=$(awk -v i="$i" 'BEGIN { print -0.27 + 0.27 * i }')
		plots="$plots${plots:+, }'$data/$t.hops' using (\$1+$off):3 with boxes title '$(title "$v")$(cps_note "$t")'"
		i=$((i + 1))
	done
	[ -n "$plots" ] || continue
	gnuplot <<EOF
set terminal pngcairo size 800,480 font ',11'
set output '$img/overlay-hops-n$n.png'
set title 'Overlay hops of found lookups, N = $n supernodes, churn 10 %/h'
set xlabel 'overlay hops (0 = answered from the supernode''s own store)'
set ylabel 'fraction of found lookups'
set boxwidth 0.27
set style fill solid 0.7
set xrange [-0.6:6.6]
set yrange [0:1]
set key top right
plot $plots
EOF
done

# ---- latency CDF: every size and variant at churn 10 %/h
plots=""
for n in $sizes; do
	for v in $variants; do
		t=$(pick "$v" "$n" 10)
		[ -n "$t" ] && [ -s "$data/$t.lat" ] && [ "$(wc -l <"$data/$t.lat")" -gt 1 ] || continue
		dt=1
		[ "$v" = plain ] && dt=2
		[ "$v" = k32 ] && dt=3
		plots="$plots${plots:+, }'$data/$t.lat' using 1:2 with lines dt $dt lw 2 title 'N=$n $(title "$v")$(cps_note "$t")'"
	done
done
[ -z "$plots" ] || gnuplot <<EOF
set terminal pngcairo size 900,520 font ',11'
set output '$img/overlay-latency-cdf.png'
set title 'Lookup latency seen by the client (found lookups), churn 10 %/h'
set xlabel 'ms (log scale)'
set ylabel 'CDF'
set logscale x
set xrange [10:5000]
set yrange [0:1]
set key bottom right
set grid
plot $plots
EOF

# ---- success and survival under churn: one cluster per (N, churn), one bar per variant
dat=$tmp/success.dat
printf 'run' >"$dat"
present=""
for v in $variants; do
	for n in $sizes; do
		for c in 10 50; do
			[ -n "$(pick "$v" "$n" "$c")" ] && { present="$present $v"; break 2; }
		done
	done
done
for v in $present; do printf ' "%s"' "$(title "$v")" >>"$dat"; done
echo >>"$dat"
rows=0
for n in $sizes; do
	for c in 10 50; do
		line="\"N=$n, $c %/h\""
		any=0
		for v in $present; do
			t=$(pick "$v" "$n" "$c")
			val=-
			if [ -n "$t" ]; then
				s=$(fig "$t" lookup_success)
				[ -n "$s" ] && { val=$(awk -v s="$s" 'BEGIN { printf "%.3f", 100 * s }'); any=1; }
			fi
			line="$line $val"
		done
		[ $any = 1 ] && { echo "$line" >>"$dat"; rows=$((rows + 1)); }
	done
done
if [ $rows -gt 0 ]; then
	cols=$(echo "$present" | wc -w)
	gnuplot <<EOF
set terminal pngcairo size 900,480 font ',11'
set output '$img/overlay-success.png'
set title 'Lookups that found the record, under churn (supernodes replaced per hour)'
set ylabel 'success (%)'
set yrange [95:100.2]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set datafile missing '-'
set key bottom right
set grid ytics
set arrow from graph 0, first 99.9 to graph 1, first 99.9 nohead dt 2 lc rgb 'red'
set label 'goal 99.9 %' at graph 0.82, first 99.97 tc rgb 'red'
plot for [i=2:$((cols + 1))] '$dat' using i:xtic(1) title columnhead(i)
EOF
fi
# ---- malicious supernodes: success per (share, behaviour), one bar per path count
mal=$tmp/mal.dat
malp=$tmp/malp99.dat
rows=0
printf 'run "1 path" "3 disjoint paths"\n' >"$mal"
printf 'run "1 path" "3 disjoint paths"\n' >"$malp"
for f in "$data"/ours-n*-mal*-d1.txt; do
	[ -f "$f" ] || continue
	t=$(basename "$f" .txt)
	t=${t%-d1}
	s1=$(fig "$t-d1" lookup_success)
	s3=$([ -f "$data/$t-d3.txt" ] && fig "$t-d3" lookup_success || echo)
	lbl=$(echo "$t" | sed 's/^ours-n\([0-9]*\)-mal\([0-9]*\)\(.*\)$/N=\1, \2 % \3/')
	printf '"%s" %s %s\n' "$lbl" \
		"$(awk -v s="$s1" 'BEGIN { printf "%.2f", 100 * s }')" \
		"$([ -n "$s3" ] && awk -v s="$s3" 'BEGIN { printf "%.2f", 100 * s }' || echo -)" >>"$mal"
	p3=$([ -f "$data/$t-d3.txt" ] && fig "$t-d3" latency_ms_p99 || echo -)
	printf '"%s" %s %s\n' "$lbl" "$(fig "$t-d1" latency_ms_p99)" "${p3:--}" >>"$malp"
	rows=$((rows + 1))
done
[ $rows = 0 ] || gnuplot <<EOF
set terminal pngcairo size 1150,480 font ',11'
set output '$img/overlay-malicious.png'
set title 'Lookups that found the record with malicious supernodes (drop or lie)'
set ylabel 'success (%)'
set yrange [90:100.5]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set datafile missing '-'
set key below
set grid ytics
plot for [i=2:3] '$mal' using i:xtic(1) title columnhead(i)
EOF
[ $rows = 0 ] || gnuplot <<EOF
set terminal pngcairo size 1150,480 font ',11'
set output '$img/overlay-malicious-p99.png'
set title 'Lookup latency p99 with malicious supernodes (found lookups, client-observed)'
set ylabel 'ms'
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set datafile missing '-'
set key below
set grid ytics
plot for [i=2:3] '$malp' using i:xtic(1) title columnhead(i)
EOF
echo "plot_overlay: plots in $img" >&2
