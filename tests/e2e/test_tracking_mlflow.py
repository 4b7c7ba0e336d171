"""Experiment tracking and the model registry against a real MLflow server, checked through MLflow's own client."""
import csv
import io
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from datetime import datetime

import numpy as np
import pytest

from conftest import BIN, Btcml, child, require_module
from mlflow_server import MlflowServer

mlflow = require_module("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

SYMBOL = "BTCUSD-SYNTH"
MODEL = f"btcml-{SYMBOL}-1h"
TINY = ["--symbol", SYMBOL, "--epochs", "2", "--hidden", "8", "--layers", "1", "--samples-per-epoch", "512"]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    yield srv
    srv.stop()


def new_home(tmp_path) -> Btcml:
    home = Btcml(tmp_path / "home", None)
    home.json("ingest", "synthetic:7", "--from", "2023-01-01", "--to", "2023-03-01")
    return home


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """One good model (champion), then a deliberately bad one (one epoch at a huge learning rate)."""
    home = new_home(tmp_path_factory.mktemp("tracked"))
    good = home.json("train", *TINY, "--tracking-uri", server.uri)
    bad = home.json("train", "--symbol", SYMBOL, "--epochs", "1", "--hidden", "8", "--lr", "5", "--tracking-uri", server.uri)
    return home, good, bad


def last_window(home: Btcml, window: int):
    rows = list(csv.DictReader(io.StringIO(home.run("bars", "--symbol", SYMBOL, "--format", "csv").stdout)))[-(window + 1):]
    times = [[int(datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()) for r in rows]]
    ohlcv = [[[float(r[k]) for k in ("open", "high", "low", "close", "volume")] for r in rows]]
    return {"time": np.array(times, dtype=np.int64), "ohlcv": np.array(ohlcv, dtype=np.float64)}


def epochs_logged(home: Btcml) -> int:
    """Epochs the running training has logged to its local run so far (read from the store, as a second process)."""
    with closing(sqlite3.connect(f"file:{home.home / 'btcml.db'}?mode=ro", uri=True, timeout=30)) as db:
        return db.execute("SELECT COUNT(*) FROM run_metrics WHERE key = 'train_loss'").fetchone()[0]


def test_one_train_is_a_run_with_params_metric_history_artifacts_and_a_champion_version(server, trained):
    _, good, _ = trained
    assert good["promoted"] is True
    t = good["tracking"]
    assert t["backend"] == "mlflow" and t["synced"] is True, t
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment is not None and experiment.lifecycle_stage == "active"
    run = client.get_run(t["remote_run_id"])
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert run.data.params["hidden"] == "8" and run.data.params["symbol"] == SYMBOL
    assert run.data.params["horizons"] == "1,6,24"
    tags = run.data.tags
    assert tags["btcml.run_id"] == good["run_id"]
    assert tags["mlflow.source.name"] == "btcml train" and tags["mlflow.user"]
    assert tags["btcml.model_version"] == "1"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [e["epoch"] for e in good["epochs"]]
    assert [m.value for m in history] == pytest.approx([e["train_loss"] for e in good["epochs"]])
    assert run.data.metrics["test.h1.model.pinball"] == pytest.approx(good["metrics"]["h1"]["model"]["pinball"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/model.onnx"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "btcml")} == {"btcml/model.json", "btcml/weights.bin"}
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == run.info.run_id and champion.tags["btcml.version"] == "1"
    assert champion.tags["btcml.gate.decision"] == "champion"


def test_pyfunc_of_the_champion_gives_the_numbers_of_btcml_predict(server, trained):
    home, _, _ = trained
    predicted = home.json("predict")
    assert predicted["model_version"] == 1
    mlflow.set_tracking_uri(server.uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    card = json.loads((home.home / "models" / "1" / "model.json").read_text())
    out = model.predict(last_window(home, card["window"]))
    for k, f in enumerate(predicted["forecasts"]):
        assert out["log_return"][0, k, 1] == pytest.approx(f["log_return"], abs=1e-4)
        assert out["price"][0, k] == pytest.approx([f["lower"], f["price"], f["upper"]], rel=1e-4)


def test_exported_onnx_file_runs_in_onnxruntime(trained, tmp_path):
    ort = require_module("onnxruntime")
    home, _, _ = trained
    out = home.json("models", "export", "1", "--out", tmp_path / "export")
    assert set(out["files"]) >= {"model.onnx", "MLmodel"}
    mlmodel = (tmp_path / "export" / "MLmodel").read_text()
    assert "loader_module: mlflow.onnx" in mlmodel and "signature:" in mlmodel
    session = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["time", "ohlcv"]
    window = last_window(home, session.get_inputs()[0].shape[1] - 1)
    log_return, price = session.run(None, window)
    predicted = home.json("predict")
    assert [f["price"] for f in predicted["forecasts"]] == pytest.approx(list(price[0, :, 1]), rel=1e-4)
    assert np.all(np.diff(log_return, axis=2) >= 0), "quantiles must not cross"


def test_the_mlflow_model_carries_an_input_example_that_mlflow_serves(server, trained, tmp_path):
    from mlflow.models import Model, validate_serving_input
    from mlflow.models.utils import load_serving_example

    home, good, _ = trained
    predicted = home.json("predict")
    run_id = good["tracking"]["remote_run_id"]
    logged = {a.path for a in MlflowClient(server.uri).list_artifacts(run_id, "model")}
    assert {"model/input_example.json", "model/serving_input_example.json"} <= logged
    for path in (str(home.home / "models" / "1" / "mlflow-model"), str(tmp_path / "export")):
        if path.endswith("export"):
            home.json("models", "export", "1", "--out", path)
        model = Model.load(path)
        assert model.saved_input_example_info == {"artifact_path": "input_example.json",
                                                  "serving_input_path": "serving_input_example.json",
                                                  "type": "ndarray"}
        example = model.load_input_example(path)
        window = json.loads((home.home / "models" / "1" / "model.json").read_text())["window"]
        assert example["time"].dtype == np.int64 and example["time"].shape == (1, window + 1)
        assert example["ohlcv"].dtype == np.float64 and example["ohlcv"].shape == (1, window + 1, 5)
        # The latest bars: the example's forecast is the one `btcml predict` makes.
        out = validate_serving_input(path, load_serving_example(path))
        for k, f in enumerate(predicted["forecasts"]):
            assert out["price"][0, k] == pytest.approx([f["lower"], f["price"], f["upper"]], rel=1e-4)
            assert out["log_return"][0, k, 1] == pytest.approx(f["log_return"], abs=1e-4)


def test_a_bad_model_is_not_promoted_and_models_show_says_why(server, trained):
    home, _, bad = trained
    assert bad["model_version"] == 2 and bad["promoted"] is False
    assert bad["gate"]["decision"] == "challenger" and "pinball" in bad["gate"]["reason"]
    assert bad["registry"]["aliases"] == {"champion": 1, "challenger": 2}
    shown = home.run("models", "show", "2").stdout
    assert "challenger" in shown and "pinball" in shown
    client = MlflowClient(server.uri)
    assert client.get_model_version_by_alias(MODEL, "champion").tags["btcml.version"] == "1"
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert challenger.tags["btcml.version"] == "2" and challenger.tags["btcml.gate.decision"] == "challenger"


def test_promote_and_rollback_move_the_alias_in_both_registries(server, trained):
    home, _, _ = trained
    client = MlflowClient(server.uri)
    promoted = home.json("models", "promote", "2", "--tracking-uri", server.uri)
    assert promoted["champion"] == 2 and promoted["previous"] == 1
    assert client.get_model_version_by_alias(MODEL, "champion").tags["btcml.version"] == "2"
    assert not (home.home / "models" / "champion").exists()  # the store's alias table is the one record
    back = home.json("models", "rollback", "--tracking-uri", server.uri)
    assert back["champion"] == 1
    assert client.get_model_version_by_alias(MODEL, "champion").tags["btcml.version"] == "1"
    listed = home.json("models", "list")["models"][0]
    assert listed["name"] == MODEL and listed["aliases"]["champion"] == 1


def test_each_series_has_its_own_registered_model_and_aliases_in_mlflow(server, tmp_path):
    """Two series in one store: each has its own registered model in MLflow, and moving one's champion (the gate,
    a promotion, a rollback) never moves the other's."""
    home = Btcml(tmp_path / "home", None)
    first, second = "S1-SYNTH", "S2-SYNTH"  # names no other test registers on the shared server
    for seed, symbol in ((7, first), (8, second)):
        home.json("ingest", f"synthetic:{seed}", "--symbol", symbol, "--from", "2023-01-01", "--to", "2023-03-01")
    small = ["--epochs", "1", "--hidden", "8", "--layers", "1", "--samples-per-epoch", "128", "--tracking-uri",
             server.uri]
    home.json("train", "--symbol", first, *small)   # version 1: first's champion
    home.json("train", "--symbol", second, *small)  # version 2: second's champion
    home.json("train", "--symbol", second, *small, "--seed", "5", "--force-promote")  # version 3
    client = MlflowClient(server.uri)

    def champion_of(symbol):
        return client.get_model_version_by_alias(f"btcml-{symbol}-1h", "champion").tags["btcml.version"]

    assert (champion_of(first), champion_of(second)) == ("1", "3")
    back = home.json("models", "rollback", "--symbol", second, "--tracking-uri", server.uri)
    assert (back["registered_model"], back["champion"]) == (f"btcml-{second}-1h", 2)
    assert (champion_of(first), champion_of(second)) == ("1", "2")
    home.json("models", "promote", "3", "--tracking-uri", server.uri)
    assert (champion_of(first), champion_of(second)) == ("1", "3")
    assert home.json("predict", "--symbol", first)["model_version"] == 1
    assert home.json("predict", "--symbol", second)["model_version"] == 3


def test_mlflow_stopped_mid_training_then_sync_uploads_the_run_once(tmp_path):
    srv = MlflowServer(tmp_path / "mlflow").start()
    try:
        home = new_home(tmp_path)
        cmd = [str(BIN), "--home", str(home.home), "train", "--symbol", SYMBOL, "--hidden", "8", "--layers", "1",
               "--epochs", "40", "--patience", "40", "--samples-per-epoch", "2048",
               "--tracking-uri", srv.uri, "--json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        client = MlflowClient(srv.uri)
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline and proc.poll() is None:
            experiment = client.get_experiment_by_name(MODEL)
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            if runs and client.get_metric_history(runs[0].info.run_id, "train_loss"):
                run_id = runs[0].info.run_id
                break
            time.sleep(0.1)
        # Frozen while MLflow goes down, the training is stopped mid-way on a CPU of any speed.
        proc.send_signal(signal.SIGSTOP)
        try:
            assert run_id, "the run never showed an epoch in MLflow"
            assert epochs_logged(home) < 40, "training ended before MLflow stopped"
            srv.stop()
        finally:
            proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert result["tracking"]["synced"] is False and result["tracking"]["error"]
        epochs = len(result["epochs"])
        runs = home.json("tracking", "runs")["runs"]
        assert runs[0]["sync"] == "pending sync" and runs[0]["status"] == "FINISHED"

        srv.start()
        synced = home.json("tracking", "sync")
        assert synced == {"synced": [result["run_id"]], "failed": []}
        assert home.json("tracking", "sync") == {"synced": [], "failed": []}
        client = MlflowClient(srv.uri)
        experiment = client.get_experiment_by_name(MODEL)
        runs = client.search_runs([experiment.experiment_id])
        assert [r.info.run_id for r in runs] == [run_id], "the run must be completed, not created again"
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
        assert steps == list(range(1, epochs + 1)), "every epoch once"
        assert "model/model.onnx" in {a.path for a in client.list_artifacts(run_id, "model")}
        assert client.get_model_version_by_alias(MODEL, "champion").run_id == run_id
        assert home.json("tracking", "runs")["runs"][0]["sync"] == "synced"
    finally:
        srv.stop()


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        body = b"<html><body>It works!</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def test_bad_input_gives_clear_errors(trained, tmp_path):
    home, _, _ = trained
    unknown = home.run("models", "show", "@nope", check=False)
    assert unknown.returncode != 0 and "no alias 'nope'" in unknown.stderr and "champion=v1" in unknown.stderr
    missing = home.run("models", "show", "99", check=False)
    assert missing.returncode != 0 and "model version 99 does not exist (versions 1 to 2)" in missing.stderr

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        before = len(home.json("tracking", "runs")["runs"])
        proc = home.run("train", *TINY, "--tracking-uri", f"http://127.0.0.1:{web.server_address[1]}", check=False)
        assert proc.returncode != 0
        assert "did not answer as an MLflow server" in proc.stderr and "HTTP 404" in proc.stderr
        assert len(home.json("tracking", "runs")["runs"]) == before, "nothing recorded for a misconfigured run"
    finally:
        web.shutdown()


def test_a_server_refusing_the_host_header_is_a_clear_error(tmp_path):
    srv = MlflowServer(tmp_path / "mlflow", "--allowed-hosts", "mlflow.example.com").start()
    try:
        home = new_home(tmp_path)
        proc = home.run("train", *TINY, "--tracking-uri", srv.uri, check=False)
        assert proc.returncode != 0
        assert "HTTP 403" in proc.stderr and "Invalid Host header" in proc.stderr and "--allowed-hosts" in proc.stderr
    finally:
        srv.stop()


def test_a_deleted_experiment_is_restored_by_the_next_run(server, trained):
    home, _, _ = trained
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name(MODEL)
    client.delete_experiment(experiment.experiment_id)
    out = home.json("train", *TINY, "--seed", "3", "--tracking-uri", server.uri)
    assert out["tracking"]["synced"] is True and out["tracking"]["experiment_id"] == experiment.experiment_id
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "active"


@pytest.mark.timeout(300)
def test_ctrl_c_ends_the_run_as_killed(tmp_path):
    home = new_home(tmp_path)
    # More epochs than any CPU finishes before the signal (patience as high: no early stop); short epochs, so that
    # the interrupt, honoured after the epoch in progress, ends the run soon on a slow one.
    cmd = [str(BIN), "--home", str(home.home), "train", "--symbol", SYMBOL, "--hidden", "8", "--layers", "1",
           "--epochs", "100000", "--patience", "100000", "--samples-per-epoch", "256", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        # An epoch in the run proves training is under way with its interrupt handler installed.
        deadline = time.monotonic() + 120
        while proc.poll() is None and epochs_logged(home) == 0:
            assert time.monotonic() < deadline, "training logged no epoch"
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # A positive status: the run ended through btcml's handler, not by the signal's default action.
    assert proc.returncode > 0 and "training interrupted after epoch" in err, err
    runs = home.json("tracking", "runs")["runs"]
    assert [r["status"] for r in runs] == ["KILLED"] and runs[0]["sync"] == "local only"
    assert not (home.home / "models" / "1").exists()


@pytest.mark.timeout(300)
def test_a_training_killed_with_sigkill_ends_as_killed_in_mlflow_too(server, tmp_path):
    home = Btcml(tmp_path / "home", None)
    home.json("ingest", "synthetic:7", "--from", "2021-01-01", "--to", "2023-03-01")
    heartbeat = {"BTCML_HEARTBEAT_SECONDS": "0.5"}  # abandoned after 3 s without a beat
    # Default network, every window each epoch, up to 100 epochs without improvement: it is killed long before.
    cmd = [str(BIN), "--home", str(home.home), "train", "--symbol", SYMBOL, "--epochs", "100000", "--patience", "100",
           "--samples-per-epoch", "0", "--tracking-uri", server.uri]
    with child(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **heartbeat}) as proc:
        deadline = time.monotonic() + 120
        while not [r for r in home.json("tracking", "runs", env=heartbeat)["runs"] if r["mlflow_run_id"]]:
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached MLflow"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while (run := home.json("tracking", "runs", env=heartbeat)["runs"][0])["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the killed run was never abandoned"
        time.sleep(0.2)
    assert run["status"] == "KILLED" and run["sync"] == "synced", run
    remote = MlflowClient(server.uri).get_run(run["mlflow_run_id"])
    assert remote.info.status == "KILLED"
    assert remote.data.tags["btcml.abandoned"].startswith("abandoned: no heartbeat since ")
