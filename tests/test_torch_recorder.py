#!/usr/bin/python3
"""The PyTorch recorder (python/normscope) on models other than the spec's (issue 21):

  cnn_smoke       examples/cnn_bn.py, a few steps on a Fashion-MNIST subset: its log passes
                  check-log, holds every BN site by module path, finite distances and gradients
                  through the statistics, vectors at step 1
  bn_exact        nn.BatchNorm1d: the recorded g_mu and g_sigma2 are (1/d)||dL/dmu_B|| and
                  (1/d)||dL/dsigma2_B|| that autograd gives for an explicit batch norm, and the
                  distances those of the module's running statistics before the step
  other_sites     nn.LayerNorm and nn.GroupNorm sites and a custom module through the protocol
  analysis        plot (fluctuation, training, gradients, layers, figure2), compare, watch
                  --once and export-notebook run clean on recorder logs
  refusals        an undeclared configuration key, an existing log without overwrite: one
                  'normscope:' line, the existing log unchanged
  smooth_known    the smoothness probe's estimators on Hessians known exactly: a diagonal
                  quadratic (top eigenvalues, Hutchinson's trace, which Rademacher vectors give
                  exactly there, beta-smoothness, loss range, the density's nodes and weights)
                  and a tanh network (top eigenvalue against the eigenvalues of the Hessian
                  autograd builds; central-difference products against exact ones)
  pip_install     `pip install` of python/ into a venv that sees Debian's torch (offline, from a
                  copy of the folder): the installed package, not the checkout's, writes a log
                  that passes check-log, finding the writer library beside `normscope` on PATH
  smooth_isolated training with the smoothness probe is bit for bit training without it (spec
                  model with dropout and PN's state; a BatchNorm network with nn.Dropout); the
                  log has lipschitz/ rows at the due steps, passes check-log, and `plot
                  lipschitz` and `plot hessian` draw it

Usage: test_torch_recorder.py NORMSCOPE_BINARY"""
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
import normscope  # noqa: E402

BIN = None
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL " + what)


def ns(*words, cwd, want=0):
    r = subprocess.run([BIN, *words], cwd=cwd, capture_output=True, text=True)
    check(r.returncode == want, f"normscope {' '.join(words)}: exit {r.returncode}, "
                                f"want {want}\n{r.stderr[-2000:]}")
    return r


def cnn_smoke(tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "cnn_bn.py"), "--out",
                        "cnn.h5", "--steps", "4", "--subset", "512", "--test-subset", "200",
                        "--eval-every", "2", "--threads", "1", "--probe-vectors-every", "2"],
                       cwd=tmp, capture_output=True, text=True)
    check(r.returncode == 0, f"cnn_bn.py: exit {r.returncode}\n{r.stderr[-2000:]}")
    ns("check-log", "cnn.h5", cwd=tmp)
    with h5py.File(os.path.join(tmp, "cnn.h5"), "r") as f:
        check(f.attrs["norm"] in (b"batch", "batch"), "cnn.h5: norm is not batch")
        sites = []
        f["norms"].visit(lambda n: sites.append(n[:-5]) if n.endswith("/step") and
                         "vectors" not in n else None)
        check(sorted(sites) == sorted(["bn", "layers/0/bn1", "layers/0/bn2", "layers/1/bn1",
                                       "layers/1/bn2", "layers/2/bn1", "layers/2/bn2"]),
              f"cnn.h5 sites {sites}")
        for k in ("dist_mean", "dist_var", "rel_dist_var", "g_mu", "g_sigma2", "grad_gain"):
            v = f["norms/bn/" + k][()]
            check(v.shape == (4,) and np.all(np.isfinite(v)) and np.all(v > 0),
                  f"cnn.h5 norms/bn/{k} = {v}")
        check(list(f["norms/bn/vectors/step"][()]) == [1, 2, 4], "vectors not at steps 1, 2, 4")
        check(f["eval/step"].shape == (2,), "cnn.h5: two validation passes expected")


class Tiny(torch.nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.lin = torch.nn.Linear(6, 8)
        self.norm = norm
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.lin(x))))


