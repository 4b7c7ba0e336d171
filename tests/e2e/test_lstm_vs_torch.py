"""The C++ LSTM forecaster against PyTorch: nn.LSTM(batch_first=True) + nn.Linear on the last step, pinball loss.

Outputs, loss and the gradient of every tensor must agree, float32 against float32, within
|cpp - torch| <= 1e-5 + 1e-5 * |torch| (absolute 1e-5 on values of order 1, relative 1e-5 on larger ones: gradients
are sums over batch and steps, so their rounding grows with their size).
The tool is found in $BTCML_BUILD_DIR (default: build, relative to the repository root).
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from conftest import require_module

torch = require_module("torch")

ROOT = pathlib.Path(__file__).resolve().parents[2]
ATOL = 1e-5
RTOL = 1e-5


def tool():
    build = pathlib.Path(os.environ.get("BTCML_BUILD_DIR", "build"))
    if not build.is_absolute():
        build = ROOT / build
    path = build / "lstm_io"
    assert path.exists(), f"{path} is missing: build the project first"
    return path


def torch_reference(cfg, quantiles, x, y, seed):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(cfg["input_size"], cfg["hidden_size"], cfg["num_layers"], batch_first=True)
    head = torch.nn.Linear(cfg["hidden_size"], cfg["output_size"])
    weights = {name: p for name, p in lstm.named_parameters()}
    weights.update({f"head.{name}": p for name, p in head.named_parameters()})
    out_seq, _ = lstm(x)
    pred = head(out_seq[:, -1, :])
    q = torch.tensor(quantiles)
    diff = y.unsqueeze(2) - pred.view(x.shape[0], -1, len(quantiles))
    loss = torch.maximum(q * diff, (q - 1) * diff).mean()
    loss.backward()
    return weights, pred.detach(), loss.item()


@pytest.mark.parametrize(
    "cfg,batch,steps,threads",
    [
        (dict(input_size=3, hidden_size=5, num_layers=1, output_size=6), 4, 7, 1),
        (dict(input_size=8, hidden_size=16, num_layers=2, output_size=9), 10, 12, 2),
        (dict(input_size=8, hidden_size=64, num_layers=3, output_size=9), 33, 48, 2),
    ],
)
def test_matches_torch(tmp_path, cfg, batch, steps, threads):
    quantiles = [0.1, 0.5, 0.9]
    horizons = cfg["output_size"] // len(quantiles)
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, steps, cfg["input_size"], generator=gen)
    y = torch.randn(batch, horizons, generator=gen)
    weights, pred, loss = torch_reference(cfg, quantiles, x, y, seed=steps)

    doc = {
        "config": cfg,
        "quantiles": quantiles,
        "batch": batch,
        "steps": steps,
        "threads": threads,
        "weights": {n: p.detach().reshape(-1).tolist() for n, p in weights.items()},
        "inputs": x.reshape(-1).tolist(),
        "targets": y.reshape(-1).tolist(),
    }
    (tmp_path / "in.json").write_text(json.dumps(doc))
    subprocess.run([tool(), tmp_path / "in.json", tmp_path / "out.json"], check=True)
    got = json.loads((tmp_path / "out.json").read_text())

    np.testing.assert_allclose(np.array(got["outputs"]), pred.reshape(-1).numpy(), rtol=RTOL, atol=ATOL)
    assert abs(got["loss"] - loss) <= ATOL + RTOL * abs(loss)
    assert set(got["gradients"]) == set(weights)
    for name, p in weights.items():
        np.testing.assert_allclose(
            np.array(got["gradients"][name]), p.grad.reshape(-1).numpy(), rtol=RTOL, atol=ATOL, err_msg=name
        )
