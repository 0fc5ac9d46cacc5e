"""The training recipe: soft targets, label smoothing, mixup, bf16, one-cycle, TTA, the
seeded holdout, FER+ labels by bins, and training across input sizes, on real faces."""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ferml.checkpoint import CheckpointError, read_checkpoint
from ferml.data import draw_mask, load_dataset
from ferml.inference import Predictor, resize_arrays
from ferml.losses import cross_entropy_loss
from ferml.models import create_model
from ferml.train import TrainConfig, init_from_checkpoint, mix_batch, train
from ferml.tta import predict_probabilities, tta_views

from .conftest import load_model

ROOT = Path(__file__).resolve().parents[2]
VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]


def quiet(message):
    pass


@pytest.fixture(scope="module")
def soft_run(tmp_path_factory, fer_sample_csv, ferplus_sample_csv):
    """bkmin on the sample's real FER+ vote distributions (bin3), one-cycle AdamW, bf16,
    flip TTA, validated on a seeded holdout of the Training rows."""
    out = tmp_path_factory.mktemp("soft") / "soft.pt"
    cfg = TrainConfig(model="bkmin", data=str(fer_sample_csv), ferplus=str(ferplus_sample_csv), labels="bin3",
                      ferplus_mode="bins", soft_targets=True, label_smoothing=0.1, mixup=0.2, epochs=3,
                      batch_size=16, optimizer="adamw", lr=2e-3, schedule="onecycle", weight_decay=0.01,
                      precision="bf16", tta="flip", val_split="drawn", val_fraction=0.2, seed=4,
                      out=str(out), progress=False)
    return cfg, train(cfg, log=quiet), out


def test_soft_target_loss_worked_example():
    scores = torch.tensor([[1.0, 2.0, 0.0]])
    # log softmax = s - log(e + e^2 + 1) = s - 2.40760596
    lse = math.log(math.e + math.e ** 2 + 1)
    assert lse == pytest.approx(2.40760596)
    votes = torch.tensor([[0.2, 0.8, 0.0]])  # 2 of 10 taggers said class 0, 8 class 1
    by_hand = -(0.2 * (1 - lse) + 0.8 * (2 - lse))
    assert cross_entropy_loss(scores, votes).item() == pytest.approx(by_hand) == pytest.approx(0.60760596)
    # smoothing 0.1 over 3 classes: t' = 0.9 t + 0.1 / 3
    smoothed = [0.9 * 0.2 + 0.1 / 3, 0.9 * 0.8 + 0.1 / 3, 0.1 / 3]
    by_hand = -sum(t * (s - lse) for t, s in zip(smoothed, [1.0, 2.0, 0.0]))
    assert cross_entropy_loss(scores, votes, label_smoothing=0.1).item() == pytest.approx(by_hand)
    # a one-hot target is the ordinary cross-entropy, smoothed or not
    hard = torch.tensor([1])
    for eps in (0.0, 0.1):
        assert cross_entropy_loss(scores, torch.tensor([[0.0, 1.0, 0.0]]), eps).item() == pytest.approx(
            cross_entropy_loss(scores, hard, eps).item())


def test_mixup_blends_images_and_targets_alike():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    y = torch.eye(3)[[0, 1, 2, 0]]
    mixed_x, mixed_y = mix_batch(x, y, 0.4, np.random.default_rng(0))
    assert torch.allclose(mixed_y.sum(1), torch.ones(4))
    lam = float(np.random.default_rng(0).beta(0.4, 0.4))
    perm = np.random.default_rng(0)
    perm.beta(0.4, 0.4)
    perm = perm.permutation(4)
    assert torch.allclose(mixed_x[:, 0, 0, 0], lam * x[:, 0, 0, 0] + (1 - lam) * x[perm, 0, 0, 0])
    assert torch.allclose(mixed_y, lam * y + (1 - lam) * y[perm])


