"""Models as ONNX: a shipped checkpoint written out answers as PyTorch does on real faces,
and a model from elsewhere is run with the metadata it states, or refused with the key
that is missing or contradicts the graph."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import pytest
import torch

from ferml.cli import main as ferml_main
from ferml.data import load_dataset
from ferml.inference import Predictor
from ferml.onnxmodel import OnnxModelError, OnnxPredictor


@pytest.fixture(scope="module")
def faces(fer_sample_csv):
    return load_dataset(fer_sample_csv, split="val", label_set="fer7", size=48, channels=1)


@pytest.mark.parametrize("name", ["bkvgg12", "bkvgg12_ferplus"])  # ten-crop and flip test-time views
def test_an_export_answers_as_the_checkpoint_on_real_faces(name, fer_sample_csv, tmp_path, capsys):
    out = tmp_path / f"{name}.onnx"
    assert ferml_main(["export", name, str(out), "--onnx", "--data", str(fer_sample_csv), "--split", "val",
                       "--labels", "fer7", "--device", "cpu"]) == 0
    assert "its probabilities differ from PyTorch's by at most" in capsys.readouterr().out
    torch_model, onnx_model = Predictor.from_name(name), Predictor.from_name(str(out))
    assert isinstance(onnx_model, OnnxPredictor)
    assert (onnx_model.classes, onnx_model.label_set, onnx_model.input_size) == (
        torch_model.classes, torch_model.label_set, torch_model.input_size)
    data = load_dataset(fer_sample_csv, split="val", label_set="fer7", size=torch_model.input_size, channels=1)
    images = data.images[:64]
    difference = np.abs(torch_model.torch_probabilities(images) - onnx_model.predict_proba_arrays(images)).max()
    assert difference < 1e-4
    binned = onnx_model.predict_proba_arrays(images, "bin3")
    assert binned.shape == (64, 3) and np.allclose(binned.sum(1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def bright_graph(tmp_path_factory):
    return tiny_graph(tmp_path_factory.mktemp("graph") / "bright.onnx")


def copy_of(graph, path):
    path.write_bytes(graph.read_bytes())
    return path


def tiny_graph(path, size: int = 8, channels: int = 1):
    """A model from elsewhere: logits from the mean brightness, no metadata of ferml's."""
    class Bright(torch.nn.Module):
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3)).unsqueeze(1)
            return torch.cat([-m, torch.zeros_like(m), m], 1)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(Bright().eval(), (torch.zeros(2, channels, size, size),), str(path), input_names=["x"],
                          output_names=["y"], dynamic_shapes={"x": {0: torch.export.Dim("n", min=1)}},
                          opset_version=18, dynamo=True, verbose=False)
    return path


def test_a_model_from_elsewhere_runs_with_the_json_beside_it(tmp_path, bright_graph):
    path = copy_of(bright_graph, tmp_path / "bright.onnx")
    (tmp_path / "bright.onnx.json").write_text(json.dumps({
        "classes": ["negative", "neutral", "positive"], "input_size": 8, "channels": 1,
        "preprocessing": "scale", "output": "logits", "tta": "flip"}))
    model = OnnxPredictor(path)
    assert (model.label_set, model.tta) == ("bin3", "flip")
    dark, light = np.zeros((1, 1, 8, 8), np.uint8), np.full((1, 1, 8, 8), 255, np.uint8)
    probabilities = model.predict_proba_arrays(np.concatenate([dark, light]))
    assert np.allclose(probabilities[0], 1 / 3, atol=1e-6)  # logits (0, 0, 0): no preference
    assert probabilities[1].argmax() == 2 and np.allclose(probabilities.sum(1), 1)
    expected = torch.softmax(torch.tensor([-1.0, 0.0, 1.0]), 0).numpy()
    assert np.allclose(probabilities[1], expected, atol=1e-6)


@pytest.mark.parametrize("metadata, message", [
    ({"input_size": 8, "channels": 1, "preprocessing": "scale", "output": "logits"}, "the metadata lacks classes"),
    ({"classes": "negative,neutral,positive", "input_size": 9, "channels": 1, "preprocessing": "scale",
      "output": "logits"}, "input_size is 9 in the metadata but the graph's input has 8 there"),
    ({"classes": ["negative", "positive"], "input_size": 8, "channels": 1, "preprocessing": "scale",
      "output": "logits"}, "classes names 2 class(es) but the graph answers 3"),
    ({"classes": "negative,neutral,positive", "input_size": 8, "channels": 1, "preprocessing": "imagenet",
      "output": "logits"}, "preprocessing must be one of included, scale, mean_std, not 'imagenet'"),
    ({"classes": "negative,neutral,positive", "input_size": 8, "channels": 1, "preprocessing": "mean_std",
      "output": "logits"}, "preprocessing mean_std needs mean"),
    ({"classes": "a,b,c", "label_set": "bin3", "input_size": 8, "channels": 1, "preprocessing": "scale",
      "output": "logits"}, "label_set 'bin3' does not name the classes a, b, c"),
])
def test_missing_or_contradicting_metadata_is_named(tmp_path, bright_graph, metadata, message):
    path = copy_of(bright_graph, tmp_path / "m.onnx")
    (tmp_path / "m.onnx.json").write_text(json.dumps(metadata))
    with pytest.raises(OnnxModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OnnxPredictor(path)


def test_the_model_and_the_json_beside_it_must_agree(tmp_path, bright_graph):
    path = copy_of(bright_graph, tmp_path / "m.onnx")
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "output", json.dumps("probabilities")
    onnx.save(graph, str(path))
    (tmp_path / "m.onnx.json").write_text(json.dumps({"classes": "negative,neutral,positive", "input_size": 8,
                                                      "channels": 1, "preprocessing": "scale", "output": "logits"}))
    with pytest.raises(OnnxModelError, match="the metadata key 'output' is 'probabilities' in the model but 'logits'"):
        OnnxPredictor(path)
    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    with pytest.raises(OnnxModelError, match="broken.onnx: ONNX Runtime cannot load it"):
        OnnxPredictor(tmp_path / "broken.onnx")
