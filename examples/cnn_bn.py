#!/usr/bin/python3
"""A ResNet-style convolutional network with batch norm, trained on Fashion-MNIST (or CIFAR-10)
with normscope's recorder: the vision panel of the paper's Figure 2 (`normscope plot figure2
CNN.h5 LM.h5`).

  cnn_bn.py --out cnn.h5                          Fashion-MNIST from Debian's dataset-fashion-mnist
  cnn_bn.py --data cifar10 --root DIR --out c.h5  CIFAR-10's binary version (data_batch_*.bin)
  cnn_bn.py --device cuda --epochs 20 ...         on a GPU

The network: a 3x3 convolution stem with BN, then three stages of two residual blocks (each two
3x3 convolutions with BN; the first block of stages 2 and 3 halves the resolution with a strided
1x1 projection), global average pooling and a linear classifier: ResNet-20's layout with
--blocks 3, fewer with --blocks 1 (7 BN sites, the default: CPU minutes). SGD with momentum 0.9,
weight decay 5e-4 and a cosine schedule, batch 128 as the paper's CIFAR-10 panel.
"""
import argparse
import gzip
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normscope  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def fail(msg, code=1):
    print(f"normscope: {msg}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------- data

def read_idx(path):
    """An IDX file (MNIST's format), gzipped or not, as a uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        fail(f"cannot read '{path}': {e.strerror or e}; install dataset-fashion-mnist or give "
             "--root")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        fail(f"'{path}' is not an IDX file of bytes (Fashion-MNIST's format); check --root")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        fail(f"'{path}' is truncated ({body.size} of {int(np.prod(dims))} values)")
    return body.reshape(dims)


def fashion_mnist(root):
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(root, name)):
                return os.path.join(root, name)
        fail(f"no {stem}[.gz] in '{root}': install Debian's dataset-fashion-mnist or give --root")
    x = read_idx(find("train-images-idx3-ubyte"))[:, None].astype(np.float32) / 255.0
    y = read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    xt = read_idx(find("t10k-images-idx3-ubyte"))[:, None].astype(np.float32) / 255.0
    yt = read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    return x, y, xt, yt


def cifar10(root):
    """CIFAR-10's binary version: data_batch_1..5.bin and test_batch.bin, 3073-byte records."""
    def load(names):
        xs, ys = [], []
        for n in names:
            path = os.path.join(root, n)
            try:
                raw = np.fromfile(path, dtype=np.uint8)
            except OSError as e:
                fail(f"cannot read '{path}': {e.strerror or e}; give --root (the folder of "
                     "CIFAR-10's binary version)")
            if raw.size == 0 or raw.size % 3073:
                fail(f"'{path}' is not CIFAR-10 binary (3073-byte records)")
            rec = raw.reshape(-1, 3073)
            ys.append(rec[:, 0].astype(np.int64))
            xs.append(rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
        return np.concatenate(xs), np.concatenate(ys)
    x, y = load([f"data_batch_{i}.bin" for i in range(1, 6)])
    xt, yt = load(["test_batch.bin"])
    return x, y, xt, yt


# ----------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.proj is None else self.proj(x)))


class ResNet(nn.Module):
    def __init__(self, in_ch, blocks, width, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)  # the first BN site: Figure 2's vision panel
        layers, cin = [], width
        for stage, w in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(Block(cin, w, 2 if stage > 0 and b == 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        h = self.layers(F.relu(self.bn(self.stem(x))))
        return self.fc(h.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- training

def evaluate(model, x, y, device, batch=1000):
    model.eval()
    loss, right = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(x), batch):
            xb = torch.as_tensor(x[k:k + batch], device=device)
            yb = torch.as_tensor(y[k:k + batch], device=device)
            out = model(xb)
            loss += float(F.cross_entropy(out, yb, reduction="sum"))
            right += int((out.argmax(1) == yb).sum())
    model.train()
    return loss / len(x), right / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="run log to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    p.add_argument("--root", help="data folder (default: Debian's for Fashion-MNIST)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=0, help="stop after N steps (0: --epochs)")
    p.add_argument("--subset", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--test-subset", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--blocks", type=int, default=1, help="residual blocks per stage (3: ResNet20)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=200)
    normscope.add_recorder_flags(p)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    a = p.parse_args()
    if a.batch_size <= 1 or a.blocks < 1 or a.width < 1 or a.epochs <= 0 or a.steps < 0:
        fail("--batch-size must be > 1, --blocks, --width and --epochs > 0", 2)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {a.device}: no CUDA device is available to torch", 2)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y, xt, yt = (fashion_mnist(a.root or FASHION_DIR) if a.data == "fashion-mnist"
                    else cifar10(a.root or "."))
    if a.subset:
        x, y = x[:a.subset], y[:a.subset]
    if a.test_subset:
        xt, yt = xt[:a.test_subset], yt[:a.test_subset]
    mean, std = float(x.mean()), float(x.std())
    x, xt = (x - mean) / std, (xt - mean) / std
    device = torch.device(a.device)
    model = ResNet(x.shape[1], a.blocks, a.width).to(device)
    per_epoch = len(x) // a.batch_size
    if per_epoch < 1:
        fail(f"{len(x)} images make no batch of {a.batch_size}: lower --batch-size or --subset", 2)
    steps = a.steps or max(1, int(a.epochs * per_epoch))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    config = {"norm": "batch", "steps": steps, "seed": a.seed, "batch_size": a.batch_size,
              "lr": a.lr, "weight_decay": 5e-4, "corpus": f"{a.data} ({len(x)} images)"}
    rng = np.random.default_rng(a.seed)
    with normscope.Recorder(model, a.out, config=config, overwrite=a.overwrite,
                            **normscope.recorder_options(a)) as rec:
        t, order = 0, rng.permutation(len(x))
        while t < steps:
            k = (t % per_epoch) * a.batch_size
            if t and k == 0:
                order = rng.permutation(len(x))
            idx = order[k:k + a.batch_size]
            lr = 0.5 * a.lr * (1 + math.cos(math.pi * t / steps))
            for g in opt.param_groups:
                g["lr"] = lr
            xb = torch.as_tensor(x[idx], device=device)
            yb = torch.as_tensor(y[idx], device=device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            rec.smoothness(lambda: F.cross_entropy(model(xb), yb), lr)
            opt.step()
            t += 1
            rec.step(loss=loss.detach(), lr=lr, tokens=len(idx))
            if a.eval_every and (t % a.eval_every == 0 or t == steps):
                vloss, acc = evaluate(model, xt, yt, device)
                rec.evaluate(loss=vloss)
                print(f"step {t}/{steps} loss {float(loss):.4f} test loss {vloss:.4f} "
                      f"accuracy {100 * acc:.1f}%", file=sys.stderr)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
