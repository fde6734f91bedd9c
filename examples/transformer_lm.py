#!/usr/bin/python3
"""The spec's Transformer language model (python/normscope/spec_model.py, the same one
bench/torch_ref.py replays debug states with) trained in PyTorch with normscope's recorder.

  transformer_lm.py --corpus train.txt --norm batch --out lm.h5             train on a text corpus
  transformer_lm.py --replay DEBUG.h5 --out lm.h5                           replay a C run's steps

Training: word tokens (the --vocab-size most frequent, the rest <unk>), one sentence (line) per
row with --max-tokens (rows of similar length, rows x longest <= N, padding masked) or
contiguous --seq-len chunks without; AdamW, warm-up then inverse square root, global clipping,
every scheme (--norm) post or pre; --device cuda runs on a GPU. --release-defaults sets what the
paper's release does (--pn-groups = --heads, --pn-warmup = --warmup, bn momentum 0.05 for
batch-official).

Replay (--replay, the parity check with the C engine): a debug state written by
`normscope debug-step --steps K` holds the C engine's initial parameters, every batch and
learning rate (docs/debug-state.md); this trains the same K steps (dropout 0, no clipping,
AdamW with the file's settings) from those parameters on those batches, recording as
`normscope train` does, so the two run logs can be compared series by series. With --pin,
every step starts from the C engine's parameters and norm state of that step (the file's), so
each step is compared from the same state: float32 round-off does not compound, and the few
tensors whose gradient is analytically zero (a bias in front of batch norm, attn/bk), which
AdamW moves by about lr in the direction of their round-off, cannot carry a difference forward.
"""
import argparse
import collections
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normscope  # noqa: E402
from normscope.spec_model import Model, load_params, load_state_before  # noqa: E402

SCHEMES = ("layer", "batch", "batch-official", "power-v", "power", "power-official", "rms",
           "none")
PAD, EOS, UNK = 0, 1, 2


