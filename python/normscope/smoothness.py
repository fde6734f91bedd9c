"""The smoothness probe (the run log's lipschitz/ group, docs/runlog.md) on a closure the user
gives: the C engine's probes/probe_lipschitz.c, with Hessian-vector products from autograd.

With theta0 the parameters (all recorded tensors as one vector of P numbers), g0 the gradient of
closure() at theta0, u = -g0/||g0|| and r_k = c_k * lr * sqrt(P), c_k = 0.5, 1, 2, 4:
    loss_range          max - min of the loss over theta0 and theta0 + r_k u
    grad_predictiveness max_k ||g(theta0 + r_k u) - g0||
    beta_smoothness     max_k ||g(theta0 + r_k u) - g0|| / r_k
    hessian_top_eig(s)  Lanczos (iters steps, full reorthogonalization) from a unit Gaussian
    hessian_trace       Hutchinson: mean of z.Hz over `samples` Rademacher vectors
    density_*           stochastic Lanczos quadrature, `runs` runs of `steps` steps
in the C probe's order, so the same seed draws the same kind of vectors in the same sequence.

Hessian-vector products: exact, by double backward through one graph kept at theta0 (hvp
"autograd", what "auto" tries first); or central differences of gradients,
(g(theta0 + h v) - g(theta0 - h v)) / 2h with h = 2^-13 ||theta0|| / ||v|| (hvp "central", and
"auto"'s fallback when a backward cannot be differentiated again: a custom autograd Function
marked once_differentiable, or one that updates in place what it saved). The C engine takes
central differences with the ReLU units pinned to theta0's side, within 1 % of exact products;
without pinning, differences across ReLU kinks are far worse on small models, which is why the
exact products come first. Exact products pin nothing: hvp_pinned is 0. For schemes whose
backward is not their forward's gradient (PN after warm-up, the released PN), "Hessian" means
the Jacobian of the gradient they compute, as in the C engine; spec_model.py writes their
backwards so that a double backward gives it.

Isolation: the measurement must not change what training computes. Every evaluation starts from
the state before the step (the recorder keeps each norm site's buffers, and the state of sites
that offer normscope_state()/normscope_load_state(), before the step's training forward; other
modules' buffers as at the call), as the C probe's passes do; nn.Dropout modules are off during
it; the parameters, the buffers, those states and torch's random generators are as at the call
when it returns, and .grad is never touched. The closure computes the loss on the step's batch
with the model in training mode.
"""
import math
import warnings

import numpy as np
import torch

GRID_C = (0.5, 1.0, 2.0, 4.0)
HVP_SCALE = 1.0 / 8192.0
SEED_MIX = 0x11B5C417  # the C probe's: its RNG is seeded with seed ^ this


class Plan:
    """What one measurement computes (the C engine's --hessian-* flags and their defaults)."""

    def __init__(self, iters=10, top=1, samples=4, runs=1, steps=0):
        if min(iters, top, samples, runs, steps) < 0 or top < 1:
            raise ValueError("normscope: hessian_iters, hutchinson_samples, density_runs and "
                             "density_steps must be >= 0 and hessian_top >= 1")
        self.iters, self.top, self.samples = iters, top, samples
        self.steps = steps or iters
        self.runs = runs if self.steps else 0  # no Lanczos steps at all: no density

    @property
    def widths(self):
        return {"grid": len(GRID_C) + 1, "hessian_top": self.top if self.iters else 0,
                "density": self.runs * self.steps}


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def module_state(module):
    """A module's own state: its buffers and, for a site of the protocol, normscope_state()."""
    bufs = {n: b.detach().clone() for n, b in module.named_buffers(recurse=False)
            if b is not None}
    custom = module.normscope_state() if hasattr(module, "normscope_load_state") else None
    return bufs, custom


def _load_module_state(module, state):
    bufs, custom = state
    with torch.no_grad():
        for name, saved in bufs.items():
            getattr(module, name).copy_(saved)
    if custom is not None:
        module.normscope_load_state(custom)


