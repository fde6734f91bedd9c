#!/usr/bin/python3
"""Compares two debug states (docs/debug-state.md) tensor by tensor: every dataset under step_*/
in {loss, penalty (batch-regularized), grads, state_before, state_after} must agree within a relative tolerance,
|a - b|_max <= tol * max(|a|_max, floor) per tensor. The floor is 10 % of the largest value of
the tensor's group in that step (e.g. of all gradients of step_1): some tensors are exactly 0 in
exact arithmetic (the gradient of a bias in front of batch norm, of the key bias) and hold only
round-off, ~1e-7 of the group's scale, which no summation order reproduces.
Prints the largest relative difference; exit 1 on a mismatch or when the files differ in what
they hold. Usage: test_mpi_compare.py A.h5 B.h5 [tol] [group ...]
With the group `checkpoint` it compares every float dataset of two checkpoints instead, grouped
by their first path component (optim/m, optim/v: two)."""
import sys

import h5py
import numpy as np

# Not params: AdamW divides by sqrt(v), so a gradient that is 0 up to round-off (see below) moves
# its parameter by ~lr in a direction the round-off picks; the gradients after it agree anyway.
GROUPS = ["loss", "penalty", "grads", "state_before", "state_after"]


def group_of(name):
    parts = name.split("/")
    return "/".join(parts[:2] if parts[0] in ("optim",) or parts[0].startswith("step_")
                    else parts[:1])


def checkpoint_tensors(f):
    out = {}
    f.visititems(lambda n, d: out.__setitem__(n, np.asarray(d[()], dtype=np.float64))
                 if isinstance(d, h5py.Dataset) and d.dtype.kind == "f" else None)
    return out


def tensors(f, groups):
    out = {}
    for step in sorted(k for k in f.keys() if k.startswith("step_")):
        for g in groups:
            if g not in f[step]:
                continue
            obj = f[step][g]
            if isinstance(obj, h5py.Dataset):
                out[f"{step}/{g}"] = np.asarray(obj[()], dtype=np.float64)
            else:
                obj.visititems(lambda name, d, p=f"{step}/{g}": out.__setitem__(
                    f"{p}/{name}", np.asarray(d[()], dtype=np.float64))
                    if isinstance(d, h5py.Dataset) else None)
    return out


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    groups = sys.argv[4:] or GROUPS
    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        if groups == ["checkpoint"]:
            a, b = checkpoint_tensors(fa), checkpoint_tensors(fb)
        else:
            a, b = tensors(fa, groups), tensors(fb, groups)
    if not a or set(a) != set(b):
        print(f"{a_path} and {b_path} hold different tensors: {sorted(set(a) ^ set(b))[:5]}")
        return 1
    group_max = {}
    for name, x in a.items():
        m = float(np.max(np.abs(x))) if x.size else 0.0
        group_max[group_of(name)] = max(group_max.get(group_of(name), 0.0), m)
    worst, worst_name, bad = 0.0, "", []
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            bad.append(f"{name}: shape {x.shape} vs {y.shape}")
            continue
        own = float(np.max(np.abs(x))) if x.size else 0.0
        scale = max(own, 0.1 * group_max[group_of(name)], 1e-30)
        rel = float(np.max(np.abs(x - y))) / scale if x.size else 0.0
        if not np.isfinite(rel) or rel > tol:
            bad.append(f"{name}: relative difference {rel:.3g} > {tol:g}")
        if rel > worst or not np.isfinite(rel):
            worst, worst_name = rel, name
    print(f"{len(a)} tensors, largest relative difference {worst:.3g} ({worst_name})")
    for line in bad[:10]:
        print("MISMATCH " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
