"""Models as ONNX: any checkpoint written out for other tools, and models from elsewhere run
with ONNX Runtime wherever a model name is accepted.

What a graph cannot say travels as metadata: in the model's metadata properties or in a
JSON file beside it (``model.onnx.json``), the same keys in both places:

    {"classes": ["negative", "neutral", "positive"],   # in the order of the output columns
     "input_size": 224, "channels": 3,                 # the graph's input: (N, channels, size, size)
     "preprocessing": "mean_std",                      # what the graph expects, below
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "tta": "flip",                                    # views averaged outside the graph: none or flip
     "output": "logits"}                               # or "probabilities"

``preprocessing``: ``included`` (the graph takes pixels 0-255 and prepares them itself, as
``ferml export --onnx`` writes it), ``scale`` (pixels / 255), or ``mean_std`` (pixels / 255,
then per channel minus ``mean`` over ``std``). A name in ``classes`` may be spelled as
``ferml.labels`` knows it (``happiness`` is happy); ``label_set`` may name the set when the
classes are one of ``ferml.labels``'. A required key that is missing, a value out of its
choices, or a key that the file and the graph state differently, is an error that names it.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import file_sha256
from .labels import LABEL_SETS, binning_matrix, canonical
from .preprocess import EPS, image_normalize
from .tta import tta_views

INPUT = "pixels"
OUTPUT = "probabilities"
PREPROCESSING = ("included", "scale", "mean_std")
OUTPUTS = ("probabilities", "logits")
REQUIRED = ("classes", "input_size", "channels", "preprocessing", "output")
BATCH_PIXELS = 32 * 100 * 100  # the most image pixels one ONNX Runtime batch takes
MAX_DIFFERENCE = 1e-4  # an export whose probabilities stray further from PyTorch's is refused


class OnnxModelError(ValueError):
    """An ONNX model whose metadata or graph cannot be used; the message names the key."""


class Pipeline(torch.nn.Module):
    """A checkpoint's whole prediction: its preprocessing, test-time views and softmax
    averaged over them, as one module that takes pixels 0-255 (what an export holds)."""

    def __init__(self, predictor):
        super().__init__()
        self.model = predictor.model.float().eval()
        self.preprocessor = predictor.preprocessor
        self.tta = predictor.tta
        mean, std = self.preprocessor.pixel_mean, self.preprocessor.pixel_std
        self.pixel_norm = mean is not None
        if self.pixel_norm:
            self.register_buffer("pixel_mean", mean.float())
            self.register_buffer("pixel_std", std.float().clamp_min(EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocessor.image_norm:
            x = image_normalize(x, self.preprocessor.target_std)
        if self.pixel_norm:
            x = (x - self.pixel_mean) / self.pixel_std
        views = tta_views(x, self.tta, self.preprocessor.input_size)
        total = torch.softmax(self.model(views[0]), 1)
        for view in views[1:]:
            total = total + torch.softmax(self.model(view), 1)
        return total / len(views)


def export_graph(module: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    """``module`` (one input ``x``, any batch size) as an ONNX graph in ``out``."""
    images = torch.export.Dim("images", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs every operator library it does not find
    try:
        # it also prints its own progress lines, and warns of its own internals' deprecations
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(module, (example,), str(out), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes={"x": {0: images}}, opset_version=18, dynamo=True, verbose=False,
                              external_data=False)  # one file: the weights inside the graph
    finally:
        quiet.setLevel(level)


def runtime_session(path: Path):
    """An ONNX Runtime session on the CPU with PyTorch's thread count. Its memory arena keeps
    a batch's intermediates for the next batch (dense121_100: 21 faces/s with it, 14 without,
    about 1.2 GB more held while the session lives)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(predictor, out: str | Path, check: np.ndarray) -> dict:
    """Write ``predictor`` (one network, not an ensemble) as ONNX with its metadata; check
    that ONNX Runtime's probabilities on ``check`` (uint8 (N, C, S, S) images) agree with
    PyTorch's. Returns the metadata and the largest difference."""
    import onnx

    if predictor.members:
        raise OnnxModelError("an ensemble is exported member by member: export each of its models")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, predictor.channels, predictor.input_size, predictor.input_size)
    export_graph(Pipeline(predictor).eval(), example, out)
    metadata = {
        "classes": list(predictor.classes), "label_set": predictor.label_set,
        "input_size": predictor.input_size, "channels": predictor.channels,
        "preprocessing": "included", "tta": "none", "tta_included": predictor.tta, "output": "probabilities",
        "source": predictor.path.name, "architecture": predictor.checkpoint["model"].get("name"),
    }
    graph = onnx.load(str(out))
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(graph, str(out))
    reference = predictor.torch_probabilities(check)
    exported = OnnxPredictor(out).predict_proba_arrays(check)
    difference = float(np.abs(reference - exported).max()) if len(check) else 0.0
    if difference > MAX_DIFFERENCE:
        out.unlink()
        raise OnnxModelError(f"{predictor.name}: ONNX Runtime's probabilities differ from PyTorch's by "
                             f"{difference:.2g} (more than {MAX_DIFFERENCE:g}); nothing written")
    return {"metadata": metadata, "max_difference": difference}


