"""Self-describing checkpoints: scoring needs nothing but the file.

A checkpoint is a plain dict of tensors, numbers and strings, loaded with
``torch.load(weights_only=True)`` so a file can never run code. It records the model
name and arguments, label set and classes, preprocessing with pixel statistics, the
training configuration, the data file and its sha256, metrics and library versions.
"""
from __future__ import annotations

import hashlib
import pickle
import platform
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from .models import UnknownModelError, create_model
from .preprocess import Preprocessor

FORMAT = "ferml-checkpoint"
FORMAT_VERSION = 1
PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message names the file."""


def library_versions() -> dict:
    import ferml

    return {"ferml": ferml.__version__, "torch": str(torch.__version__), "numpy": str(np.__version__),
            "python": platform.python_version()}


def strip_prefixes(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def make_checkpoint(model, model_args: dict, label_set: str, classes: list[str],
                    preprocessor: Preprocessor, train_config: dict | None = None,
                    data: dict | None = None, metrics: dict | None = None, half: bool = False,
                    tta: str = "none") -> dict:
    state = strip_prefixes(model.state_dict())
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": dict(model_args),
        "labels": {"set": label_set, "classes": list(classes)},
        "preprocess": preprocessor.to_dict(),
        "tta": tta,
        "train": dict(train_config or {}),
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
        "versions": library_versions(),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


def save_checkpoint(checkpoint: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            # A plain pickle (not torch.save's zip) makes torch warn about its protocol: noise here.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            AttributeError, ImportError, KeyError, IndexError, OSError) as exc:
        raise CheckpointError(f"{path}: not a ferml checkpoint (refused to load: {_refusal(path, exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ferml checkpoint (no '{FORMAT}' marker)")
    if "members" in data:
        data["members"] = [_read_member(member, path) if _is_reference(member) else member
                           for member in data["members"]]
    for member in data.get("members", [data]):
        for key in ("model", "labels", "preprocess", "state_dict"):
            if not isinstance(member, dict) or key not in member:
                raise CheckpointError(f"{path}: damaged ferml checkpoint, '{key}' is missing")
    return data


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fileobj:
        for block in iter(lambda: fileobj.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def member_reference(path) -> dict:
    """An ensemble member stored by reference: its file name and content hash."""
    path = Path(path)
    return {"file": path.name, "sha256": file_sha256(path)}


def _is_reference(member) -> bool:
    return isinstance(member, dict) and set(member) == {"file", "sha256"}


def _read_member(reference: dict, ensemble_path: Path) -> dict:
    """A member stored by reference, found beside the ensemble, else by its model name
    ($FERML_MODEL_DIR, then the shipped weights); refused when its content changed."""
    from .modelfiles import ModelNotFoundError, resolve_model

    name = str(reference["file"])
    beside = ensemble_path.parent / Path(name).name
    try:
        found = beside if beside.is_file() else resolve_model(Path(name).stem)
    except ModelNotFoundError:
        raise CheckpointError(f"{ensemble_path}: its member {name} is neither beside it nor a known model") from None
    if file_sha256(found) != reference["sha256"]:
        raise CheckpointError(f"{ensemble_path}: its member {found} has changed since the ensemble was made; "
                              "make the ensemble again (python -m ferml ensemble ...)")
    member = read_checkpoint(found)
    if "members" in member:
        raise CheckpointError(f"{ensemble_path}: its member {found} is an ensemble itself")
    member["file_sha256"] = reference["sha256"]  # in memory only: who the member is, by content
    return member


def make_ensemble(members: list[dict], names: list[str], label_set: str, classes: list[str], display_name: str,
                  references: list[dict] | None = None) -> dict:
    """A checkpoint that averages the probabilities of ``members`` (whole checkpoints, each
    binned into ``label_set``). Members share a channel count; the ensemble prepares images
    at its largest member's input size, and a smaller member shrinks them to its own.
    With ``references`` (``member_reference`` of each member's file) the ensemble stores
    those instead of the members' weights: a small file that needs its members' files."""
    channels = {m["preprocess"]["channels"] for m in members}
    if len(channels) > 1:
        raise CheckpointError("ensemble members must share one channel count (grayscale or colour); got "
                              + ", ".join(f"{n} ({m['preprocess']['channels']} channel(s))" for n, m in zip(names, members)))
    largest = max(members, key=lambda m: m["preprocess"]["input_size"])
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": {"name": "ensemble", "display_name": display_name, "members": list(names)},
        "labels": {"set": label_set, "classes": list(classes)},
        "preprocess": largest["preprocess"], "tta": "none", "state_dict": {},
        "members": (list(references) if references is not None
                    else [{k: v for k, v in m.items() if k != "resume"} for m in members]),
        "versions": library_versions(),
    }


def _refusal(path: Path, exc: Exception) -> str:
    """Why torch.load refused ``path``, as a reason for the user."""
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
        # torch's own message suggests weights_only=False, which would run the file's code.
        return "it holds Python objects other than tensors, numbers and strings, and loading those could run code"
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(exc, KeyError) or not text:
        return "not a file written by torch.save"
    return text.splitlines()[0].split(". ")[0][:200]  # torch's first sentence names the damage


def build_model(checkpoint: dict, path="checkpoint"):
    """Rebuild the architecture from the checkpoint's own arguments and load its weights."""
    args = checkpoint["model"]
    if "members" in checkpoint:
        raise CheckpointError(f"{path}: an ensemble of {', '.join(args.get('members', []))}; "
                              "it has no weights of its own to start training from")
    try:
        model = create_model(args["name"], num_classes=int(args["num_classes"]),
                             in_channels=int(args["in_channels"]), dropout=args.get("dropout"))
    except (UnknownModelError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild its model ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in strip_prefixes(checkpoint["state_dict"]).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: weights do not match architecture {args['name']}: {detail}") from None
    return model
