"""Inference paths chosen by measurement: the fastest path that keeps float32's predictions,
written beside the weights and followed by ``Predictor``; a network on ONNX Runtime is
exported once per machine and answers as PyTorch does on real faces."""
from __future__ import annotations

import json
import platform
import shutil
import sys

import numpy as np
import pytest
import torch

from ferml import onnxmodel
from ferml.cli import main as ferml_main
from ferml.data import load_dataset
from ferml.device import keep_freed_memory, release_freed_memory
from ferml.inference import Predictor, chosen_precision
from ferml.modelfiles import INFERENCE_PATHS, WEIGHTS_DIR
from ferml.paths import MAX_CHANGED, choose_path

NAME = "bkvgg12_ferplus"  # flip views: the cheapest shipped network


def row(speeds: dict, **changed) -> dict:
    return {"images_per_second": speeds, **{f"changed_{path}": share for path, share in changed.items()}}


def test_the_fastest_path_that_keeps_the_predictions_is_chosen():
    assert choose_path(row({"fp32": 200, "bf16": 700, "onnxruntime": 500}, bf16=0.0, onnxruntime=0.0)) == "bf16"
    # bf16 changes too many predictions: the faster of the others
    assert choose_path(row({"fp32": 200, "bf16": 700, "onnxruntime": 500}, bf16=0.0017, onnxruntime=0.0)) \
        == "onnxruntime"
    assert choose_path(row({"fp32": 200, "bf16": 700, "onnxruntime": 500},
                           bf16=MAX_CHANGED, onnxruntime=MAX_CHANGED * 2)) == "bf16"
    assert choose_path(row({"fp32": 600, "bf16": 500, "onnxruntime": 100}, bf16=0.0, onnxruntime=0.0)) == "fp32"
    assert choose_path(row({"fp32": 200, "onnxruntime": 900})) == "fp32"  # a path never compared is not kept


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(WEIGHTS_DIR / f"{NAME}.pt", folder / f"{NAME}.pt")
    monkeypatch.setenv("FERML_MODEL_DIR", str(folder))
    monkeypatch.setenv("FERML_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_paths_measures_every_path_on_real_faces_and_writes_its_choice(model_dir, fer_sample_csv, capsys):
    assert ferml_main(["paths", NAME, "--data", str(fer_sample_csv), "--split", "val", "--labels", "fer7",
                       "--device", "cpu", "--onnx", "--write"]) == 0
    out = capsys.readouterr().out
    assert f"written to {model_dir / INFERENCE_PATHS}" in out
    written = json.loads((model_dir / INFERENCE_PATHS).read_text())
    key = Predictor.from_name(NAME).key
    measured = written[key]
    assert measured["model"] == NAME and measured["tta"] == "flip"
    assert {"fp32", "onnxruntime"} <= set(measured["images_per_second"])
    assert measured["changed_onnxruntime"] <= MAX_CHANGED  # the export keeps float32's answers
    assert measured["precision"] == choose_path(measured)
    assert chosen_precision(key, torch.device("cpu")) in {"fp32", measured["precision"]}


def test_a_network_on_onnx_runtime_is_exported_once_and_answers_as_pytorch(model_dir, fer_sample_csv,
                                                                             monkeypatch):
    key = Predictor.from_name(NAME).key
    (model_dir / INFERENCE_PATHS).write_text(json.dumps({key: {"precision": "onnxruntime"}}))
    assert chosen_precision(key, torch.device("cuda")) == "fp32"  # ONNX Runtime runs on the CPU only
    exports = []
    real_export = onnxmodel.export_onnx
    monkeypatch.setattr(onnxmodel, "export_onnx", lambda *a, **k: exports.append(a[1]) or real_export(*a, **k))
    first = Predictor.from_name(NAME)
    assert first.precision == "onnxruntime"
    faces = load_dataset(fer_sample_csv, split="val", label_set="fer7", size=first.input_size,
                         channels=1).images[:64]
    probs = first.predict_proba_arrays(faces)
    assert np.abs(probs - first.torch_probabilities(faces)).max() < 1e-4
    assert np.allclose(first.predict_proba_arrays(faces, "bin3"),
                       first.in_labels(first.torch_probabilities(faces), "bin3"), atol=1e-4)
    cached = sorted((model_dir.parent / "cache" / "onnx").iterdir())
    assert [p.name for p in cached] == [f"{key}-flip.onnx"]  # nothing half-written left beside it

    again = Predictor.from_name(NAME)
    assert np.allclose(again.predict_proba_arrays(faces), probs, atol=1e-6)
    assert len(exports) == 1  # the second process-level model found the export on disk


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc's allocator settings")
def test_freed_activations_are_kept_for_reuse_and_handed_back_after_a_run():
    assert keep_freed_memory()  # glibc accepted both settings (it refuses a threshold over its maximum)
    release_freed_memory()
