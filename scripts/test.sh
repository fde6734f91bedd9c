#!/usr/bin/env bash
# The whole test suite: installs missing packages, builds and runs the tests in a release
# build, then again under AddressSanitizer + UndefinedBehaviorSanitizer. The reference data in
# ../shared is used when it is beside the checkout (tests that need it skip otherwise).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh

run_suite() { # build-dir, meson options...
    local dir="$1"; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" -Dtests=enabled "$@" >/dev/null
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 1
}

echo "== release build =="
run_suite build-test --buildtype=release
echo "== AddressSanitizer + UBSan build =="
run_suite build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
# issue 22: every parser of untrusted input under libFuzzer (clang, ASan + UBSan), a few seconds
# each, replaying the seed corpora and every regression input (tests/fuzz; scripts/fuzz.sh)
FUZZ_SECONDS="${FUZZ_SECONDS:-15}"
echo "== fuzz ($FUZZ_SECONDS s per target) =="
scripts/fuzz.sh "$FUZZ_SECONDS"