def bn_exact(tmp):
    torch.manual_seed(3)
    model = Tiny(torch.nn.BatchNorm1d(8, momentum=0.1))
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = [torch.randn(16, 6) * 2 + 1 for _ in range(3)]
    want = []
    with normscope.Recorder(model, os.path.join(tmp, "bn.h5"), flush_every=2) as rec:
        for x in xs:
            # the reference: an explicit batch norm whose mu and sigma2 are graph nodes
            h = model.lin(x).detach()
            mu, var = h.mean(0), h.var(0, unbiased=False)
            mu.requires_grad_(True)
            var.requires_grad_(True)
            w, b = model.norm.weight.detach(), model.norm.bias.detach()
            y = (h - mu) / torch.sqrt(var + model.norm.eps) * w + b
            out = model.out(torch.relu(y))
            gmu, gvar = torch.autograd.grad((out ** 2).mean(), [mu, var])
            rm, rv = model.norm.running_mean.clone(), model.norm.running_var.clone()
            want.append((gmu.norm().item() / 8, gvar.norm().item() / 8,
                         (mu.detach() - rm).norm().item() / 8,
                         (var.detach() - rv).norm().item() / 8))
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
            rec.step(loss=0.0, lr=0.1, tokens=16)
    with h5py.File(os.path.join(tmp, "bn.h5"), "r") as f:
        got = np.stack([f["norms/norm/" + k][()] for k in ("g_mu", "g_sigma2", "dist_mean",
                                                            "dist_var")], axis=1)
    want = np.array(want)
    err = np.max(np.abs(got - want) / np.abs(want))
    check(err < 1e-4, f"bn_exact: recorded {got} against autograd {want} (rel {err:.1e})")
    ns("check-log", "bn.h5", cwd=tmp)


class ProtocolNorm(torch.nn.Module):
    """A scale-only norm by the rows' quadratic mean, following the recorder's protocol."""
    normscope_channels = 8

    def __init__(self):
        super().__init__()
        self.running_psi2 = torch.ones(8)
        self.seen = None

    def normscope_running(self):
        return {"psi2": self.running_psi2.clone()}

    def normscope_forward(self):
        return {"x": self.seen}

    def normscope_backward(self, grad_out):
        return {}

    def forward(self, x):
        psi2 = (x * x).mean(0)
        if self.training:
            self.seen = x.detach()
            with torch.no_grad():
                self.running_psi2.mul_(0.9).add_(0.1 * psi2)
        return x / torch.sqrt(psi2 + 1e-5)


def other_sites(tmp):
    for name, norm in (("ln", torch.nn.LayerNorm(8)), ("gn", torch.nn.GroupNorm(2, 8)),
                       ("proto", ProtocolNorm())):
        torch.manual_seed(1)
        model = Tiny(norm)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        path = os.path.join(tmp, name + ".h5")
        with normscope.Recorder(model, path, config={"seed": 1}, flush_every=3) as rec:
            for _ in range(5):
                opt.zero_grad()
                loss = (model(torch.randn(12, 6)) ** 2).mean()
                loss.backward()
                opt.step()
                rec.step(loss=loss, lr=1e-2, tokens=12)
            rec.evaluate(loss=0.5)
        ns("check-log", name + ".h5", cwd=tmp)
        with h5py.File(path, "r") as f:
            d = f["norms/norm/dist_psi2"][()]
            check(d.shape == (5,) and np.all(np.isfinite(d)), f"{name}: dist_psi2 {d}")
            check(np.all(np.isnan(f["norms/norm/g_mu"][()])), f"{name}: g_mu not NaN")
            check(f["params/lin/weight/update_norm"].shape == (5,), f"{name}: params group")


