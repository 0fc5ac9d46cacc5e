"""Training loop (thesis 7.1): whole-batch augmentation on the training device,
validation after each epoch, best checkpoint kept, per-epoch metrics csv, resumable.

Runs as one process on a CPU or GPU, or under ``torchrun`` with DistributedDataParallel
(NCCL on GPUs, gloo on CPUs): each rank trains on its own shard of every epoch.
"""
from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .checkpoint import CheckpointError, build_model, make_checkpoint, read_checkpoint, save_checkpoint
from .data import ImageSet, MissingSplitError, load_dataset, sha256_of
from .inference import pick_device
from .labels import check_label_set
from .losses import LOSSES
from .models import create_model, get_entry
from .preprocess import Preprocessor, augment_batch

OPTIMIZERS = ("adadelta", "adam", "sgd")


@dataclass
class TrainConfig:
    model: str
    data: str
    labels: str = "fer7"
    epochs: int = 30
    batch_size: int = 128
    loss: str = "ce"
    optimizer: str = "adadelta"
    lr: float | None = None
    cosine: bool = False
    pixel_norm: bool = True
    augment: bool = True
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    resume: str | None = None
    init: str | None = None
    channels: int = 1
    dropout: list[float] | None = None
    train_split: str | None = "train"
    val_split: str | None = "val"
    val_data: str | None = None
    val_fraction: float = 0.1
    limit: int | None = None
    skip_bad: bool = False
    ferplus: str | None = None
    ferplus_mode: str = "majority"
    display_name: str | None = None
    half: bool = False
    progress: bool = True
    time_limit: float | None = None  # minutes; stop before an epoch that would run past it

    def output_path(self) -> Path:
        return Path(self.out or f"runs/{self.display_name or self.model}.pt")


def default_lr(optimizer: str) -> float:
    return {"adadelta": 1.0, "adam": 1e-3, "sgd": 0.01}[optimizer]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_split_or_all(path, split, common) -> tuple[ImageSet, bool]:
    """The split if the data has it, else every image (and False)."""
    try:
        return load_dataset(path, split=split, **common), True
    except MissingSplitError:
        return load_dataset(path, split=None, **common), False


def load_training_data(cfg: TrainConfig, size: int) -> tuple[ImageSet, ImageSet]:
    """Training and validation sets. Validation: --val-data (its validation split if it has
    one, else all of it), else the data's own validation split, else a seeded
    --val-fraction of the training images."""
    common = dict(label_set=cfg.labels, size=size, channels=cfg.channels, skip_bad=cfg.skip_bad,
                  ferplus=cfg.ferplus, ferplus_mode=cfg.ferplus_mode)
    train, has_splits = _load_split_or_all(cfg.data, cfg.train_split, common)
    if cfg.val_data:
        val, _ = _load_split_or_all(cfg.val_data, cfg.val_split, common)
    elif has_splits:
        val = load_dataset(cfg.data, split=cfg.val_split, **common)
    else:
        # data without splits: hold out a seeded fraction for validation
        order = np.random.default_rng(cfg.seed).permutation(len(train))
        n_val = max(1, int(round(len(train) * cfg.val_fraction)))
        train, val = train.subset(np.sort(order[n_val:])), train.subset(np.sort(order[:n_val]))
    if cfg.limit:
        rng = np.random.default_rng(cfg.seed)
        train = train.subset(np.sort(rng.permutation(len(train))[: cfg.limit]))
        val = val.subset(np.sort(rng.permutation(len(val))[: cfg.limit]))
    return train, val


def make_optimizer(cfg: TrainConfig, params):
    """The optimizer and its per-epoch scheduler (None, cosine decay, or reduce-on-plateau)."""
    lr = cfg.lr or default_lr(cfg.optimizer)
    if cfg.optimizer in ("adadelta", "adam"):
        opt = torch.optim.Adadelta(params, lr=lr) if cfg.optimizer == "adadelta" else torch.optim.Adam(params, lr=lr)
        # a fixed epoch budget converges further when the rate decays to zero by its end
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.cosine else None
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=5)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose {', '.join(OPTIMIZERS)}")


