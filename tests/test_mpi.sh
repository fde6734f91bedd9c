#!/usr/bin/env bash
# Data-parallel runs under mpirun (docs/distributed.md), registered by tests/meson.build when
# normscope is built with MPI and mpirun exists. Usage: test_mpi.sh NORMSCOPE [part]
#   parity  every scheme in both positions, padded sentence batches: 2 ranks x B/2 rows give the
#           loss, every gradient and the norm state of 1 process x B rows for 3 steps (global)
#   local   --batch-stats local: rank 0's statistics are those of its own rows; its log (with the
#           per-rank spread series) meets the run-log schema (check-log)
#   resume  a 2-rank checkpoint resumes on 1 rank and a 1-rank one on 2 ranks
#   faults  a killed rank ends the job within seconds; a bad flag is reported once
#   smooth  the smoothness probe runs on every rank and records what one process records
set -u
NS=$(readlink -f "$1")
PART=${2:-all}
COMPARE="$(dirname "$(readlink -f "$0")")/test_mpi_compare.py"
PY=/usr/bin/python3
# Root in CI containers; shared memory between the ranks without CMA (often blocked there).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_plm_rsh_agent=false
# Open MPI's plugins stay loaded to the end, so a sanitizer build can name (and
# tests/lsan_mpi.supp suppress) what they still hold at exit.
export OMPI_MCA_mca_base_component_disable_dlclose=1
MPIRUN=(mpirun --oversubscribe -np)
. "$(dirname "$(readlink -f "$0")")/lib.sh"
export TMPDIR="$WORK" # ranks > 0 log there (a killed rank leaves its file behind)

TINY=(--layers 2 --d-model 16 --heads 2 --d-ff 32 --seq-len 8 --batch-size 4 --vocab-size 50
      --batching sentences --synth-bytes 8192 --threads 1)
# lr 1e-4: AdamW turns a gradient that is 0 up to round-off into a step of ~lr whose sign the
# round-off picks (test_mpi_compare.py); a small lr keeps those steps below the tolerance.
STEP=(--steps 3 --lr 1e-4)

scheme_flags() { # PN schemes: warm-up ends after step 1 so the post-warm-up path is checked too
    case $1 in power | power-official) echo "--pn-warmup 1 --pn-groups 2" ;; *) echo "" ;; esac
}

parity() {
    for norm in layer batch batch-regularized batch-official power-v power power-official rms none; do
        for pos in post pre; do
            # shellcheck disable=SC2046
            args=(--norm "$norm" --norm-position "$pos" "${TINY[@]}" "${STEP[@]}" $(scheme_flags "$norm"))
            "$NS" debug-step "${args[@]}" --out one.h5 --overwrite >/dev/null || { fail "$norm $pos: 1 process"; continue; }
            "${MPIRUN[@]}" 2 "$NS" debug-step "${args[@]}" --out two.h5 --overwrite >/dev/null ||
                { fail "$norm $pos: 2 ranks"; continue; }
            out=$($PY "$COMPARE" one.h5 two.h5 1e-5) || fail "$norm $pos: $out"
            echo "parity $norm $pos: $out"
        done
    done
}

budget() {
    # --max-tokens 9 with T = 8: batches of 1 to 4 rows, so with 2 ranks some steps leave rank 1
    # without rows; the loss of every step still equals one process's.
    args=(--norm batch "${TINY[@]}" --steps 20 --eval-every 0 --probes all --max-tokens 9 --dropout 0)
    "$NS" train "${args[@]}" --out m1.h5 >/dev/null 2>&1 &&
        "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --out m2.h5 >/dev/null 2>&1 || { fail "budget: runs"; return; }
    out=$($PY - m1.h5 m2.h5 <<'PYEOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["steps/loss"][()] for p in sys.argv[1:3])
rel = float(np.max(np.abs(a - b) / np.abs(a)))
print(f"{len(a)} steps, largest relative loss difference {rel:.3g}")
sys.exit(0 if len(a) == len(b) == 20 and rel <= 1e-5 else 1)
PYEOF
) || fail "budget: $out"
    echo "max-tokens on 2 ranks: $out"
}

smoothness() {
    # the probe's passes are collective (loss and gradient summed over ranks), and so are its
    # choices (pinned-unit counts): 2 ranks must neither hang nor measure something else
    args=(--norm batch "${TINY[@]}" --steps 4 --lipschitz-every 2 --hessian-iters 4 --dropout 0)
    "$NS" train "${args[@]}" --out s1.h5 >/dev/null 2>&1 &&
        timeout 120 "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --out s2.h5 >/dev/null 2>&1 ||
        { fail "smoothness: runs"; return; }
    out=$($PY - s1.h5 s2.h5 <<'PYEOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["lipschitz"] for p in sys.argv[1:3])
for name in ("beta_smoothness", "hessian_top_eig", "hessian_trace"):
    x, y = a[name][:], b[name][:]
    rel = np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12))
    if len(x) != 2 or len(y) != 2 or not rel <= 1e-3:
        sys.exit(f"{name}: 1 process {x}, 2 ranks {y}")
print("smoothness probe: 1 process = 2 ranks within 1e-3")
PYEOF
) || fail "smoothness: $out"
    echo "$out"
}