def test_bins_mode_is_the_benchmark_majority(fer_sample_csv, ferplus_sample_csv):
    votes = pd.read_csv(ferplus_sample_csv).set_index("row")
    rows = pd.read_csv(fer_sample_csv)
    public = votes.loc[rows[rows.Usage == "PublicTest"].row]
    counts = public[VOTE_COLUMNS].to_numpy()
    # bin3 by hand: negative = sad, angry, disgust, fear, contempt; neutral = neutral, surprise
    binned = np.stack([counts[:, 3:8].sum(1), counts[:, 0] + counts[:, 2], counts[:, 1]], 1)
    face = public["NF"].to_numpy() * 2 <= public["NF"].to_numpy() + counts.sum(1)
    top = binned.max(1)
    winner = face & ((binned == top[:, None]).sum(1) == 1)
    data = load_dataset(fer_sample_csv, "bin3", split="val", ferplus=ferplus_sample_csv, ferplus_mode="bins")
    assert len(data) == int(winner.sum()) < len(public)
    assert data.skipped["FER+ tie"] == int((face & ~winner).sum())
    assert list(data.labels) == list(binned[winner].argmax(1))
    assert np.allclose(data.targets, binned[winner] / binned[winner].sum(1, keepdims=True))
    # soft-target training keeps the ties too, with their vote shares
    kept = load_dataset(fer_sample_csv, "bin3", split="val", ferplus=ferplus_sample_csv, ferplus_mode="bins",
                        keep_all_voted=True)
    assert len(kept) == int(face.sum()) and "FER+ tie" not in kept.skipped


def test_holdout_depends_on_the_key_alone():
    keys = [f"row-{i:05d}" for i in range(2000)]
    mask = draw_mask(keys, seed=0, fraction=0.1)
    assert 150 < mask.sum() < 250
    # the same key is held out whatever else is loaded beside it
    assert list(draw_mask(keys[::3], 0, 0.1)) == list(mask[::3])
    assert list(draw_mask(keys, 1, 0.1)) != list(mask)
    assert draw_mask(["only"], 0, 0.01).tolist() == [True]


def test_soft_training_records_its_recipe(soft_run, fer_sample_csv, ferplus_sample_csv):
    cfg, result, out = soft_run
    ckpt = read_checkpoint(out)
    assert ckpt["tta"] == "flip"
    assert ckpt["train"]["precision_used"] == "bf16" and ckpt["train"]["soft_targets"]
    assert ckpt["train"]["schedule"] == "onecycle" and ckpt["data"]["ferplus"]["file"] == ferplus_sample_csv.name
    # one-cycle: the rate rises, then falls far below its peak by the last step
    rates = [row["lr"] for row in result["history"]]
    assert rates[-1] < 2e-3 / 100
    # the training set holds every Training face with a vote, ties included; the holdout none of them
    train_rows = pd.read_csv(fer_sample_csv).query("Usage == 'Training'")
    n_train, n_val = ckpt["data"]["n_train"], ckpt["data"]["n_val"]
    assert n_train + n_val + ckpt["data"]["val_skipped"].get("FER+ tie", 0) + 2 == len(train_rows)


def test_score_holdout_reproduces_the_validation_figure(soft_run, fer_sample_csv, ferplus_sample_csv, tmp_path):
    _, result, out = soft_run
    res = subprocess.run([sys.executable, "-m", "ferml", "score", "--model", str(out), "--data", str(fer_sample_csv),
                          "--ferplus", str(ferplus_sample_csv), "--ferplus-mode", "bins", "--labels", "bin3",
                          "--split", "drawn", "--json", str(tmp_path / "h.json")],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    scored = json.loads((tmp_path / "h.json").read_text())
    assert scored["n"] == read_checkpoint(out)["data"]["n_val"]
    assert scored["accuracy"] == pytest.approx(result["best"]["val_accuracy"])


def test_tta_is_stored_and_applied_by_the_predictor(soft_run, fer_sample_csv):
    _, _, out = soft_run
    model, pre, _ = load_model(out)
    faces = load_dataset(fer_sample_csv, "bin3", split="val").images[:40]
    x = pre(torch.from_numpy(faces))
    with torch.no_grad():
        by_hand = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(3)), 1)) / 2
    predictor = Predictor(out)
    assert predictor.tta == "flip"
    assert np.allclose(predictor.predict_proba_arrays(faces), by_hand.numpy(), atol=1e-5)
    plain = Predictor(out, tta="none").predict_proba_arrays(faces)
    with torch.no_grad():
        assert np.allclose(plain, torch.softmax(model(x), 1).numpy(), atol=1e-5)
    assert not np.allclose(plain, by_hand.numpy(), atol=1e-4)


def test_ten_crop_views():
    x = torch.arange(42 * 42, dtype=torch.float32).view(1, 1, 42, 42)
    views = tta_views(x, "crops")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    assert torch.equal(views[5], views[0].flip(3))
    # the corner crops of the enlarged image differ, the centre crop is centred
    assert not torch.equal(views[0], views[3])
    assert views[4].mean().item() == pytest.approx(x.mean().item(), rel=1e-3)


