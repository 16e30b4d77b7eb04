#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/) and runs each for a while.
#
#   scripts/fuzz.sh [BUILD_DIR]          default BUILD_DIR: build-fuzz/ under the repository
#   FUZZ_SECONDS=600 scripts/fuzz.sh     time per target (default 60)
#   FUZZ_TARGETS="packet record" ...     only these targets (default: every fuzz-* built)
#
# The core library is compiled with -fsanitize=fuzzer-no-link,address,undefined, so the
# fuzzers see coverage inside it; the targets themselves link libFuzzer (tests/fuzz/meson.build).
# Each target keeps its corpus in tests/fuzz/corpus-<name>/ (gitignored), seeded from
# tests/fuzz/seeds/<name>/ when that exists. Crash inputs land in BUILD_DIR/fuzz-artifacts/.
# Prints one line per target and exits non-zero if any target crashed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bdir=${1:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}

case $seconds in
'' | *[!0-9]*)
	echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds, not \`$seconds'" >&2
	exit 2
	;;
esac

if [ ! -f "$bdir/build.ninja" ]; then
	CC=${CC:-clang} meson setup "$bdir" "$root" \
		-Dfuzz=true -Dtests=false -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link,address,undefined \
		-Dc_link_args=-fsanitize=address,undefined
fi
ninja -C "$bdir"

targets=${FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
	for exe in "$bdir"/tests/fuzz/fuzz-*; do
		[ -f "$exe" ] && [ -x "$exe" ] || continue
		targets="$targets ${exe##*/fuzz-}"
	done
fi
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets in $bdir/tests/fuzz (configured without -Dfuzz=true?)" >&2
	exit 2
fi

mkdir -p "$bdir/fuzz-artifacts"
failed=0
for name in $targets; do
	exe=$bdir/tests/fuzz/fuzz-$name
	corpus=$root/tests/fuzz/corpus-$name
	seeds=$root/tests/fuzz/seeds/$name
	log=$bdir/fuzz-artifacts/$name.log

	if [ ! -x "$exe" ]; then
		echo "fuzz.sh: no target \`$name' ($exe)" >&2
		failed=1
		continue
	fi
	mkdir -p "$corpus"
	set -- "$corpus"
	[ -d "$seeds" ] && set -- "$@" "$seeds"
	status=ok
	"$exe" -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$bdir/fuzz-artifacts/$name-" "$@" >"$log" 2>&1 || status=CRASH
	# libFuzzer ends a clean run with "Done N runs in S second(s)".
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
	secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
	if [ -z "$runs" ]; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		secs=?
	fi
	files=$(find "$corpus" -type f | wc -l | tr -d ' ')
	printf '%-8s %-5s execs %s in %ss, corpus %s files, log %s\n' "$name" "$status" \
		"${runs:-?}" "${secs:-?}" "$files" "$log"
	if [ "$status" != ok ]; then
		failed=1
		grep -E 'ERROR|SUMMARY|artifact|Test unit written' "$log" | head -n 5 | sed 's/^/    /'
	fi
done
exit $failed