local_stats() {
    # Rank 0 of a local run takes rows 0..B/2 of the first batch: its step_0 statistics (the
    # running statistics after the step) are those of a 1-process run on a batch of B/2 rows,
    # which holds the same rows; the global run's are not.
    for norm in batch power-v; do
        args=(--norm "$norm" --norm-position post "${TINY[@]}" "${STEP[@]}")
        half=("${args[@]}" --batch-size 2)
        "${MPIRUN[@]}" 2 "$NS" debug-step "${args[@]}" --batch-stats local --out local.h5 --overwrite >/dev/null &&
            "$NS" debug-step "${half[@]}" --out half.h5 --overwrite >/dev/null &&
            "$NS" debug-step "${args[@]}" --out whole.h5 --overwrite >/dev/null || { fail "local $norm: runs"; continue; }
        out=$($PY - local.h5 half.h5 whole.h5 <<'PYEOF'
import sys, h5py, numpy as np
def stats(path):
    with h5py.File(path, "r") as f:
        g = f["step_0/state_after"]
        out = {}
        g.visititems(lambda n, d: out.__setitem__(n, d[()]) if isinstance(d, h5py.Dataset) else None)
        return out
loc, half, whole = (stats(p) for p in sys.argv[1:4])
same = max(float(np.max(np.abs(loc[k] - half[k]))) for k in loc)
apart = max(float(np.max(np.abs(loc[k] - whole[k]))) for k in loc)
print(f"local vs own half {same:.3g}, local vs whole batch {apart:.3g}")
sys.exit(0 if same <= 1e-6 and apart > 1e-4 else 1)
PYEOF
) || fail "local $norm: $out"
        echo "local $norm: $out"
    done
    # A 2-rank local log has the per-rank spread series, and meets the run-log schema.
    "${MPIRUN[@]}" 2 "$NS" train --norm batch "${TINY[@]}" --steps 3 --eval-every 0 \
        --lipschitz-every 0 --out spread.h5 >/dev/null 2>&1 --batch-stats local ||
        fail "local: 2-rank training"
    out=$("$NS" check-log spread.h5) || fail "local: check-log: $out"
    h5ls spread.h5/norms/layers/0/norm1 | grep -q rank_max_dist_var || fail "local: no spread series"
    echo "local log: $out"
}

resume() {
    # Resuming is exact: 2 steps + 2 resumed on 2 ranks == 4 straight on 2 ranks, bit for bit.
    # Across rank counts (2 steps on 2 ranks then 2 on 1; 2 on 1 then 2 on 2) the checkpoint
    # carries everything, and the result is a 4-step run up to summation order.
    args=(--norm batch --norm-position post "${TINY[@]}" --lr 1e-4 --eval-every 0 --eval-batches 2
          --probes none --dropout 0.1)
    "$NS" train "${args[@]}" --steps 4 --out a.h5 >/dev/null 2>&1 || fail "resume: straight run"
    "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --steps 4 --out d.h5 >/dev/null 2>&1 ||
        fail "resume: straight 2-rank run"
    "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --steps 2 --out e.h5 >/dev/null 2>&1 &&
        "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --steps 4 --out e.h5 --resume e.ckpt.h5 \
            >/dev/null 2>&1 || fail "resume: 2 ranks then 2"
    "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --steps 2 --out b.h5 >/dev/null 2>&1 &&
        "$NS" train "${args[@]}" --steps 4 --out b.h5 --resume b.ckpt.h5 >/dev/null 2>&1 ||
        fail "resume: 2 ranks then 1"
    "$NS" train "${args[@]}" --steps 2 --out c.h5 >/dev/null 2>&1 &&
        "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" --steps 4 --out c.h5 --resume c.ckpt.h5 \
            >/dev/null 2>&1 || fail "resume: 1 rank then 2"
    out=$($PY "$COMPARE" d.ckpt.h5 e.ckpt.h5 0 checkpoint) || fail "resume 2+2 ranks: $out"
    echo "resume (2 then 2 ranks vs 4 steps on 2): $out"
    for x in b c; do
        out=$($PY "$COMPARE" a.ckpt.h5 $x.ckpt.h5 1e-4 checkpoint) || fail "resume $x: $out"
        echo "resume ($x vs 4 steps on 1 rank): $out"
    done
}

faults() {
    # A killed rank: mpirun ends the job (no hang) within seconds.
    args=(--norm batch "${TINY[@]}" --steps 100000 --eval-every 0 --probes none --out k.h5)
    "${MPIRUN[@]}" 2 "$NS" train "${args[@]}" >/dev/null 2>k.err &
    launcher=$!
    victim=""
    for _ in $(seq 100); do
        victim=$(pgrep -P "$launcher" -f "normscope train" | tail -1)
        [ -n "$victim" ] && break
        sleep 0.1
    done
    sleep 1
    start=$(date +%s.%N)
    [ -n "$victim" ] && kill -9 "$victim"
    for _ in $(seq 150); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$launcher" 2>/dev/null; then
        fail "killed rank: job still running after 15 s"
        kill -9 "$launcher"
    fi
    wait "$launcher"
    code=$?
    echo "killed rank: job ended in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s, exit $code"
    [ "$code" -ne 0 ] || fail "killed rank: exit code 0"
    # A bad flag: one message, from rank 0, not one per rank.
    "${MPIRUN[@]}" 2 "$NS" train "${TINY[@]}" --batch-size 5 --out e.h5 >/dev/null 2>e.err
    code=$?
    n=$(grep -c "batch-size 5" e.err)
    [ "$code" -eq 2 ] || [ "$code" -eq 1 ] || fail "bad flag: exit $code"
    [ "$n" -eq 1 ] || fail "bad flag: $n messages: $(cat e.err)"
    echo "bad flag under 2 ranks: exit $code, $n message: $(grep "batch-size 5" e.err)"
}

case $PART in
parity) parity; budget; smoothness ;;
local) local_stats ;;
resume) resume ;;
faults) faults ;;
all) parity; budget; smoothness; local_stats; resume; faults ;;
*) echo "unknown part $PART"; exit 2 ;;
esac
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
