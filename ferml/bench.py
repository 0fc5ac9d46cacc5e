"""Speed of the model zoo on this machine: training and inference images per second, per
model and precision, beside the FLOPs per image. Run it when nothing else runs."""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from .device import autocast, keep_freed_memory, pick_device, resolve_precision
from .flops import count_flops
from .models import create_model, get_entry

DEFAULT_MODELS = ("bkvgg12", "resnet18", "dense121", "dense121_100")


def _timed(step, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def bench_model(name: str, precision: str, device: torch.device, batch: int = 64, repeats: int = 5,
                warmup: int = 2, num_classes: int = 3) -> dict:
    """One model at one precision: a training step (forward, backward, AdamW) at ``batch``,
    inference at ``batch`` and at batch 1 (median latency), channels-last throughout."""
    keep_freed_memory()  # as a Predictor does
    entry = get_entry(name)
    size = entry.input_size
    model = create_model(name, num_classes, 1)
    flops = count_flops(model, size, 1)
    model.to(device, memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), generator=gen).to(device)
    one = x[:1].contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()

    def infer(batch_x):
        def step():
            with torch.no_grad(), autocast(device, precision):
                model(batch_x)
            sync()
        return step

    model.train()
    train_times = _timed(train_step, repeats, warmup)
    model.eval()
    batch_times = _timed(infer(x), repeats, warmup)
    single_times = _timed(infer(one), max(repeats * 4, 10), warmup)
    return {
        "model": name, "input_size": size, "precision": precision, "flops": flops,
        "train_images_per_second": batch / statistics.median(train_times),
        "infer_images_per_second": batch / statistics.median(batch_times),
        "latency_ms": 1000 * statistics.median(single_times),
    }


def bench_onnxruntime(name: str, batch: int = 64, repeats: int = 5, warmup: int = 2, num_classes: int = 3) -> dict:
    """One model's inference under ONNX Runtime (its float32 export), at ``batch`` and at
    batch 1; ONNX Runtime does not train."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from .onnxmodel import export_graph, runtime_session

    entry = get_entry(name)
    size = entry.input_size
    model = create_model(name, num_classes, 1).eval()
    flops = count_flops(model, size, 1)
    x = np.random.default_rng(0).standard_normal((batch, 1, size, size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{name}.onnx"
        export_graph(model, torch.from_numpy(x[:2]), path)
        session = runtime_session(path)
    feed = session.get_inputs()[0].name

    def infer(batch_x):
        return lambda: session.run(None, {feed: batch_x})

    batch_times = _timed(infer(x), repeats, warmup)
    single_times = _timed(infer(x[:1]), max(repeats * 4, 10), warmup)
    return {
        "model": name, "input_size": size, "precision": "onnxruntime", "flops": flops,
        "train_images_per_second": None,
        "infer_images_per_second": batch / statistics.median(batch_times),
        "latency_ms": 1000 * statistics.median(single_times),
    }


def bench_path(name: str, path: str, device: torch.device, **kwargs) -> dict:
    """``bench_model`` for a PyTorch precision, ``bench_onnxruntime`` for ONNX Runtime."""
    if path == "onnxruntime":
        return bench_onnxruntime(name, **kwargs)
    return bench_model(name, path, device, **kwargs)


def run_bench(models=DEFAULT_MODELS, precisions=("fp32", "bf16"), device: str = "auto", batch: int = 64,
              repeats: int = 5, log=None) -> list[dict]:
    dev = pick_device(device)
    rows = []
    for name in models:
        get_entry(name)  # an unknown name fails before any timing
    for name in models:
        for precision in precisions:
            if precision == "bf16" and resolve_precision("auto", dev) != "bf16":
                row = {"model": name, "precision": precision, "skipped": "no native bf16 on this device"}
            elif precision == "onnxruntime" and dev.type != "cpu":
                row = {"model": name, "precision": precision, "skipped": "ONNX Runtime runs on the CPU here"}
            else:
                row = bench_path(name, precision, dev, batch=batch, repeats=repeats)
            rows.append(row)
            if log:
                log(format_row(row))
    return rows


HEADER = (f"{'model':<14}{'input':>6}{'precision':>12}{'GFLOPs/img':>11}{'train img/s':>13}"
          f"{'infer img/s':>13}{'batch-1 ms':>12}")


def format_row(row: dict) -> str:
    if "skipped" in row:
        return f"{row['model']:<14}{'':>6}{row['precision']:>12}  skipped: {row['skipped']}"
    train = row["train_images_per_second"]
    return (f"{row['model']:<14}{row['input_size']:>6}{row['precision']:>12}{row['flops'] / 1e9:>11.2f}"
            f"{format(train, '>13.1f') if train is not None else '-':>13}{row['infer_images_per_second']:>13.1f}"
            f"{row['latency_ms']:>12.2f}")
