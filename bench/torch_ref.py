#!/usr/bin/python3
"""An independent PyTorch implementation of normscope's model specification (docs: README,
"The model and the normalization schemes"), written from the spec's text, not from the C code.

Two uses:
  torch_ref.py check FILE.h5...      replays reference debug states (tests/data/debug-states):
                                     loss, every gradient and the norm state after each step,
                                     against the tolerances of the debug-state format
  torch_ref.py bench --norm NAME ... trains on random batches of the same shapes as normscope's
                                     `small` benchmark and prints seconds per step (median)
  torch_ref.py lipschitz FILE.h5...  replays the lipschitz/ groups of `debug-step --lipschitz`
                                     files with exact float64 Hessian-vector products (double
                                     backward): the grid, the solver from the recorded start
                                     vector, Hutchinson on the recorded probe vectors, against
                                     the tolerances of docs/debug-state.md
  torch_ref.py hvp FILE.h5...        float32 central differences (no kink handling) against
                                     exact float64 products at step_0, for several step sizes,
                                     at random directions and at the top eigenvector

The benchmark (scripts/bench.sh) runs this beside normscope, alternating, so that the speed
ratio is measured in one run on one machine. CPU, float32, `--threads` intra-op threads.
"""
import argparse
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

# The model: one implementation, shared with examples/transformer_lm.py (python/normscope).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from normscope.spec_model import Model, load_params, load_state_before  # noqa: E402


# ----------------------------------------------------------------------------- check

def rel(a, b, floor=0.0):
    """max |a - b| relative to the largest |b|, or to `floor` where that is larger."""
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, floor)
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a - b)))


def open_state(path):
    """A debug-state file and its model in float64 (training mode)."""
    import h5py
    f = h5py.File(path, "r")
    cfg = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    cfg = {k: (str(v) if isinstance(v, str) else v.item() if hasattr(v, "item") else v)
           for k, v in cfg.items()}
    model = Model(cfg).double()
    model.train()
    return f, model


def check_file(path):
    f, model = open_state(path)
    worst = {"loss": 0.0, "penalty": 0.0, "grad": 0.0, "state": 0.0}
    for step in sorted(k for k in f.keys() if k.startswith("step_")):
        g = f[step]
        load_params(model, g)
        load_state_before(model, g)
        model.zero_grad()
        loss = model(torch.from_numpy(g["tokens"][()].astype(np.int64)),
                     torch.from_numpy(g["mask"][()].astype(bool)))
        penalty = model.penalty()
        (loss + penalty).backward()
        if "penalty" in g:
            ref = float(g["penalty"][()])
            worst["penalty"] = max(worst["penalty"], abs(float(penalty) - ref) / abs(ref))
        worst["loss"] = max(worst["loss"], abs(loss.item() - float(g["loss"][()])) /
                            abs(float(g["loss"][()])))
        # Some gradients are analytically zero (attn/bk: softmax ignores a shift; a bias right
        # before batch norm: the mean subtraction removes it) and hold only round-off: measure
        # every tensor against at least 1e-4 of the step's largest gradient.
        top = max(float(np.max(np.abs(g["grads/" + n][()]))) for n, _ in model.named_spec_params())
        for name, p in model.named_spec_params():
            grad = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
            worst["grad"] = max(worst["grad"], rel(grad, g["grads/" + name][()], 1e-4 * top))
        for name, site in model.sites():
            for key, val in site.state.items():
                worst["state"] = max(worst["state"],
                                     rel(val.numpy(), g[f"state_after/{name}/{key}"][()]))
    return worst


def cmd_check(args):
    bad = 0
    for path in args.files:
        w = check_file(path)
        ok = (w["loss"] < 1e-4 and w["penalty"] < 1e-4 and w["grad"] < 2e-3 and
              w["state"] < 1e-3)
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path}: loss {w['loss']:.1e} penalty "
              f"{w['penalty']:.1e} gradients {w['grad']:.1e} state {w['state']:.1e}")
    print(f"{len(args.files) - bad} passed, {bad} failed")
    return 1 if bad else 0


# ----------------------------------------------------------------------------- curvature

def dot(a, b):
    return sum(float((x * y).sum()) for x, y in zip(a, b))


def norm(a):
    return math.sqrt(dot(a, a))


