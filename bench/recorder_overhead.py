#!/usr/bin/python3
"""The PyTorch recorder's cost at default cadences (vectors every 100 steps, flush every 10) on
the spec's `small` model (d=256, L=4, H=4, F=1024, T=64, B=32, V=10000, random batches):
training steps without and with the recorder, alternating in blocks so machine load hits both
alike. Prints the two step times (seconds, the --quantile of each), the overhead in percent,
and the cost of one smoothness measurement at the default plan (lipschitz/, on the step's
batch: the fastest of --smooth-repeats) in training steps without the recorder.
A benchmark (scripts/bench.sh, section recorder), never a test."""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normscope  # noqa: E402
from normscope.spec_model import Model  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--norm", default="batch")
    p.add_argument("--steps", type=int, default=30, help="steps per block")
    p.add_argument("--rounds", type=int, default=2)
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
        rec = None
        for r in range(2 * a.rounds):
            on = r % 2 == 1
            if on and rec is None:
                rec = normscope.Recorder(model, os.path.join(tmp, "bench.h5"),
                                         param_names=list(model.named_spec_params()))
            for step in range(a.steps):
                tokens = torch.randint(3, 10000, (32, 65), device=dev)
                mask = torch.ones(32, 64, dtype=torch.bool, device=dev)
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = model(tokens, mask)
                loss.backward()
                opt.step()
                if on:
                    rec.step(loss=loss.detach(), lr=1e-4, tokens=32 * 64)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if step >= 3:  # warm-up steps of each block are not timed
                    times[on].append(time.perf_counter() - t0)
            if on:  # a fresh log per recorded block; the blocks without run with no hooks
                rec.close()
                os.remove(os.path.join(tmp, "bench.h5"))
                rec = None
        smooth = smoothness_seconds(model, opt, dev, tmp, a.smooth_repeats)
    off, on = (float(np.quantile(times[k], a.quantile)) for k in (False, True))
    print(f"{off:.5f} {on:.5f} {100 * (on - off) / off:.1f} {smooth / off:.1f}")


def smoothness_seconds(model, opt, dev, tmp, repeats):
    """Seconds of one smoothness measurement at the default plan (the fastest of repeats)."""
    path = os.path.join(tmp, "smooth.h5")
    best = float("inf")
    with normscope.Recorder(model, path, param_names=list(model.named_spec_params()),
                            config={"steps": repeats}, lipschitz_every=1) as rec:
        for _ in range(repeats):
            tokens = torch.randint(3, 10000, (32, 65), device=dev)
            mask = torch.ones(32, 64, dtype=torch.bool, device=dev)
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
