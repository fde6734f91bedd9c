#!/usr/bin/env bash
# Benchmarks (not tests): tokens/s of every scheme on the `small` configuration, and the cost of
# the probes. Run on an otherwise idle machine: `scripts/bench.sh [path/to/normscope]` or
# `ninja -C build bench`. Results go to stdout and bench-results/ (logs, one line per run).
#
# small: d=256, L=4, H=4, F=1024, T=64, B=32, V=10000, post-norm, 2 threads, stream batching
# (no padding), word-level tinyshakespeare (V=10000 needs a corpus with that many words; the
# embedded corpus has ~6400, so it is used with its full vocabulary when ../shared is absent).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build/normscope}"
out="${BENCH_OUT:-$root/bench-results}"
steps="${BENCH_STEPS:-40}"
reps="${BENCH_REPS:-3}"
py=/usr/bin/python3
mkdir -p "$out"
corpus=()
if [ -f "$root/../shared/data/tinyshakespeare.txt" ]; then
    corpus=(--corpus "$root/../shared/data/tinyshakespeare.txt")
fi
small=(--d-model 256 --layers 4 --heads 4 --d-ff 1024 --seq-len 64 --batch-size 32
       --vocab-size 10000 --norm-position post --threads 2 --batching stream --steps "$steps"
       --eval-every 0 --eval-batches 1 --log-every 1000 "${corpus[@]}")

# Median over steps 6.. of the wall time between consecutive steps (everything included:
# training, probes, log writes), from the run's log.
median_step() {
    "$py" - "$1" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
s = np.diff(f["steps/wall_time"][:])[5:]
print("%.5f" % np.median(s))
PY
}

echo "# tokens/s, small configuration, $steps steps (median wall time per step over steps 7..$steps)"
printf "%-16s %10s %12s\n" scheme "s/step" "tokens/s"
for norm in layer batch power-v power power-official rms none; do
    log="$out/speed-$norm.h5"
    "$bin" train "${small[@]}" --norm "$norm" --pn-warmup 10 --probes none --out "$log" \
        >/dev/null 2>"$out/speed-$norm.err"
    t=$(median_step "$log")
    printf "%-16s %10s %12.0f\n" "$norm" "$t" "$("$py" -c "print(32*64/$t)")"
done

echo
echo "# probe overhead, small configuration: median step time relative to --probes none"
echo "# (runs alternate between settings, $reps rounds, median over rounds: step times on a"
echo "# shared 2-core VM vary by ~10 % from run to run, more than the probes cost)"
printf "%-8s %-28s %10s %8s\n" scheme probes "s/step" ratio
for norm in layer batch power; do
    declare -A times=()
    for round in $(seq "$reps"); do
        for probes in none batch-stats,gradients batch-stats,gradients,params; do
            log="$out/overhead-$norm-${probes//,/+}-$round.h5"
            "$bin" train "${small[@]}" --norm "$norm" --pn-warmup 10 --probes "$probes" \
                --lipschitz-every 0 --out "$log" >/dev/null 2>"$log.err"
            times[$probes]="${times[$probes]:-} $(median_step "$log")"
        done
    done
    base=""
    for probes in none batch-stats,gradients batch-stats,gradients,params; do
        t=$("$py" -c "import statistics,sys; print('%.5f' % statistics.median(map(float, sys.argv[1:])))" ${times[$probes]})
        [ -n "$base" ] || base=$t
        printf "%-8s %-28s %10s %8.3f\n" "$norm" "$probes" "$t" "$("$py" -c "print($t/$base)")"
    done
    unset times
done

echo "# smoothness probe: cost per invocation and at the default cadence"
log="$out/lipschitz.h5"
defaults=$("$bin" train --help | sed -n 's/.*--lipschitz-every.*\[\(.*\)\]/\1/p')
"$bin" train "${small[@]}" --norm layer --probes all --lipschitz-every 10 --out "$log" \
    >/dev/null 2>"$log.err"
"$py" - "$log" "$defaults" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
cost = f["lipschitz/seconds"][:]
step = np.median(np.diff(f["steps/wall_time"][:])[5:])
every = int(sys.argv[2])
print("per invocation: %.2f s (%.1f training steps); hessian iterations %d" %
      (np.median(cost), np.median(cost) / step, f.attrs["hessian_iters"]))
if every > 0:
    print("default cadence every %d steps: +%.1f %% of training time" %
          (every, 100 * np.median(cost) / (every * step)))
PY
