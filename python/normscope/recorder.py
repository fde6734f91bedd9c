"""normscope's probes on any torch.nn.Module, written through the C run-log writer.

    rec = normscope.Recorder(model, "run.h5", config={"norm": "batch", "steps": 1000})
    for batch in data:
        loss = ...; loss.backward(); opt.step(); opt.zero_grad()
        rec.step(loss=loss, lr=opt.param_groups[0]["lr"], tokens=n_tokens)
    rec.close()

The series and their definitions are the C probes' (docs/runlog.md): per step the loss, lr,
global gradient norm and speed; per norm site (sites.py) the distances between this batch's
statistics and the running ones, before the step's update (the scheme's running values where it
keeps them, else the recorder's own averages with momentum 0.1 from mean 0, var 1, psi2 1), the
gradients through the batch statistics, and the site's gradient gain; per parameter tensor the
gradient norm (before any clipping), norm, update size and distance from initialization.

Numbers are computed in torch, on the model's device, and moved to the host once per step. A
step's site rows come from the first training forward and backward after the previous step();
later passes (gradient accumulation, a probe's closure) are not recorded.
"""
import math
import time

import numpy as np
import torch

from . import __version__
from .runlog import RunLog, RunLogError, check_attr_names
from .sites import find_sites, scheme_of
from .smoothness import Plan, Smoothness, module_state

STATS = ("mean", "var", "psi2")
PROBE_MOMENTUM = 0.1
PROBES = "batch-stats,gradients,params"
LIPSCHITZ = ("loss_range", "grad_predictiveness", "beta_smoothness", "hessian_top_eig",
             "hessian_trace", "hvp_pinned")
LIPSCHITZ_VECTORS = ("grid_loss", "hessian_top_eigs", "density_nodes", "density_weights")
NAN = float("nan")


class _SiteState:
    def __init__(self, name, adapter, device):
        self.name, self.adapter, self.d = name, adapter, adapter.d
        d = self.d
        # the recorder's own running averages (float32, as the C probe's)
        self.own = {"mean": torch.zeros(d, device=device), "var": torch.ones(d, device=device),
                    "psi2": torch.ones(d, device=device)}
        self.running_before = None
        self.state_start = None  # the module's state before a measured step's forward
        self.seen = None     # this step's forward, awaiting its backward
        self.done = False    # this step's rows are taken


def _real_rows(mask, like):
    """The mask as a float64 column of 1 (real row) and 0, or None when every row is real.
    Multiplying by it is much cheaper than boolean indexing (a copy through a gather)."""
    if mask is None:
        return None
    m = mask.reshape(-1, 1)
    return None if bool(m.all()) else m.to(device=like.device, dtype=torch.float64)


def _batch_stats(x, mask):
    """mean, biased variance and quadratic mean per channel over the real rows, summed in
    float64 and kept as float32 (the C probe's batch_statistics)."""
    xd = x.double()
    m = _real_rows(mask, x)
    xm = xd if m is None else xd * m
    n = x.shape[0] if m is None else float(m.sum())
    s = xm.sum(0)
    q = (xm * xd).sum(0)
    mean, psi2 = s / n, q / n
    var = torch.clamp(psi2 - mean * mean, min=0.0)
    return {"mean": mean.float(), "var": var.float(), "psi2": psi2.float()}


def _distances(batch, running, d):
    """(1/d)||b - r|| and ||b - r|| / ||r|| for mean, var, psi2 (float64)."""
    out = []
    for k in STATS:
        diff = torch.linalg.vector_norm((batch[k].double() - running[k].double()))
        nr = torch.linalg.vector_norm(running[k].double())
        out.append((diff / d, torch.where(nr > 0, diff / nr, torch.full_like(nr, NAN))))
    return [a for a, _ in out] + [b for _, b in out]


TID_EPS = 1e-5


