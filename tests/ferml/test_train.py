import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ferml.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from ferml.data import draw_mask, load_dataset
from ferml.inference import Predictor
from ferml.modelfiles import ModelNotFoundError, available_models, resolve_model
from ferml.score import score_predictor
from ferml.train import TrainConfig, train

from .conftest import load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fer_sample_csv):
    """bkmin trained for two epochs on the 440 real sample rows (train/val = Training/PublicTest)."""
    out = tmp_path_factory.mktemp("run") / "bkmin.pt"
    cfg = TrainConfig(model="bkmin", data=str(fer_sample_csv), epochs=2, batch_size=16, optimizer="adam",
                      augment=False, seed=1, out=str(out), progress=False)
    result = train(cfg, log=lambda m: None)
    return cfg, result, out


def test_training_lowers_the_loss_and_writes_files(trained):
    cfg, result, out = trained
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert out.exists() and out.with_suffix(".last.pt").exists()
    rows = list(csv.DictReader(open(out.with_suffix(".metrics.csv"))))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) == pytest.approx(history[1]["train_loss"])


def test_checkpoint_is_self_describing(trained, fer_sample_csv):
    cfg, result, out = trained
    ckpt = read_checkpoint(out)
    assert ckpt["model"]["name"] == "bkmin" and ckpt["model"]["num_classes"] == 7
    assert ckpt["labels"] == {"set": "fer7", "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]}
    assert ckpt["preprocess"]["pixel_mean"].shape == (1, 42, 42)
    assert ckpt["data"]["file"] == fer_sample_csv.name
    import hashlib

    assert ckpt["data"]["sha256"] == hashlib.sha256(fer_sample_csv.read_bytes()).hexdigest()
    assert ckpt["data"]["n_train"] == 140 and ckpt["data"]["n_val"] == 300
    assert ckpt["train"]["optimizer"] == "adam" and ckpt["versions"]["torch"] == torch.__version__
    assert ckpt["metrics"]["val_accuracy"] == pytest.approx(max(h["val_accuracy"] for h in result["history"]), abs=1e-6)


def test_checkpoint_round_trip_gives_identical_scores(trained, fer_sample_csv, tmp_path):
    _, result, out = trained
    data = load_dataset(fer_sample_csv, split="val")
    first = score_predictor(Predictor(out), data)
    assert first["accuracy"] == pytest.approx(result["best"]["val_accuracy"])
    copy = save_checkpoint(read_checkpoint(out), tmp_path / "copy.pt")
    second = score_predictor(Predictor(copy), data)
    assert first["confusion"] == second["confusion"] and first["accuracy"] == second["accuracy"]
    # retroactive binning: bin3 accuracy equals the accuracy of the summed softmax mass
    binned = score_predictor(Predictor(out), load_dataset(fer_sample_csv, "bin3", split="val"))
    probs = Predictor(out).predict_proba_arrays(data.images)
    bins = np.stack([probs[:, [0, 1, 2, 4]].sum(1), probs[:, [5, 6]].sum(1), probs[:, 3]], 1)
    truth = np.array([{0: 0, 1: 0, 2: 0, 4: 0, 5: 1, 6: 1, 3: 2}[int(c)] for c in data.labels])
    assert binned["accuracy"] == pytest.approx(float((bins.argmax(1) == truth).mean()))


def test_resume_continues_from_last_epoch(trained, fer_sample_csv, tmp_path):
    cfg, result, out = trained
    cfg3 = TrainConfig(**{**cfg.__dict__, "epochs": 3, "resume": str(out.with_suffix(".last.pt")),
                          "out": str(tmp_path / "resumed.pt")})
    resumed = train(cfg3, log=lambda m: None)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == result["history"]


def test_time_limit_stops_between_epochs_and_keeps_the_best(trained, fer_sample_csv, tmp_path):
    cfg, _, _ = trained
    out = tmp_path / "limited.pt"
    # a limit below one epoch's duration: the first epoch runs, the second would pass it
    limited = train(TrainConfig(**{**cfg.__dict__, "epochs": 5, "time_limit": 1e-4, "out": str(out)}), log=lambda m: None)
    assert limited["stopped_early"] and [h["epoch"] for h in limited["history"]] == [1]
    assert read_checkpoint(out)["metrics"]["epoch"] == 1
    generous = train(TrainConfig(**{**cfg.__dict__, "time_limit": 60.0, "out": str(tmp_path / "free.pt")}), log=lambda m: None)
    assert not generous["stopped_early"] and len(generous["history"]) == cfg.epochs


def test_half_precision_storage_keeps_scores(trained, fer_sample_csv, tmp_path):
    _, _, out = trained
    ckpt = read_checkpoint(out)
    ckpt["state_dict"] = {k: v.half() for k, v in ckpt["state_dict"].items()}
    half = save_checkpoint(ckpt, tmp_path / "half.pt")
    assert half.stat().st_size < out.stat().st_size * 0.6
    data = load_dataset(fer_sample_csv, split="val")
    assert score_predictor(Predictor(half), data)["accuracy"] == score_predictor(Predictor(out), data)["accuracy"]


def test_bad_checkpoints_get_clear_errors(trained, tmp_path):
    _, _, out = trained
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt: not a ferml checkpoint"):
        load_model(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="no 'ferml-checkpoint' marker"):
        load_model(plain)
    other = read_checkpoint(out)
    other["model"]["name"] = "bkstart"
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="weights do not match architecture bkstart"):
        load_model(tmp_path / "other.pt")


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/ferml-pickle-ran")


