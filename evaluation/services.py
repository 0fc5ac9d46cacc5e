"""The benchmark and agreement figures of a stored test set.

These functions query the ORM, run the trained models on the stored images and hand
votes and predictions to the pure functions of the metric modules (``votes``, ``agreement``, ``heldout``, ``significance``) and
``evaluation.benchmark_core``. The ``benchmark`` command, the staff report pages and
the agreement section this app adds to the annotator dashboard all call them, so every
place shows the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Q

from annotator.dashboard import pool_progress
from annotator.models import Exclusion, Image, RepeatedFile, TestSet, Vote
from annotator.testsets import resolve_testset
from core.errors import InputError
from ferml.checkpoint import CheckpointError
from ferml.data import DataError, decode_image, to_model_array
from ferml.device import release_freed_memory
from ferml.inference import Predictor
from ferml.labels import LABEL_SETS, LabelError, binning_matrix, map_label, scheme_targets
from ferml.modelfiles import ModelNotFoundError, train_hint
from ferml.onnxmodel import OnnxModelError

from . import heldout_scoring, quality, significance_tests, vote_tables
from .benchmark_core import (
    ALL,
    AUTO,
    DEFAULT_MIN_IMAGES,
    HoldoutChoice,
    agreement_block_from_counts,
    build_benchmark_result,
    choose,
)
from .models import StoredPrediction
from .predictions import PredictionFile, PredictionFileError, read_prediction_file

DEFAULT_LABEL_SET = "bin3"
VOTE_COLUMNS = ["image", "annotator", "label"]
# Images per call to a model: a multiple of the Predictor's batch (256), so the batches and
# the results are those of one call; between calls the job's page hears the progress.
PREDICT_CHUNK = 1024
# progress(stage, done=0, total=None): how far a long computation is (the report's job).
ProgressFn = Callable[..., None]


def _no_progress(stage: str, done: int = 0, total: int | None = None) -> None:
    pass


class BenchmarkError(ValueError):
    """A request the benchmark cannot serve; the message is a sentence for the user."""


# --------------------------------------------------------------------------- votes


def get_testset(testset: TestSet | str | None) -> TestSet:
    """A TestSet as given, or the one with that name, or the only one there is."""
    if isinstance(testset, TestSet):
        return testset
    try:
        return resolve_testset(testset)
    except InputError as err:
        raise BenchmarkError(str(err)) from None


def label_names(label_set: str) -> list[str]:
    """The ordered labels of a label set that votes can be given in or binned to."""
    if label_set not in LABEL_SETS:
        raise BenchmarkError(f"Unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}.")
    return list(LABEL_SETS[label_set])


@dataclass(frozen=True)
class ScoringLabels:
    """What a benchmark of a test set scores in: its own scheme, or a bin set the scheme
    maps into (an emotion study scored in bin3: each vote binned after it was cast)."""

    name: str  # as asked for: the scheme's name or a bin set's
    labels: list[str]
    target: str | list[str]  # what a model's classes are mapped into (ferml.labels)
    vote_map: dict[str, str | None]  # each label of the scheme, as scored
    binned: bool  # votes were binned after they were cast
    scheme: str = "bin3"

    @classmethod
    def of_label_set(cls, name: str) -> "ScoringLabels":
        """A label set scored as it is (votes given in it)."""
        labels = label_names(name)
        return cls(name, labels, name, {label: label for label in labels}, False, name)

    @property
    def sentence(self) -> str | None:
        if not self.binned:
            return None
        return (f"The votes were cast in {self.scheme} and binned to {self.name} after they were cast, "
                "as a 7- or 8-class model's probabilities are.")


def scoring_choices(testset: TestSet) -> list[str]:
    """The label sets a test set can be benchmarked in: its scheme, then the bin sets
    (bin3, pos2) every label of the scheme maps into."""
    return list(dict.fromkeys([testset.scheme_name, *scheme_targets(testset.labels)]))


def scoring_labels(testset: TestSet, label_set: str | None = None) -> ScoringLabels:
    """The labels of a benchmark of ``testset`` in ``label_set`` (default: its scheme)."""
    scheme, labels = testset.scheme_name, testset.labels
    name = label_set or scheme
    if name == scheme:
        target = scheme if scheme in LABEL_SETS else list(labels)
        return ScoringLabels(name, list(labels), target, {label: label for label in labels}, False, scheme)
    choices = scoring_choices(testset)
    if name not in choices:
        raise BenchmarkError(
            f"Test set {testset.name!r} votes in {scheme} ({', '.join(labels)}), which cannot be scored "
            f"in {name!r}; choose {', '.join(choices[:-1])} or {choices[-1]}."
        )
    return ScoringLabels(name, label_names(name), name, {label: map_label(label, name) for label in labels},
                         True, scheme)


def testset_votes(testset: TestSet | str, label_set: str | ScoringLabels | None = None) -> pd.DataFrame:
    """The counted votes of ``testset`` (``Vote.objects.counted``: no control image, no
    excluded annotator) for a label of its scheme, as columns image (key), annotator
    (username), label; extra answers ("unsure", "not a face") are left out. In a bin set
    each vote is binned (for pos2: positive stays, the rest become non-positive)."""
    testset = get_testset(testset)
    scoring = label_set if isinstance(label_set, ScoringLabels) else scoring_labels(testset, label_set)
    rows = (Vote.objects.counted(testset).filter(label__in=testset.labels).order_by()
            .values_list("image_id", "annotator_id", "label"))
    frame = pd.DataFrame.from_records(list(rows), columns=["image_id", "annotator_id", "label"])
    keys = dict(Image.objects.filter(testset=testset).values_list("id", "key"))
    names = dict(get_user_model().objects.filter(pk__in=_voter_ids(testset)).values_list("pk", "username"))
    frame = pd.DataFrame({
        "image": frame["image_id"].map(keys).astype(object),
        "annotator": frame["annotator_id"].map(names).astype(object),
        "label": frame["label"].map(scoring.vote_map).astype(object),
    }, columns=VOTE_COLUMNS)
    return frame


def extra_answer_counts(testset: TestSet) -> dict[str, int]:
    """Counted votes per extra answer (in no majority; the report counts them, as FER+ does)."""
    counts = dict(Vote.objects.counted(testset).filter(label__in=testset.extra_answers).order_by()
                  .values("label").annotate(n=Count("id")).values_list("label", "n"))
    return {extra: counts.get(extra, 0) for extra in testset.extra_answers}


def _voter_ids(testset: TestSet):
    return Vote.objects.counted(testset).order_by().values("annotator_id").distinct()


def annotator_names(testset: TestSet) -> list[str]:
    """Usernames of everyone with at least one counted vote on ``testset``, sorted."""
    return list(
        get_user_model().objects.filter(pk__in=_voter_ids(testset))
        .order_by("username").values_list("username", flat=True)
    )


def vote_count_table(testset: TestSet) -> np.ndarray:
    """Counted votes per image (a row for each image with a vote) and label of the scheme
    (columns in order), added up by the database: one row per image is read, not one per vote."""
    labels = testset.labels
    columns = {f"n{i}": Count("id", filter=Q(label=label)) for i, label in enumerate(labels)}
    rows = (Vote.objects.counted(testset).filter(label__in=labels).order_by().values("image_id")
            .annotate(**columns).values_list(*columns))
    return np.array(list(rows), dtype=np.int64).reshape(-1, len(labels))


def agreement_summary(testset: TestSet) -> dict:
    """Size and agreement of the counted votes on ``testset``, over all annotators, in its scheme.

    Undefined figures (no votes yet, one label only) are None. The staff dashboard
    shows this dict as it is. Computed from the database's vote counts per image, so it
    costs the same whether the test set has a hundred votes or a million.
    """
    counts = vote_count_table(testset)
    agreement = agreement_block_from_counts(counts)
    return {
        **vote_tables.vote_summary_from_counts(counts, _voter_ids(testset).count()),
        "agreement_accuracy": agreement["accuracy"],
        "loo_agreement": agreement["loo_accuracy"],
        "fleiss_kappa": agreement["fleiss_kappa"],
        "krippendorff_alpha": agreement["krippendorff_alpha"],
    }


# --------------------------------------------------------------------------- models


@dataclass
class LoadedModel:
    """A model as asked for (its name) and the checkpoint it was loaded from."""

    name: str
    predictor: Predictor

    @property
    def description(self) -> dict:
        return {
            "checkpoint": self.predictor.path.name,
            "architecture": self.predictor.checkpoint["model"].get("name"),
            "training_label_set": self.predictor.label_set,
            "input_size": self.predictor.input_size,
            "channels": self.predictor.channels,
        }


def no_model_message() -> str:
    """What to do when no trained model is available at all."""
    return (
        "No trained model found: ferml/weights/ and $FERML_MODEL_DIR hold no .pt file. "
        "Train one, e.g. with:\n"
        f"  {train_hint('bkvgg12')}"
    )


def _scoring(label_set: str | ScoringLabels) -> ScoringLabels:
    return label_set if isinstance(label_set, ScoringLabels) else ScoringLabels.of_label_set(label_set)


def load_models(
    model_names: Iterable[str], label_set: str | ScoringLabels = DEFAULT_LABEL_SET
) -> list[LoadedModel]:
    """One Predictor per distinct name (or checkpoint path), each able to answer in ``label_set``.

    All are loaded before any image is read, so a missing or broken checkpoint is
    reported at once rather than after minutes of inference. A model whose classes cannot
    be mapped into the labels (a bin3 model asked for emotions) is refused with a sentence.
    """
    scoring = _scoring(label_set)
    labels, target = scoring.labels, scoring.target
    loaded = []
    for name in dict.fromkeys(model_names):  # a name given twice runs once
        name, source = _named(name)
        try:
            predictor = Predictor.from_name(source, device="cpu")
        except ModelNotFoundError as err:
            raise BenchmarkError(_sentence(str(err))) from None
        except (CheckpointError, OnnxModelError) as err:
            message = _sentence(str(err))
            raise BenchmarkError(f"Model {name!r} cannot be loaded: {message}") from None
        if predictor.label_set != target:
            try:  # a pos2 model cannot be split back into bin3, for example
                binning_matrix(predictor.classes, target)
            except LabelError:
                raise BenchmarkError(
                    f"Model {name!r} was trained on {predictor.label_set} labels "
                    f"({', '.join(predictor.classes)}) and cannot be scored on "
                    f"{scoring.name} ({', '.join(labels)})."
                ) from None
        loaded.append(LoadedModel(name, predictor))
    return loaded


def _named(entry: str) -> tuple[str, str]:
    """(the name a report gives it, the model name or file) of ``NAME=FILE`` or a plain entry."""
    name, sep, source = str(entry).partition("=")
    if sep and name.strip() and source.strip() and not Path(entry).exists():
        return name.strip(), source.strip()
    return str(entry), str(entry)


def predict_images(
    testset: TestSet, models: Sequence[LoadedModel], keys: Iterable[str], label_set: str | ScoringLabels,
    progress: ProgressFn | None = None,
) -> dict[str, dict[str, str]]:
    """Each model's label (in ``label_set``) for the images of ``testset`` with these keys.

    Each network (a model, or each member of an ensemble) takes its probabilities from the
    prediction store (``StoredPrediction``) and computes only the images it has none for,
    storing them: a second report of the same study runs no network and reads no image.
    The images to compute are decoded once per input format (size, channels) and shrunk to
    the network's input at once, so memory stays small even for large photographs.
    ``progress(stage, done, total)``, when given, hears how far the reading and each
    network are.
    """
    progress = progress or _no_progress
    scoring = _scoring(label_set)
    labels, target = scoring.labels, scoring.target
    wanted = set(keys)
    # filtered here, not with key__in: thousands of keys would overflow SQLite's parameter limit
    images = [i for i in Image.objects.filter(testset=testset).order_by("key") if i.key in wanted]
    prepared: dict[tuple[int, int], np.ndarray] = {}
    predictions = {}
    for model in models:
        predictor = model.predictor
        networks = predictor.members or [predictor]
        probs = [_network_probabilities(model.name, network, images, prepared, progress) for network in networks]
        combined = predictor.combine(probs, target) if predictor.members else predictor.in_labels(probs[0], target)
        predictions[model.name] = {image.key: labels[i] for image, i in zip(images, combined.argmax(axis=1))}
    release_freed_memory()  # a server's worker lives on after the report
    return predictions


def _network_probabilities(name: str, network, images: Sequence[Image], prepared: dict,
                           progress: ProgressFn) -> np.ndarray:
    """One network's probabilities over its own classes on ``images``: stored ones read,
    the others computed (in chunks, with progress) and stored."""
    path = f"{network.tta}/{network.precision}"
    stored = stored_probabilities(network.key, path, [image.sha256 for image in images])
    missing = [i for i, image in enumerate(images) if image.sha256 not in stored]
    computed = {}
    if missing:
        spec = (network.input_size, network.channels)
        if spec not in prepared:
            prepared[spec] = {}
        cache = prepared[spec]
        todo = [images[i] for i in missing if images[i].pk not in cache]
        if todo:
            for image, array in zip(todo, _model_arrays(todo, *spec, progress)):
                cache[image.pk] = array
        arrays = np.stack([cache[images[i].pk] for i in missing])
        parts = []
        for start in range(0, len(arrays), PREDICT_CHUNK):
            progress(f"model {name}: images", start, len(arrays))
            try:  # the network is built on first use (nothing is built when all is stored)
                parts.append(network.predict_proba_arrays(arrays[start:start + PREDICT_CHUNK]))
            except CheckpointError as err:
                raise BenchmarkError(f"Model {name!r} cannot be loaded: {_sentence(str(err))}") from None
        new = np.concatenate(parts).astype(np.float32)
        computed = {images[i].sha256: row for i, row in zip(missing, new)}
        store_probabilities(network.key, path, computed, name)
    width = len(network.classes)
    return np.array([stored.get(image.sha256, computed.get(image.sha256)) for image in images],
                    dtype=np.float32).reshape(len(images), width)


_STORE_CHUNK = 2000


def stored_probabilities(network: str, path: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
    """The store's probabilities of ``network`` on these images (by content hash)."""
    found = {}
    unique = sorted(set(shas))
    for start in range(0, len(unique), _STORE_CHUNK):
        rows = StoredPrediction.objects.filter(network=network, path=path,
                                               image_sha256__in=unique[start:start + _STORE_CHUNK])
        for sha, data in rows.values_list("image_sha256", "probabilities"):
            found[sha] = np.frombuffer(bytes(data), dtype=np.float32)
    return found