def _tid(batch, running, rows):
    """The training-inference discrepancy and its sampling floors (the C probe's tid_values and
    tid_floors, docs/runlog.md): tid_mean, tid_var, tid_psi2, then the three floors for `rows`
    independent normal rows (NaN when the row count is unknown), float64."""
    mu, var, psi2 = (batch[k].double() for k in STATS)
    r_mean, r_var, r_psi2 = (running[k].double() for k in STATS)
    sd = torch.sqrt(var + TID_EPS)
    tids = [((r_mean - mu).abs() / sd).mean(),
            (torch.sqrt(r_var + TID_EPS) / sd - 1.0).abs().mean(),
            (torch.sqrt(r_psi2 + TID_EPS) / torch.sqrt(psi2 + TID_EPS) - 1.0).abs().mean()]
    n = float(rows) if rows else NAN
    psi2_floor = (torch.sqrt((var * var + 2.0 * mu * mu * var) / (math.pi * n)) /
                  (psi2 + TID_EPS)).mean()
    floors = [torch.full_like(tids[0], math.sqrt(2.0 / (math.pi * n))),
              torch.full_like(tids[0], 1.0 / math.sqrt(math.pi * n)), psi2_floor]
    return tids + floors


def _rows(data):
    """Real rows the statistics ran over: the protocol's `rows`, else counted from x and mask."""
    if data.get("rows") is not None:
        return int(data["rows"])
    if data.get("x") is None:
        return 0
    mask = data.get("mask")
    return int(mask.sum()) if mask is not None else int(data["x"].shape[0])


def _sumsq(t):
    """Sum of squares of a tensor as a float64 0-d tensor. The norm is taken in the tensor's
    own precision (torch reduces float32 in blocks: relative error ~1e-6 on millions of
    values, far inside the parity tolerance), without a float64 copy of every parameter each
    step, which cost several percent of a `small` step."""
    return torch.linalg.vector_norm(t).double() ** 2


def _scaled_norm(v, d, device):
    if v is None:
        return torch.tensor(NAN, dtype=torch.float64, device=device)
    return torch.linalg.vector_norm(v.double()) / d


