"""A training run's settings are defined once: the command line is built from
``TrainConfig``'s fields, maps back to them, and refuses what their choices do not hold."""
from __future__ import annotations

import dataclasses

import pytest

from ferml.cli import _draw_seed, build_parser
from ferml.config import DRAWN, TrainConfig, check_choices, from_args
from ferml.train import check_config


def parse(line: str):
    return build_parser().parse_args(["train", "--model", "bkvgg12", "--data", "faces.csv", *line.split()])


def test_every_field_on_the_command_line_has_its_default_there():
    cfg = from_args(parse(""))
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ("model", "data"):
            assert getattr(cfg, f.name) == getattr(TrainConfig("m", "d"), f.name), f.name


def test_flags_map_to_their_fields():
    cfg = from_args(parse("--rotation 20 --enlarge 8 --no-augment --no-pixel-norm --swa 3 --swa-lr 1e-4 "
                          "--name stage --dropout 0.1 0.2 --val-split drawn --draw-seed 5 --soft-targets "
                          "--labels bin3 --loss svm --channels 3"))
    assert (cfg.max_rotation, cfg.max_enlarge, cfg.augment, cfg.pixel_norm) == (20.0, 8, False, False)
    assert (cfg.swa_start, cfg.swa_lr, cfg.display_name, cfg.dropout) == (3, 1e-4, "stage", [0.1, 0.2])
    assert (cfg.val_split, cfg.draw_seed, cfg.soft_targets, cfg.labels, cfg.loss, cfg.channels) == \
        (DRAWN, 5, True, "bin3", "svm", 3)


def test_the_older_spellings_of_the_drawn_validation_images_still_work():
    cfg = from_args(parse("--val-split holdout --holdout-seed 0 --seed 3"))
    assert (cfg.val_split, cfg.draw_seed, cfg.draw_seed_used) == (DRAWN, 0, 0)
    assert _draw_seed({"seed": 3, "holdout_seed": 0}) == 0  # a checkpoint written before the rename
    assert _draw_seed({"seed": 3, "draw_seed": None}) == 3


def test_choices_come_from_the_fields(capsys):
    with pytest.raises(SystemExit):
        parse("--optimizer rmsprop")
    assert "invalid choice: 'rmsprop'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose adadelta, adam, adamw, sgd"):
        check_config(TrainConfig("bkvgg12", "faces.csv", optimizer="rmsprop"))
    with pytest.raises(ValueError, match="unknown ferplus mode 'mean'"):
        check_choices(TrainConfig("bkvgg12", "faces.csv", ferplus_mode="mean"))
    check_config(TrainConfig("bkvgg12", "faces.csv"))