class Curvature:
    """Loss, gradient and exact Hessian-vector products (double backward) at one step of a
    debug state, every evaluation from the step's state_before (debug-state.md, lipschitz/).
    Vectors are lists of tensors in named_spec_params order."""

    def __init__(self, model, g):
        load_params(model, g)
        self.model, self.g = model, g
        self.names = [n for n, _ in model.named_spec_params()]
        self.params = [p for _, p in model.named_spec_params()]
        self.theta0 = [p.detach().clone() for p in self.params]
        self.tokens = torch.from_numpy(g["tokens"][()].astype(np.int64))
        self.mask = torch.from_numpy(g["mask"][()].astype(bool))

    def _grads(self, delta, create_graph):
        with torch.no_grad():
            for k, p in enumerate(self.params):
                p.copy_(self.theta0[k] if delta is None else self.theta0[k] + delta[k])
        load_state_before(self.model, self.g)
        loss = self.model(self.tokens, self.mask)
        gr = torch.autograd.grad(loss, self.params, create_graph=create_graph, allow_unused=True)
        return loss, [torch.zeros_like(p) if x is None else x for p, x in zip(self.params, gr)]

    def loss_grad(self, delta=None):
        loss, gr = self._grads(delta, False)
        return loss.item(), [x.detach() for x in gr]

    def hvp(self, v):
        _, gr = self._grads(None, True)
        s = sum((x * y).sum() for x, y in zip(gr, v) if x.requires_grad)
        hv = torch.autograd.grad(s, self.params, allow_unused=True)
        return [torch.zeros_like(p) if x is None else x.detach() for p, x in zip(self.params, hv)]

    def central_hvp(self, v, h):
        """(g(theta + h v) - g(theta - h v)) / 2h in this model's precision."""
        _, gp = self.loss_grad([h * x for x in v])
        _, gm = self.loss_grad([-h * x for x in v])
        return [(a - b) / (2 * h) for a, b in zip(gp, gm)]

    def vector(self, group, dtype=torch.float64):
        return [torch.from_numpy(group[n][()]).to(dtype) for n in self.names]


def lanczos(hvp, start, steps, want_vector=False):
    """Lanczos with full reorthogonalization from `start`: the eigenvalue of largest magnitude of
    the tridiagonal (and its Ritz vector when asked)."""
    q = [x / norm(start) for x in start]
    basis, alpha, beta = [], [], []
    for j in range(steps):
        basis.append(q)
        w = hvp(q)
        alpha.append(dot(w, q))
        for b in basis:  # twice, as the C code does
            c = dot(w, b)
            w = [x - c * y for x, y in zip(w, b)]
        for b in basis:
            c = dot(w, b)
            w = [x - c * y for x, y in zip(w, b)]
        nb = norm(w)
        if j + 1 == steps or nb <= 1e-12 * abs(alpha[0]):
            break
        beta.append(nb)
        q = [x / nb for x in w]
    k = len(alpha)
    t = np.diag(alpha) + np.diag(beta[:k - 1], 1) + np.diag(beta[:k - 1], -1)
    ev, evec = np.linalg.eigh(t)
    i = int(np.argmax(np.abs(ev)))
    if not want_vector:
        return float(ev[i])
    y = evec[:, i]
    vec = [sum(float(y[j]) * basis[j][m] for j in range(k)) for m in range(len(start))]
    return float(ev[i]), vec


def power(hvp, start, iters):
    v = [x / norm(start) for x in start]
    est = float("nan")
    for _ in range(iters):
        hv = hvp(v)
        est = dot(hv, v)
        v = [x / norm(hv) for x in hv]
    return est


def relerr(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def replay_lipschitz(path):
    """Worst relative errors of each quantity of the file's lipschitz/ groups against float64
    exact products; None when the file has no such group."""
    f, model = open_state(path)
    worst = None
    for step in sorted(k for k in f.keys() if k.startswith("step_")):
        g = f[step]
        if "lipschitz" not in g:
            continue
        lip, c = g["lipschitz"], Curvature(model, g)
        w = worst = worst or {}
        loss0, g0 = c.loss_grad()
        n0 = norm(g0)
        u = [-x / n0 for x in g0]
        r = lip["r"][()]
        grid, diffs = [loss0], []
        for ri in r:
            loss, gi = c.loss_grad([ri * x for x in u])
            grid.append(loss)
            diffs.append(norm([a - b for a, b in zip(gi, g0)]))
        beta = max(d / ri for d, ri in zip(diffs, r))
        ref = {"grid_loss": np.array(grid), "grad_diff_norm": np.array(diffs),
               "beta_smoothness": np.array([beta])}
        start = c.vector(lip["start"])
        solver = lip["hessian_solver"][()]
        solver = solver.decode() if isinstance(solver, bytes) else str(solver)
        iters = int(lip["hessian_iters"][()])
        solve = lanczos if solver == "lanczos" else power
        ref["hessian_top_eig"] = np.array([solve(c.hvp, start, iters)])
        if "hessian_trace" in lip:
            probes = sorted(lip["hutchinson"].keys(), key=int)
            ests = [dot(z, c.hvp(z)) for z in (c.vector(lip["hutchinson"][k]) for k in probes)]
            ref["hessian_trace"] = np.array([sum(ests) / len(ests)])
        for key, val in ref.items():
            ours = np.atleast_1d(lip[key][()]).astype(np.float64)
            err = float(np.max(np.abs(ours - val) / np.maximum(np.abs(val), 1e-300)))
            w[key] = max(w.get(key, 0.0), err)
            print(f"  {step} {key}: ours {ours[:5]} exact {val[:5]} rel {err:.1e}")
    return worst


LIP_TOL = {"grid_loss": 1e-4, "grad_diff_norm": 1e-3, "beta_smoothness": 1e-3,
           "hessian_top_eig": 0.02, "hessian_trace": 0.02}


def cmd_lipschitz(args):
    bad = 0
    for path in args.files:
        w = replay_lipschitz(path)
        if w is None:
            print(f"FAIL {path}: no step has a lipschitz/ group (debug-step --lipschitz)")
            bad += 1
            continue
        ok = all(err <= LIP_TOL[k] for k, err in w.items())
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path}: " +
              " ".join(f"{k} {err:.1e}" for k, err in w.items()))
    print(f"{len(args.files) - bad} passed, {bad} failed")
    return 1 if bad else 0