def analysis(tmp):
    corpus = os.path.join(ROOT, "tests", "data", "corpora", "ptb.valid.txt")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "transformer_lm.py"),
                        "--corpus", corpus, "--out", "lm.h5", "--norm", "batch", "--steps", "8",
                        "--d-model", "16", "--d-ff", "32", "--seq-len", "16", "--batch-size",
                        "8", "--max-tokens", "96", "--eval-every", "4",
                        "--probe-vectors-every", "4"], cwd=tmp, capture_output=True, text=True)
    check(r.returncode == 0, f"transformer_lm.py: exit {r.returncode}\n{r.stderr[-2000:]}")
    ns("check-log", "lm.h5", cwd=tmp)
    for kind in ("fluctuation", "training", "gradients", "layers"):
        ns("plot", kind, "cnn.h5", "lm.h5", "--out", "plots", "--format", "svg", cwd=tmp)
    ns("plot", "figure2", "cnn.h5", "lm.h5", "--out", "plots", "--format", "svg", cwd=tmp)
    check(os.path.exists(os.path.join(tmp, "plots", "figure2.svg")), "no figure2.svg")
    ns("plot", "figure2", "cnn.h5", "--out", "plots", cwd=tmp, want=1)
    ns("compare", "cnn.h5", "lm.h5", "--site", "all", cwd=tmp)
    ns("watch", "cnn.h5", "--once", cwd=tmp)
    ns("export-notebook", "cnn.h5", "lm.h5", "--out", "nb.ipynb", cwd=tmp)


def refusals(tmp):
    model = Tiny(torch.nn.BatchNorm1d(8))
    path = os.path.join(tmp, "cnn.h5")
    before = open(path, "rb").read()
    for kwargs, words in (({"config": {"not_an_attribute": 1}}, "not_an_attribute"),
                          ({}, "exists")):
        try:
            normscope.Recorder(model, path if words == "exists" else
                               os.path.join(tmp, "new.h5"), **kwargs)
            check(False, f"Recorder accepted {kwargs or 'an existing log'}")
        except normscope.RunLogError as e:
            msg = str(e)
            check(msg.startswith("normscope: ") and words in msg and "\n" not in msg,
                  f"refusal message: {msg!r}")
    check(open(path, "rb").read() == before, "cnn.h5 changed by a refused Recorder")
    check(not os.path.exists(os.path.join(tmp, "new.h5")), "a refused Recorder left new.h5")


class Quadratic(torch.nn.Module):
    """0.5 sum_i a_i (w_i - c_i)^2: Hessian diag(a)."""

    def __init__(self, a):
        super().__init__()
        self.a = torch.tensor(a, dtype=torch.float64)
        self.w = torch.nn.Parameter(torch.zeros(len(a), dtype=torch.float64))
        self.c = torch.linspace(-1.0, 2.0, len(a), dtype=torch.float64)

    def forward(self):
        return 0.5 * (self.a * (self.w - self.c) ** 2).sum()


def close(got, want, tol):
    return abs(got - want) <= tol * max(abs(want), 1e-12)


