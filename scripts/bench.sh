#!/usr/bin/env bash
# Benchmarks (not tests): normscope against an independent PyTorch implementation of the same
# spec (bench/torch_ref.py), the sgemm ceiling, the cost of the probes, and padding with
# --max-tokens. `scripts/bench.sh [path/to/normscope]` or `ninja -C build bench`.
# Results go to stdout and bench-results/ (logs). Environment: BENCH_STEPS (default 30),
# BENCH_ROUNDS (alternating rounds, default 2), BENCH_SCHEMES (default: all eight),
# BENCH_SECTIONS (default "speed probes recorder padding"), BENCH_QUANTILE (default 0.2,
# below).
#
# small: d=256, L=4, H=4, F=1024, T=64, B=32, V=10000, post-norm, 2 threads, stream batching
# (no padding), word-level tinyshakespeare, dropout 0.1. Every ratio is taken inside this one
# run, with normscope and PyTorch alternating, so machine load hits both alike; the load
# average is printed with the results.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/build/normscope}")"
ceiling_bin="$(dirname "$bin")/sgemm_ceiling"
adamw_bin="$(dirname "$bin")/adamw_cost"
out="${BENCH_OUT:-$root/bench-results}"
steps="${BENCH_STEPS:-30}"
rounds="${BENCH_ROUNDS:-2}"
schemes="${BENCH_SCHEMES:-layer batch batch-regularized batch-official power-v power power-official rms none}"
sections="${BENCH_SECTIONS:-speed probes recorder padding}"
skip=6
# The statistic of a run's step times (after the first $skip): a low quantile, not the median,
# because on a shared machine other processes' bursts slow whole stretches of steps; the
# quantile is the step time when the machine was least disturbed, for both programs alike.
quantile="${BENCH_QUANTILE:-0.2}"
threads=2
py=/usr/bin/python3
mkdir -p "$out"

# python3-torch is a benchmark-only dependency: installed here, never by the test setup.
if ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
    echo "bench: installing python3-torch" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
"$root/scripts/setup.sh"
[ -x "$ceiling_bin" ] || { echo "bench: $ceiling_bin missing (meson target sgemm_ceiling)" >&2; exit 1; }
[ -x "$adamw_bin" ] || { echo "bench: $adamw_bin missing (meson target adamw_cost)" >&2; exit 1; }

corpus_file="$root/../shared/data/tinyshakespeare.txt"
[ -f "$corpus_file" ] || corpus_file="$root/tests/data/corpora/tinyshakespeare.txt"
shape=(--d-model 256 --layers 4 --heads 4 --d-ff 1024 --seq-len 64 --batch-size 32
       --vocab-size 10000 --norm-position post --threads "$threads" --dropout 0.1
       --pn-warmup 10)
small=("${shape[@]}" --batching stream --steps "$steps" --eval-every 0 --eval-batches 1
       --log-every 1000 --corpus "$corpus_file")

# The quantile over steps skip+1.. of the wall time between consecutive steps (everything
# included: training, probes, log writes), from the run's log; steps whose row says the
# smoothness probe ran are left out (it is amortized separately).
median_step() {
    "$py" - "$1" "$skip" "$quantile" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True)
w = f["steps/wall_time"][:]
s = np.diff(w)
steps = f["steps/step"][1:]
if "lipschitz" in f and "step" in f["lipschitz"]:
    s = s[~np.isin(steps, f["lipschitz/step"][:])]
print("%.5f" % np.quantile(s[int(sys.argv[2]):], float(sys.argv[3])))
PY
}
# The per-step probes' share of a step measured inside one run: the time the run spent in
# their hooks (steps/probe_seconds) over the rest of each step, steps skip+1.. without the
# smoothness probe's steps. Same run, same machine state: it does not move with the load the
# way two runs' step times do.
hook_share() {
    "$py" - "$1" "$skip" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True)
k = int(sys.argv[2])
dt = np.diff(f["steps/wall_time"][:])[k:]
ps = f["steps/probe_seconds"][1:][k:]
steps = f["steps/step"][1:][k:]
if "lipschitz" in f and "step" in f["lipschitz"]:
    keep = ~np.isin(steps, f["lipschitz/step"][:])
    dt, ps = dt[keep], ps[keep]
print("%.5f" % (ps.sum() / (dt.sum() - ps.sum())))
PY
}
med() { "$py" -c "import statistics,sys; print('%.5f' % statistics.median(map(float, sys.argv[1:])))" "$@"; }
calc() { "$py" -c "print($1)"; }

ceiling() {
    "$ceiling_bin" 256 4 4 1024 64 32 10000 "$threads" | awk '{print $3}'
}

echo "# normscope benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $threads threads"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# small: d=256 L=4 H=4 F=1024 T=64 B=32 V=10000 post, dropout 0.1; $steps steps,"
echo "# step time: $quantile quantile over steps $((skip + 1))..$steps; $rounds alternating rounds (median)"
section() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if section speed; then
echo
echo "## speed: normscope (--probes none) against PyTorch $("$py" -c 'import torch; print(torch.__version__)')"
declare -A ns_t=() pt_t=() ceil_t=()
for round in $(seq "$rounds"); do
    for norm in $schemes; do
        # The ceiling right beside each run: on a shared machine it moves with the load, so
        # each scheme's fraction is taken against the ceiling measured next to it.
        ceil_t[$norm]="${ceil_t[$norm]:-} $(ceiling)"
        log="$out/speed-$norm-$round.h5"
        "$bin" train "${small[@]}" --norm "$norm" --probes none --overwrite --out "$log" \
            >/dev/null 2>"$log.err"
        ns_t[$norm]="${ns_t[$norm]:-} $(median_step "$log")"
        pt_t[$norm]="${pt_t[$norm]:-} $("$py" "$root/bench/torch_ref.py" bench --norm "$norm" \
            --threads "$threads" --steps "$steps" --skip "$skip" --quantile "$quantile" 2>>"$out/torch-$norm.err")"
    done
