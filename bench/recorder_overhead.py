#!/usr/bin/python3
"""The PyTorch recorder's cost at default cadences (vectors every 100 steps, flush every 10) on
the spec's `small` model (d=256, L=4, H=4, F=1024, T=64, B=32, V=10000, random batches).

Two measures, both within this one run:
  A/B      training steps alternate, one by one, between the recorder attached (its hooks on,
           step() called) and detached (no hooks), so machine load hits both alike; the
           --quantile of each side's step times and their difference in percent. On a shared
           machine step times scatter by several percent, so this needs many steps.
  own      the recorder's own time per step (the log's probe_seconds: its hooks and its
           step(), the C writer included) over the median step without it: what the
           recorder adds, without the scatter of the step times.
and the cost of one smoothness measurement at the default plan (lipschitz/, on the step's
batch, the fastest of --smooth-repeats) in training steps without the recorder.
Prints: without_s with_s ab_percent own_percent smooth_steps.
A benchmark (scripts/bench.sh, section recorder), never a test."""
import argparse
import os
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normscope  # noqa: E402
from normscope.spec_model import Model  # noqa: E402


def batch(dev):
    tokens = torch.randint(3, 10000, (32, 65), device=dev)
    return tokens, torch.ones(32, 64, dtype=torch.bool, device=dev)


def train_step(model, opt, dev):
    tokens, mask = batch(dev)
    opt.zero_grad(set_to_none=True)
    loss = model(tokens, mask)
    loss.backward()
    opt.step()
    return loss


def set_attached(rec, on):
    """The recorder's hooks on or off (a benchmark's toggle, through its internals)."""
    if on and not rec.handles:
        rec._attach()
    elif not on and rec.handles:
        for h in rec.handles:
            h.remove()
        rec.handles = []
        rec._next_step()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--norm", default="batch")
    p.add_argument("--steps", type=int, default=60, help="timed steps each way")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quantile", type=float, default=0.2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--smooth-repeats", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    cfg = dict(vocab_size=10000, d_model=256, n_heads=4, d_ff=1024, n_layers=4, seq_len=64,
               norm=a.norm, norm_position="post", pn_alpha=0.9, pn_warmup=10, pn_groups=0,
               bn_momentum=0.1, dropout=0.1)
    dev = torch.device(a.device)
    model = Model(cfg).to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.h5")
        rec = normscope.Recorder(model, path, param_names=list(model.named_spec_params()))
        for i in range(2 * (a.steps + 2)):
            on = i % 2 == 1
            set_attached(rec, on)
            t0 = time.perf_counter()
            loss = train_step(model, opt, dev)
            if on:
                rec.step(loss=loss.detach(), lr=1e-4, tokens=32 * 64)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 4:  # the first steps warm the allocator and caches
                times[on].append(time.perf_counter() - t0)
        rec.close()
        with h5py.File(path, "r") as f:
            own = float(np.median(f["steps/probe_seconds"][2:]))
        smooth = smoothness_seconds(model, opt, dev, tmp, a.smooth_repeats)
    off, on = (float(np.quantile(times[k], a.quantile)) for k in (False, True))
    median_off = float(np.median(times[False]))
    print(f"{off:.5f} {on:.5f} {100 * (on - off) / off:.1f} {100 * own / median_off:.1f} "
          f"{smooth / median_off:.1f}")


def smoothness_seconds(model, opt, dev, tmp, repeats):
    """Seconds of one smoothness measurement at the default plan (the fastest of repeats)."""
    path = os.path.join(tmp, "smooth.h5")
    best = float("inf")
    with normscope.Recorder(model, path, param_names=list(model.named_spec_params()),
                            config={"steps": repeats}, lipschitz_every=1) as rec:
        for _ in range(repeats):
            tokens, mask = batch(dev)
            opt.zero_grad(set_to_none=True)
            loss = model(tokens, mask)
            loss.backward()
            t0 = time.perf_counter()
            rec.smoothness(lambda: model(tokens, mask), 1e-4)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
            opt.step()
            rec.step(loss=loss.detach(), lr=1e-4, tokens=32 * 64)
    return best


if __name__ == "__main__":
    sys.exit(main())