class Distributed:
    """Rank and world size under torchrun; a single process otherwise."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            # the epoch sums are CPU tensors: they go over gloo even when the gradients use NCCL
            dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        if self.active:
            dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int, device, amp) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        yb = y[start:start + batch_size].to(device, non_blocking=True)
        with amp():
            scores = model(xb).float()
        total_loss += float(loss_fn(scores, yb)) * len(yb)
        correct += int((scores.argmax(1) == yb).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


def train(cfg: TrainConfig, log=print) -> dict:
    """Train ``cfg.model``; returns the best epoch's metrics. Writes cfg.out, its
    ``.last.pt`` (resume state) and ``.metrics.csv``."""
    started = time.time()
    check_label_set(cfg.labels)
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose {', '.join(LOSSES)}")
    entry = get_entry(cfg.model)
    device = pick_device(cfg.device)
    ddp = Distributed(device)
    if device.type == "cuda" and ddp.active:
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    seed_everything(cfg.seed)
    out = cfg.output_path()
    last_path = out.with_suffix(".last.pt")
    metrics_path = out.with_suffix(".metrics.csv")

    train_set, val_set = load_training_data(cfg, entry.input_size)
    classes = train_set.classes
    pre = Preprocessor(entry.input_size, cfg.channels)
    resume_state = None
    if cfg.resume:
        resume_state = read_checkpoint(cfg.resume)
        if resume_state["model"]["name"] != cfg.model:
            raise CheckpointError(f"{cfg.resume}: holds {resume_state['model']['name']}, not {cfg.model}")
        pre = Preprocessor.from_dict(resume_state["preprocess"])
    else:
        pre.fit(train_set.images, pixel_norm=cfg.pixel_norm)
    x_train, x_val = pre(train_set.images), pre(val_set.images)
    y_train, y_val = torch.from_numpy(train_set.labels), torch.from_numpy(val_set.labels)

    model_args = {"name": cfg.model, "num_classes": len(classes), "in_channels": cfg.channels,
                  "dropout": list(cfg.dropout) if cfg.dropout is not None else list(entry.default_dropout)}
    if cfg.display_name:
        model_args["display_name"] = cfg.display_name
    model = create_model(cfg.model, len(classes), cfg.channels, model_args["dropout"])
    if cfg.init and not resume_state:
        # fine-tuning: start from another checkpoint's features, a fresh output layer if classes differ
        source = read_checkpoint(cfg.init)
        state = build_model(source, cfg.init).state_dict()
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    if resume_state:
        model.load_state_dict(build_model(resume_state, cfg.resume).state_dict())
    # channels-last convolutions are faster on GPUs and on oneDNN CPU kernels alike
    model.to(device, memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp.active else model
    optimizer, scheduler = make_optimizer(cfg, net.parameters())
    loss_fn = LOSSES[cfg.loss]
    use_amp = device.type == "cuda"

    def amp():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else torch.autocast("cpu", enabled=False)

    start_epoch, best, history, stopped_early = 1, {"val_accuracy": -1.0}, [], False
    if resume_state:
        extra = resume_state.get("resume", {})
        if "optimizer" in extra:
            optimizer.load_state_dict(extra["optimizer"])
        if scheduler is not None and extra.get("scheduler"):
            scheduler.load_state_dict(extra["scheduler"])
        start_epoch = int(extra.get("epoch", 0)) + 1
        best = dict(extra.get("best", best))
        history = list(extra.get("history", []))

    data_info = {"file": Path(cfg.data).name, "sha256": sha256_of(cfg.data) if Path(cfg.data).is_file() else None,
                 "n_train": len(train_set), "n_val": len(val_set), "skipped": dict(train_set.skipped)}
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1000 + ddp.rank)
    x_train_dev = x_train.to(device)
    y_train_dev = y_train.to(device)
    if ddp.main:
        log(f"training {cfg.model} on {len(train_set)} images, validating on {len(val_set)} "
            f"({cfg.labels}: {', '.join(classes)}) on {device}" + (f" x{ddp.world} processes" if ddp.active else ""))
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        net.train()
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        shard = order[ddp.rank::ddp.world]
        # every rank runs the same number of steps so DDP's collectives stay in step
        steps = math.ceil(len(order) / ddp.world / cfg.batch_size)
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=not (cfg.progress and ddp.main),
                   leave=False, dynamic_ncols=True)
        # running sums stay on the device: reading them back every step would stall a GPU
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for step in bar:
            idx = shard[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            if len(idx) == 0:
                idx = shard[: cfg.batch_size]
            idx = idx.to(device)
            xb, yb = x_train_dev[idx], y_train_dev[idx]
            if cfg.augment:
                xb = augment_batch(xb, gen)
            xb = xb.contiguous(memory_format=torch.channels_last)
            with amp():
                scores = net(xb).float()
            loss = loss_fn(scores, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(yb)
            correct += (scores.argmax(1) == yb).sum()
            seen += len(yb)
            if not bar.disable and (step % 20 == 0 or step == steps - 1):
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{int(correct) / seen:.3f}")
        loss_total, correct_total, seen_total = ddp.sum(float(loss_sum), int(correct), seen)
        train_loss, train_acc = loss_total / seen_total, correct_total / seen_total
        val_loss, val_acc = evaluate(model, x_val, y_val, loss_fn, 512, device, amp)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(train_loss)  # thesis: lower the rate when the training loss stops improving
        elif scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "train_accuracy": round(train_acc, 6),
               "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 6),
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2)}
        history.append(row)
        if ddp.main:
            log(f"epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
                f"val loss {val_loss:.4f} acc {val_acc:.4f} | {row['seconds']:.0f}s")
            train_cfg = asdict(cfg)
            if val_acc > best["val_accuracy"]:
                best = {"epoch": epoch, "val_accuracy": val_acc, "val_loss": val_loss,
                        "train_accuracy": train_acc, "train_loss": train_loss}
                save_checkpoint(make_checkpoint(model, model_args, cfg.labels, classes, pre, train_cfg,
                                                data_info, best, half=cfg.half), out)
            state = make_checkpoint(model, model_args, cfg.labels, classes, pre, train_cfg, data_info, row)
            state["resume"] = {"epoch": epoch, "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict() if scheduler is not None else None,
                               "best": best, "history": history}
            save_checkpoint(state, last_path)
            write_metrics(metrics_path, history)
        if cfg.time_limit is not None and epoch < cfg.epochs:
            # assume the next epoch takes as long as this one; every rank must agree to stop
            over = time.time() - started + row["seconds"] > cfg.time_limit * 60
            if ddp.sum(float(over))[0] > 0:
                stopped_early = True
                if ddp.main:
                    log(f"stopping after epoch {epoch} of {cfg.epochs}: another epoch would pass "
                        f"the time limit of {cfg.time_limit:g} min")
                break
    ddp.close()
    return {"best": best, "history": history, "out": str(out), "metrics": str(metrics_path),
            "stopped_early": stopped_early}


def write_metrics(path: Path, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
