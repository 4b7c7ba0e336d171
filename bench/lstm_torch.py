#!/usr/bin/env python3
"""PyTorch baseline for bench_lstm: the same network, shapes, Adam and pinball loss; prints the same JSON.

Run: python3 bench/lstm_torch.py [--windows 20000] [--threads 2]
"""
import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

FEATURES, HIDDEN, LAYERS, STEPS, BATCH = 8, 64, 2, 48, 64
HORIZONS, QUANTILES = 3, (0.1, 0.5, 0.9)
OUTPUTS = HORIZONS * len(QUANTILES)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, HIDDEN, LAYERS, batch_first=True, dropout=0.1)
        self.head = nn.Linear(HIDDEN, OUTPUTS)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


def pinball(pred, target, q):
    # pred [B][H*Q] laid out [horizon][quantile]; target [B][H].
    diff = target.unsqueeze(2) - pred.view(-1, HORIZONS, len(QUANTILES))
    return torch.maximum(q * diff, (q - 1) * diff).mean()


def gemm_flops(batch):
    """FLOPs of the GEMMs of one forward pass over `batch` windows (2 per multiply-add)."""
    per_step = sum(2 * 4 * HIDDEN * ((FEATURES if k == 0 else HIDDEN) + HIDDEN) for k in range(LAYERS))
    return batch * (STEPS * per_step + 2 * HIDDEN * OUTPUTS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency-calls", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    q = torch.tensor(QUANTILES)
    x = torch.randn(args.windows, STEPS, FEATURES)
    y = torch.randn(args.windows, HORIZONS) * 0.1

    # Training: one epoch of forward + backward + clipping + Adam, after a short warm-up.
    model.train()
    steps = args.windows // BATCH
    for s in range(5):
        opt.zero_grad()
        pinball(model(x[:BATCH]), y[:BATCH], q).backward()
        opt.step()
    t0 = time.perf_counter()
    for s in range(steps):
        xb, yb = x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH]
        opt.zero_grad(set_to_none=True)
        loss = pinball(model(xb), yb, q)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    train_s = time.perf_counter() - t0
    train_wps = steps * BATCH / train_s

    model.eval()
    with torch.inference_mode():
        one = x[:1].clone()
        for _ in range(50):
            model(one)
        lat = []
        for i in range(args.latency_calls):
            w = x[i % args.windows:i % args.windows + 1]
            t = time.perf_counter()
            model(w)
            lat.append(time.perf_counter() - t)
        lat.sort()
        n_eval = min(args.windows, 20000)
        model(x[:256])
        t0 = time.perf_counter()
        for s in range(0, n_eval, 256):
            model(x[s:s + 256])
        eval_s = time.perf_counter() - t0

    train_flops = 3 * gemm_flops(1)  # backward does twice the GEMM work of forward
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}",
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "shape": {"features": FEATURES, "hidden": HIDDEN, "layers": LAYERS, "steps": STEPS,
                  "batch": BATCH, "outputs": OUTPUTS},
        "train_windows_per_s": round(train_wps, 1),
        "train_gflops": round(train_wps * train_flops / 1e9, 2),
        "infer_latency_us_median": round(statistics.median(lat) * 1e6, 1),
        "infer_latency_us_p99": round(lat[int(0.99 * (len(lat) - 1))] * 1e6, 1),
        "infer_gflops": round(gemm_flops(1) / statistics.median(lat) / 1e9, 2),
        "batched_windows_per_s": round(n_eval / eval_s, 1),
        "batched_gflops": round(n_eval / eval_s * gemm_flops(1) / 1e9, 2),
    }))


if __name__ == "__main__":
    main()