def store_probabilities(network: str, path: str, rows: dict[str, np.ndarray], name: str = "") -> None:
    StoredPrediction.objects.bulk_create(
        [StoredPrediction(network=network, path=path, image_sha256=sha, model_name=name[:200],
                          probabilities=np.asarray(p, dtype=np.float32).tobytes()) for sha, p in rows.items()],
        batch_size=_STORE_CHUNK, ignore_conflicts=True)


def clear_prediction_store() -> int:
    """Forget every stored prediction (they are computed again when next needed)."""
    deleted, _ = StoredPrediction.objects.all().delete()
    return deleted


def _model_arrays(images: Sequence[Image], size: int, channels: int,
                  progress: ProgressFn = _no_progress) -> np.ndarray:
    """uint8 (N, channels, size, size) of the stored image files."""
    arrays = np.empty((len(images), channels, size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        if i % 256 == 0:
            progress(f"reading the images ({size} x {size})", i, len(images))
        try:
            with image.file.open("rb") as fileobj:
                data = fileobj.read()
            arrays[i] = to_model_array(decode_image(data, image.key, channels), size, channels)
        except (DataError, OSError) as err:
            raise BenchmarkError(
                f"Image {image.key!r} of test set {image.testset.name!r} cannot be read: {err}."
            ) from None
    return arrays


# --------------------------------------------------------------------------- benchmark


def run_benchmark(
    testset: TestSet | str | None,
    model_names: Iterable[str] = (),
    holdout: str = AUTO,
    labels: str | None = None,
    seed: int = 0,
    n_resamples: int = significance_tests.DEFAULT_N_RESAMPLES,
    reference: str = heldout_scoring.MAJORITY,
    min_images: int = DEFAULT_MIN_IMAGES,
    progress: ProgressFn | None = None,
    margin: float | None = None,
    prediction_files: Sequence[tuple[str, str | Path]] = (),
) -> dict:
    """The human-vs-model benchmark of ``testset`` (the dict of ``build_benchmark_result``).

    ``holdout`` is a username, ``"auto"`` or ``"all"`` (every annotator in turn: the
    panel, beside the ``"auto"`` figures); ``labels`` is the test set's scheme (the default)
    or a bin set it maps into (``scoring_choices``); ``reference`` is
    ``"majority"`` or ``"dawid-skene"``; in the panel, annotators with fewer than
    ``min_images`` paired images are listed but left out of the means. Each model runs
    once, on the images that have a reference for some held-out annotator, however many
    annotators there are. Each model's entry also names its checkpoint file and the label
    set it was trained on; 7- and 8-class models are binned retroactively. Raises
    BenchmarkError with a sentence for the user. ``progress(stage, done, total)`` hears
    how far it is (the report page's background job shows it). ``prediction_files`` are
    (name, csv path) pairs: models that ran elsewhere (``evaluation.predictions``), scored
    beside the others.
    """
    progress = progress or _no_progress
    testset = get_testset(testset)
    scoring = scoring_labels(testset, labels)
    label_list = scoring.labels
    check_options(reference, min_images)
    progress("reading the votes")
    frame = testset_votes(testset, scoring)
    if frame.empty:
        raise BenchmarkError(
            f"Test set {testset.name!r} has no votes yet; import them with import_votes "
            "or let annotators label it first."
        )
    progress("loading the models")
    models = load_models(model_names, scoring)
    progress("holding out the annotators" if holdout == ALL else "holding out an annotator")
    choice, panel = _hold_out(testset, frame, label_list, holdout, reference)
    needed = set(choice.split.images)
    for split in (panel or {}).values():
        needed.update(split.images)
    files = _read_prediction_files(testset, prediction_files, needed, scoring, [m.name for m in models])
    predictions = predict_images(testset, models, needed, scoring, progress)
    predictions.update({f.name: f.labels for f in files})
    progress("scoring: agreement, intervals and tests")
    try:
        result = build_benchmark_result(
            frame,
            label_list,
            holdout=choice,
            model_predictions=predictions,
            testset_name=testset.name,
            seed=seed,
            n_resamples=n_resamples,
            reference=reference,
            panel=panel,
            min_images=min_images,
            n_images_in_testset=Image.objects.filter(testset=testset, control_label="").count(),
            margin=margin,
        )
    except ValueError as err:
        raise BenchmarkError(f"Test set {testset.name!r}: {_sentence(str(err))}") from None
    result["label_set"] = scoring.name
    result["testset"]["n_repeated_files"] = RepeatedFile.objects.filter(testset=testset).count()
    result["testset"].update(study_facts(testset, scoring))
    described = {m.name: m.description for m in models}
    described.update({f.name: {"checkpoint": f.source, "architecture": "predictions from a file",
                               "training_label_set": f"{f.kind}: {', '.join(f.classes)}"} for f in files})
    for entry in result["models"]:
        entry.update(described[entry["name"]])
    return result


def _read_prediction_files(testset: TestSet, files: Sequence[tuple[str, str | Path]], needed: set[str],
                           scoring: ScoringLabels, model_names: list[str]) -> list[PredictionFile]:
    """Each prediction file checked whole against the test set and the images scored."""
    if not files:
        return []
    known = set(Image.objects.filter(testset=testset, control_label="").values_list("key", flat=True))
    read, taken = [], set(model_names)
    for name, path in files:
        if not name or name in taken:
            raise BenchmarkError(f"Give each model a name of its own: {name!r} is {'empty' if not name else 'taken'}.")
        taken.add(name)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise BenchmarkError(f"{path} cannot be read: {exc.strerror}.") from None
        try:
            read.append(read_prediction_file(data, name, Path(path).name, known, needed, scoring.target,
                                             scoring.labels))
        except PredictionFileError as exc:
            raise BenchmarkError(str(exc)) from None
    return read


def study_facts(testset: TestSet, scoring: ScoringLabels) -> dict:
    """What the report says of a study beside its figures: the scheme and how the votes were
    scored, the extra answers, the control images and the excluded annotators left out."""
    controls = Image.objects.filter(testset=testset).exclude(control_label="")
    exclusions = (Exclusion.objects.filter(testset=testset, lifted_at__isnull=True)
                  .select_related("annotator", "created_by").order_by("annotator__username"))
    return {
        "label_scheme": testset.scheme_name,
        "scheme_labels": testset.labels,
        "votes_binned": scoring.binned,
        "binning": scoring.sentence,
        "extra_answers": extra_answer_counts(testset),
        "n_control_images": controls.count(),
        "n_control_votes": Vote.objects.filter(image__in=controls).count(),
        "votes_per_image": testset.votes_per_image,
        "max_votes_per_image": testset.max_votes_per_image,
        "votes_saved": pool_progress(testset).votes_saved if testset.pooled else None,
        "flagged_annotators": [
            {"annotator": row["annotator"], "flags": row["flags"]}
            for row in annotator_quality(testset)["annotators"] if row["flags"] and not row["excluded"]
        ],
        "excluded_annotators": [
            {"annotator": e.annotator.username, "reason": e.reason,
             "by": e.created_by.username if e.created_by else None,
             "at": e.created_at.isoformat(timespec="seconds"),
             "n_votes": Vote.objects.filter(testset=testset, annotator=e.annotator).count()}
            for e in exclusions
        ],
    }


def check_margin(points: float | None) -> float | None:
    """A non-inferiority margin given in percentage points, as a share; a sentence when it
    is not one."""
    if points is None:
        return None
    if not 0 < points < 100:
        raise BenchmarkError(f"The non-inferiority margin is in percentage points, above 0 and below 100, "
                             f"not {points:g}.")
    return points / 100


def check_options(reference: str, min_images: int) -> None:
    """A clear error for a reference other than majority or dawid-skene, or a minimum under 2."""
    if reference not in heldout_scoring.REFERENCES:
        raise BenchmarkError(
            f"Unknown reference {reference!r}; choose one of {', '.join(heldout_scoring.REFERENCES)}."
        )
    if min_images < 2:
        raise BenchmarkError(
            f"The minimum of paired images per annotator must be 2 or more, not {min_images}: "
            "the panel's jackknife leaves one image out."
        )


def _hold_out(
    testset: TestSet, frame: pd.DataFrame, labels: list[str], holdout: str, reference: str
) -> tuple[HoldoutChoice, dict | None]:
    """The one choice of the held-out annotator (a username, ``"auto"`` or ``"all"``) and
    their paired images, with every annotator's for ``"all"``; a clear error for a name
    with no votes here or nothing to pair."""
    voters = sorted(frame["annotator"].unique())
    if holdout not in (AUTO, ALL) and holdout not in voters:
        known = ", ".join(voters)
        if not get_user_model().objects.filter(username=holdout).exists():
            raise BenchmarkError(
                f"There is no annotator named {holdout!r}; annotators of test set "
                f"{testset.name!r}: {known}."
            )
        raise BenchmarkError(
            f"Annotator {holdout!r} has no votes on test set {testset.name!r}; "
            f"annotators with votes: {known}."
        )
    try:
        return choose(frame, labels, holdout, reference)
    except ValueError as err:
        raise BenchmarkError(f"Test set {testset.name!r}: {_sentence(str(err))}") from None


def _sentence(message: str) -> str:
    """``message`` from a lower layer as a sentence: capital first word, full stop.

    A message that starts with a file path keeps its spelling.
    """
    message = message.strip()
    if not message:
        return message
    if message.split(" ", 1)[0].isalpha():
        message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" or "\n" in message else message + "."


# --------------------------------------------------------------------------- annotator quality


def annotator_quality(testset: TestSet, thresholds: quality.Thresholds = quality.Thresholds()) -> dict:
    """Every annotator of ``testset`` with votes (``quality.quality_table``), excluded ones
    too, marked so; read from the database in one pass over the votes."""
    answers, n_labels = testset.answers, len(testset.labels)
    position = {answer: i for i, answer in enumerate(answers)}
    controls = dict(Image.objects.filter(testset=testset).exclude(control_label="").values_list("pk", "control_label"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT annotator_id, image_id, label, time_spent_ms FROM {Vote._meta.db_table} "
                       "WHERE testset_id = %s", [testset.pk])
        rows = cursor.fetchall()
    user_ids = sorted({row[0] for row in rows})
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    user_ids.sort(key=lambda pk: names[pk])
    by_user = {pk: j for j, pk in enumerate(user_ids)}
    regular = [row for row in rows if row[1] not in controls and row[2] in position]
    image_ids = {pk: i for i, pk in enumerate(sorted({row[1] for row in regular}))}
    coded = quality.CodedVotes(
        np.fromiter((by_user[r[0]] for r in regular), dtype=np.int64, count=len(regular)),
        np.fromiter((image_ids[r[1]] for r in regular), dtype=np.int64, count=len(regular)),
        np.fromiter((position[r[2]] for r in regular), dtype=np.int64, count=len(regular)),
    )
    on_controls = [row for row in rows if row[1] in controls]
    control_votes = (np.array([by_user[r[0]] for r in on_controls], dtype=np.int64),
                     np.array([r[2] == controls[r[1]] for r in on_controls], dtype=bool))
    excluded_ids = set(Exclusion.objects.filter(testset=testset, lifted_at__isnull=True)
                       .values_list("annotator_id", flat=True))
    timed = [(by_user[r[0]], r[3]) for r in rows if r[3] is not None]
    medians = quality.medians_by_group(np.array([t[0] for t in timed], dtype=np.int64),
                                       np.array([t[1] for t in timed], dtype=float) / 1000, len(user_ids))
    table = quality.quality_table(
        [names[pk] for pk in user_ids], coded, len(image_ids), answers, n_labels,
        [pk in excluded_ids for pk in user_ids], medians, control_votes, thresholds)
    return {"testset": testset.name, "labels": testset.labels, "answers": answers,
            "n_control_images": len(controls), "thresholds": vars(thresholds), "annotators": table}


# --------------------------------------------------------------------------- planning


def pilot_components(testset: TestSet | str | None, model_name: str, labels: str | None = None,
                     min_images: int = DEFAULT_MIN_IMAGES, progress: ProgressFn | None = None):
    """The variance components (``planning.components``) of a stored study as a pilot: its
    panel against the majority of the others, with one model run on every paired image."""
    from . import planning
    from .benchmark_core import panel_matrices, panel_scores

    progress = progress or _no_progress
    testset = get_testset(testset)
    scoring = scoring_labels(testset, labels)
    frame = testset_votes(testset, scoring)
    if frame.empty:
        raise BenchmarkError(f"Test set {testset.name!r} has no votes yet: a pilot needs votes.")
    models = load_models([model_name], scoring)
    _, splits = _hold_out(testset, frame, scoring.labels, ALL, heldout_scoring.MAJORITY)
    needed = {image for split in splits.values() for image in split.images}
    predictions = predict_images(testset, models, needed, scoring, progress)
    included = [(split, human, by_model) for _, split, human, by_model in panel_scores(splits, predictions)
                if split.n_images >= min_images]
    if len(included) < 2:
        raise BenchmarkError(f"Test set {testset.name!r} has {len(included)} annotator(s) with {min_images} or "
                             "more paired images: a pilot needs two or more.")
    matrices = panel_matrices(included, [models[0].name])
    return planning.components(matrices.human_correct, matrices.model_correct[models[0].name], matrices.paired)
