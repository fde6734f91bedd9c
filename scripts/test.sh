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
    # one test per core: every test trains tiny models on one thread (OPENBLAS_NUM_THREADS=1,
    # the size's default of 1 thread); MPI tests and the timing-sensitive ones run alone
    # (is_parallel: false in tests/meson.build)
    meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)"
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
