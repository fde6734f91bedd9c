#!/usr/bin/env bash
# The two explanations (analysis/explanations.h, issue 24): `report` on synthetic logs built so
# that the answer is known. Usage: test_explanations.sh NORMSCOPE
#   tracks     24 cells (BN and LN each): the deficit rises with BN's late TID and its norm gap,
#              and falls with its fluctuation growth: TID "tracks", fluctuation "does not track"
#   few        4 of those cells: every measure "inconclusive (n = 4)"
#   confounded 20 cells in two dropout levels: the fluctuation growth and the deficit both rise
#              with dropout but run opposite within each level: the pooled correlation is
#              "driven by `dropout`" and fluctuation is not said to track
#   parts      the deficit split: trained worse + gap = deficit, the larger part named
set -u
NS=$(readlink -f "$1")
PY=/usr/bin/python3
. "$(dirname "$(readlink -f "$0")")/lib.sh"

# Synthetic logs: a 60-step run, one norm site, every series the explanations read.
$PY - <<'PY' || fail "making the synthetic logs"
import h5py, numpy as np
STEPS = 60

def log(path, norm, cell, seed, dropout, deficit, tid, growth, gap_share):
    steps = np.arange(1, STEPS + 1)
    with h5py.File(path, "w") as h:
        a = h.attrs
        for k, v in [("format", "normscope-runlog-1"), ("norm", norm), ("norm_position", "post"),
                     ("probes", "all"), ("normscope_version", "synthetic")]:
            a[k] = np.bytes_(v)
        for k, v in [("seed", seed), ("steps", STEPS), ("d_model", 8), ("n_layers", 1),
                     ("vocab_size", 100)]:
            a[k] = np.int64(v)
        a["lr"] = np.float64(1e-3 * (1 + cell))
        a["dropout"] = np.float64(dropout)
        def put(name, v, dt="f8"):
            h.create_dataset(name, data=np.asarray(v, dtype=dt))
        put("steps/step", steps, "i8")
        put("steps/loss", np.linspace(5, 3, STEPS))
        put("steps/grad_norm", np.ones(STEPS))
        loss = 3.0 + deficit
        put("eval/step", [30, 60], "i8")
        put("eval/loss", [loss + 0.5, loss])
        put("eval/ppl", np.exp([loss + 0.5, loss]))
        site = "norms/layers/0/norm1/"
        put(site + "step", steps, "i8")
        # the distance: flat over the second fifth, `growth` times it over the last
        dist = np.where(steps > 0.8 * STEPS, 0.01 * growth, 0.01)
        for s in ("dist_mean", "dist_var", "dist_psi2"):
            put(site + s, dist)
        for s in ("rel_dist_mean", "rel_dist_var", "rel_dist_psi2"):
            put(site + s, dist * 10)
        for s in ("tid_mean", "tid_var", "tid_psi2"):
            put(site + s, np.full(STEPS, tid))
        if norm != "layer":
            gap = gap_share * deficit
            put("norm_gap/step", [30, 60], "i8")
            put("norm_gap/loss_running", [loss + 0.5, loss])
            put("norm_gap/loss_batch_stats", [loss + 0.5 - gap, loss - gap])
            put("norm_gap/gap", [gap, gap])

rng = np.random.default_rng(5)
# tracks: 24 cells; deficit 0.05..0.28 in a shuffled order of cells
order = rng.permutation(24)
for cell in range(24):
    d = 0.05 + 0.01 * order[cell]
    log(f"t-bn-{cell}.h5", "batch", cell, 1, 0.1, d, tid=0.02 + d, growth=3.0 - 5 * d, gap_share=0.7)
    log(f"t-ln-{cell}.h5", "layer", cell, 1, 0.1, 0.0, tid=0.3, growth=1.0, gap_share=0)
