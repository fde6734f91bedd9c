#!/usr/bin/env bash
# Installs the Debian 12 packages normscope needs to build, test and plot, when they are
# missing (with --fuzz, also what the fuzz targets need). Safe to run again: it installs nothing
# when everything is present.
set -euo pipefail

PACKAGES=(gcc pkg-config meson ninja-build libopenblas-dev libhdf5-dev hdf5-tools
          libcmocka-dev libjansson-dev gnuplot-nox python3 python3-h5py python3-numpy
          python3-nbformat openmpi-bin libopenmpi-dev man-db
          # the PyTorch recorder (python/normscope), its parity test and examples: torch is
          # large (about 1 GB with its dependencies), accepted for issue 21
          python3-torch dataset-fashion-mnist
          # `pip install ./python` into a venv that sees Debian's torch (tested offline)
          python3-venv python3-pip python3-setuptools)
# --fuzz (scripts/fuzz.sh): clang and its libFuzzer runtime, for the fuzz targets only
if [ "${1:-}" = "--fuzz" ]; then
    PACKAGES+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
