#!/usr/bin/env bash
# The run-log contract (src/io/runlog.schema.json, issue 20). Usage: test_schema.sh NORMSCOPE
#   docs       docs/runlog.md is the generator's page of the schema; a schema with a dataset
#              added gives another page (so the docs check fails until docs follow), and the
#              generator refuses a malformed declaration
#   logs       check-log passes on logs of every scheme in both positions, probe subsets, the
#              smoothness probe without products, a resumed log, and a --max-tokens log
#   broken     check-log fails, naming the path, on hand-broken logs: a declared dataset
#              missing, a wrong dtype, unequal lengths, decreasing steps, missing units, an
#              undeclared dataset or attribute (a writer ahead of the schema), a soft link, a
#              missing required attribute or group, steps beyond the run, a wrong vector width
set -u
NS=$(readlink -f "$1")
SRC=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
PY=/usr/bin/python3
GEN="$SRC/src/io/gen_runlog_schema.py"
SCHEMA="$SRC/src/io/runlog.schema.json"
. "$(dirname "$(readlink -f "$0")")/lib.sh"

# ---------------------------------------------------------------- docs
$PY "$GEN" markdown "$SCHEMA" > runlog.md || fail "generator failed on the schema"
if cmp -s runlog.md "$SRC/docs/runlog.md"; then ok; else
    fail "docs/runlog.md differs from the schema's page: run $PY src/io/gen_runlog_schema.py markdown src/io/runlog.schema.json > docs/runlog.md"
fi
$PY - "$SCHEMA" added.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
g = next(g for g in s["groups"] if g["id"] == "steps")
g["series"].append({"name": "extra", "dtype": "float64", "units": "1", "doc": "a new series"})
json.dump(s, open(sys.argv[2], "w"))
PY
$PY "$GEN" markdown added.json > added.md
if ! cmp -s added.md runlog.md && grep -q '`extra`' added.md; then ok; else
    fail "a dataset added to the schema does not change the generated page"
fi
$PY "$GEN" header added.json | grep -q NS_STEPS_EXTRA && ok || fail "the header lacks the added series"
$PY - "$SCHEMA" bad.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["groups"][0]["series"].append({"name": "nounits", "dtype": "float64", "doc": "x"})
json.dump(s, open(sys.argv[2], "w"))
PY
if $PY "$GEN" header bad.json > /dev/null 2> bad.err; then fail "generator took a series without units"
elif grep -q "units and doc are required" bad.err; then ok; else fail "generator: $(cat bad.err)"; fi

# ---------------------------------------------------------------- logs the program writes
TINY=(--layers 2 --d-model 16 --heads 2 --d-ff 32 --seq-len 8 --batch-size 4 --vocab-size 200
      --synth-bytes 20000 --steps 6 --eval-every 3 --probe-vectors-every 2 --threads 1
      --lipschitz-every 3 --hessian-iters 3 --hessian-top 2 --density-runs 2 --log-every 1000)
train() { "$NS" train "${TINY[@]}" "$@" > train.out 2>&1 || fail "train $*: $(tail -1 train.out)"; }
logs=()
for norm in layer batch batch-regularized batch-official power-v power power-official rms none; do
    for pos in pre post; do
        train --norm "$norm" --norm-position "$pos" --out "$norm-$pos.h5"
        logs+=("$norm-$pos.h5")
    done
done
train --probes none --out probes-none.h5
train --probes gradients,params --norm batch --out probes-gp.h5
train --probes batch-stats,norm-gap --norm power --out probes-bn.h5
train --norm batch --hessian-iters 1 --hessian-top 1 --hutchinson-samples 0 --density-runs 0 --out no-products.h5
train --norm batch --batching sentences --max-tokens 24 --out max-tokens.h5
train --norm batch --steps 3 --out resumed.h5
"$NS" train "${TINY[@]}" --norm batch --out resumed.h5 --resume resumed.ckpt.h5 > train.out 2>&1 ||
    fail "resume: $(tail -1 train.out)"
