"""Accuracy, per-class accuracy and the row-normalized confusion matrix (thesis Table 8)."""
from __future__ import annotations

import numpy as np

from .data import ImageSet
from .inference import Predictor


def confusion_counts(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (truth, pred), 1)
    return counts


def summarize(truth: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    counts = confusion_counts(truth, pred, len(classes))
    totals = counts.sum(1, keepdims=True)
    confusion = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    return {
        "accuracy": float((truth == pred).mean()) if len(truth) else float("nan"),
        "n": int(len(truth)),
        "labels": list(classes),
        "per_class_accuracy": {c: (float(confusion[i, i]) if totals[i, 0] else None) for i, c in enumerate(classes)},
        "confusion": confusion.round(6).tolist(),
        "counts": counts.tolist(),
    }


def score_predictor(predictor: Predictor, data: ImageSet) -> dict:
    probs = predictor.predict_proba_arrays(data.images, data.label_set)
    result = summarize(data.labels, probs.argmax(1), data.classes)
    result.update(model=predictor.name, label_set=data.label_set, skipped=dict(data.skipped))
    return result


def format_report(result: dict) -> str:
    classes = result["labels"]
    width = max(10, *(len(c) for c in classes)) + 1
    lines = [
        f"model {result.get('model', '?')} on {result['n']} images ({result.get('label_set', '')})",
        f"accuracy {100 * result['accuracy']:.2f} %",
        "",
        "per-class accuracy:",
    ]
    for c in classes:
        acc = result["per_class_accuracy"][c]
        lines.append(f"  {c:<{width}} {'-' if acc is None else f'{100 * acc:6.2f} %'}")
    lines += ["", "confusion matrix (rows: true label, columns: predicted; each row sums to 100 %):",
              " " * (width + 2) + "".join(f"{c[:9]:>10}" for c in classes)]
    for c, row in zip(classes, result["confusion"]):
        lines.append(f"  {c:<{width}}" + "".join(f"{100 * v:9.1f}%" for v in row))
    if result.get("skipped"):
        lines += ["", "skipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(result["skipped"].items()))]
    return "\n".join(lines)