def fail(msg, code=1):
    print(f"normscope: {msg}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------- data

def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [ln.split() for ln in f if ln.strip()]
    except OSError as e:
        fail(f"cannot read corpus '{path}': {e.strerror}; check --corpus")


def build_vocab(lines, cap):
    counts = collections.Counter(w for ln in lines for w in ln)
    words = [w for w, _ in counts.most_common(max(cap - 3, 0))]
    return {w: i + 3 for i, w in enumerate(words)}


def encode(lines, vocab):
    return [[vocab.get(w, UNK) for w in ln] + [EOS] for ln in lines]


def stream_batches(ids, B, T, rng):
    """Contiguous chunks of T+1 tokens, B rows, no padding, in a shuffled order per epoch."""
    flat = np.fromiter((t for s in ids for t in s), dtype=np.int64)
    n_rows = (len(flat) - 1) // T
    if n_rows < B:
        fail(f"corpus too small for --batch-size {B} x --seq-len {T}: give a longer --corpus")
    while True:
        order = rng.permutation(n_rows)
        for k in range(0, n_rows - B + 1, B):
            rows = [flat[r * T: r * T + T + 1] for r in order[k:k + B]]
            yield np.stack(rows), np.ones((B, T), dtype=bool)


def sentence_batches(ids, B, T, max_tokens, rng):
    """One sentence per row (cut at T+1 tokens), rows of similar length, rows x longest <=
    max_tokens and at most B rows; padding masked."""
    sents = sorted((s[:T + 1] for s in ids if len(s) >= 2), key=len)
    batches, cur = [], []
    for s in sents:
        longest = max(len(s), max((len(c) for c in cur), default=0)) - 1
        if cur and (len(cur) + 1 > B or (len(cur) + 1) * longest > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(s)
    if cur:
        batches.append(cur)
    while True:
        for k in rng.permutation(len(batches)):
            rows = batches[k]
            width = max(len(r) for r in rows)
            tokens = np.full((len(rows), T + 1), PAD, dtype=np.int64)
            mask = np.zeros((len(rows), T), dtype=bool)
            for i, r in enumerate(rows):
                tokens[i, :len(r)] = r
                mask[i, :len(r) - 1] = True
            yield tokens[:, :T + 1], mask
            del width


# ----------------------------------------------------------------------------- training

def lr_at(lr, warmup, t):
    """Warm-up, then inverse square root (the C engine's ns_lr_at)."""
    if warmup <= 0:
        return lr
    t = max(t, 1)
    return lr * min(t / warmup, math.sqrt(warmup / t))


def train_step(model, opt, tokens, mask, lr, clip, device, rec):
    for g in opt.param_groups:
        g["lr"] = lr
    tokens = torch.as_tensor(tokens, device=device)
    mask = torch.as_tensor(mask, device=device)
    opt.zero_grad(set_to_none=True)
    loss = model(tokens, mask)
    loss.backward()
    # the smoothness probe, on this batch before the update (returns at once when not due)
    rec.smoothness(lambda: model(tokens, mask), lr)
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.detach(), int(mask.sum()), mask.numel()


def make_optimizer(model, cfg):
    return torch.optim.AdamW(model.parameters(), lr=cfg["lr"],
                             betas=(cfg["adam_beta1"], cfg["adam_beta2"]), eps=cfg["adam_eps"],
                             weight_decay=cfg["weight_decay"])


def record_config(cfg):
    """The run configuration as the log's root attributes (the schema's names)."""
    keys = ("norm", "norm_position", "n_layers", "d_model", "n_heads", "d_ff", "seq_len",
            "batch_size", "vocab_size", "dropout", "pn_alpha", "pn_warmup", "pn_groups",
            "bn_momentum", "eps", "lr", "warmup", "weight_decay", "adam_beta1", "adam_beta2",
            "adam_eps", "clip", "steps", "seed", "max_tokens", "tie_embeddings")
    return {k: cfg[k] for k in keys if k in cfg}


def replay(args):
    import h5py
    try:
        f = h5py.File(args.replay, "r")
    except OSError:
        fail(f"cannot open debug state '{args.replay}' (--replay): write one with "
             "`normscope debug-step --steps K --out FILE`")
    with f:
        cfg = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item")
                   else v) for k, v in f.attrs.items()}
        steps = sorted((k for k in f.keys() if k.startswith("step_")),
                       key=lambda k: int(k[5:]))
        if not steps:
            fail(f"debug state '{args.replay}' holds no step_K group (--replay)")
        cfg.update(dropout=0.0, clip=0.0, steps=len(steps), seed=args.seed, warmup=0)
        model = Model(cfg)
        model.train()
        load_params(model, f[steps[0]])
        opt = make_optimizer(model, cfg)
        rec = normscope.Recorder(model, args.out, config=record_config(cfg),
                                 param_names=list(model.named_spec_params()),
                                 overwrite=args.overwrite, **normscope.recorder_options(args))
        with rec:
            for k in steps:
                g = f[k]
                if args.pin:
                    load_params(model, g)
                    load_state_before(model, g)
                    rec.mark_parameters()
                lr = float(g["lr"][()])
                loss, real, positions = train_step(model, opt, g["tokens"][()].astype(np.int64),
                                                   g["mask"][()].astype(bool), lr, 0.0, "cpu",
                                                   rec)
                rec.step(loss=loss, lr=lr, tokens=real, positions=positions)
    print(f"wrote {args.out} ({len(steps)} steps replayed from {args.replay})")