logs+=(probes-none.h5 probes-gp.h5 probes-bn.h5 no-products.h5 max-tokens.h5 resumed.h5)
if "$NS" check-log "${logs[@]}" > check.out; then ok; else
    fail "check-log on the program's own logs:"; grep -v ': ok$' check.out
fi
[ "$(grep -c ': ok$' check.out)" -eq "${#logs[@]}" ] && ok || fail "not one 'ok' line per log"

# ---------------------------------------------------------------- hand-broken logs
# Each case: an edit with h5py of a copy of batch-pre.h5, and the line check-log must print.
$PY - batch-pre.h5 <<'PY' || fail "h5py edits failed"
import h5py, shutil, sys
import numpy as np

def case(name, edit):
    shutil.copy(sys.argv[1], name + ".h5")
    with h5py.File(name + ".h5", "r+") as h:
        edit(h)

def retype(h, path, dtype):
    data, attrs = h[path][:], dict(h[path].attrs)
    del h[path]
    d = h.create_dataset(path, data=data.astype(dtype), maxshape=(None,))
    for k, v in attrs.items():
        d.attrs[k] = v

def set_rows(h, path, values):
    h[path][:] = values

case("missing", lambda h: h.__delitem__("norms/layers/0/norm1/dist_var"))
case("dtype", lambda h: retype(h, "steps/loss", "float32"))
case("lengths", lambda h: h["steps/lr"].resize((4,)))
case("decreasing", lambda h: set_rows(h, "steps/step", [1, 2, 3, 3, 5, 6]))
case("units", lambda h: h["eval/ppl"].attrs.__delitem__("units"))
case("wrong-units", lambda h: h["steps/loss"].attrs.__setitem__("units", np.bytes_(b"bits")))
case("undeclared", lambda h: h.create_dataset("steps/extra", data=np.zeros(6)))
case("attr", lambda h: h.attrs.__setitem__("my_setting", 3))
case("attr-dtype", lambda h: h.attrs.__setitem__("d_model", 16.0))
case("softlink", lambda h: h["steps"].__setitem__("alias", h5py.SoftLink("/steps/loss")))
case("required", lambda h: h.attrs.__delitem__("seed"))
case("group", lambda h: h.__delitem__("norm_gap"))
case("beyond", lambda h: set_rows(h, "steps/step", [1, 2, 3, 4, 5, 60]))
case("width", lambda h: h.attrs.__setitem__("hessian_top", np.int64(3)))
PY
expect() { # case, text of the problem line
    if "$NS" check-log "$1.h5" > "$1.out"; then fail "$1: check-log passed"; return; fi
    if grep -qF -- "$2" "$1.out"; then ok; else fail "$1: expected '$2', got: $(cat "$1.out")"; fi
}
expect missing "/norms/layers/0/norm1/dist_var: missing"
expect dtype "/steps/loss: dtype is not float64"
expect lengths "/steps/lr: 4 rows, but its step series /steps/step has 6"
expect decreasing "/steps/step: row 3 holds step 3: steps must increase strictly"
expect units "/eval/ppl: no 'units' attribute"
expect wrong-units "/steps/loss: units 'bits', schema says 'nats'"
expect undeclared "/steps/extra: dataset not declared in the schema"
expect attr "/@my_setting: root attribute not declared in the schema"
expect attr-dtype "/@d_model: dtype is not int64"
expect softlink "/steps/alias: soft or external link"
expect required "/@seed: required root attribute missing"
expect group "/norm_gap: group missing"
expect beyond "/steps/step: row 5 holds step 60: outside the run's steps"
expect width "/lipschitz/hessian_top_eigs: rows of 2 values, expected 3"
"$NS" check-log batch-pre.h5 missing.h5 > two.out
[ $? -eq 1 ] && grep -q "batch-pre.h5: ok" two.out && ok || fail "two logs: $(cat two.out)"

finish
