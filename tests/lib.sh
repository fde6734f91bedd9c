# Sourced by the shell tests (test_schema.sh, test_explanations.sh, test_mpi.sh): a scratch
# folder as the working directory, removed at exit, and the failure and check counters.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
failures=0 checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { checks=$((checks + 1)); }
# The summary line; its status (0: nothing failed) is the test's when it comes last.
finish() {
    echo "$checks passed, $failures failed"
    [ "$failures" -eq 0 ]
}