def train(args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    lines = read_lines(args.corpus)
    if len(lines) < 20:
        fail(f"corpus '{args.corpus}' has {len(lines)} non-empty lines: give a longer --corpus")
    n_valid = max(1, len(lines) // 20)
    vocab = build_vocab(lines[:-n_valid], args.vocab_size)
    train_ids, valid_ids = encode(lines[:-n_valid], vocab), encode(lines[-n_valid:], vocab)
    cfg = dict(vars(args))
    cfg.update(vocab_size=len(vocab) + 3, n_layers=args.layers, n_heads=args.heads,
               eps=1e-5, adam_beta1=0.9, adam_beta2=0.98, adam_eps=1e-8, tie_embeddings=1)
    if args.release_defaults:
        cfg["pn_groups"] = args.heads if args.pn_groups is None else args.pn_groups
        cfg["pn_warmup"] = args.warmup if args.pn_warmup is None else args.pn_warmup
        if args.bn_momentum is None and args.norm == "batch-official":
            cfg["bn_momentum"] = 0.05
    cfg["pn_groups"] = cfg["pn_groups"] or 0
    cfg["pn_warmup"] = 4000 if cfg["pn_warmup"] is None else cfg["pn_warmup"]
    if cfg["bn_momentum"] is None:
        cfg["bn_momentum"] = 0.05 if args.norm == "batch-official" else 0.1
    device = torch.device(args.device)
    model = Model(cfg).to(device)
    for site in model.modules():
        if hasattr(site, "state") and isinstance(site.state, dict):
            site.state = {k: v.to(device) for k, v in site.state.items()}
    model.train()
    opt = make_optimizer(model, cfg)
    T, B = args.seq_len, args.batch_size
    batches = (sentence_batches(train_ids, B, T, args.max_tokens, rng) if args.max_tokens
               else stream_batches(train_ids, B, T, rng))
    rec = normscope.Recorder(model, args.out, config=record_config(cfg),
                             param_names=list(model.named_spec_params()),
                             overwrite=args.overwrite, **normscope.recorder_options(args))
    with rec:
        for t in range(1, args.steps + 1):
            tokens, mask = next(batches)
            lr = lr_at(args.lr, args.warmup, t)
            loss, real, positions = train_step(model, opt, tokens, mask, lr, args.clip, device,
                                               rec)
            rec.step(loss=loss, lr=lr, tokens=real, positions=positions)
            if args.eval_every and (t % args.eval_every == 0 or t == args.steps):
                rec.evaluate(loss=evaluate(model, valid_ids, B, T, device))
            if t % 50 == 0 or t == args.steps:
                print(f"step {t} loss {float(loss):.4f}", file=sys.stderr)
    print(f"wrote {args.out}")


def evaluate(model, ids, B, T, device):
    """Validation loss (training-mode statistics off: running values) over up to 20 batches."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        gen = stream_batches(ids, min(B, max(1, (sum(map(len, ids)) - 1) // T)), T,
                             np.random.default_rng(0))
        for _ in range(20):
            tokens, mask = next(gen)
            total += float(model(torch.as_tensor(tokens, device=device),
                                 torch.as_tensor(mask, device=device)))
            n += 1
    model.train()
    return total / n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replay", help="a debug state of the C engine to replay (parity)")
    p.add_argument("--pin", action="store_true",
                   help="with --replay: each step from the debug state's parameters and state")
    p.add_argument("--corpus", help="training text, one sentence per line")
    p.add_argument("--out", required=True, help="run log to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--norm", default="layer", choices=SCHEMES)
    p.add_argument("--norm-position", dest="norm_position", default="post",
                   choices=("post", "pre"))
    for name, typ, default in [("layers", int, 2), ("d-model", int, 64), ("heads", int, 4),
                               ("d-ff", int, 256), ("seq-len", int, 32), ("batch-size", int, 16),
                               ("vocab-size", int, 2000), ("steps", int, 200),
                               ("max-tokens", int, 0), ("lr", float, 1e-3),
                               ("warmup", int, 100), ("weight-decay", float, 0.0),
                               ("clip", float, 1.0), ("dropout", float, 0.1),
                               ("pn-alpha", float, 0.9), ("pn-warmup", int, None),
                               ("pn-groups", int, None), ("bn-momentum", float, None),
                               ("seed", int, 1), ("eval-every", int, 0)]:
        p.add_argument("--" + name, dest=name.replace("-", "_"), type=typ, default=default)
    normscope.add_recorder_flags(p)
    p.add_argument("--release-defaults", dest="release_defaults", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    args = p.parse_args()
    if args.replay:
        return replay(args)
    if not args.corpus:
        fail("give --corpus FILE (training text) or --replay DEBUG.h5", 2)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {args.device}: no CUDA device is available to torch", 2)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
