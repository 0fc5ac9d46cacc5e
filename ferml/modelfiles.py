"""Where model files are: the shipped weights and $FERML_MODEL_DIR, by name or by path,
and the inference path measured for each network (``inference.json`` beside the weights).

No PyTorch here: the web app lists models and checkpoints find their members by this.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ModelNotFoundError(FileNotFoundError):
    def __str__(self) -> str:
        return self.args[0]


def train_hint(name: str) -> str:
    model_dir = os.environ.get("FERML_MODEL_DIR")
    out = f"{model_dir}/{name}.pt" if model_dir else f"models/{name}.pt"
    hint = "" if model_dir else "\nthen set FERML_MODEL_DIR=models so that it is found by name."
    return f"python -m ferml train --model {name} --data fer2013.csv.gz --out {out}{hint}"


MODEL_SUFFIXES = (".pt", ".onnx")


def _checkpoints_in(folder: Path) -> set[str]:
    # NAME.last.pt is the resume state that training writes beside NAME.pt, not a model; an
    # ONNX model goes by its file name (NAME.onnx), so it never hides a checkpoint's name
    return ({p.stem for p in folder.glob("*.pt") if not p.name.endswith(".last.pt")}
            | {p.name for p in folder.glob("*.onnx")})


def available_models() -> list[str]:
    """Names of the models whose weights ship with the package or lie in $FERML_MODEL_DIR."""
    names = _checkpoints_in(WEIGHTS_DIR)
    model_dir = os.environ.get("FERML_MODEL_DIR")
    if model_dir and Path(model_dir).is_dir():
        names |= _checkpoints_in(Path(model_dir))
    return sorted(names)


def resolve_model(name_or_path) -> Path:
    """A model file path: the path itself, else NAME.pt (or NAME.onnx, by its full name) in
    $FERML_MODEL_DIR, else shipped."""
    candidate = Path(name_or_path)
    model_dir = os.environ.get("FERML_MODEL_DIR")
    if candidate.suffix == ".onnx" and not candidate.exists() and model_dir and len(candidate.parts) == 1:
        candidate = Path(model_dir) / candidate.name
    if candidate.suffix in MODEL_SUFFIXES or candidate.exists():
        if candidate.is_file():
            return candidate
        kind = "ONNX model" if candidate.suffix == ".onnx" else "checkpoint"
        raise ModelNotFoundError(f"{candidate}: no such {kind} file")
    places = []
    if model_dir:
        places.append(Path(model_dir) / f"{name_or_path}.pt")
    places.append(WEIGHTS_DIR / f"{name_or_path}.pt")
    for place in places:
        if place.is_file():
            return place
    where = " or ".join(str(p.parent) for p in places)
    raise ModelNotFoundError(
        f"no trained weights for model {name_or_path!r} (looked in {where}). Train them with:\n"
        f"  {train_hint(name_or_path)}"
    )


INFERENCE_PATHS = "inference.json"


def inference_paths() -> dict:
    """The measured inference path of each network by content hash: the shipped weights'
    ``inference.json`` and $FERML_MODEL_DIR's."""
    paths = {}
    folders = [WEIGHTS_DIR] + ([Path(os.environ["FERML_MODEL_DIR"])] if os.environ.get("FERML_MODEL_DIR") else [])
    for folder in folders:
        try:
            paths.update(json.loads((folder / INFERENCE_PATHS).read_text()))
        except (OSError, ValueError):
            continue
    return paths
