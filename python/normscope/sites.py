"""Norm sites of a torch.nn.Module: which modules are sites, what each normalized, its running
statistics and the gradients through its batch statistics.

Built in: nn.BatchNorm1d/2d/3d, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm (where torch has it).
Any other module is a site when it follows the protocol (docs/pytorch.md):

    normscope_channels          int: the statistics' width d
    normscope_running()         {"mean"|"var"|"psi2": [d]} running values before the forward
    normscope_forward()         after a training forward: {"x": [N, d] rows it normalized,
                                "mask": [N] bool real rows (optional), "batch": statistics it
                                used when not those of x's real rows (optional), "xhat": the
                                normalized rows, "nu": [d] before the backward,
                                "correction_scale": k of the k nu xhat its backward subtracts}
    normscope_backward(dy)      {"g_mu"|"g_sigma2"|"g_psi2": [d]} from dL/dy (rows [N, d])

Statistics are per channel over rows, as the C probes take them: a BN site's channels are its
features (every other axis is a row), a LN or RMS site's are its normalized features (its rows
are the tokens), a GroupNorm site's are its channels.
"""
import torch



def channels_last_rows(t, channels):
    """[N, C, *] -> [N * prod(*), C] (a view where it can be)."""
    if t.dim() == 2:
        return t
    return t.movedim(1, -1).reshape(-1, channels)


class BatchNormSite:
    """nn.BatchNorm*: running mean and (unbiased) variance, exact dL/dmu_B and dL/dsigma2_B."""

    def __init__(self, module):
        self.module, self.d = module, module.num_features
        self._rows = None

    def running(self):
        m = self.module
        if m.running_mean is None:
            return {}
        return {"mean": m.running_mean.detach().clone(), "var": m.running_var.detach().clone()}

    def forward(self, inputs, output):
        self._rows = channels_last_rows(inputs[0].detach(), self.d)
        return {"x": self._rows}

    def backward(self, grad_out):
        m, x = self.module, self._rows
        with torch.no_grad():
            g = channels_last_rows(grad_out, self.d)
            if m.weight is not None:
                g = g * m.weight
            mu = x.mean(0)
            var = x.var(0, unbiased=False)
            inv = 1.0 / torch.sqrt(var + m.eps)
            xhat = (x - mu) * inv
            return {"g_mu": -inv * g.sum(0), "g_sigma2": -0.5 * inv * inv * (g * xhat).sum(0)}


class RowsSite:
    """nn.LayerNorm / nn.RMSNorm (rows: tokens, channels: normalized features) and nn.GroupNorm
    (channels: its channels): no running statistics, no gradient through batch statistics."""

    def __init__(self, module, d, channel_axis):
        self.module, self.d, self.channel_axis = module, d, channel_axis

    def running(self):
        return {}

    def forward(self, inputs, output):
        x = inputs[0].detach()
        rows = channels_last_rows(x, self.d) if self.channel_axis else x.reshape(-1, self.d)
        return {"x": rows}

    def backward(self, grad_out):
        return {}


class ProtocolSite:
    """A custom module following the protocol (module docstring)."""

    def __init__(self, module):
        self.module, self.d = module, int(module.normscope_channels)

    def running(self):
        return self.module.normscope_running()

    def forward(self, inputs, output):
        return self.module.normscope_forward()

    def backward(self, grad_out):
        return self.module.normscope_backward(grad_out)


def site_for(module):
    """The site adapter of module, or None when it is not a norm site."""
    nn = torch.nn
    if hasattr(module, "normscope_forward") and hasattr(module, "normscope_channels"):
        return ProtocolSite(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return BatchNormSite(module)
    if isinstance(module, nn.LayerNorm):
        d = 1
        for n in module.normalized_shape:
            d *= n
        return RowsSite(module, d, channel_axis=False)
    if hasattr(nn, "RMSNorm") and isinstance(module, nn.RMSNorm):
        d = 1
        for n in module.normalized_shape:
            d *= n
        return RowsSite(module, d, channel_axis=False)
    if isinstance(module, nn.GroupNorm):
        return RowsSite(module, module.num_channels, channel_axis=True)
    return None


def find_sites(model):
    """(site name, adapter) for every norm site of model, in module order; names are module
    paths with '.' -> '/' (the run log's site paths)."""
    out = []
    for name, module in model.named_modules():
        site = site_for(module)
        if site is not None and name:
            out.append((name.replace(".", "/"), site))
    return out


def scheme_of(sites):
    """The `norm` attribute a log of these sites gets when the caller does not say."""
    kinds = set()
    for _, s in sites:
        m = s.module
        if isinstance(s, BatchNormSite):
            kinds.add("batch")
        elif isinstance(m, torch.nn.LayerNorm):
            kinds.add("layer")
        elif isinstance(m, torch.nn.GroupNorm):
            kinds.add("group")
        elif getattr(m, "kind", None):
            kinds.add(str(m.kind))
        else:
            kinds.add(type(m).__name__)
    return ",".join(sorted(kinds)) if kinds else "none"
