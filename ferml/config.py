"""A training run's settings, defined once: each field of ``TrainConfig`` carries its
command-line flag, help, choices and checks, from which ``python -m ferml train`` builds its
options (``add_options``), maps them back (``from_args``) and refuses values outside their
choices (``check_choices``)."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .data import FERPLUS_MODES
from .device import PRECISIONS
from .labels import LABEL_SETS
from .losses import LOSSES
from .models import list_models
from .tta import TTA_MODES

OPTIMIZERS = ("adadelta", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
DRAWN = "drawn"  # --val-split: a seeded share of the training images validates (not a split of the data)
VAL_SPLIT_SPELLINGS = {"holdout": DRAWN}  # the older name of the drawn validation images


def option(default=None, help: str = "", *, flag: str | None = None, off_flag: str | None = None,
           choices=None, metavar: str | None = None, nargs: str | None = None, cli: bool = True,
           required: bool = False, aliases: tuple[str, ...] = ()):
    """A ``TrainConfig`` field and its command-line option. ``flag`` overrides ``--field-name``;
    ``off_flag`` is the switch that turns a default-on setting off; ``choices`` may be a
    callable (read when the parser is built); ``aliases`` are older flags still accepted;
    ``cli=False`` keeps a field out of the command line."""
    meta = {"help": help, "flag": flag, "off_flag": off_flag, "choices": choices, "metavar": metavar,
            "nargs": nargs, "cli": cli, "required": required, "aliases": aliases}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# the options every data-reading command shares (train, score, export, paths)
DATA_OPTIONS = ("data", "labels", "skip_bad", "ferplus", "ferplus_mode", "device", "batch_size")


@dataclass
class TrainConfig:
    model: str = option(
        required=True, metavar="NAME", choices=list_models,
        help="one of the model zoo's names (python -m ferml models)")
    data: str = option(required=True, help="FER2013 csv(.gz), AffectNet csv/folder, or class-per-folder tree or zip")
    labels: str = option("fer7", choices=lambda: list(LABEL_SETS), help="label set")
    epochs: int = option(30)
    batch_size: int = option(128)
    loss: str = option("ce", choices=LOSSES, help="ce: cross-entropy; svm: L2 multiclass SVM, delta 1")
    optimizer: str = option("adadelta", choices=OPTIMIZERS)
    lr: float | None = option(
        help="learning rate, the peak of a one-cycle schedule (default: 1.0 adadelta, 1e-3 adam and adamw, "
             "0.01 sgd)")
    schedule: str = option(
        "constant", choices=SCHEDULES,
        help="constant (sgd: reduce on plateau), cosine (per epoch, to zero) or onecycle (per batch: warm-up to "
             "--lr, then cosine down)")
    cosine: bool = option(False, help="same as --schedule cosine")
    warmup: float = option(0.25, help="one-cycle: share of the steps spent warming up")
    weight_decay: float = option(0.0, help="weight decay (decoupled with adamw)")
    label_smoothing: float = option(0.0, help="mix the targets with the uniform distribution")
    soft_targets: bool = option(
        False, help="train on each face's FER+ vote distribution (needs --ferplus); ties and no-majority faces "
                    "are kept for training")
    mixup: float = option(0.0, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA); 0 is off")
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="bf16 autocast or fp32; auto takes bf16 on CPUs with AVX512-BF16 or AMX and on GPUs that support it")
    tta: str = option(
        "none", choices=TTA_MODES,
        help="test-time augmentation stored in the checkpoint, applied by validation, score, benchmark and live: "
             "none, flip (2 views) or crops (ten-crop)")
    pixel_norm: bool = option(True, off_flag="--no-pixel-norm", help="switch pixel normalization off (thesis 8.8)")
    augment: bool = option(True, off_flag="--no-augment", help="switch training augmentation off")
    max_rotation: float = option(
        45.0, flag="--rotation", metavar="DEG",
        help="augmentation: random rotation up to DEG degrees either way (default %(default)g)")
    max_enlarge: int = option(
        12, flag="--enlarge", metavar="PX",
        help="augmentation: enlarge by up to PX pixels, then crop at random (default %(default)s)")
    device: str = option("auto", choices=DEVICES)
    seed: int = option(0)
    out: str | None = option(help="best checkpoint path (default runs/NAME.pt)")
    resume: str | None = option(help="continue from a .last.pt file")
    init: str | None = option(help="start from this checkpoint's weights (fine-tuning)")
    channels: int = option(1, choices=(1, 3), help="1 grayscale, 3 RGB")
    dropout: list[float] | None = option(nargs="+", help="dropout schedule, e.g. 0.05 0.2 0.4")
    train_split: str | None = option("train", cli=False)
    val_split: str | None = option(
        "val", help=f"validation split of --data (val, test) or {DRAWN}: a seeded --val-fraction of the training "
                    "split, leaving the data's own val split unseen")
    val_data: str | None = option(help="validation data (default: the data's own validation split)")
    val_fraction: float = option(
        0.1, help=f"share of the training images drawn for validation (data without splits, or --val-split {DRAWN})")
    draw_seed: int | None = option(
        aliases=("--holdout-seed",), help="seed that draws the validation images (default: --seed), so runs with different seeds can validate "
             "on the same faces")
    limit: int | None = option(help="use at most this many training and validation images")
    skip_bad: bool = option(False, help="skip and count malformed rows/images instead of stopping")
    ferplus: str | None = option(help="FER+ fer2013new.csv: label FER2013 rows by their crowd votes")
    ferplus_mode: str = option(
        "majority", choices=lambda: list(FERPLUS_MODES),
        help="label of a FER+ face: majority (one emotion has over half the votes), plurality (one emotion has the "
             "most), bins (votes binned into the label set first, then the most-voted class: the benchmark's "
             "majority); ties are left out")
    display_name: str | None = option(flag="--name", help="name recorded in the checkpoint (default: the file name)")
    half: bool = option(False, help="store the best checkpoint's weights in half precision")
    progress: bool = option(
        True, off_flag="--no-progress",
        help="no progress bar (there is none anyway when the output is not a terminal)")
    time_limit: float | None = option(
        metavar="MIN", help="stop (keeping the best checkpoint) before an epoch that would end past MIN minutes")
    swa_start: int = option(
        0, flag="--swa", metavar="EPOCH",
        help="stochastic weight averaging: from this epoch on hold the rate at --swa-lr and validate and keep the "
             "running mean of each epoch's weights (0: off)")
    swa_lr: float | None = option(metavar="LR", help="the rate held while averaging (default: --lr)")
    teacher: str | None = option(
        metavar="MODEL", help="distillation: mix this model's softmax on each training image (its own TTA; a name, "
                              "checkpoint or ensemble) into the targets")
    teacher_weight: float = option(0.5, metavar="W", help="the teacher's share of each target (default %(default)g)")

    def __post_init__(self):
        self.val_split = VAL_SPLIT_SPELLINGS.get(self.val_split, self.val_split)

    def output_path(self) -> Path:
        return Path(self.out or f"runs/{self.display_name or self.model}.pt")

    @property
    def draw_seed_used(self) -> int:
        return self.seed if self.draw_seed is None else self.draw_seed

    @property
    def schedule_name(self) -> str:
        return "cosine" if self.cosine and self.schedule == "constant" else self.schedule


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _value_type(f: dataclasses.Field):
    hint = typing.get_type_hints(TrainConfig)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    inner = args[0]
    return typing.get_args(inner)[0] if typing.get_origin(inner) is list else inner


def _choices(f: dataclasses.Field):
    choices = f.metadata["choices"]
    return list(choices()) if callable(choices) else choices


def add_options(parser: argparse.ArgumentParser, names=None, **defaults) -> None:
    """Add the options of ``names`` (default: every field on the command line) to ``parser``,
    each from its field; ``defaults`` replaces a field's default for this parser."""
    for name, f in _fields().items():
        meta = f.metadata
        if (names is None and not meta["cli"]) or (names is not None and name not in names):
            continue
        default = defaults.get(name, f.default if f.default is not dataclasses.MISSING else None)
        kind = _value_type(f)
        help_text = meta["help"] or None
        if kind is bool and default:
            parser.add_argument(meta["off_flag"], dest=name, action="store_false", help=help_text)
            continue
        flag = meta["flag"] or "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            continue
        choices = _choices(f)
        if meta["choices"] is list_models:
            help_text = f"one of: {', '.join(choices)}"
        parser.add_argument(flag, *meta["aliases"], dest=name, type=kind, default=default, choices=choices, metavar=meta["metavar"],
                            nargs=meta["nargs"], required=meta["required"], help=help_text)


def from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The config of a parsed command line (every field the parser had), with ``overrides``."""
    given = {name: getattr(args, name) for name in _fields() if hasattr(args, name)}
    return TrainConfig(**{**given, **overrides})


def check_choices(cfg: TrainConfig) -> None:
    """Refuse a value outside its field's choices (a config built in code, not by the parser)."""
    for name, f in _fields().items():
        choices = _choices(f)
        if choices is not None and name != "model" and getattr(cfg, name) not in choices:
            raise ValueError(f"unknown {name.replace('_', ' ')} {getattr(cfg, name)!r}; "
                             f"choose {', '.join(map(str, choices))}")