# confounded: dropout 0 cells have small deficits and growths, dropout 0.3 large ones; within a
# level the growth falls as the deficit rises
for cell in range(20):
    hi = cell >= 10
    d = (0.5 if hi else 0.1) + 0.01 * (cell % 10)
    g = (3.0 if hi else 1.5) - 0.1 * (cell % 10)
    log(f"c-bn-{cell}.h5", "batch", cell, 1, 0.3 if hi else 0.0, d, tid=0.05, growth=g,
        gap_share=0.2)
    log(f"c-ln-{cell}.h5", "layer", cell, 1, 0.3 if hi else 0.0, 0.0, tid=0.3, growth=1.0,
        gap_share=0)
PY

section() { # report dir -> the explanations section
    sed -n '/^## Two explanations/,/^## [A-Z]/p' "$1/report.md"
}
# tracks
"$NS" report t-*.h5 --out tracks --format svg > tracks.out 2>&1 || fail "report (tracks): $(tail -2 tracks.out)"
section tracks > tracks.md
grep -q "Training-inference discrepancy\*\* (Wang et al.: TID and the loss it costs): tracks the deficit" tracks.md && ok ||
    fail "tracks: TID not said to track: $(grep -A3 'Fluctuation\*\*' tracks.md)"
grep -q "Fluctuation\*\* (PowerNorm paper: batch statistics stray more and more): does not track the deficit" tracks.md && ok ||
    fail "tracks: fluctuation not said not to track: $(grep 'Fluctuation\*\*' tracks.md)"
grep -q "| TID: tid_\* over the last fifth | first | 24 | 1 |" tracks.md && ok || fail "tracks: TID row: $(grep 'TID: tid' tracks.md)"
grep -q "| fluctuation: growth of the distance (dist_\*) | first | 24 | -1 |" tracks.md && ok ||
    fail "tracks: fluctuation row: $(grep 'fluctuation: growth' tracks.md)"
# few
"$NS" report t-bn-0.h5 t-bn-1.h5 t-bn-2.h5 t-bn-3.h5 t-ln-0.h5 t-ln-1.h5 t-ln-2.h5 t-ln-3.h5 \
    --out few --format svg > few.out 2>&1 || fail "report (few): $(tail -2 few.out)"
section few > few.md
[ "$(grep -c 'inconclusive (n = 4)' few.md)" -ge 7 ] && ok || fail "few: $(grep -c 'inconclusive (n = 4)' few.md) inconclusive (n = 4) rows"
grep -q "tracks the deficit" few.md && fail "few: a verdict from 4 pairs" || ok
# confounded
"$NS" report c-*.h5 --out conf --format svg > conf.out 2>&1 || fail "report (confounded): $(tail -2 conf.out)"
section conf > conf.md
grep "fluctuation: growth of the distance (dist_\*) | first" conf.md | grep -q "tracks, driven by \`dropout\`" && ok ||
    fail "confounded: $(grep 'fluctuation: growth' conf.md)"
grep -q "Fluctuation\*\* (PowerNorm paper: batch statistics stray more and more): tracks" conf.md &&
    fail "confounded: fluctuation said to track" || ok
# parts: the table's deficit is trained worse + gap, and the larger part is named
$PY - tracks.md <<'PY' && ok || fail "parts"
import sys
rows = [l.split("|")[2:5] for l in open(sys.argv[1]) if l.startswith("| batch")]
assert len(rows) == 24, len(rows)
for d, w, g in rows:
    assert abs(float(d) - float(w) - float(g)) < 2e-3, (d, w, g)
assert "the larger part is the train/inference gap" in open(sys.argv[1]).read()
PY
# the interval of the confounded row: rho 0.5038 over 20 pairs, Fisher z with se sqrt(1.06/17)
grep "fluctuation: growth of the distance (dist_\*) | first" conf.md | grep -q "| 20 | 0.5038 | 0.06[45][0-9]* .. 0.77" && ok ||
    fail "confounded interval: $(grep 'fluctuation: growth' conf.md | head -1)"

finish