def _metadata(path: Path, session) -> dict:
    """The model's metadata: its properties and the JSON beside it, which must agree."""
    props = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            props[key] = json.loads(value)
        except json.JSONDecodeError:
            props[key] = value
    beside = next((p for p in (path.with_name(path.name + ".json"), path.with_suffix(".json")) if p.is_file()), None)
    given = {}
    if beside is not None:
        try:
            given = json.loads(beside.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OnnxModelError(f"{beside.name} is not a JSON object of the model's metadata ({exc})") from None
        if not isinstance(given, dict):
            raise OnnxModelError(f"{beside.name} must hold a JSON object of the model's metadata")
    for key in sorted(set(props) & set(given)):
        if props[key] != given[key]:
            raise OnnxModelError(f"{path.name}: the metadata key {key!r} is {props[key]!r} in the model but "
                                 f"{given[key]!r} in {beside.name}")
    return {**props, **given}


class OnnxPredictor:
    """An ONNX model with ``Predictor``'s interface: probabilities of uint8 images, binned
    into a label set when asked."""

    def __init__(self, path, batch_size: int = 256, tta: str | None = None, **_ignored):
        self.path = Path(path)
        self.batch_size = batch_size
        try:
            self.session = runtime_session(self.path)
        except Exception as exc:  # onnxruntime raises its own types for a file it cannot read
            raise OnnxModelError(f"{self.path.name}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        meta = _metadata(self.path, self.session)
        missing = [key for key in REQUIRED if key not in meta]
        if missing:
            raise OnnxModelError(f"{self.path.name}: the metadata lacks {', '.join(missing)} (give them in its "
                                 f"metadata properties or in {self.path.name}.json)")
        classes = meta["classes"].split(",") if isinstance(meta["classes"], str) else meta["classes"]
        self.classes = [canonical(str(c)) for c in classes]
        self.input_size, self.channels = self._int(meta, "input_size"), self._int(meta, "channels")
        # ONNX Runtime holds every intermediate of a batch at once (a DenseNet at 100 px took
        # about 75 MB per image): batches are cut to a pixel budget
        self.batch_size = max(1, min(batch_size, BATCH_PIXELS // (self.channels * self.input_size ** 2)))
        self.preprocessing = self._choice(meta, "preprocessing", PREPROCESSING)
        self.output = self._choice(meta, "output", OUTPUTS)
        self.tta = self._choice({"tta": tta or meta.get("tta", "none")}, "tta", ("none", "flip"))
        self.mean = self.std = None
        if self.preprocessing == "mean_std":
            self.mean, self.std = (self._per_channel(meta, key) for key in ("mean", "std"))
        named = meta.get("label_set")
        if named is not None and (named not in LABEL_SETS or LABEL_SETS[named] != self.classes):
            raise OnnxModelError(f"{self.path.name}: label_set {named!r} does not name the classes "
                                 f"{', '.join(self.classes)}")
        self.label_set = named or next((name for name, labels in LABEL_SETS.items() if labels == self.classes),
                                       "custom")
        self.name = self.path.stem
        self.key = file_sha256(self.path)
        self.precision = "onnxruntime"
        self.members = []
        self.checkpoint = {"model": {"name": meta.get("architecture") or "onnx"},
                           "labels": {"set": self.label_set, "classes": self.classes}, "tta": self.tta}
        self._check_graph()

    def _int(self, meta: dict, key: str) -> int:
        try:
            value = int(meta[key])
        except (TypeError, ValueError):
            raise OnnxModelError(f"{self.path.name}: {key} must be a whole number, not {meta[key]!r}") from None
        if value <= 0 or (key == "channels" and value not in (1, 3)):
            raise OnnxModelError(f"{self.path.name}: {key} {value} is not usable"
                                 + (" (1 or 3)" if key == "channels" else ""))
        return value

    def _choice(self, meta: dict, key: str, choices) -> str:
        if meta[key] not in choices:
            raise OnnxModelError(f"{self.path.name}: {key} must be one of {', '.join(choices)}, not {meta[key]!r}")
        return meta[key]

    def _per_channel(self, meta: dict, key: str) -> np.ndarray:
        try:
            values = np.asarray(meta[key], dtype=np.float32).reshape(-1)
        except (KeyError, TypeError, ValueError):
            raise OnnxModelError(f"{self.path.name}: preprocessing mean_std needs {key} as one number per channel") from None
        if len(values) != self.channels or (key == "std" and (values <= 0).any()):
            raise OnnxModelError(f"{self.path.name}: {key} needs {self.channels} number(s), each above 0 for std")
        return values.reshape(1, -1, 1, 1)

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise OnnxModelError(f"{self.path.name}: the graph must take one input (got {len(inputs)})")
        shape = list(inputs[0].shape)
        stated = {1: ("channels", self.channels), 2: ("input_size", self.input_size), 3: ("input_size", self.input_size)}
        if len(shape) != 4:
            raise OnnxModelError(f"{self.path.name}: the graph's input has {len(shape)} dimensions, not (N, C, S, S)")
        for axis, (key, value) in stated.items():
            if isinstance(shape[axis], int) and shape[axis] != value:
                raise OnnxModelError(f"{self.path.name}: {key} is {value} in the metadata but the graph's input "
                                     f"has {shape[axis]} there")
        width = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(width, int) and width != len(self.classes):
            raise OnnxModelError(f"{self.path.name}: classes names {len(self.classes)} class(es) but the graph "
                                 f"answers {width}")

    def prepare_images(self, images) -> np.ndarray:
        from .data import to_model_array

        return np.stack([to_model_array(np.asarray(img), self.input_size, self.channels) for img in images])

    def _inputs(self, batch: np.ndarray) -> np.ndarray:
        x = batch.astype(np.float32)
        if self.preprocessing == "included":
            return x
        x = x / 255.0
        if self.preprocessing == "mean_std":
            x = (x - self.mean) / self.std
        return x.astype(np.float32)

    def predict_proba_arrays(self, batch: np.ndarray, label_set=None) -> np.ndarray:
        out = []
        name = self.session.get_inputs()[0].name
        for start in range(0, len(batch), self.batch_size):
            part = batch[start:start + self.batch_size]
            views = [part] if self.tta == "none" else [part, part[..., ::-1]]
            total = 0
            for view in views:
                scores = self.session.run(None, {name: self._inputs(np.ascontiguousarray(view))})[0]
                if self.output == "logits":
                    scores = torch.softmax(torch.from_numpy(scores).float(), 1).numpy()
                total = total + scores
            out.append(total / len(views))
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)
        return self.in_labels(probs, label_set)

    def in_labels(self, probs: np.ndarray, label_set=None) -> np.ndarray:
        if label_set is None or label_set == self.label_set:
            return probs
        return probs @ binning_matrix(self.classes, label_set)

    def predict_proba(self, images, label_set=None) -> np.ndarray:
        return self.predict_proba_arrays(self.prepare_images(images), label_set)
