#!/usr/bin/env python3
"""Baselines of the POST /api/v1/predict benchmark (see bench/README.md): the model btcml exported, served by
FastAPI on uvicorn, run per request either by PyTorch or by ONNX Runtime.

  predict_baselines.py check MODEL_DIR
      Runs the exported model's input example through both runtimes and fails unless they agree (rtol 1e-4):
      the PyTorch model is the same model, not a look-alike.
  predict_baselines.py serve MODEL_DIR --runtime torch|onnx --port P --workers N --horizons 1,6,24
      Serves POST /api/v1/predict with btcml's request and response shapes on 127.0.0.1:P, with N uvicorn worker
      processes (one per core in the benchmark).

MODEL_DIR is the output of `btcml models export` (model.onnx, MLmodel). The PyTorch side is built from model.onnx:
each ONNX `LSTM` node becomes a one-layer `torch.nn.LSTM` holding the exported weights (ONNX orders the gates
i, o, f, c; PyTorch i, f, g, o), the `Gemm` head a `torch.nn.Linear`, and the feature and quantile steps around them
(slices, logs, calendar terms, scaling, sorting) the matching torch operations, so both runtimes compute the same
graph. Each worker runs one forward pass at a time on one thread (torch.set_num_threads(1), ONNX Runtime's intra-op
threads 1), as btcml's request threads do.
"""
import argparse
import json
import os
import pathlib
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ONNX_TO_TORCH_GATES = [0, 2, 3, 1]  # ONNX blocks i, o, f, c -> PyTorch i, f, g(=c), o
DTYPES = {1: torch.float32, 7: torch.int64, 11: torch.float64}