def smooth_known(tmp):
    from normscope.smoothness import Plan, Smoothness
    a = [-7.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 6.0, -0.25]
    q = Quadratic(a)
    P = len(a)
    sm = Smoothness(q, list(q.parameters()), Plan(iters=P, top=3, samples=3, runs=2, steps=P),
                    seed=7)
    row = sm.measure(q, lr=0.01)
    A = torch.tensor(a, dtype=torch.float64)
    g0 = A * (q.w.detach() - q.c)
    u = -g0 / g0.norm()
    want_beta = float((A * u).norm())  # a quadratic's gradient moves by r*A u
    r = [c * 0.01 * math.sqrt(P) for c in (0.5, 1.0, 2.0, 4.0)]
    losses = [float(0.5 * (A * (r_k * u - q.c) ** 2).sum()) for r_k in [0.0] + r]
    top = sorted(a, key=abs, reverse=True)[:3]
    check(all(close(x, y, 1e-9) for x, y in zip(row["hessian_top_eigs"], top)),
          f"smooth_known: top eigenvalues {row['hessian_top_eigs']}, want {top}")
    check(close(row["hessian_trace"], sum(a), 1e-9),
          f"smooth_known: trace {row['hessian_trace']}, want {sum(a)}")
    check(close(row["beta_smoothness"], want_beta, 1e-9),
          f"smooth_known: beta {row['beta_smoothness']}, want {want_beta}")
    check(close(row["loss_range"], max(losses) - min(losses), 1e-9) and
          np.allclose(row["grid_loss"], losses, rtol=1e-12),
          f"smooth_known: grid {row['grid_loss']}, want {losses}")
    nodes = row["density_nodes"].reshape(2, P)
    weights = row["density_weights"].reshape(2, P)
    check(np.allclose(np.sort(nodes, axis=1), np.sort(a), atol=1e-9) and
          np.allclose(weights.sum(1), 1.0, atol=1e-12) and np.all(weights > 0),
          f"smooth_known: density {nodes} {weights}")
    check(float(q.w.abs().max()) == 0.0, "smooth_known: the parameters moved")

    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    net.double()
    x, y = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 2, dtype=torch.float64)
    params = list(net.parameters())
    shapes = [p.shape for p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(flat):
        out, k = x, 0
        ws = []
        for s_ in shapes:
            n = int(np.prod(s_))
            ws.append(flat[k:k + n].view(s_))
            k += n
        h = torch.tanh(out @ ws[0].t() + ws[1])
        return ((h @ ws[2].t() + ws[3] - y) ** 2).mean()

    H = torch.autograd.functional.hessian(loss_of, flat0)
    eig = torch.linalg.eigvalsh(H)
    want = float(eig[torch.argmax(eig.abs())])
    closure = lambda: ((net(x) - y) ** 2).mean()  # noqa: E731
    for hvp, tol in (("autograd", 1e-8), ("central", 1e-3)):
        sm = Smoothness(net, params, Plan(iters=len(flat0), top=1, samples=0, runs=0),
                        seed=1, hvp=hvp)
        got = sm.measure(closure, lr=0.01)["hessian_top_eig"]
        check(close(got, want, tol), f"smooth_known: tanh net top eigenvalue {got} with "
                                     f"{hvp} products, Hessian's {want}")


def spec_model_run(lipschitz_every, path, steps=6):
    """A small spec model (PN, dropout 0.1) trained a few steps; its parameters and state."""
    from normscope.spec_model import Model
    cfg = {"vocab_size": 40, "d_model": 16, "d_ff": 32, "n_layers": 2, "n_heads": 2,
           "seq_len": 8, "norm": "power", "norm_position": "post", "dropout": 0.1,
           "pn_alpha": 0.9, "pn_warmup": 3, "pn_groups": 0, "bn_momentum": 0.1}
    torch.manual_seed(4)
    model = Model(cfg)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(9)
    losses = []
    with normscope.Recorder(model, path, config={"steps": steps, "seed": 4},
                            param_names=list(model.named_spec_params()),
                            lipschitz_every=lipschitz_every, hessian_iters=4,
                            hutchinson_samples=2) as rec:
        for t in range(steps):
            tokens = torch.randint(3, 40, (4, 9), generator=gen)
            mask = torch.ones(4, 8, dtype=torch.bool)
            mask[0, 5:] = False
            opt.zero_grad()
            loss = model(tokens, mask)
            loss.backward()
            rec.smoothness(lambda: model(tokens, mask), 3e-3)
            opt.step()
            rec.step(loss=loss.detach(), lr=3e-3, tokens=int(mask.sum()))
            losses.append(float(loss))
    state = [v.clone() for _, site in model.sites() for v in site.state.values()]
    return losses, [p.detach().clone() for p in model.parameters()], state


class FunctionalDropout(torch.nn.Module):
    """Dropout the probe cannot switch off: its closure draws from torch's generator."""

    def forward(self, x):
        return torch.nn.functional.dropout(x, 0.1, self.training)


def bn_net_run(lipschitz_every, path):
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.ReLU(), torch.nn.Dropout(0.2), FunctionalDropout(),
                                torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    with normscope.Recorder(model, path, config={"steps": 5}, lipschitz_every=lipschitz_every,
                            hessian_iters=3, hutchinson_samples=1, density_runs=0) as rec:
        for _ in range(5):
            x = torch.randn(16, 5, generator=gen)
            opt.zero_grad()
            loss = (model(x) ** 2).mean()
            loss.backward()
            rec.smoothness(lambda: (model(x) ** 2).mean(), 0.05)
            opt.step()
            rec.step(loss=loss.detach(), lr=0.05, tokens=16)
    return [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]


def same(xs, ys):
    return len(xs) == len(ys) and all(torch.equal(x, y) for x, y in zip(xs, ys))


def smooth_isolated(tmp):
    torch.manual_seed(0)
    without = spec_model_run(0, os.path.join(tmp, "pn0.h5"))
    torch.manual_seed(0)
    with_probe = spec_model_run(2, os.path.join(tmp, "pn2.h5"))
    check(without[0] == with_probe[0], f"smooth_isolated: losses {without[0]} became "
                                       f"{with_probe[0]} with the probe")
    check(same(without[1], with_probe[1]) and same(without[2], with_probe[2]),
          "smooth_isolated: parameters or PN state differ with the probe")
    check(same(bn_net_run(0, os.path.join(tmp, "bn0.h5")),
               bn_net_run(2, os.path.join(tmp, "bn2.h5"))),
          "smooth_isolated: a BatchNorm network trains differently with the probe")
    for name, steps in (("pn2.h5", [2, 4, 6]), ("bn2.h5", [2, 4])):
        ns("check-log", name, cwd=tmp)
        with h5py.File(os.path.join(tmp, name), "r") as f:
            check(list(f["lipschitz/step"][()]) == steps, f"{name}: lipschitz steps "
                                                          f"{f['lipschitz/step'][()]}")
            for k in ("beta_smoothness", "hessian_top_eig", "hessian_trace"):
                v = f["lipschitz/" + k][()]
                check(np.all(np.isfinite(v)), f"{name}: lipschitz/{k} = {v}")
            check("lipschitz" in str(f.attrs["probes"]), f"{name}: probes attribute")
    with h5py.File(os.path.join(tmp, "pn0.h5"), "r") as f:
        check("lipschitz" not in f, "pn0.h5: a lipschitz group without the probe")
    for kind in ("lipschitz", "hessian"):
        ns("plot", kind, "pn2.h5", "bn2.h5", "--out", "smooth-plots", "--format", "svg",
           cwd=tmp)
        check(os.path.exists(os.path.join(tmp, "smooth-plots", kind + ".svg")),
              f"no {kind}.svg")


PIP_PROBE = """
import os, sys, torch, normscope
assert not normscope.__file__.startswith(sys.argv[2]), normscope.__file__
m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 1))
opt = torch.optim.SGD(m.parameters(), lr=0.1)
with normscope.Recorder(m, sys.argv[1], config={"steps": 3}) as rec:
    for _ in range(3):
        opt.zero_grad(); loss = (m(torch.randn(8, 4)) ** 2).mean(); loss.backward(); opt.step()
        rec.step(loss=loss, lr=0.1, tokens=8)
print(normscope.__file__)
"""


def pip_install(tmp):
    import shutil
    venv, src = os.path.join(tmp, "venv"), os.path.join(tmp, "python-src")
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    steps = [["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
             [os.path.join(venv, "bin", "pip"), "install", "--quiet", "--no-index",
              "--no-build-isolation", "--no-deps", src]]
    for cmd in steps:
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        check(r.returncode == 0, f"pip_install: {' '.join(cmd)}: exit {r.returncode}\n"
                                 f"{r.stderr[-1500:]}")
        if r.returncode:
            return
    env = {k: v for k, v in os.environ.items()
           if k not in ("NORMSCOPE_RUNLOG_LIB", "PYTHONPATH")}
    env["PATH"] = os.path.dirname(BIN) + os.pathsep + env.get("PATH", "")
    r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", PIP_PROBE, "pip.h5",
                        os.path.abspath(ROOT)], cwd=tmp, capture_output=True, text=True,
                       env=env)
    check(r.returncode == 0 and venv in r.stdout,
          f"pip_install: the installed package: exit {r.returncode} {r.stdout}"
          f"{r.stderr[-1500:]}")
    ns("check-log", "pip.h5", cwd=tmp)


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ns-recorder-") as tmp:
        for test in (cnn_smoke, bn_exact, other_sites, analysis, refusals, smooth_known,
                     smooth_isolated, pip_install):
            n = len(FAILURES)
            test(tmp)
            print(f"{'ok  ' if len(FAILURES) == n else 'FAIL'} {test.__name__}")
    print(f"{len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