class _Isolated:
    """Saves what a measurement may touch and puts it back (module docstring, Isolation).
    start: {module: module_state(module)} taken before the step's training forward, so that
    every evaluation starts from the state before the step, as the C probe's passes do."""

    def __init__(self, model, params, start=None):
        self.model, self.params, self.start = model, params, start or {}

    def __enter__(self):
        self.theta = [p.detach().clone() for p in self.params]
        self.now = [(m, module_state(m)) for m in self.model.modules()]
        self.dropouts = [(d, d.p) for d in self.model.modules()
                         if isinstance(d, torch.nn.modules.dropout._DropoutNd)]
        for d, _ in self.dropouts:
            d.p = 0.0
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return self

    def reset_state(self):
        """The state every evaluation starts from."""
        for m, state in self.now:
            _load_module_state(m, self.start.get(m, state))

    def __exit__(self, *exc):
        with torch.no_grad():
            for p, saved in zip(self.params, self.theta):
                p.copy_(saved)
        for m, state in self.now:
            _load_module_state(m, state)
        for d, p in self.dropouts:
            d.p = p
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        return False


class Smoothness:
    """One model's smoothness measurements (a recorder holds one)."""

    def __init__(self, model, params, plan, seed, hvp="auto"):
        if hvp not in ("auto", "autograd", "central"):
            raise ValueError(f"normscope: hvp must be 'auto', 'autograd' or 'central', not {hvp!r}")
        self.model, self.params, self.plan, self.hvp_mode = model, list(params), plan, hvp
        self.P = sum(p.numel() for p in self.params)
        self.warned = False
        self.gen = torch.Generator()  # on the CPU: the same draws on every device
        self.gen.manual_seed((int(seed) ^ SEED_MIX) % (1 << 63))

    def _op(self, mode, iso, closure, theta0):
        if mode == "central":
            return self._central_op(iso, closure, theta0)
        # after the grid: moving the parameters would void this graph
        _, g_graph = self._loss_grad(iso, closure, theta0, create_graph=True)
        return self._exact_op(g_graph)

    # ------------------------------------------------------------------ evaluations

    def _set(self, iso, theta):
        with torch.no_grad():
            k = 0
            for p in self.params:
                n = p.numel()
                p.copy_(theta[k:k + n].view_as(p))
                k += n
        iso.reset_state()

    def _loss_grad(self, iso, closure, theta, create_graph=False):
        self._set(iso, theta)
        with torch.enable_grad():
            loss = closure()
            grads = torch.autograd.grad(loss, self.params, create_graph=create_graph,
                                        allow_unused=True)
        g = _flat([torch.zeros_like(p) if x is None else x for p, x in zip(self.params, grads)])
        return loss, g

    def _exact_op(self, g_graph):
        """Hv = d(g . v)/dtheta through the graph of g kept at theta0 (double backward)."""
        def op(v):
            if not g_graph.requires_grad:  # the gradient does not depend on the parameters
                return torch.zeros_like(v)
            hv = torch.autograd.grad((g_graph * v).sum(), self.params, retain_graph=True,
                                     allow_unused=True)
            return _flat([torch.zeros_like(p) if x is None else x.detach()
                          for p, x in zip(self.params, hv)])
        return op

    def _central_op(self, iso, closure, theta0):
        tn = float(torch.linalg.vector_norm(theta0))

        def op(v):
            vn = float(torch.linalg.vector_norm(v))
            if not vn > 0:
                return torch.zeros_like(v)
            h = HVP_SCALE * (tn if tn > 0 else 1.0) / vn
            _, gp = self._loss_grad(iso, closure, theta0 + h * v)
            _, gm = self._loss_grad(iso, closure, theta0 - h * v)
            return ((gp.double() - gm.double()) / (2.0 * h)).to(v.dtype)
        return op

    # ------------------------------------------------------------------ the measurement

    def measure(self, closure, lr, start=None):
        """The lipschitz/ row at the current parameters, as a dict of the group's series (less
        step and seconds), None when the loss or gradient there is not finite. start: module
        states to evaluate from (_Isolated)."""
        with _Isolated(self.model, self.params, start) as iso:
            theta0 = _flat([p.detach() for p in self.params]).clone()
            loss0, g0 = self._loss_grad(iso, closure, theta0)
            if not (math.isfinite(float(loss0)) and bool(torch.isfinite(g0).all())):
                return None
            row = self._grid(iso, closure, theta0, float(loss0), g0, float(lr))
            drawn = self.gen.get_state()
            mode = "central" if self.hvp_mode == "central" else "autograd"
            try:
                row.update(self._curvature(self._op(mode, iso, closure, theta0), theta0))
            except RuntimeError:
                if self.hvp_mode != "auto":
                    raise
                # a backward that cannot be differentiated again (once_differentiable, an
                # in-place update of what it saved): differences of gradients instead, from
                # the same random vectors
                self.gen.set_state(drawn)
                mode = "central"
                if not self.warned:
                    warnings.warn("normscope: the model's backward cannot be differentiated "
                                  "again; the smoothness probe takes Hessian-vector products "
                                  "by central differences of gradients (less accurate across "
                                  "ReLU kinks)", RuntimeWarning, stacklevel=3)
                    self.warned = True
                row.update(self._curvature(self._op(mode, iso, closure, theta0), theta0))
            row["hvp_pinned"] = 0.0
            row["products"] = mode
        return row

    def _grid(self, iso, closure, theta0, loss0, g0, lr):
        g0_norm = float(torch.linalg.vector_norm(g0.double()))
        u = -g0 / g0_norm if g0_norm > 0 else torch.zeros_like(g0)
        base = lr * math.sqrt(self.P)
        grid, pred, beta = [loss0], 0.0, 0.0
        for c in GRID_C:
            r = c * base
            loss, g = self._loss_grad(iso, closure, theta0 + r * u)
            grid.append(float(loss))
            diff = float(torch.linalg.vector_norm((g - g0).double()))
            pred, beta = max(pred, diff), max(beta, diff / r if r > 0 else math.nan)
        return {"loss_range": max(grid) - min(grid), "grad_predictiveness": pred,
                "beta_smoothness": beta, "grid_loss": np.array(grid)}

    def _gaussian(self, like):
        z = torch.randn(self.P, generator=self.gen, dtype=torch.float64)
        return (z / torch.linalg.vector_norm(z)).to(like)

    def _rademacher(self, like):
        z = torch.randint(0, 2, (self.P,), generator=self.gen, dtype=torch.int8)
        return (z.to(like.dtype) * 2 - 1).to(like.device)

    def _curvature(self, op, theta0):
        plan = self.plan
        top = np.full(plan.top, np.nan)
        nodes = np.full(plan.runs * plan.steps, np.nan)
        weights = np.zeros(plan.runs * plan.steps)
        shared = plan.runs > 0 and plan.steps == plan.iters and plan.iters > 0
        if plan.iters > 0:
            values, wts = lanczos(op, self._gaussian(theta0), plan.iters)
            order = np.argsort(-np.abs(values), kind="stable")[:plan.top]
            top[:len(order)] = values[order]
            if shared:
                _density_row(nodes, weights, 0, plan.steps, values, wts)
        trace = math.nan
        if plan.samples > 0:
            total = 0.0
            for _ in range(plan.samples):
                z = self._rademacher(theta0)
                total += float(torch.dot(z.double(), op(z).double()))
            trace = total / plan.samples
        for run in range(int(shared), plan.runs):
            values, wts = lanczos(op, self._gaussian(theta0), plan.steps)
            _density_row(nodes, weights, run, plan.steps, values, wts)
        return {"hessian_top_eig": float(top[0]), "hessian_top_eigs": top,
                "hessian_trace": trace, "density_nodes": nodes, "density_weights": weights}