class TorchGraph(torch.nn.Module):
    """The exported ONNX graph executed node by node with torch operations; LSTM and Gemm as nn modules."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        graph = model.graph
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
        self.inputs = [i.name for i in graph.input]
        self.outputs = [o.name for o in graph.output]
        self.nodes = []
        self.modules_by_node = torch.nn.ModuleDict()
        for k, node in enumerate(graph.node):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "LSTM":
                self.modules_by_node[str(k)] = self.lstm(node, attrs)
            elif node.op_type == "Gemm":
                if attrs.get("transB") != 1 or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                    raise ValueError(f"unsupported Gemm attributes {attrs}")
                weight, bias = self.consts[node.input[1]], self.consts[node.input[2]]
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
                linear.weight.data.copy_(weight)
                linear.bias.data.copy_(bias)
                self.modules_by_node[str(k)] = linear
            elif node.op_type not in OPS:
                raise ValueError(f"the exported graph uses {node.op_type}, which this baseline does not implement")
            self.nodes.append((k, node.op_type, list(node.input), list(node.output), attrs))

    def lstm(self, node, attrs) -> torch.nn.LSTM:
        if attrs.get("direction", b"forward") not in (b"forward", "forward") or attrs.get("layout", 0) != 0 or \
                len(node.input) != 4:
            raise ValueError(f"unsupported LSTM node {node.name}: {attrs}")
        w, r, b = (self.consts[name][0] for name in node.input[1:4])  # [4H, I], [4H, H], [8H]
        hidden = attrs["hidden_size"]

        def reorder(m: torch.Tensor) -> torch.Tensor:
            return torch.cat([m[g * hidden:(g + 1) * hidden] for g in ONNX_TO_TORCH_GATES])

        lstm = torch.nn.LSTM(w.shape[1], hidden, 1)  # seq-major, as ONNX's layout 0
        lstm.weight_ih_l0.data.copy_(reorder(w))
        lstm.weight_hh_l0.data.copy_(reorder(r))
        lstm.bias_ih_l0.data.copy_(reorder(b[:4 * hidden]))
        lstm.bias_hh_l0.data.copy_(reorder(b[4 * hidden:]))
        return lstm

    def forward(self, *args):
        values = dict(self.consts)
        values.update(zip(self.inputs, args))
        for k, op, ins, outs, attrs in self.nodes:
            x = [values[name] if name else None for name in ins]
            if op == "LSTM":
                y, (h, _) = self.modules_by_node[str(k)](x[0])
                result = [y.unsqueeze(1), h]  # ONNX: Y [seq, dirs, batch, H], Y_h [dirs, batch, H]
            elif op == "Gemm":
                result = [self.modules_by_node[str(k)](x[0])]
            else:
                result = OPS[op](x, attrs)
            values.update(zip(outs, result))
        return [values[name] for name in self.outputs]


def slice_op(x, attrs):
    data, starts, ends, axes = x[0], x[1], x[2], x[3]
    index = [slice(None)] * data.dim()
    for s, e, a in zip(starts.tolist(), ends.tolist(), axes.tolist()):
        index[a] = slice(s, e)
    return [data[tuple(index)]]


def topk_op(x, attrs):
    if attrs.get("sorted", 1) != 1:
        raise ValueError("unsorted TopK")
    values, indices = torch.topk(x[0], int(x[1][0]), dim=attrs["axis"], largest=bool(attrs.get("largest", 1)))
    return [values, indices]


def div_op(x, attrs):
    a, b = x
    return [torch.div(a, b, rounding_mode="trunc") if not a.is_floating_point() else a / b]


OPS = {
    "Slice": slice_op,
    "Div": div_op,
    "Log": lambda x, a: [torch.log(x[0])],
    "Exp": lambda x, a: [torch.exp(x[0])],
    "Sin": lambda x, a: [torch.sin(x[0])],
    "Cos": lambda x, a: [torch.cos(x[0])],
    "Add": lambda x, a: [x[0] + x[1]],
    "Sub": lambda x, a: [x[0] - x[1]],
    "Mul": lambda x, a: [x[0] * x[1]],
    "Mod": lambda x, a: [torch.remainder(x[0], x[1])],
    "Cast": lambda x, a: [x[0].to(DTYPES[a["to"]])],
    "Unsqueeze": lambda x, a: [x[0].unsqueeze(int(x[1][0]))],
    "Squeeze": lambda x, a: [x[0].squeeze(int(x[1][0]))],
    "Concat": lambda x, a: [torch.cat(x, dim=a["axis"])],
    "Transpose": lambda x, a: [x[0].permute(*a["perm"])],
    "Reshape": lambda x, a: [x[0].reshape(*x[1].tolist())],
    "TopK": topk_op,
}


def load_runtime(model_dir: pathlib.Path, runtime: str):
    """A function (time int64 [1, W+1], ohlcv float64 [1, W+1, 5]) -> (log_return, price) numpy arrays."""
    path = model_dir / "model.onnx"
    if runtime == "torch":
        torch.set_num_threads(1)
        graph = TorchGraph(onnx.load(path)).eval()

        def run(time, ohlcv):
            with torch.no_grad():
                log_return, price = graph(torch.from_numpy(time), torch.from_numpy(ohlcv))
            return log_return.numpy(), price.numpy()

        return run
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda time, ohlcv: tuple(session.run(None, {"time": time, "ohlcv": ohlcv}))


def check(model_dir: pathlib.Path) -> int:
    example = json.loads((model_dir / "input_example.json").read_text())
    time = np.array(example["time"], dtype=np.int64)
    ohlcv = np.array(example["ohlcv"], dtype=np.float64)
    torch_out = load_runtime(model_dir, "torch")(time, ohlcv)
    onnx_out = load_runtime(model_dir, "onnx")(time, ohlcv)
    for name, a, b in zip(["log_return", "price"], torch_out, onnx_out):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7, err_msg=name)
    print(json.dumps({"agree": True, "price": onnx_out[1][0].tolist()}))
    return 0


def create_app():
    """The FastAPI app of one uvicorn worker; configured by BTCML_BASELINE_* variables (workers are imported)."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    model_dir = pathlib.Path(os.environ["BTCML_BASELINE_MODEL"])
    run = load_runtime(model_dir, os.environ["BTCML_BASELINE_RUNTIME"])
    horizons = [int(h) for h in os.environ["BTCML_BASELINE_HORIZONS"].split(",")]
    metadata = json.loads(os.environ["BTCML_BASELINE_METADATA"])
    window = onnx.load(model_dir / "model.onnx").graph.input[0].type.tensor_type.shape.dim[1].dim_value
    step = timedelta(seconds=metadata["interval_s"])

    class Bar(BaseModel):
        time: datetime
        open: float
        high: float
        low: float
        close: float
        volume: float

    class PredictRequest(BaseModel):
        symbol: str
        interval: str
        bars: list[Bar]

    app = FastAPI()

    @app.post("/api/v1/predict")
    def predict(body: PredictRequest):
        bars = body.bars[-window:]
        time = np.array([[int(b.time.timestamp()) for b in bars]], dtype=np.int64)
        ohlcv = np.array([[[b.open, b.high, b.low, b.close, b.volume] for b in bars]], dtype=np.float64)
        log_return, price = run(time, ohlcv)
        as_of = bars[-1].time.astimezone(timezone.utc)
        return {
            "model_version": metadata["model_version"],
            "as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "symbol": body.symbol,
            "interval": body.interval,
            "forecasts": [{"horizon": h, "target_time": (as_of + h * step).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "price": float(price[0, k, 1]), "lower": float(price[0, k, 0]),
                           "upper": float(price[0, k, 2]), "log_return": float(log_return[0, k, 1])}
                          for k, h in enumerate(horizons)],
        }

    return app


def serve(args) -> int:
    import uvicorn

    os.environ.update(BTCML_BASELINE_MODEL=str(args.model_dir.resolve()), BTCML_BASELINE_RUNTIME=args.runtime,
                      BTCML_BASELINE_HORIZONS=args.horizons,
                      BTCML_BASELINE_METADATA=json.dumps({"model_version": args.model_version,
                                                          "interval_s": args.interval_seconds}))
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    uvicorn.run("predict_baselines:create_app", factory=True, host="127.0.0.1", port=args.port,
                workers=args.workers, loop="uvloop", http="httptools", log_level="warning", access_log=False)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check")
    chk.add_argument("model_dir", type=pathlib.Path)
    srv = sub.add_parser("serve")
    srv.add_argument("model_dir", type=pathlib.Path)
    srv.add_argument("--runtime", choices=["torch", "onnx"], required=True)
    srv.add_argument("--port", type=int, required=True)
    srv.add_argument("--workers", type=int, default=os.cpu_count())
    srv.add_argument("--horizons", required=True, help="the model's horizons in bars, e.g. 1,6,24")
    srv.add_argument("--interval-seconds", type=int, default=3600)
    srv.add_argument("--model-version", type=int, default=1)
    args = parser.parse_args()
    return check(args.model_dir) if args.command == "check" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