class Recorder:
    """Attaches normscope's probes to model and writes path (a normscope run log).

    config: root attributes of the schema (docs/runlog.md), e.g. norm, d_model, lr, steps,
      seed; anything else is an error. norm defaults to the sites' scheme ("batch" for BN).
    param_names: (name, parameter) pairs to record (default model.named_parameters(), names
      with '.' -> '/'); probe_vectors_every: statistic vectors every N steps (and at step 1;
      0: never); flush_every: steps between flushes; overwrite: replace an existing log.
    lipschitz_every: the smoothness probe every N steps (0: off), measured by smoothness(),
      which the training loop calls between backward and optimizer step; hessian_iters,
      hessian_top, hutchinson_samples, density_runs, density_steps: its plan (the C engine's
      flags and defaults); hvp: "auto" (exact autograd products unless a site says its
      backward is not its forward's gradient), "autograd" or "central" (smoothness.py)."""

    def __init__(self, model, path, config=None, param_names=None, probe_vectors_every=100,
                 flush_every=10, overwrite=False, lipschitz_every=0, hessian_iters=10,
                 hessian_top=1, hutchinson_samples=4, density_runs=1, density_steps=0,
                 hvp="auto"):
        if flush_every <= 0 or probe_vectors_every < 0 or lipschitz_every < 0:
            raise ValueError("normscope: flush_every must be > 0, probe_vectors_every and "
                             "lipschitz_every >= 0")
        self.model, self.flush_every, self.vectors_every = model, flush_every, probe_vectors_every
        params = list(param_names if param_names is not None else
                      ((n.replace(".", "/"), p) for n, p in model.named_parameters()))
        self.params = [(n, p) for n, p in params if p.requires_grad]
        self.device = self.params[0][1].device if self.params else torch.device("cpu")
        self.sites = [_SiteState(n, a, self.device) for n, a in find_sites(model)]
        check_attr_names(config or {})  # before the file exists: a refused config leaves none
        self.lipschitz_every = lipschitz_every
        self.plan = Plan(hessian_iters, hessian_top, hutchinson_samples, density_runs,
                         density_steps)
        self.smooth = None
        self.measuring = False
        self.log = RunLog(path, overwrite=overwrite, flush_every=flush_every)
        try:
            self._write_attrs(dict(config or {}))
            self._declare()
            self.log.start()
        except (RunLogError, ValueError):
            self.log.close()
            raise
        self.step_no = 0
        if lipschitz_every:
            self.smooth = Smoothness(model, [p for _, p in self.params], self.plan,
                                     self.seed, hvp)
        self.t_start = self.t_last = time.perf_counter()
        self.probe_seconds = 0.0
        with torch.no_grad():
            self.init = [p.detach().clone() for _, p in self.params]
            self.before = [p.detach().clone() for _, p in self.params]
        # one reused buffer for p - p_init: a fresh temporary of every tensor each step costs
        # more in page faults than the subtraction itself
        self.scratch = torch.empty(max((p.numel() for _, p in self.params), default=0),
                                   dtype=torch.float32, device=self.device)
        self.grad_sq = [None] * len(self.params)
        self.handles = []
        self._attach()

    # ------------------------------------------------------------------ declarations

    def _write_attrs(self, cfg):
        cfg.setdefault("norm", scheme_of([(s.name, s.adapter) for s in self.sites]))
        cfg.setdefault("steps", 0)
        cfg.setdefault("seed", torch.initial_seed() % (1 << 63))
        cfg.setdefault("probes", PROBES + (",lipschitz" if self.lipschitz_every else ""))
        cfg.setdefault("probe_vectors_every", self.vectors_every)
        if self.lipschitz_every:
            plan = self.plan
            for key, value in (("lipschitz_every", self.lipschitz_every),
                               ("hessian_iters", plan.iters), ("hessian_top", plan.top),
                               ("hutchinson_samples", plan.samples),
                               ("density_runs", plan.runs),
                               ("density_steps", plan.steps if plan.runs else 0)):
                if key in cfg and int(cfg[key]) != value:
                    raise ValueError(f"normscope: config['{key}'] = {cfg[key]} disagrees with "
                                     f"the recorder's {key}={value}: give it once")
                cfg[key] = value
        self.seed, self.total_steps = int(cfg["seed"]), int(cfg["steps"])
        cfg.setdefault("flush_every", self.flush_every)
        cfg.setdefault("normscope_version", __version__ + " (python recorder)")
        for key, value in cfg.items():
            self.log.set_attr(key, value)

    def _declare(self):
        log = self.log
        log.add_group("steps", "steps")
        log.add_group("eval", "eval")
        for s in self.sites:
            g = "norms/" + s.name
            log.add_group("site", g)
            log.add_group("vectors", g + "/vectors", channels=s.d)
            log.add_group("site_grads", g)
        log.add_group("params", "params")
        for name, _ in self.params:
            log.add_group("tensor", "params/" + name)
        if self.lipschitz_every:
            log.add_group("lipschitz", "lipschitz", **self.plan.widths)
        h = log.series
        self.h_steps = [h("steps/" + k) for k in (
            "step", "loss", "lr", "grad_norm", "tokens_per_s", "real_tokens_per_s",
            "step_seconds", "wall_time", "padding_fraction", "probe_seconds")]
        self.h_eval = [h("eval/" + k) for k in ("step", "loss", "ppl")]
        for s in self.sites:
            g = "norms/" + s.name
            s.h_step = h(g + "/step")
            s.h_rows = [h(g + "/" + k) for k in (
                "dist_mean", "dist_var", "dist_psi2", "rel_dist_mean", "rel_dist_var",
                "rel_dist_psi2", "tid_mean", "tid_var", "tid_psi2", "tid_mean_floor",
                "tid_var_floor", "tid_psi2_floor", "g_mu", "g_sigma2", "g_psi2", "nu_norm",
                "correction_norm", "grad_out_norm", "grad_in_norm", "grad_gain", "grad_in_max")]
            s.h_vec_step = h(g + "/vectors/step")
            s.h_vec = [h(g + "/vectors/" + k) for k in (
                "batch_mean", "batch_var", "batch_psi2", "running_mean", "running_var",
                "running_psi2")]
        self.h_params_step = h("params/step")
        if self.lipschitz_every:
            self.h_lip_step, self.h_lip_seconds = h("lipschitz/step"), h("lipschitz/seconds")
            self.h_lip = [h("lipschitz/" + k) for k in LIPSCHITZ]
            w = self.plan.widths  # a series of width 0 is not declared
            self.h_lip_vec = [h("lipschitz/" + k) if w[g] else None for k, g in zip(
                LIPSCHITZ_VECTORS, ("grid", "hessian_top", "density", "density"))]
        self.h_tensor = [[h(f"params/{n}/{k}") for k in (
            "grad_norm", "param_norm", "update_norm", "dist_init")] for n, _ in self.params]

    # ------------------------------------------------------------------ hooks

    def _attach(self):
        for s in self.sites:
            m = s.adapter.module
            self.handles.append(m.register_forward_pre_hook(self._pre_hook(s)))
            self.handles.append(m.register_forward_hook(self._fwd_hook(s)))
            self.handles.append(m.register_full_backward_hook(self._bwd_hook(s)))
        for i, (_, p) in enumerate(self.params):
            if hasattr(p, "register_post_accumulate_grad_hook"):
                self.handles.append(p.register_post_accumulate_grad_hook(self._grad_hook(i)))

    def _recording(self, s):
        return (self.model.training and torch.is_grad_enabled() and not s.done
                and not self.measuring)

    def _pre_hook(self, s):
        def hook(module, inputs):
            if self._recording(s) and s.seen is None:
                s.running_before = s.adapter.running()
                if self._smoothness_due(self.step_no + 1):
                    s.state_start = module_state(module)
        return hook

    def _fwd_hook(self, s):
        def hook(module, inputs, output):
            if not self._recording(s) or s.seen is not None:
                return
            t0 = time.perf_counter()
            with torch.no_grad():
                s.seen = self._forward_rows(s, s.adapter.forward(inputs, output))
            self.probe_seconds += time.perf_counter() - t0
        return hook

    def _forward_rows(self, s, data):
        """The batch-stats rows of this forward (tensors), the own averages updated."""
        if data is None:
            return None
        batch = data.get("batch") or _batch_stats(data["x"], data.get("mask"))
        batch = {k: batch[k].detach().float() for k in STATS}
        running = {k: v.clone() for k, v in s.own.items()}  # before the update below
        running.update({k: v.float() for k, v in (s.running_before or {}).items()})
        for k in STATS:
            s.own[k] += PROBE_MOMENTUM * (batch[k] - s.own[k])
        return {"dist": _distances(batch, running, s.d) + _tid(batch, running, _rows(data)),
                "batch": batch, "running": running, "data": data}

    def _bwd_hook(self, s):
        def hook(module, grad_input, grad_output):
            if s.seen is None or s.done or self.measuring or grad_output[0] is None:
                return
            t0 = time.perf_counter()
            with torch.no_grad():
                s.seen["grads"] = self._backward_rows(s, grad_input[0], grad_output[0])
            s.done = True
            self.probe_seconds += time.perf_counter() - t0
        return hook

    def _backward_rows(self, s, dx, dy):
        d, dev = s.d, dy.device
        data = s.seen["data"]
        g = s.adapter.backward(dy) or {}
        if dx is None:
            dx = torch.zeros_like(dy)
        # norms in float32 (torch reduces in blocks: ~1e-6 relative here), not through
        # float64 copies of the site's whole gradient
        out = torch.linalg.vector_norm(dy).double()
        inn = torch.linalg.vector_norm(dx).double()
        nu = data.get("nu")
        row = [_scaled_norm(g.get(k), d, dev) for k in ("g_mu", "g_sigma2", "g_psi2")]
        row.append(_scaled_norm(nu, d, dev))
        row.append(self._correction_norm(data, nu, dev))
        row += [out, inn, torch.where(out > 0, inn / out, torch.full_like(out, NAN)),
                dx.abs().max().double()]
        return row

    @staticmethod
    def _correction_norm(data, nu, dev):
        """|k| sqrt(sum_c nu_c^2 sum_{real rows} xhat_rc^2) (NaN when none is subtracted)."""
        k = data.get("correction_scale")
        xhat = data.get("xhat")
        if nu is None or k is None or xhat is None or math.isnan(k):
            return torch.tensor(NAN, dtype=torch.float64, device=dev)
        xd = xhat.double()
        m = _real_rows(data.get("mask"), xhat)
        col = ((xd * xd) if m is None else (xd * xd * m)).sum(0)
        return abs(k) * torch.sqrt((nu.double() ** 2 * col).sum())

    def _grad_hook(self, i):
        def hook(p):
            # after accumulation, before any clipping: the last call holds the step's gradient
            self.grad_sq[i] = _sumsq(p.grad.detach())
        return hook

    # ------------------------------------------------------------------ rows

    def step(self, loss, lr=NAN, tokens=0, positions=None):
        """After each optimizer step: records the step's rows (loss: float or 0-d tensor; lr;
        tokens: real tokens in the batch; positions: tokens plus padding, default tokens)."""
        t0 = time.perf_counter()
        self.step_no += 1
        n = self.step_no
        step_seconds, self.t_last = t0 - self.t_last, t0
        scalars, layout = self._gather(loss)
        host = torch.stack(scalars).cpu().numpy() if scalars else np.zeros(0)
        self._append_rows(n, host, layout, lr, tokens, positions, step_seconds, t0)
        t_tail = time.perf_counter()
        self._append_vectors(n)
        self._next_step()
        if n % self.flush_every == 0:
            self.log.flush()
        # counted in the next row's probe_seconds, as the C probes count their end of step
        self.probe_seconds += time.perf_counter() - t_tail

    def _gather(self, loss):
        """Every scalar of the step as one list of 0-d float64 tensors (one transfer)."""
        dev = self.device
        nan = torch.tensor(NAN, dtype=torch.float64, device=dev)
        vals = [torch.as_tensor(loss, dtype=torch.float64).detach().to(dev).reshape(())]
        layout = {"tensors": len(self.params)}
        with torch.no_grad():
            for i, (_, p) in enumerate(self.params):
                gsq = self.grad_sq[i]
                if gsq is None:
                    gsq = (_sumsq(p.grad.detach()) if p.grad is not None
                           else torch.zeros((), dtype=torch.float64, device=dev))
                cur, before = p.detach(), self.before[i]
                vals += [gsq, _sumsq(before)]
                torch.sub(cur, before, out=before)  # before holds the update until _next_step
                vals.append(_sumsq(before))
                if cur.dtype == self.scratch.dtype and cur.device == self.scratch.device:
                    away = self.scratch[:cur.numel()].view_as(cur)
                    torch.sub(cur, self.init[i], out=away)
                else:
                    away = cur - self.init[i]
                vals.append(_sumsq(away))
            for s in self.sites:
                seen = s.seen
                if seen is None:
                    vals += [nan] * 21
                    continue
                vals += [v.to(dev) for v in seen["dist"]]
                vals += [v.to(dev) for v in seen.get("grads", [nan] * 9)]
        return [v.reshape(()) for v in vals], layout

    def _append_rows(self, n, host, layout, lr, tokens, positions, step_seconds, t0):
        log = self.log
        loss, k = float(host[0]), 1
        grad_total = 0.0
        log.append_i64(self.h_params_step, n)
        for hs in self.h_tensor:
            gsq, psq, usq, isq = host[k:k + 4]
            k += 4
            grad_total += gsq
            for h, v in zip(hs, (gsq, psq, usq, isq)):
                log.append_f64(h, math.sqrt(max(float(v), 0.0)))
        for s in self.sites:
            log.append_i64(s.h_step, n)
            for h in s.h_rows:
                log.append_f64(h, float(host[k]))
                k += 1
        positions = tokens if positions is None else positions
        self.probe_seconds += time.perf_counter() - t0
        secs = max(step_seconds, 1e-12)
        h = self.h_steps
        for handle, value in zip(h[1:], (
                loss, float(lr), math.sqrt(grad_total), positions / secs, tokens / secs,
                step_seconds, t0 - self.t_start,
                1.0 - tokens / positions if positions > 0 else 0.0, self.probe_seconds)):
            log.append_f64(handle, value)
        log.append_i64(h[0], n)
        self.probe_seconds = 0.0

    def _append_vectors(self, n):
        every = self.vectors_every
        if every <= 0 or (n % every != 0 and n != 1):
            return
        for s in self.sites:
            if s.seen is None:
                continue
            log = self.log
            log.append_i64(s.h_vec_step, n)
            rows = [s.seen["batch"][k] for k in STATS] + [s.seen["running"][k] for k in STATS]
            for h, v in zip(s.h_vec, rows):
                log.append_f32(h, np.ascontiguousarray(v.detach().float().cpu().numpy()))

    def _next_step(self):
        with torch.no_grad():
            for i, (_, p) in enumerate(self.params):
                self.before[i].copy_(p.detach())
        self.grad_sq = [None] * len(self.params)
        for s in self.sites:
            s.seen, s.done, s.running_before, s.state_start = None, False, None, None

    def _smoothness_due(self, n):
        every = self.lipschitz_every
        return bool(every) and (n % every == 0 or (n == self.total_steps and n < every))

    def smoothness(self, closure, lr):
        """The smoothness probe (lipschitz/), called every step between the backward and the
        optimizer step: when this step is due (every lipschitz_every steps, and at the last
        step of a run shorter than that), measures around the current parameters on
        closure(), which returns the training loss of this step's batch; else returns at once.
        Returns the row measured, or None. Training is unchanged by it (smoothness.py)."""
        n = self.step_no + 1
        if not self._smoothness_due(n):
            return None
        t0 = time.perf_counter()
        self.measuring = True
        start = {s.adapter.module: s.state_start for s in self.sites
                 if s.state_start is not None}
        try:
            row = self.smooth.measure(closure, lr, start)
        finally:
            self.measuring = False
        if row is None:  # a non-finite loss: nothing to measure, as the C probe
            return None
        log = self.log
        for h, k in zip(self.h_lip, LIPSCHITZ):
            log.append_f64(h, row[k])
        for h, k in zip(self.h_lip_vec, LIPSCHITZ_VECTORS):
            if h is not None:
                log.append_f32(h, np.ascontiguousarray(row[k], dtype=np.float32))
        log.append_i64(self.h_lip_step, n)
        log.append_f64(self.h_lip_seconds, time.perf_counter() - t0)
        return row

    def mark_parameters(self):
        """The parameters were set outside the optimizer (a checkpoint loaded): the next step's
        update_norm is measured from their values now."""
        with torch.no_grad():
            for i, (_, p) in enumerate(self.params):
                self.before[i].copy_(p.detach())

    def evaluate(self, loss=NAN, ppl=None):
        """A validation pass after the current step: loss, and perplexity (default exp(loss))."""
        loss = float(loss)
        if ppl is None:
            ppl = math.exp(loss) if loss < 700 else math.inf
        self.log.append_i64(self.h_eval[0], self.step_no)
        self.log.append_f64(self.h_eval[1], loss)
        self.log.append_f64(self.h_eval[2], float(ppl))

    def flush(self):
        self.log.flush()

    def close(self):
        """Removes the hooks, writes the rows not yet flushed and closes the log."""
        for h in self.handles:
            h.remove()
        self.handles = []
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