done
echo "# tokens/s; ratio = normscope / PyTorch; ceiling = tokens/s if a step were only its"
echo "# sgemm calls (bench/sgemm_ceiling.c), measured beside each scheme's runs"
printf "%-16s %12s %12s %8s %10s %10s\n" scheme normscope pytorch ratio ceiling "fraction"
for norm in $schemes; do
    tn=$(med ${ns_t[$norm]})
    tp=$(med ${pt_t[$norm]})
    ceil=$(med ${ceil_t[$norm]})
    printf "%-16s %12.0f %12.0f %7.2fx %10.0f %9.0f%%\n" "$norm" "$(calc "2048/$tn")" \
        "$(calc "2048/$tp")" "$(calc "$tp/$tn")" "$ceil" "$(calc "100*2048/$tn/$ceil")"
done
fi

if section probes; then
echo
echo "## probe overhead at defaults: --probes all against --probes none"
echo "# smoothness probe: one invocation measured, amortized over its default cadence"
every=$("$bin" train --help | sed -n 's/.*--lipschitz-every.*\[\([0-9]*\)\].*/\1/p' | head -1)
# The params probe's sums sit inside the AdamW update, out of the hooks' timer: timed apart,
# plain against observed update on small's parameters, once, as ms per step.
read -r _ adamw_plain adamw_seen < <("$adamw_bin" 256 4 4 1024 10000 25)
echo "# AdamW update on small: plain $adamw_plain ms, observed (params sums) $adamw_seen ms"
printf "%-16s %10s %10s %10s %10s %10s %12s %10s\n" scheme "none s" "all s" "per-step" \
    "in-run" "params" "smoothness" "total"
for norm in $schemes; do
    declare -A pt=()
    lip=""
    for round in $(seq "$rounds"); do
        for probes in none all; do
            log="$out/probes-$norm-$probes-$round.h5"
            # The smoothness probe fires once, at the last step, in the `all` runs.
            "$bin" train "${small[@]}" --norm "$norm" --probes "$probes" \
                --lipschitz-every "$steps" --overwrite --out "$log" >/dev/null 2>"$log.err"
            pt[$probes]="${pt[$probes]:-} $(median_step "$log")"
            if [ "$probes" = all ]; then
                share="${share:-} $(hook_share "$log")"
                lip="$lip $("$py" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r',swmr=True)['lipschitz/seconds'][0])" "$log")"
            fi
        done
    done
    tn=$(med ${pt[none]}); ta=$(med ${pt[all]}); tl=$(med $lip)
    per=$(calc "100*($ta-$tn)/$tn")
    inrun=$(calc "100*$(med $share)")
    amort=$(calc "100*$tl/($every*$tn) if $every > 0 else 0")
    sums=$(calc "0.1*($adamw_seen-$adamw_plain)/$tn")
    printf "%-16s %10s %10s %9.1f%% %9.1f%% %9.1f%% %11.1f%% %9.1f%%\n" "$norm" "$tn" "$ta" \
        "$per" "$inrun" "$sums" "$amort" "$(calc "$inrun + $sums + $amort")"
    unset pt share
done
echo "# per-step: two runs' step times (moves with the load); in-run: the per-step probes'"
echo "# hook time over the rest of the step in the same run (steps/probe_seconds); params: the"
echo "# observed AdamW update's extra time over the step; smoothness: one invocation (median)"
echo "# over --lipschitz-every $every steps; total = in-run + params + smoothness"
fi

if section recorder; then
echo
echo "## PyTorch recorder at default cadences on small (bench/recorder_overhead.py, CPU)"
printf "%-16s %10s %10s %10s %10s %16s\n" scheme "without s" "with s" "A/B" "own" \
    "lipschitz (steps)"
for norm in $schemes; do
    read -r off on pct own smooth < <(NORMSCOPE_RUNLOG_LIB="$(dirname "$bin")/libnormscope-runlog.so" \
        "$py" "$root/bench/recorder_overhead.py" --norm "$norm" --steps "$((steps * rounds))" \
        --threads "$threads" --quantile "$quantile")
    printf "%-16s %10s %10s %9s%% %9s%% %16s\n" "$norm" "$off" "$on" "$pct" "$own" "$smooth"
done
fi

if section padding; then
echo
echo "## padding: --batching sentences, one line per row, on tinyshakespeare (layer)"
printf "%-34s %12s %14s %10s\n" batching "tokens/s" "real tokens/s" "padding"
for mode in "--batch-size 32" "--batch-size 128 --max-tokens 2048"; do
    log="$out/padding-${mode// /}.h5"
    # shellcheck disable=SC2086
    "$bin" train "${small[@]}" --norm layer --probes none --batching sentences $mode \
        --overwrite --out "$log" >/dev/null 2>"$log.err" || { echo "$mode: failed (see $log.err)"; continue; }
    "$py" - "$log" "$skip" "sentences $mode" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True)
k = int(sys.argv[2])
tps = np.median(f["steps/tokens_per_s"][k:])
rtps = np.median(f["steps/real_tokens_per_s"][k:])
pad = f["steps/padding_fraction"][:] if "padding_fraction" in f["steps"] else 1 - f["steps/real_tokens_per_s"][:] / f["steps/tokens_per_s"][:]
print("%-34s %12.0f %14.0f %9.1f%%" % (sys.argv[3], tps, rtps, 100 * np.mean(pad)))
PY
done
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