def _density_row(nodes, weights, run, steps, values, wts):
    k = len(values)
    nodes[run * steps:run * steps + k] = values
    weights[run * steps:run * steps + k] = wts


def lanczos(op, start, steps):
    """Lanczos with full reorthogonalization (twice, as the C solver: float32 storage leaves
    components a single pass would let grow into copies of converged values). Returns the Ritz
    values of the tridiagonal (ascending) and their quadrature weights, the squared first
    components of its eigenvectors; fewer than `steps` when the Krylov space closes."""
    n = start.numel()
    basis = torch.empty((steps, n), dtype=start.dtype, device=start.device)
    basis[0] = start / torch.linalg.vector_norm(start)
    alpha, beta, scale = [], [], 0.0
    for j in range(steps):
        q = basis[j]
        w = op(q)
        alpha.append(float(torch.dot(w.double(), q.double())))
        for _ in range(2):
            w = w - basis[:j + 1].t() @ (basis[:j + 1] @ w)
        b = float(torch.linalg.vector_norm(w.double()))
        scale = max(scale, abs(alpha[j]) + b)
        if j + 1 == steps or not b > 1e-6 * scale:
            break
        beta.append(b)
        basis[j + 1] = w / b
    k = len(alpha)
    t = np.diag(alpha) + np.diag(beta[:k - 1], 1) + np.diag(beta[:k - 1], -1)
    values, vectors = np.linalg.eigh(t)
    return values, vectors[0] ** 2