def test_malicious_pickle_never_runs(tmp_path):
    MARKER.unlink(missing_ok=True)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "ferml-checkpoint", "payload": RunsCode()}, fh)
    with pytest.raises(CheckpointError, match="evil.pt: not a ferml checkpoint"):
        load_model(evil)
    torch.save({"format": "ferml-checkpoint", "payload": RunsCode()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "evil2.pt")
    assert not MARKER.exists()


def test_model_resolution(tmp_path, monkeypatch, trained):
    _, _, out = trained
    monkeypatch.setenv("FERML_MODEL_DIR", str(out.parent))
    assert resolve_model("bkmin") == out
    assert out.with_suffix(".last.pt").exists() and "bkmin" in available_models()
    assert not any(name.endswith(".last") for name in available_models())
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("resnet50_100")
    assert "python -m ferml train --model resnet50_100" in str(err.value)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ferml", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


def test_cli_score_json_and_errors(trained, fer_sample_csv, tmp_path):
    _, _, out = trained
    res = run_cli("score", "--model", str(out), "--data", str(fer_sample_csv), "--split", "val",
                  "--labels", "bin3", "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    assert "confusion matrix" in res.stdout and "negative" in res.stdout
    import json

    result = json.loads((tmp_path / "s.json").read_text())
    assert result["n"] == 300 and result["labels"] == ["negative", "neutral", "positive"]
    assert np.allclose(np.array(result["confusion"]).sum(1), 1)
    bad = run_cli("score", "--model", "no_such_model", "--data", str(fer_sample_csv))
    assert bad.returncode == 2 and "python -m ferml train --model no_such_model" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_models_json():
    res = run_cli("models", "--json", "bkvgg12", "bkmin")
    import json

    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == ["bkvgg12", "bkmin"]
    assert rows[0]["params"] == 3_468_007 and rows[0]["input_size"] == 42 and rows[0]["in_channels"] == 1
    # conv and linear layers only: 2 x MACs; the first conv alone is 42*42*32*9 MACs
    assert rows[0]["flops"] > 2 * 42 * 42 * 32 * 9


@pytest.mark.slow
def test_distributed_training_two_cpu_processes(tmp_path, fer_sample_csv):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp.pt"
    res = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "ferml", "train", "--model", "bkmin",
         "--data", str(fer_sample_csv), "--epochs", "2", "--batch-size", "16", "--optimizer", "adam",
         "--device", "cpu", "--no-augment", "--no-progress", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "x2 processes" in res.stdout
    rows = list(csv.DictReader(open(out.with_suffix(".metrics.csv"))))
    assert len(rows) == 2 and float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert read_checkpoint(out)["model"]["name"] == "bkmin"


def test_validation_data_sources(face_tree, fer_sample_csv, tmp_path):
    from ferml.train import load_training_data

    base = dict(model="bkmin", labels="fer7", seed=3, progress=False)
    # a tree without split folders: a seeded tenth of it validates, chosen by key
    train, val = load_training_data(TrainConfig(data=str(face_tree), **base), 42)
    assert len(train) + len(val) == 35 and not set(train.keys) & set(val.keys)
    keys = sorted(train.keys + val.keys)
    assert sorted(val.keys) == [k for k, held in zip(keys, draw_mask(keys, 3, 0.1)) if held]
    # --val-data without a validation split: all of it validates
    train, val = load_training_data(TrainConfig(data=str(fer_sample_csv), val_data=str(face_tree), **base), 42)
    assert (len(train), len(val)) == (140, 35)
    # the FER2013 csv's own PublicTest split
    train, val = load_training_data(TrainConfig(data=str(fer_sample_csv), **base), 42)
    assert (len(train), len(val)) == (140, 300)