def test_bf16_and_fp32_agree_on_real_faces(soft_run, fer_sample_csv):
    _, _, out = soft_run
    model, pre, _ = load_model(out)
    x = pre(torch.from_numpy(load_dataset(fer_sample_csv, "bin3", split="val").images))
    fp32 = predict_probabilities(model, x, "none", precision="fp32")
    bf16 = predict_probabilities(model, x, "none", precision="bf16")
    assert (fp32 - bf16).abs().max().item() < 0.05
    assert (fp32.argmax(1) == bf16.argmax(1)).float().mean().item() > 0.95


def test_a_42px_checkpoint_starts_the_100px_model(tmp_path, fer_sample_csv):
    small = TrainConfig(model="resnet18", data=str(fer_sample_csv), labels="bin3", epochs=1, batch_size=16,
                        optimizer="adamw", schedule="onecycle", limit=48, seed=0, out=str(tmp_path / "r42.pt"),
                        progress=False)
    train(small, log=quiet)
    big = create_model("resnet18_100", 3, 1)
    messages = []
    init_from_checkpoint(big, tmp_path / "r42.pt", "resnet18_100", messages.append)
    source = read_checkpoint(tmp_path / "r42.pt")["state_dict"]
    assert all(torch.equal(big.state_dict()[k], v) for k, v in source.items())
    assert messages == [f"initialized {len(source)} of {len(source)} weight tensors from {tmp_path / 'r42.pt'} "
                        "(resnet18, 42 px)"]
    # end to end: train at 100 px from it, then score at 100 px
    finished = TrainConfig(**{**small.__dict__, "model": "resnet18_100", "init": str(tmp_path / "r42.pt"),
                              "out": str(tmp_path / "r100.pt")})
    log = []
    train(finished, log=log.append)
    assert any(m.startswith("initialized") for m in log)
    predictor = Predictor(tmp_path / "r100.pt")
    assert predictor.input_size == 100
    faces = load_dataset(fer_sample_csv, "bin3", split="val", size=100).images[:8]
    assert predictor.predict_proba_arrays(faces).shape == (8, 3)
    # weights that fit nowhere are refused by name
    with pytest.raises(CheckpointError, match="none of its weights fit bkvgg12"):
        init_from_checkpoint(create_model("bkvgg12", 3, 1), tmp_path / "r42.pt", "bkvgg12", quiet)


