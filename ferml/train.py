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
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import (
    CheckpointError,
    build_model,
    file_sha256,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .config import DRAWN, TrainConfig, check_choices
from .data import MissingSplitError, RawSet, draw_mask, prepare, read_raw
from .device import autocast, keep_freed_memory, pick_device, resolve_precision
from .labels import check_label_set
from .losses import LOSSES
from .models import create_model, get_entry
from .preprocess import Preprocessor, augment_batch
from .tta import check_tta, predict_probabilities


def default_lr(optimizer: str) -> float:
    return {"adadelta": 1.0, "adam": 1e-3, "adamw": 1e-3, "sgd": 0.01}[optimizer]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_config(cfg: TrainConfig) -> None:
    """Refuse contradictory options before any data is read."""
    check_label_set(cfg.labels)
    check_tta(cfg.tta)
    check_choices(cfg)
    if not 0 <= cfg.label_smoothing < 1:
        raise ValueError(f"label smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if cfg.mixup < 0:
        raise ValueError(f"mixup must be 0 (off) or a positive Beta parameter, got {cfg.mixup}")
    if not 0 <= cfg.max_rotation <= 180:
        raise ValueError(f"rotation must be between 0 and 180 degrees, got {cfg.max_rotation}")
    if cfg.max_enlarge < 0:
        raise ValueError(f"enlargement must be 0 or more pixels, got {cfg.max_enlarge}")
    if not 0 < cfg.warmup < 1:
        raise ValueError(f"warm-up must be a share of the steps between 0 and 1, got {cfg.warmup}")
    if cfg.soft_targets and not cfg.ferplus:
        raise ValueError("--soft-targets trains on the crowd's vote distribution: give the votes with --ferplus")
    if cfg.swa_start and not 1 <= cfg.swa_start <= cfg.epochs:
        raise ValueError(f"--swa must name an epoch from 1 to --epochs ({cfg.epochs}), got {cfg.swa_start}")
    if cfg.swa_lr is not None and cfg.swa_lr <= 0:
        raise ValueError(f"--swa-lr must be a positive learning rate, got {cfg.swa_lr}")
    if cfg.swa_lr is not None and not cfg.swa_start:
        raise ValueError("--swa-lr is the rate of weight averaging: give its first epoch with --swa")
    if not 0 < cfg.teacher_weight <= 1:
        raise ValueError(f"--teacher-weight is the teacher's share of each target, in (0, 1]; got {cfg.teacher_weight}")
    if cfg.teacher_weight != TrainConfig.teacher_weight and not cfg.teacher:
        raise ValueError("--teacher-weight weighs a teacher's predictions: name the teacher with --teacher")
    if cfg.loss == "svm" and (cfg.soft_targets or cfg.mixup or cfg.label_smoothing or cfg.teacher):
        raise ValueError("the SVM loss takes hard labels only: no --soft-targets, --mixup, --label-smoothing or --teacher")


def _read_split_or_all(path, split, cfg) -> tuple[RawSet, bool]:
    """The split if the data has it, else every image (and False)."""
    try:
        return read_raw(path, split, cfg.skip_bad, cfg.channels, cfg.ferplus), True
    except MissingSplitError:
        return read_raw(path, None, cfg.skip_bad, cfg.channels, cfg.ferplus), False


def load_training_data(cfg: TrainConfig, size: int):
    """Training and validation sets. Validation: --val-data (its validation split if it has
    one, else all of it), else the data's own validation split, else (no splits, or
    --val-split drawn) a seeded --val-fraction of the training images.

    With --soft-targets the training images keep their vote distributions, ties included;
    validation always scores hard labels (--ferplus-mode), ties left out."""
    train_raw, has_splits = _read_split_or_all(cfg.data, cfg.train_split, cfg)
    if cfg.val_data:
        val_raw, _ = _read_split_or_all(cfg.val_data, None if cfg.val_split == DRAWN else cfg.val_split, cfg)
    elif has_splits and cfg.val_split != DRAWN:
        val_raw = read_raw(cfg.data, cfg.val_split, cfg.skip_bad, cfg.channels, cfg.ferplus)
    else:
        held = draw_mask(train_raw.keys, cfg.draw_seed_used, cfg.val_fraction)
        train_raw, val_raw = train_raw.subset(np.flatnonzero(~held)), train_raw.subset(np.flatnonzero(held))
    train = prepare(train_raw, cfg.labels, size, cfg.channels, cfg.ferplus_mode, keep_all_voted=cfg.soft_targets)
    val = prepare(val_raw, cfg.labels, size, cfg.channels, cfg.ferplus_mode)
    if cfg.limit:
        rng = np.random.default_rng(cfg.seed)
        train = train.subset(np.sort(rng.permutation(len(train))[: cfg.limit]))
        val = val.subset(np.sort(rng.permutation(len(val))[: cfg.limit]))
    return train, val


def make_optimizer(cfg: TrainConfig, params, steps_per_epoch: int):
    """The optimizer, its scheduler (or None) and whether the scheduler steps every batch.

    constant: no schedule (SGD: reduce-on-plateau, the thesis' way); cosine: per epoch down
    to zero; onecycle: per batch, up from lr/25 to lr over the warm-up share, then down to
    lr/25,000 (Smith & Topin 2017), the fastest of the three to converge here."""
    lr = cfg.lr or default_lr(cfg.optimizer)
    schedule = cfg.schedule_name
    if cfg.optimizer == "adadelta":
        opt = torch.optim.Adadelta(params, lr=lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay or 5e-4)
    if schedule == "onecycle":
        # each phase needs two steps or more; a tiny run simply ends before the cycle does
        shortest = math.ceil(2 / min(cfg.warmup, 1 - cfg.warmup)) + 2
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(shortest, cfg.epochs * steps_per_epoch), pct_start=cfg.warmup,
            div_factor=25.0, final_div_factor=1e3, cycle_momentum=cfg.optimizer != "adadelta")
        return opt, sched, True
    if schedule == "cosine":
        # a fixed epoch budget converges further when the rate decays to zero by its end
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs), False
    if cfg.optimizer == "sgd":
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=5), False
    return opt, None, False


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