def hvp_errors(path, scales, n_random, seed):
    """For step_0 of a debug state: the float32 central difference with h = c ||theta|| / ||v||
    against the float64 exact product, at random unit directions and at the top eigenvector
    (float64 Lanczos, 40 steps), for each c; relative error ||ours - exact|| / ||exact||."""
    f, model = open_state(path)
    g = f["step_0"]
    exact = Curvature(model, g)
    _, m32 = open_state(path)
    m32 = m32.float()
    fast = Curvature(m32, g)
    fast.theta0 = [x.float() for x in fast.theta0]
    theta = norm(exact.theta0)
    rng = np.random.default_rng(seed)
    dirs = []
    for _ in range(n_random):
        v = [torch.from_numpy(rng.standard_normal(x.shape)) for x in exact.theta0]
        dirs.append(("random", [x / norm(v) for x in v]))
    lam, top = lanczos(exact.hvp, dirs[0][1], 40, want_vector=True)
    dirs.append((f"top (lambda {lam:.4f})", [x / norm(top) for x in top]))
    rows = []
    for what, v in dirs:
        ref = exact.hvp(v)
        v32 = [x.float() for x in v]
        errs = []
        for c in scales:
            ours = [x.double() for x in fast.central_hvp(v32, c * theta / norm(v))]
            errs.append(norm([a - b for a, b in zip(ours, ref)]) / norm(ref))
        rows.append((what, errs))
    return rows


def cmd_hvp(args):
    scales = [float(x) for x in args.scales.split(",")]
    print("relative error ||Hv(central, float32) - Hv(exact, float64)|| / ||Hv(exact)|| at "
          "h = c ||theta|| / ||v||")
    print("%-44s %s" % ("file / direction", " ".join("c=%-8.1e" % c for c in scales)))
    for path in args.files:
        for what, errs in hvp_errors(path, scales, args.random, args.seed):
            print("%-44s %s" % (path.split("/")[-1][:26] + " " + what[:17],
                                " ".join("%-10.2e" % e for e in errs)))
    return 0


# ----------------------------------------------------------------------------- bench

def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = dict(vocab_size=args.vocab_size, d_model=args.d_model, n_heads=args.heads,
               d_ff=args.d_ff, n_layers=args.layers, seq_len=args.seq_len, norm=args.norm,
               norm_position=args.norm_position, pn_alpha=0.9, pn_warmup=args.pn_warmup,
               pn_groups=0, bn_momentum=0.05 if args.norm == "batch-official" else 0.1,
               dropout=args.dropout)
    model = Model(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8,
                            weight_decay=0.0)
    B, T = args.batch_size, args.seq_len
    times = []
    for step in range(args.steps):
        tokens = torch.randint(3, args.vocab_size, (B, T + 1))
        mask = torch.ones(B, T, dtype=torch.bool)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        if not math.isfinite(loss.item()):
            print(f"torch_ref: loss not finite at step {step + 1}", file=sys.stderr)
            return 3
    # --quantile 0.5 is the median; scripts/bench.sh asks for a low quantile on shared machines
    print("%.5f" % float(np.quantile(times[args.skip:], args.quantile)))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="replay debug-state files")
    c.add_argument("files", nargs="+")
    b = sub.add_parser("bench", help="median seconds per training step")
    for name, typ, default in [("norm", str, "layer"), ("norm-position", str, "post"),
                               ("vocab-size", int, 10000), ("d-model", int, 256),
                               ("heads", int, 4), ("d-ff", int, 1024), ("layers", int, 4),
                               ("seq-len", int, 64), ("batch-size", int, 32),
                               ("steps", int, 30), ("skip", int, 6), ("threads", int, 2),
                               ("pn-warmup", int, 10), ("dropout", float, 0.1),
                               ("seed", int, 1), ("quantile", float, 0.5)]:
        b.add_argument("--" + name, type=typ, default=default)
    lp = sub.add_parser("lipschitz", help="replay the lipschitz/ groups of debug states")
    lp.add_argument("files", nargs="+")
    hp = sub.add_parser("hvp", help="central-difference HVP error vs the step size")
    hp.add_argument("files", nargs="+")
    hp.add_argument("--scales", default="1e-6,1e-5,3e-5,1e-4,3e-4,1e-3")
    hp.add_argument("--random", type=int, default=2)
    hp.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    return {"check": cmd_check, "bench": cmd_bench, "lipschitz": cmd_lipschitz,
            "hvp": cmd_hvp}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