def test_contradictory_options_are_refused(fer_sample_csv):
    refusals = [
        (["--soft-targets"], "give the votes with --ferplus"),
        (["--loss", "svm", "--label-smoothing", "0.1"], "SVM loss takes hard labels only"),
        (["--rotation", "200"], "rotation must be between 0 and 180 degrees, got 200"),
        (["--epochs", "5", "--swa", "6"], "--swa must name an epoch from 1 to --epochs (5), got 6"),
        (["--swa-lr", "1e-3"], "give its first epoch with --swa"),
        (["--teacher-weight", "0.4"], "name the teacher with --teacher"),
    ]
    for options, message in refusals:
        res = subprocess.run([sys.executable, "-m", "ferml", "train", "--model", "bkmin", "--data", str(fer_sample_csv),
                              *options], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, options


def test_augmentation_strength_reaches_every_batch_and_the_checkpoint(fer_sample_csv, tmp_path, monkeypatch):
    import ferml.train as train_module

    calls = []
    real_augment = train_module.augment_batch

    def recording_augment(x, gen=None, **kwargs):
        calls.append(kwargs)
        return real_augment(x, gen, **kwargs)

    monkeypatch.setattr(train_module, "augment_batch", recording_augment)
    out = tmp_path / "light.pt"
    cfg = TrainConfig(model="bkmin", data=str(fer_sample_csv), epochs=1, batch_size=32, optimizer="adamw",
                      max_rotation=15, max_enlarge=4, out=str(out), progress=False)
    train(cfg, log=quiet)
    assert calls and all(c == {"max_rotation": 15, "max_enlarge": 4} for c in calls)
    recorded = read_checkpoint(out)["train"]
    assert (recorded["max_rotation"], recorded["max_enlarge"]) == (15, 4)


def test_bench_times_a_model():
    from ferml.bench import run_bench

    rows = run_bench(["bkmin"], ["fp32"], "cpu", batch=4, repeats=1)
    assert len(rows) == 1 and rows[0]["flops"] > 0
    assert rows[0]["train_images_per_second"] > 0 and rows[0]["latency_ms"] > 0


def test_ensemble_averages_its_members(soft_run, tmp_path, fer_sample_csv):
    from ferml.checkpoint import make_ensemble, save_checkpoint

    _, _, soft = soft_run
    fer7 = TrainConfig(model="bkmin", data=str(fer_sample_csv), labels="fer7", epochs=1, batch_size=16,
                       optimizer="adamw", seed=2, out=str(tmp_path / "fer7.pt"), progress=False)
    train(fer7, log=quiet)
    res = subprocess.run([sys.executable, "-m", "ferml", "ensemble", str(soft), str(tmp_path / "fer7.pt"),
                          "--labels", "bin3", "--name", "pair", "--out", str(tmp_path / "pair.pt")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    faces = load_dataset(fer_sample_csv, "bin3", split="val").images[:30]
    members = [Predictor(soft), Predictor(tmp_path / "fer7.pt")]
    by_hand = (members[0].predict_proba_arrays(faces) + members[1].predict_proba_arrays(faces, "bin3")) / 2
    pair = Predictor(tmp_path / "pair.pt")
    assert pair.name == "pair" and pair.label_set == "bin3"
    assert np.allclose(pair.predict_proba_arrays(faces), by_hand, atol=1e-6)
    assert np.allclose(pair.predict_proba_arrays(faces, "pos2"), np.stack([by_hand[:, :2].sum(1), by_hand[:, 2]], 1),
                       atol=1e-6)
    # members of different input sizes: images are prepared at the largest, and a smaller
    # member shrinks them to its own
    big = TrainConfig(model="bkmin_100", data=str(fer_sample_csv), labels="bin3", epochs=1, batch_size=16,
                      optimizer="adamw", limit=48, seed=3, out=str(tmp_path / "big.pt"), progress=False)
    train(big, log=quiet)
    checkpoints = [read_checkpoint(soft), read_checkpoint(tmp_path / "big.pt")]
    save_checkpoint(make_ensemble(checkpoints, ["soft", "big"], "bin3", ["negative", "neutral", "positive"], "mixed"),
                    tmp_path / "mixed.pt")
    mixed, small, large = Predictor(tmp_path / "mixed.pt"), Predictor(soft), Predictor(tmp_path / "big.pt")
    assert mixed.input_size == 100
    raw = load_dataset(fer_sample_csv, "bin3", size=48, split="val").images[:30, 0]
    at_100 = mixed.prepare_images(raw)
    assert at_100.shape == (30, 1, 100, 100) and np.array_equal(at_100, large.prepare_images(raw))
    shrunk = resize_arrays(at_100, 42)
    assert shrunk.shape == (30, 1, 42, 42)
    by_hand = (small.predict_proba_arrays(shrunk) + large.predict_proba_arrays(at_100)) / 2
    assert np.allclose(mixed.predict_proba(raw), by_hand, atol=1e-6)
    # shrinking from 100 px costs the small member little against its own 42 px images
    direct = small.predict_proba(raw).argmax(1)
    assert (small.predict_proba_arrays(shrunk).argmax(1) == direct).mean() >= 0.9
    colour = dict(checkpoints[1], preprocess=dict(checkpoints[1]["preprocess"], channels=3))
    with pytest.raises(CheckpointError, match="share one channel count"):
        make_ensemble([checkpoints[0], colour], ["a", "b"], "bin3", ["negative", "neutral", "positive"], "x")


def test_an_ensemble_by_reference_finds_its_members_and_refuses_changed_ones(soft_run, tmp_path, fer_sample_csv,
                                                                             monkeypatch):
    _, _, soft = soft_run
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(soft, folder / "soft.pt")
    other = TrainConfig(model="bkmin", data=str(fer_sample_csv), labels="bin3", epochs=1, batch_size=16,
                        optimizer="adamw", seed=4, out=str(folder / "other.pt"), progress=False)
    train(other, log=quiet)

    def ensemble(*members, out):
        return subprocess.run([sys.executable, "-m", "ferml", "ensemble", *members, "--by-reference",
                               "--name", "pair", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)

    res = ensemble(str(folder / "soft.pt"), str(folder / "other.pt"), out=folder / "pair.pt")
    assert res.returncode == 0 and "by reference" in res.stdout, res.stderr
    whole = ensemble(str(folder / "soft.pt"), str(folder / "other.pt"), out=tmp_path / "whole.pt")
    assert whole.returncode == 0 and (folder / "pair.pt").stat().st_size < 0.1 * (folder / "soft.pt").stat().st_size
    faces = load_dataset(fer_sample_csv, "bin3", split="val").images[:20]
    by_hand = (Predictor(folder / "soft.pt").predict_proba_arrays(faces)
               + Predictor(folder / "other.pt").predict_proba_arrays(faces)) / 2
    assert np.allclose(Predictor(folder / "pair.pt").predict_proba_arrays(faces), by_hand, atol=1e-6)
    # moved away from its members, it finds them by name in $FERML_MODEL_DIR
    shutil.move(folder / "pair.pt", tmp_path / "moved.pt")
    monkeypatch.setenv("FERML_MODEL_DIR", str(folder))
    assert np.allclose(Predictor(tmp_path / "moved.pt").predict_proba_arrays(faces), by_hand, atol=1e-6)
    monkeypatch.delenv("FERML_MODEL_DIR")
    with pytest.raises(CheckpointError, match="member soft.pt is neither beside it nor a known model"):
        Predictor(tmp_path / "moved.pt")
    # a member trained again is not silently used in place of the one the ensemble was made of
    shutil.copy(soft, folder / "other.pt")
    shutil.move(tmp_path / "moved.pt", folder / "pair.pt")
    with pytest.raises(CheckpointError, match="other.pt has changed since the ensemble was made"):
        Predictor(folder / "pair.pt")


def test_export_stores_half_precision_and_the_chosen_tta(soft_run, tmp_path, fer_sample_csv):
    _, _, soft = soft_run
    res = subprocess.run([sys.executable, "-m", "ferml", "export", str(soft), str(tmp_path / "half.pt"),
                          "--data", str(fer_sample_csv), "--split", "val", "--labels", "bin3", "--tta", "crops"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0 of 300 predictions change in half precision")
    half = read_checkpoint(tmp_path / "half.pt")
    assert all(v.dtype == torch.float16 for v in half["state_dict"].values() if v.is_floating_point())
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * soft.stat().st_size
    assert half["tta"] == "crops" and Predictor(tmp_path / "half.pt").tta == "crops"
    assert read_checkpoint(soft)["tta"] == "flip"


def test_weight_averaging_validates_and_keeps_the_mean_of_the_epochs(tmp_path, fer_sample_csv):
    """--swa 2: epochs 2 and 3 run at --swa-lr, and from epoch 2 on validation scores (and the
    best checkpoint stores) the mean of the weights after each of them; a run stopped after
    epoch 2 resumes with its average."""
    common = dict(model="bkmin", data=str(fer_sample_csv), batch_size=16, optimizer="adam", lr=1e-3,
                  precision="fp32", augment=False, val_split="drawn", val_fraction=0.2, tta="flip", seed=2,
                  swa_start=2, swa_lr=3e-4, progress=False)
    train(TrainConfig(epochs=2, out=str(tmp_path / "two.pt"), **common), log=quiet)
    three = train(TrainConfig(epochs=3, out=str(tmp_path / "three.pt"), **common), log=quiet)
    assert [row["averaged_epochs"] for row in three["history"]] == [0, 1, 2]
    assert [row["lr"] for row in three["history"]] == [1e-3, 3e-4, 3e-4]
    rows = list(csv.DictReader(open(three["metrics"])))
    assert [row["averaged_epochs"] for row in rows] == ["0", "1", "2"]

    after_two = read_checkpoint(tmp_path / "two.last.pt")["state_dict"]
    last = read_checkpoint(tmp_path / "three.last.pt")
    after_three, average = last["state_dict"], last["resume"]["swa"]
    assert int(average["n_averaged"]) == 2
    for key, weights in after_three.items():
        assert not torch.equal(weights, after_two[key])
        torch.testing.assert_close(average[f"module.{key}"], (weights + after_two[key]) / 2)

    # the average's holdout accuracy is the figure epoch 3 reports
    averaged = dict(last, state_dict={k.removeprefix("module."): v for k, v in average.items() if k != "n_averaged"})
    averaged.pop("resume")
    torch.save(averaged, tmp_path / "averaged.pt")
    data = load_dataset(fer_sample_csv, split="train", label_set="fer7", size=42)
    held = data.subset(np.flatnonzero(draw_mask(data.keys, 2, 0.2)))
    probs = Predictor(tmp_path / "averaged.pt").predict_proba_arrays(held.images)
    assert (probs.argmax(1) == held.labels).mean() == pytest.approx(three["history"][2]["val_accuracy"], abs=1e-6)
    best = read_checkpoint(tmp_path / "three.pt")
    # the average of epoch 2 alone is epoch 2's weights
    stored_by_epoch = {2: after_two, 3: averaged["state_dict"]}
    if three["best"]["epoch"] in stored_by_epoch:
        torch.testing.assert_close(best["state_dict"], stored_by_epoch[three["best"]["epoch"]])

    resumed = train(TrainConfig(epochs=3, resume=str(tmp_path / "two.last.pt"), out=str(tmp_path / "r.pt"), **common),
                    log=quiet)
    assert [row["averaged_epochs"] for row in resumed["history"]] == [0, 1, 2]
    assert int(read_checkpoint(tmp_path / "r.last.pt")["resume"]["swa"]["n_averaged"]) == 2


def test_weight_averaging_measures_batch_norm_afresh(fer_sample_csv):
    """A network with batch norm: the average's running statistics are those of the training
    images passed through the averaged weights, not a mean of the members' statistics."""
    from ferml.preprocess import Preprocessor
    from ferml.train import WeightAverage

    data = load_dataset(fer_sample_csv, split="train", label_set="fer7", size=42)
    x = Preprocessor(42, 1).fit(data.images)(data.images[:64])
    torch.manual_seed(0)
    model = create_model("resnet18", 7, 1).to(memory_format=torch.channels_last)
    averaging = WeightAverage(model, start=1, lr=1e-3)
    averaged = averaging.update(model, x, batch_size=16)
    assert averaging.count == 1
    conv, first_bn = averaged.stem[0], averaged.stem[1]
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(first_bn, torch.nn.BatchNorm2d)
    with torch.no_grad():
        conv_out = conv(x)
    torch.testing.assert_close(first_bn.running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_bn.running_var, conv_out.var((0, 2, 3)), rtol=1e-3, atol=1e-5)
    assert not torch.allclose(first_bn.running_mean, torch.zeros_like(first_bn.running_mean))


def test_distillation_mixes_the_teachers_softmax_into_the_targets(tmp_path, fer_sample_csv, soft_run):
    """--teacher: each training image's target is (1 - W) x its label + W x the teacher's
    softmax on it (the teacher's own TTA), binned into the student's label set."""
    from ferml.train import load_training_data, training_targets

    teacher_out = tmp_path / "teacher.pt"
    train(TrainConfig(model="bkmin", data=str(fer_sample_csv), epochs=1, batch_size=16, optimizer="adam",
                      tta="flip", seed=5, out=str(teacher_out), progress=False), log=quiet)
    messages = []
    for labels in ("fer7", "bin3"):
        cfg = TrainConfig(model="bkmin", data=str(fer_sample_csv), labels=labels, teacher=str(teacher_out),
                          teacher_weight=0.3)
        train_set, _ = load_training_data(cfg, 42)
        targets, soft = training_targets(cfg, train_set, log=messages.append)
        teacher = Predictor(teacher_out).predict_proba_arrays(train_set.images, labels)
        assert soft and targets.shape == (len(train_set), len(train_set.classes))
        one_hot = np.eye(len(train_set.classes))[train_set.labels]
        np.testing.assert_allclose(targets.numpy(), 0.7 * one_hot + 0.3 * teacher, atol=1e-6)
        np.testing.assert_allclose(targets.sum(1).numpy(), 1, atol=1e-5)
    assert "teacher teacher (fer7, tta flip)" in messages[0] and "agrees with" in messages[0]

    student = train(TrainConfig(model="bkmin", data=str(fer_sample_csv), epochs=1, batch_size=16, optimizer="adam",
                                teacher=str(teacher_out), teacher_weight=0.3, seed=5, out=str(tmp_path / "s.pt"),
                                progress=False), log=quiet)
    recorded = read_checkpoint(student["out"])["train"]
    assert recorded["teacher"] == str(teacher_out) and recorded["teacher_weight"] == 0.3

    # a bin3 teacher cannot say which of the seven emotions a face shows
    _, _, bin3_teacher = soft_run
    res = subprocess.run([sys.executable, "-m", "ferml", "train", "--model", "bkmin", "--data", str(fer_sample_csv),
                          "--teacher", str(bin3_teacher), "--epochs", "1", "--out", str(tmp_path / "x.pt")],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "predicts bin3, which cannot be put into fer7" in res.stderr