def evaluate(model, x: torch.Tensor, y: torch.Tensor, tta: str, device, precision: str) -> tuple[float, float]:
    """Validation loss (cross-entropy of the TTA-averaged softmax) and accuracy."""
    model.eval()
    probs = predict_probabilities(model, x, tta, 512, device, precision)
    if len(y) == 0:
        return 0.0, 0.0
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), y)
    return float(loss), float((probs.argmax(1) == y).float().mean())


def init_from_checkpoint(model: torch.nn.Module, path, model_name: str, log) -> None:
    """Start from another checkpoint's weights wherever their shapes fit (fine-tuning).

    The fully convolutional families (ResNet, DenseNet) have the same shapes at every input
    size, so a model trained at 42 px starts a 100 px one whole (progressive resizing); a new
    output layer is left fresh when the classes differ."""
    source = read_checkpoint(path)
    state = build_model(source, path).state_dict()
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise CheckpointError(f"{path}: none of its weights fit {model_name} "
                              f"(it holds {source['model']['name']})")
    model.load_state_dict(fitting, strict=False)
    size = source.get("preprocess", {}).get("input_size")
    log(f"initialized {len(fitting)} of {len(own)} weight tensors from {path} "
        f"({source['model']['name']}, {size} px)")


def mix_batch(xb: torch.Tensor, yb: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Mixup (Zhang et al. 2018): each image blended with another of the batch, and its
    target with theirs, by one Beta(alpha, alpha) weight per batch."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(xb))).to(xb.device)
    return lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]


@dataclass
class Batches:
    """The training tensors on the device and how one epoch walks through them."""

    x: torch.Tensor
    y: torch.Tensor  # class indices, or distributions (soft targets, mixup)
    steps: int  # per epoch and process
    soft: bool


