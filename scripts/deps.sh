#!/usr/bin/env bash
# Install the Debian packages parley needs to build and test, but only those missing.
# Usage: scripts/deps.sh [build|check|bench]   (default: build)
set -euo pipefail
what=${1:-build}
pkgs=(meson ninja-build pkg-config gcc g++ libsodium-dev libuv1-dev libsqlite3-dev libjansson-dev
	libopus-dev libsndfile1-dev libspeexdsp-dev portaudio19-dev)
case "$what" in
  check) pkgs+=(libcmocka-dev clang libclang-rt-14-dev python3 jq espeak-ng nftables iproute2 coturn) ;;
  bench) pkgs+=(libcmocka-dev python3 jq valgrind hyperfine espeak-ng gnuplot-nox coturn bc nftables iproute2 strace) ;;
  build) ;;
  *) echo "deps.sh: unknown set \`$what' (want build, check or bench)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing missing packages: ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
