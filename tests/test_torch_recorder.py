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


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ns-recorder-") as tmp:
        for test in (cnn_smoke, bn_exact, other_sites, analysis, refusals):
            n = len(FAILURES)
            test(tmp)
            print(f"{'ok  ' if len(FAILURES) == n else 'FAIL'} {test.__name__}")
    print(f"{len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