class WeightAverage:
    """Stochastic weight averaging (Izmailov et al. 2018): from epoch ``start`` on, the rate is
    held at ``lr`` and the weights after each epoch join an equal-weight running mean, which
    is what validation scores and the checkpoint stores. The mean of weights visited at a
    steady, fairly high rate lies nearer the middle of a wide optimum than any one of them,
    and generalizes better than the end of a decaying schedule (CIFAR: +1-2 points for VGG)."""

    def __init__(self, model: torch.nn.Module, start: int, lr: float):
        self.start, self.lr = start, lr
        self.averaged = torch.optim.swa_utils.AveragedModel(model, use_buffers=False)

    def active(self, epoch: int) -> bool:
        return epoch >= self.start

    @property
    def count(self) -> int:
        return int(self.averaged.n_averaged)

    def hold_rate(self, optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.lr

    def update(self, model: torch.nn.Module, x_train: torch.Tensor, batch_size: int) -> torch.nn.Module:
        """Add the model's weights to the mean; batch-norm statistics of the mean are
        measured afresh on the (unaugmented) training images. Returns the averaged model."""
        self.averaged.update_parameters(model)
        batches = (x_train[i:i + batch_size].contiguous(memory_format=torch.channels_last)
                   for i in range(0, len(x_train), batch_size))
        torch.optim.swa_utils.update_bn(batches, self.averaged)  # returns at once without batch norm
        return self.averaged.module

    def state_dict(self) -> dict:
        return {k: v.detach().cpu() for k, v in self.averaged.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)


def build_training_model(cfg: TrainConfig, classes: list[str], resume_state: dict | None, log):
    """The model and its recorded arguments: fresh (He initialization), started from
    --init's weights, or restored from --resume."""
    entry = get_entry(cfg.model)
    model_args = {"name": cfg.model, "num_classes": len(classes), "in_channels": cfg.channels,
                  "dropout": list(cfg.dropout) if cfg.dropout is not None else list(entry.default_dropout)}
    if cfg.display_name:
        model_args["display_name"] = cfg.display_name
    model = create_model(cfg.model, len(classes), cfg.channels, model_args["dropout"])
    if resume_state:
        model.load_state_dict(build_model(resume_state, cfg.resume).state_dict())
    elif cfg.init:
        init_from_checkpoint(model, cfg.init, cfg.model, log)
    return model, model_args


def restore_progress(resume_state: dict | None, optimizer, scheduler) -> tuple[int, dict, list[dict]]:
    """(first epoch to run, best metrics so far, history) of a resumed or a new run."""
    if not resume_state:
        return 1, {"val_accuracy": -1.0}, []
    extra = resume_state.get("resume", {})
    if "optimizer" in extra:
        optimizer.load_state_dict(extra["optimizer"])
    if scheduler is not None and extra.get("scheduler"):
        scheduler.load_state_dict(extra["scheduler"])
    return int(extra.get("epoch", 0)) + 1, dict(extra.get("best", {"val_accuracy": -1.0})), list(extra.get("history", []))


def train_epoch(net, batches: Batches, cfg: TrainConfig, epoch: int, optimizer, scheduler, per_step: bool,
                device, precision: str, gen: torch.Generator, mix_rng, ddp: "Distributed") -> tuple[float, float, int]:
    """One pass over this process' shard; (summed loss, correct, images seen) on this process."""
    net.train()
    loss_fn = LOSSES[cfg.loss]
    order = torch.randperm(len(batches.x), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
    shard = order[ddp.rank::ddp.world]
    # every rank runs the same number of steps so DDP's collectives stay in step
    bar = tqdm(range(batches.steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=not (cfg.progress and ddp.main),
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
        xb, yb = batches.x[idx], batches.y[idx]
        if cfg.augment:
            xb = augment_batch(xb, gen, max_rotation=cfg.max_rotation, max_enlarge=cfg.max_enlarge)
        if cfg.mixup > 0:
            xb, yb = mix_batch(xb, yb, cfg.mixup, mix_rng)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            scores = net(xb).float()
        loss = loss_fn(scores, yb, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if per_step:
            scheduler.step()
        loss_sum += loss.detach().double() * len(yb)
        correct += (scores.argmax(1) == (yb.argmax(1) if batches.soft else yb)).sum()
        seen += len(yb)
        if not bar.disable and (step % 20 == 0 or step == batches.steps - 1):
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{int(correct) / seen:.3f}")
    return float(loss_sum), int(correct), seen


def training_targets(cfg: TrainConfig, train_set, log=print) -> tuple[torch.Tensor, bool]:
    """What the loss compares with: vote distributions (--soft-targets), one-hot rows (for
    mixup to blend), or class indices, each mixed with a teacher's softmax (--teacher); and
    whether they are distributions."""
    if cfg.soft_targets:
        targets = torch.from_numpy(train_set.targets).float()
    else:
        labels = torch.from_numpy(train_set.labels)
        if cfg.mixup <= 0 and not cfg.teacher:
            return labels, False
        targets = F.one_hot(labels, len(train_set.classes)).float()
    if cfg.teacher:
        targets = (1 - cfg.teacher_weight) * targets + cfg.teacher_weight * teacher_probabilities(cfg, train_set, log)
    return targets, True


def teacher_probabilities(cfg: TrainConfig, train_set, log=print) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): the teacher's softmax on each training
    image as it is (unaugmented), with the teacher's own test-time augmentation, binned into
    the student's label set. Where the labels are noisy, as FER2013's are, a teacher's
    graded beliefs (this face is half fear, half surprise) say more than one hard label, and
    an ensemble teacher hands its average to a single network."""
    from .inference import Predictor, resize_arrays
    from .modelfiles import resolve_model

    started = time.time()
    teacher = Predictor(resolve_model(cfg.teacher), device=cfg.device, batch_size=512)
    if teacher.channels != cfg.channels:
        raise ValueError(f"teacher {cfg.teacher} reads {teacher.channels}-channel images, the student {cfg.channels}")
    try:
        probs = teacher.predict_proba_arrays(resize_arrays(train_set.images, teacher.input_size), cfg.labels)
    except ValueError as exc:
        raise ValueError(f"teacher {cfg.teacher} predicts {teacher.label_set}, which cannot be put into "
                         f"{cfg.labels}: {exc}") from None
    agree = float((probs.argmax(1) == (train_set.targets.argmax(1) if cfg.soft_targets else train_set.labels)).mean())
    views = "/".join(sorted({member.tta for member in teacher.members} or {teacher.tta}))
    log(f"teacher {teacher.name} ({teacher.label_set}, tta {views}) on {len(probs)} training images: "
        f"agrees with {100 * agree:.1f} % of their labels, {time.time() - started:.0f} s")
    return torch.from_numpy(probs).float()


def training_device(cfg: TrainConfig) -> tuple[torch.device, "Distributed"]:
    """The device this process trains on (its own GPU under torchrun) and the process group."""
    device = pick_device(cfg.device)
    ddp = Distributed(device)
    if device.type == "cuda" and ddp.active:
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    return device, ddp


def data_record(cfg: TrainConfig, train_set, val_set) -> dict:
    """What the checkpoint says about its data: files, their sha256, counts, skips."""
    record = {"file": Path(cfg.data).name, "sha256": file_sha256(cfg.data) if Path(cfg.data).is_file() else None,
              "n_train": len(train_set), "n_val": len(val_set), "skipped": dict(train_set.skipped),
              "val_skipped": dict(val_set.skipped)}
    if cfg.ferplus:
        record["ferplus"] = {"file": Path(cfg.ferplus).name, "sha256": file_sha256(cfg.ferplus)}
    return record


@dataclass
class CheckpointWriter:
    """Writes, after each epoch, the best checkpoint (when the epoch is the best so far), the
    ``.last.pt`` resume state and the ``.metrics.csv`` history."""

    out: Path
    model_args: dict
    cfg: TrainConfig
    classes: list[str]
    preprocessor: Preprocessor
    train_config: dict
    data: dict

    def _checkpoint(self, model, metrics: dict, half: bool = False) -> dict:
        return make_checkpoint(model, self.model_args, self.cfg.labels, self.classes, self.preprocessor,
                               self.train_config, self.data, metrics, half=half, tta=self.cfg.tta)

    def epoch_done(self, model, row: dict, best: dict, is_best: bool, optimizer, scheduler, history,
                   scored=None, averaged_state: dict | None = None) -> None:
        """``scored``: the model validation scored (the weight average, if any), which the best
        checkpoint stores; ``.last.pt`` keeps the trained weights, and the average to resume it."""
        if is_best:
            save_checkpoint(self._checkpoint(scored if scored is not None else model, best, half=self.cfg.half),
                            self.out)
        state = self._checkpoint(model, row)
        state["resume"] = {"epoch": row["epoch"], "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict() if scheduler is not None else None,
                           "best": best, "history": history}
        if averaged_state is not None:
            state["resume"]["swa"] = averaged_state
        save_checkpoint(state, self.out.with_suffix(".last.pt"))
        write_metrics(self.out.with_suffix(".metrics.csv"), history)


def train(cfg: TrainConfig, log=print) -> dict:
    """Train ``cfg.model``; returns the best epoch's metrics. Writes cfg.out, its
    ``.last.pt`` (resume state) and ``.metrics.csv``."""
    started = time.time()
    check_config(cfg)
    entry = get_entry(cfg.model)
    device, ddp = training_device(cfg)
    precision = resolve_precision(cfg.precision, device)
    seed_everything(cfg.seed)
    keep_freed_memory()

    train_set, val_set = load_training_data(cfg, entry.input_size)
    resume_state = read_checkpoint(cfg.resume) if cfg.resume else None
    if resume_state:
        if resume_state["model"]["name"] != cfg.model:
            raise CheckpointError(f"{cfg.resume}: holds {resume_state['model']['name']}, not {cfg.model}")
        pre = Preprocessor.from_dict(resume_state["preprocess"])
    else:
        pre = Preprocessor(entry.input_size, cfg.channels).fit(train_set.images, pixel_norm=cfg.pixel_norm)
    x_val, y_val = pre(val_set.images), torch.from_numpy(val_set.labels)
    y_train, soft = training_targets(cfg, train_set, log)
    batches = Batches(pre(train_set.images).to(device), y_train.to(device),
                      math.ceil(len(train_set) / ddp.world / cfg.batch_size), soft)

    model, model_args = build_training_model(cfg, train_set.classes, resume_state, log)
    # channels-last convolutions are faster on GPUs and on oneDNN CPU kernels alike
    model.to(device, memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp.active else model
    optimizer, scheduler, per_step = make_optimizer(cfg, net.parameters(), batches.steps)
    start_epoch, best, history = restore_progress(resume_state, optimizer, scheduler)
    averaging = None
    if cfg.swa_start:
        averaging = WeightAverage(model, cfg.swa_start, cfg.swa_lr or cfg.lr or default_lr(cfg.optimizer))
        if resume_state and resume_state.get("resume", {}).get("swa"):
            averaging.load_state_dict(resume_state["resume"]["swa"])
    writer = CheckpointWriter(cfg.output_path(), model_args, cfg, train_set.classes, pre,
                              dict(asdict(cfg), precision_used=precision), data_record(cfg, train_set, val_set))
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1000 + ddp.rank)
    mix_rng = np.random.default_rng([cfg.seed, ddp.rank])
    if ddp.main:
        log(f"training {cfg.model} on {len(train_set)} images, validating on {len(val_set)} "
            f"({cfg.labels}: {', '.join(train_set.classes)}) on {device}, {precision}"
            + (f" x{ddp.world} processes" if ddp.active else ""))
    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        averaging_now = averaging is not None and averaging.active(epoch)
        if averaging_now:
            averaging.hold_rate(optimizer)
        sums = train_epoch(net, batches, cfg, epoch, optimizer, scheduler, per_step and not averaging_now, device,
                           precision, gen, mix_rng, ddp)
        loss_total, correct_total, seen_total = ddp.sum(*sums)
        train_loss, train_acc = loss_total / seen_total, correct_total / seen_total
        train_seconds = time.time() - t0
        # validation runs in float32, as score, benchmark and live do: the figure that picks
        # the checkpoint is the one users get
        scored = averaging.update(model, batches.x, 512) if averaging_now else model
        val_loss, val_acc = evaluate(scored, x_val, y_val, cfg.tta, device, "fp32")
        if averaging_now:
            pass  # the rate stays where weight averaging holds it
        elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(train_loss)  # thesis: lower the rate when the training loss stops improving
        elif scheduler is not None and not per_step:
            scheduler.step()
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "train_accuracy": round(train_acc, 6),
               "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 6),
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2),
               "train_images_per_second": round(seen_total / train_seconds, 1)}
        if averaging is not None:
            row["averaged_epochs"] = averaging.count if averaging_now else 0
        history.append(row)
        is_best = val_acc > best["val_accuracy"]
        if is_best:
            best = {"epoch": epoch, "val_accuracy": val_acc, "val_loss": val_loss,
                    "train_accuracy": train_acc, "train_loss": train_loss}
        if ddp.main:
            log(f"epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
                f"val loss {val_loss:.4f} acc {val_acc:.4f} | {row['seconds']:.0f}s, "
                f"{row['train_images_per_second']:.0f} img/s")
            writer.epoch_done(model, row, best, is_best, optimizer, scheduler, history, scored,
                              averaging.state_dict() if averaging_now else None)
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
    return {"best": best, "history": history, "out": str(writer.out),
            "metrics": str(writer.out.with_suffix(".metrics.csv")), "stopped_early": stopped_early}


def write_metrics(path: Path, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        # a resumed run may add columns (weight averaging) that its first rows lack
        fields = list(dict.fromkeys(key for row in history for key in row))
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(history)
