#!/usr/bin/env bash
# Benchmark (not a test) of data-parallel training (docs/distributed.md): tokens/s of 2 ranks x
# 1 BLAS thread against 1 rank x 2 threads on the `small` configuration of scripts/bench.sh, and
# the seconds per step spent summing over ranks. `scripts/bench_mpi.sh [path/to/normscope]`.
# Environment: BENCH_STEPS (default 30), BENCH_ROUNDS (alternating rounds, default 2),
# BENCH_NORMS (default "batch power-v"), BENCH_STATS (default "global local").
#
# Step time: the 0.2 quantile of the wall time between consecutive steps after the first 6 (as
# in bench.sh: on a shared machine other processes' bursts slow whole stretches of steps). The
# two layouts alternate, so load hits both alike; only their ratio within this run means much.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/build/normscope}")"
steps="${BENCH_STEPS:-30}"
rounds="${BENCH_ROUNDS:-2}"
norms="${BENCH_NORMS:-batch power-v}"
stats="${BENCH_STATS:-global local}"
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader}"
export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

corpus_file="$root/../shared/data/tinyshakespeare.txt"
[ -f "$corpus_file" ] || corpus_file="$root/tests/data/corpora/tinyshakespeare.txt"
small=(--d-model 256 --layers 4 --heads 4 --d-ff 1024 --seq-len 64 --batch-size 32
       --vocab-size 10000 --norm-position post --dropout 0.1 --pn-warmup 10 --batching stream
       --steps "$steps" --eval-every 0 --eval-batches 1 --log-every 1000 --probes none
       --corpus "$corpus_file")

step_time() {
    "$py" - "$1" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
s = np.diff(f["steps/wall_time"][:])
print("%.5f" % np.quantile(s[6:], 0.2))
PY
}
med() { "$py" -c "import statistics,sys; print('%.5f' % statistics.median(map(float, sys.argv[1:])))" "$@"; }

echo "# normscope data-parallel benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)  (a shared machine: noisy)"
echo "# small: d=256 L=4 H=4 F=1024 T=64 B=32 (global) V=10000 post, stream batching;"
echo "# $steps steps, step time = 0.2 quantile of steps 7..$steps, median of $rounds alternating rounds"
printf "%-8s %-7s %14s %14s %9s %14s %14s %12s\n" norm stats "1x2 tok/s" "2x1 tok/s" "2x1/1x2" \
    "grad sum s/st" "all sums s/st" "MB sum/step"
for norm in $norms; do
    for st in $stats; do
        one=() two=() grad=() all=() bytes=()
        for r in $(seq "$rounds"); do
            "$bin" train "${small[@]}" --norm "$norm" --batch-stats "$st" --threads 2 \
                --out "$work/one.h5" >/dev/null 2>&1
            one+=("$(step_time "$work/one.h5")")
            mpirun --oversubscribe -np 2 "$bin" train "${small[@]}" --norm "$norm" \
                --batch-stats "$st" --threads 1 --out "$work/two.h5" >"$work/two.txt" 2>/dev/null
            two+=("$(step_time "$work/two.h5")")
            line=$(grep '^ranks:' "$work/two.txt")
            grad+=("$(echo "$line" | sed 's/.*per step: \([0-9.e-]*\) s summing gradients.*/\1/')")
            all+=("$(echo "$line" | sed 's/.* \([0-9.e-]*\) s in all sums.*/\1/')")
            bytes+=("$(echo "$line" | sed 's/.* \([0-9]*\) bytes summed.*/\1/')")
            rm -f "$work"/*.h5
        done
        t1=$(med "${one[@]}") t2=$(med "${two[@]}")
        printf "%-8s %-7s %14.0f %14.0f %9.2f %14.4f %14.4f %12.2f\n" "$norm" "$st" \
            "$("$py" -c "print(2048 / $t1)")" "$("$py" -c "print(2048 / $t2)")" \
            "$("$py" -c "print($t1 / $t2)")" "$(med "${grad[@]}")" "$(med "${all[@]}")" \
            "$("$py" -c "print($(med "${bytes[@]}") / 1e6)")"
    done
done
