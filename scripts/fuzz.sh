#!/usr/bin/env bash
# The fuzz targets of the parsers of untrusted input (issue 22; tests/fuzz): builds them with
# clang's libFuzzer under AddressSanitizer + UBSan (build-fuzz/) and runs each for SECONDS
# (default 15), starting from its seed corpus (tests/fuzz/corpus/<target>/) and replaying every
# regression input (tests/fuzz/regressions/<target>/). Inputs the fuzzer finds go to a
# temporary directory, not into tests/. Exits 1 on a finding (a crash, sanitizer report, leak,
# timeout or memory blow-up), whose input is kept as build-fuzz/findings/<target>-*: reproduce
# it with build-fuzz/tests/fuzz/fuzz_<target> FILE, and once fixed, add it to the regressions.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 900 logread
# FUZZ_KEEP_GOING=1: go on past findings (libFuzzer's fork mode), for long runs; every finding
# is kept and counted. FUZZ_BUILD=DIR (in the checkout): build there instead of build-fuzz (a
# long run in the background while build-fuzz is rebuilt).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${1:-15}"
[ $# -gt 0 ] && shift
case "$seconds" in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number (got '$seconds')" >&2; exit 2 ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(logread checkpoint corpus flags)

build="${FUZZ_BUILD:-build-fuzz}"
keep_going=()
[ "${FUZZ_KEEP_GOING:-0}" = 1 ] &&
    keep_going=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)

scripts/setup.sh --fuzz
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=enabled -Dtests=disabled -Dmpi=disabled \
        --buildtype=debugoptimized -Db_lundef=false >/dev/null
fi
# ninja says what failed on stdout: shown only then
if ! built="$(ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz_}" 2>&1)"; then
    echo "$built" | grep -v '^\[' >&2
    echo "fuzz.sh: building the fuzz targets failed" >&2
    exit 1
fi

findings="$root/$build/findings" # absolute: fuzz_flags changes directory
mkdir -p "$findings"
# libhdf5 (not ours, not instrumented) leaks a little on some damaged files (tests/fuzz/lsan.supp)
export LSAN_OPTIONS="suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1"
# A damaged HDF5 file makes libhdf5 ask malloc for absurd sizes (its metadata cache sizes an entry
# by the file's word, H5C_protect), which fails and becomes an HDF5 error, as in production: ASan
# is told to return NULL there too, and libFuzzer's malloc limit is lifted. Memory actually used
# is still limited (-rss_limit_mb), and our own allocations abort on NULL (ns_xmalloc).
export ASAN_OPTIONS="allocator_may_return_null=1"
export OPENBLAS_NUM_THREADS=1

# The inputs of findings (libFuzzer's slow-unit-* are only reports: the hang limit is -timeout).
found() {
    ls "$findings/$1-"crash-* "$findings/$1-"leak-* "$findings/$1-"timeout-* \
        "$findings/$1-"oom-* 2>/dev/null
}

# Whether a crash report's innermost frame, past the sanitizer's own interceptors, is libhdf5's.
inside_libhdf5() {
    grep -E '^ +#[0-9]+ ' "$1" | grep -v -E '__interceptor_|__asan|__sanitizer|libclang_rt' |
        head -1 | grep -q 'libhdf5'
}

status=0
for t in "${targets[@]}"; do
    work="$(mktemp -d)"
    dirs=("$root/tests/fuzz/corpus/$t")
    [ -d "$root/tests/fuzz/regressions/$t" ] && dirs+=("$root/tests/fuzz/regressions/$t")
    log="$findings/$t.log"
    # -close_fd_mask=3: the targets' own output (error lines, --help) is not shown; the
    # sanitizers' reports still are. -timeout: one input taking longer is a hang.
    # -seed: a fixed sample, so a run is repeatable (FUZZ_SEED=0: a random one).
    rm -f "$findings/$t-"*
    if nice -n 10 "$root/$build/tests/fuzz/fuzz_$t" "$work" "${dirs[@]}" "${keep_going[@]}" \
        -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -timeout=20 -rss_limit_mb=2048 \
        -malloc_limit_mb=1048576 \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$findings/$t-" \
        </dev/null >"$log" 2>&1 &&
        ! found "$t" >/dev/null; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        [ -n "$runs" ] || runs="$(grep -oE '^#[0-9]+: cov' "$log" | tail -1 | tr -dc 0-9)"
        echo "fuzz_$t: ${runs:-?} inputs in $seconds s, no finding"
    elif [ ${#keep_going[@]} -gt 0 ]; then
        status=1
        # fork mode: "#RUNS: cov: ... crash/oom/timeout counts" lines; the last is the total
        last="$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)"
        echo "fuzz_$t: $last; findings: $(found "$t" | wc -l) ($findings)" >&2
    elif inside_libhdf5 "$log"; then
        # libhdf5 1.10 over-reads or faults on some damaged files inside its own code, with
        # arguments of ours that are right (tests/fuzz/known-issues): reported and kept, not a
        # failure of this stage, which guards normscope's code
        echo "fuzz_$t: a finding inside libhdf5, not in normscope (kept: $(found "$t" | head -1));" \
             "$(grep -m1 -E 'SUMMARY' "$log")" >&2
    else
        status=1
        echo "fuzz_$t: FINDING (log $log):" >&2
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 >&2 ||
            tail -20 "$log" >&2
    fi
    rm -rf "$work"
done
exit $status
