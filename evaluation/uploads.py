"""Models brought to one report on the staff page: an ONNX file (with its metadata JSON when
the file holds none) or a prediction csv, kept by content under MEDIA_ROOT/report-models/
and named in the report's choices, so the report that used them can be shown again."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings

from core.errors import InputError

FOLDER = "report-models"
KINDS = {".onnx": "onnx", ".csv": "predictions"}
MAX_CSV_BYTES = 50 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")


def folder() -> Path:
    return Path(settings.MEDIA_ROOT) / FOLDER


def save_upload(upload, name: str, metadata=None) -> str:
    """Keep an uploaded model file; returns the entry the report's choices name it by
    (``NAME:STORED_FILE``). A name of letters, digits, '.', '-' and '_'; a file ending in
    .onnx or .csv; an ONNX model must load with its metadata (the error names what lacks)."""
    from ferml.onnxmodel import OnnxModelError, OnnxPredictor

    if not _NAME.match(name or ""):
        raise InputError("Name the model with 1 to 60 letters, digits, '.', '-' and '_' (it names it in the report).")
    suffix = Path(upload.name or "").suffix.lower()
    if suffix not in KINDS:
        raise InputError(f"{upload.name} is neither an ONNX model (.onnx) nor a prediction file (.csv).")
    if suffix == ".csv" and upload.size > MAX_CSV_BYTES:
        raise InputError(f"{upload.name} is over {MAX_CSV_BYTES:,} bytes: a prediction file has a row per image.")
    data = b"".join(upload.chunks())
    stored = f"{hashlib.sha256(data).hexdigest()[:20]}-{name}{suffix}"
    path = folder() / stored
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if suffix == ".onnx":
        if metadata is not None:
            path.with_name(path.name + ".json").write_bytes(b"".join(metadata.chunks()))
        try:
            OnnxPredictor(path)
        except OnnxModelError as exc:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".json").unlink(missing_ok=True)
            raise InputError(str(exc).replace(stored, upload.name)) from None
    return f"{name}:{stored}"


def as_models(entries: list[str]) -> tuple[list[str], list[tuple[str, Path]]]:
    """The uploaded entries as the benchmark takes them: ONNX models (``NAME=FILE``) and
    prediction files (name, path); a file that is gone is a sentence, not a traceback."""
    models, files = [], []
    for entry in entries:
        name, _, stored = entry.partition(":")
        path = folder() / Path(stored).name
        if not path.is_file():
            raise InputError(f"The uploaded model {name!r} is no longer stored; upload it again.")
        if path.suffix == ".onnx":
            models.append(f"{name}={path}")
        else:
            files.append((name, path))
    return models, files
