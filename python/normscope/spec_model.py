"""The model of normscope's specification (README "The model and the normalization schemes",
docs/model-spec.md) in PyTorch, written from the spec's text, not from the C code: the one
implementation that bench/torch_ref.py (debug-state replay, the speed benchmark) and
examples/transformer_lm.py (training with the recorder, the parity test) share.

Its norm sites (NormSite) follow the recorder's protocol for custom normalization modules
(docs/pytorch.md): they say which rows they normalize, the statistics they used, their running
values and the gradients through their batch statistics, so the recorder measures them exactly
as the C probes measure the C engine's sites.
"""
import math

import torch
import torch.nn.functional as F

EPS = 1e-5


# ----------------------------------------------------------------------------- norm schemes

def group_scale(x, groups):
    """Each row divided, per group of d/G channels, by sqrt(mean x^2 + eps) (exact gradient)."""
    if groups <= 0:
        return x
    n, d = x.shape
    g = x.view(n, groups, d // groups)
    return (g / torch.sqrt((g * g).mean(dim=2, keepdim=True) + EPS)).view(n, d)


# The two approximate backwards recompute their normalized rows from the saved input (with its
# history) and use a copy of nu (the state is updated in place only under no_grad), so a double
# backward differentiates the approximate gradient itself, as a function of the parameters: the
# curvature the smoothness probe measures for them (the C engine takes differences of it).

class PowerPaper(torch.autograd.Function):
    """PN after warm-up as the paper states it: forward with the running psi2 r, backward
    g' = g - nu*xhat, dx = g'/sqrt(r+eps) (0 at padding), nu += (1-a) mean_S(xhat*g')."""

    @staticmethod
    def forward(ctx, x, r, nu, mask, alpha):
        ctx.save_for_backward(x, r, nu.clone(), mask)
        ctx.nu, ctx.alpha = nu, alpha
        return x / torch.sqrt(r + EPS)

    @staticmethod
    def backward(ctx, g):
        x, r, nu, mask = ctx.saved_tensors
        xhat = x / torch.sqrt(r + EPS)
        gp = g - nu * xhat
        real = mask.unsqueeze(1)
        dx = gp / torch.sqrt(r + EPS) * real
        with torch.no_grad():
            n = mask.sum()
            ctx.nu.add_((1 - ctx.alpha) * (xhat * gp * real).sum(0) / n)
        return dx, None, None, None, None


class PowerOfficial(torch.autograd.Function):
    """The released code's PN backward: g' = g - (1-a) nu z, nu += mean over ALL rows of g' z,
    dx = g' / sqrt(psi2_B + eps) at every row, in every phase."""

    @staticmethod
    def forward(ctx, x, denom_fwd, psi2_b, nu, alpha):
        ctx.save_for_backward(x, denom_fwd, psi2_b, nu.clone())
        ctx.nu, ctx.alpha = nu, alpha
        return x / torch.sqrt(denom_fwd + EPS)

    @staticmethod
    def backward(ctx, g):
        x, denom_fwd, psi2_b, nu = ctx.saved_tensors
        z = x / torch.sqrt(denom_fwd + EPS)
        gp = g - (1 - ctx.alpha) * nu * z
        with torch.no_grad():
            ctx.nu.add_((gp * z).mean(0))
        # psi2_b (and the warm-up's divisor) arrive with their history: no gradient flows
        # through them here, but a double backward sees how they move with the parameters
        return gp / torch.sqrt(psi2_b + EPS), None, None, None, None


class NormSite(torch.nn.Module):
    def __init__(self, kind, d, cfg):
        super().__init__()
        self.kind, self.d = kind, d
        self.alpha, self.warmup = cfg["pn_alpha"], cfg["pn_warmup"]
        self.groups = cfg["pn_groups"] if kind in ("power", "power-official") else 0
        self.momentum = cfg["bn_momentum"]
        # batch-regularized: the penalty's weights; n_objective (the batch's real tokens) is set
        # by the model before each forward, penalty is this forward's P
        self.lm, self.lv = cfg.get("rbn_penalty_mean", 0.0), cfg.get("rbn_penalty_var", 0.0)
        self.n_objective, self.penalty = 1, 0.0
        self.affine = kind != "none"
        if self.affine:
            self.weight = torch.nn.Parameter(torch.ones(d))
            self.bias = torch.nn.Parameter(torch.zeros(d))
        self.state = {}
        if kind in ("batch", "batch-regularized", "batch-official"):
            self.state = {"running_mean": torch.zeros(d), "running_var": torch.ones(d)}
        elif kind == "power-v":
            self.state = {"running_psi2": torch.ones(d)}
        elif kind in ("power", "power-official"):
            self.state = {"running_psi2": torch.ones(d), "nu": torch.zeros(d)}
        self.step = 0
        self._seen = None

    # ------------------------------------------------ the recorder's protocol (docs/pytorch.md)

    def _remember(self, x, mask, grads=None, batch=None, nu=None, correction=None):
        """What this training forward normalized, for the recorder (nothing is kept when no
        recorder asks: normscope_forward() is only called by one)."""
        if not self.training:
            return
        self._seen = {"x": x.detach(), "mask": mask, "grads": grads, "batch": batch,
                      "nu": None if nu is None else nu.clone(), "correction_scale": correction}

    def _correction_scale(self, in_warmup):
        if self.kind == "power":
            return float("nan") if in_warmup else 1.0
        return 1.0 - self.alpha  # power-official subtracts (1 - alpha) nu z in every phase

    @property
    def normscope_channels(self):
        return self.d

    def normscope_running(self):
        """The running statistics this scheme keeps, before this step's forward updates them."""
        st = self.state
        keys = {"running_mean": "mean", "running_var": "var", "running_psi2": "psi2"}
        return {keys[k]: v.detach().clone() for k, v in st.items() if k in keys}

    def normscope_state(self):
        """The state a smoothness measurement starts every evaluation from."""
        return {"state": {k: v.detach().clone() for k, v in self.state.items()},
                "step": self.step}

    def normscope_load_state(self, saved):
        self.state = {k: v.clone() for k, v in saved["state"].items()}
        self.step = saved["step"]

    def normscope_forward(self):
        """Rows normalized by the last training forward (after any row scaling), their mask, the
        statistics used where they are not those of the real rows, nu before the backward."""
        if self._seen is None:
            return None
        out = {k: v for k, v in self._seen.items() if k != "grads" and v is not None}
        return out

    def normscope_backward(self, grad_out):
        """dL/d(statistic) through the batch statistics this forward used, from dL/dy:
        g = weight * dL/dy, xhat the normalized rows; over all rows (padding included):
        mean-based schemes dL/dmu = -inv sum g, dL/dsigma2 = -inv^2/2 sum g xhat;
        psi2-based dL/dpsi2 = -inv^2/2 sum g xhat."""
        seen = self._seen
        if seen is None or seen["grads"] is None:
            return {}
        kind, rows, mu, stat = seen["grads"]
        with torch.no_grad():
            g = grad_out * self.weight
            inv = 1.0 / torch.sqrt(stat.detach() + EPS)
            rows = rows.detach()
            if kind == "mean":
                xhat = (rows - mu.detach()) * inv
                return {"g_mu": -inv * g.sum(0),
                        "g_sigma2": -0.5 * inv * inv * (g * xhat).sum(0)}
            xhat = rows * inv
            return {"g_psi2": -0.5 * inv * inv * (g * xhat).sum(0)}

    def forward(self, x, mask):
        k = self.kind
        self._seen = None  # what the recorder's protocol reports for this forward
        if k == "none":
            self._remember(x, mask)
            return x
        if k == "layer":
            self._remember(x, mask)
            xhat = F.layer_norm(x, (self.d,), eps=EPS)
        elif k == "rms":
            self._remember(x, mask)
            xhat = x / torch.sqrt((x * x).mean(dim=1, keepdim=True) + EPS)
        elif k in ("batch", "batch-regularized"):
            xhat = self.batch(x, mask)
        elif k == "batch-official":
            xhat = self.batch_official(x, mask)
        elif k == "power-v":
            xhat = self.power_v(x, mask)
        else:
            xhat = self.power(group_scale(x, self.groups), mask)
        if self._seen is not None:
            self._seen["xhat"] = xhat.detach()
        return xhat * self.weight + self.bias

    def batch(self, x, mask):
        if not self.training:
            return (x - self.state["running_mean"]) / torch.sqrt(self.state["running_var"] + EPS)
        xs = x[mask]
        n = xs.shape[0]
        mu, var = xs.mean(0), xs.var(0, unbiased=False)
        self._remember(x, mask, grads=("mean", x, mu, var))
        with torch.no_grad():
            m = self.momentum
            unbias = n / (n - 1) if n > 1 else 1.0
            self.state["running_mean"].mul_(1 - m).add_(m * mu)
            self.state["running_var"].mul_(1 - m).add_(m * var * unbias)
        if self.kind == "batch-regularized":
            # after the update; the running values are constants (buffers without gradient)
            r_mean, r_var = self.state["running_mean"], self.state["running_var"]
            self.penalty = (self.lm * ((r_mean - mu) ** 2).sum() +
                            self.lv * (r_var - var).abs().sum()) / self.n_objective
        return (x - mu) / torch.sqrt(var + EPS)

    def batch_official(self, x, mask):
        u = group_scale(x, 1)
        if not self.training:
            return (u - self.state["running_mean"]) / torch.sqrt(self.state["running_var"] + EPS)
        mu_s = u[mask].mean(0)
        w = torch.where(mask.unsqueeze(1), u, mu_s.expand_as(u))
        n = w.shape[0]
        mu, var = w.mean(0), w.var(0, unbiased=False)
        # its statistics run over all N mean-filled rows, not the real rows of u
        self._remember(u, mask, grads=("mean", w, mu, var),
                       batch={"mean": mu, "var": var, "psi2": var + mu * mu})
        with torch.no_grad():
            m = self.momentum
            self.state["running_mean"].mul_(1 - m).add_(m * mu)
            self.state["running_var"].mul_(1 - m).add_(m * var * n / (n - 1))
        return (w - mu) / torch.sqrt(var + EPS)

    def power_v(self, x, mask):
        if not self.training:
            return x / torch.sqrt(self.state["running_psi2"] + EPS)
        psi2 = (x[mask] ** 2).mean(0)
        self._remember(x, mask, grads=("psi2", x, None, psi2))
        with torch.no_grad():
            a = self.alpha
            self.state["running_psi2"].mul_(a).add_((1 - a) * psi2)
        return x / torch.sqrt(psi2 + EPS)

    def power(self, x, mask):
        r = self.state["running_psi2"]
        if not self.training:
            return x / torch.sqrt(r + EPS)
        self.step += 1
        t, a = self.step, self.alpha
        psi2_live = (x[mask] ** 2).mean(0)  # with its history: see PowerOfficial
        psi2 = psi2_live.detach()
        in_warmup = self.kind == "power" and t <= self.warmup
        self._remember(x, mask, grads=("psi2", x, None, psi2) if in_warmup else None,
                       nu=self.state["nu"], correction=self._correction_scale(in_warmup))
        if self.kind == "power":
            if t <= self.warmup:
                psi2_g = (x[mask] ** 2).mean(0)
                with torch.no_grad():
                    r.mul_((t - 1) / t).add_(psi2 / t)
                return x / torch.sqrt(psi2_g + EPS)
            r_before = r.clone()
            with torch.no_grad():
                r.mul_(a).add_((1 - a) * psi2)
            return PowerPaper.apply(x, r_before, self.state["nu"], mask, a)
        denom = psi2_live if t <= self.warmup else r.clone()
        with torch.no_grad():
            if t < self.warmup:
                r.mul_((t - 1) / t).add_(psi2 / t)
            r.mul_(a).add_((1 - a) * psi2)
        return PowerOfficial.apply(x, denom, psi2_live, self.state["nu"], a)


# ----------------------------------------------------------------------------- the model

class Model(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        V, d, F_, L = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"], cfg["n_layers"]
        self.cfg, self.d, self.H, self.pre = cfg, d, cfg["n_heads"], cfg["norm_position"] == "pre"
        # a module, not F.dropout: the recorder's smoothness probe switches nn.Dropout off
        self.drop = torch.nn.Dropout(cfg.get("dropout", 0.0))
        self.embed = torch.nn.Parameter(torch.randn(V, d) * 0.02)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            layer = torch.nn.Module()
            layer.attn = torch.nn.ModuleDict({k: torch.nn.Linear(d, d) for k in "qkvo"})
            layer.w1, layer.w2 = torch.nn.Linear(d, F_), torch.nn.Linear(F_, d)
            layer.norm1 = NormSite(cfg["norm"], d, cfg)
            layer.norm2 = NormSite(cfg["norm"], d, cfg)
            self.layers.append(layer)
        self.final_norm = NormSite(cfg["norm"], d, cfg) if self.pre else None
        T = cfg["seq_len"]
        pos = torch.arange(T, dtype=torch.float64).unsqueeze(1)
        i2 = torch.arange(0, d, 2, dtype=torch.float64)
        angle = pos / torch.pow(10000.0, i2 / d)
        pe = torch.zeros(T, d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        self.register_buffer("pe", pe.float())

    def attention(self, layer, x, B, T):
        d, H = self.d, self.H
        dk = d // H
        q, k, v = (layer.attn[n](x).view(B, T, H, dk).transpose(1, 2) for n in "qkv")
        scores = q @ k.transpose(2, 3) / math.sqrt(dk)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        c = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B * T, d)
        return self.drop(layer.attn["o"](c))

    def ffn(self, layer, x):
        return self.drop(layer.w2(F.relu(layer.w1(x))))

    def forward(self, tokens, mask):
        B, T = mask.shape
        inp, tgt = tokens[:, :T], tokens[:, 1:]
        x = math.sqrt(self.d) * self.embed[inp] + self.pe[:T]
        x = self.drop(x.reshape(B * T, self.d))
        m = mask.reshape(-1)
        for _, site in self.sites():
            site.n_objective, site.penalty = int(m.sum()), 0.0
        for layer in self.layers:
            if self.pre:
                x = x + self.attention(layer, layer.norm1(x, m), B, T)
                x = x + self.ffn(layer, layer.norm2(x, m))
            else:
                x = layer.norm1(x + self.attention(layer, x, B, T), m)
                x = layer.norm2(x + self.ffn(layer, x), m)
        if self.pre:
            x = self.final_norm(x, m)
        logits = x @ self.embed.t()
        return F.cross_entropy(logits[m], tgt.reshape(-1)[m])

    def penalty(self):
        """The sites' penalties of the last training forward (batch-regularized; else 0): the
        objective is the cross-entropy plus this."""
        return sum(site.penalty for _, site in self.sites())

    def sites(self):
        out = []
        for l, layer in enumerate(self.layers):
            out += [(f"layers/{l}/norm1", layer.norm1), (f"layers/{l}/norm2", layer.norm2)]
        if self.pre:
            out.append(("final_norm", self.final_norm))
        return out

    def named_spec_params(self):
        """(spec name, parameter) pairs, names as in the model spec's parameter table."""
        yield "embed", self.embed
        for l, layer in enumerate(self.layers):
            for n in "qkvo":
                yield f"layers/{l}/attn/w{n}", layer.attn[n].weight
                yield f"layers/{l}/attn/b{n}", layer.attn[n].bias
            yield f"layers/{l}/ffn/w1", layer.w1.weight
            yield f"layers/{l}/ffn/b1", layer.w1.bias
            yield f"layers/{l}/ffn/w2", layer.w2.weight
            yield f"layers/{l}/ffn/b2", layer.w2.bias
        for name, site in self.sites():
            if site.affine:
                yield f"{name}/weight", site.weight
                yield f"{name}/bias", site.bias


# ----------------------------------------------------------------------------- debug states

def load_params(model, g):
    """The parameters of a debug state's step group g (docs/debug-state.md), in the model's
    dtype and on its device."""
    with torch.no_grad():
        for name, p in model.named_spec_params():
            p.copy_(torch.from_numpy(g["params/" + name][()]).to(p))


def load_state_before(model, g):
    """The norm state before the step of step group g: running statistics, nu, step counters."""
    dtype = model.embed.dtype  # the state follows the model's precision (float64 in a replay)
    for name, site in model.sites():
        for key, old in site.state.items():
            site.state[key] = torch.from_numpy(g[f"state_before/{name}/{key}"][()]).to(
                device=old.device, dtype=dtype)
        if f"state_before/{name}/step" in g:
            site.step = int(g[f"state_before/{name}/step"][()])

