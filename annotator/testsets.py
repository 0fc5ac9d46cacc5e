"""Finding the test set a command or a view means."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from core.errors import InputError
from ferml.labels import CUSTOM_SCHEME, LabelError, check_extra_answers, scheme_labels

from .models import Exclusion, Lease, TestSet
from .overlap import STOP_RULES, UNANIMOUS


def resolve_testset(name: str | None) -> TestSet:
    """The test set called ``name``; without a name, the only one there is."""
    if name:
        try:
            return TestSet.objects.get(name=name)
        except TestSet.DoesNotExist:
            known = ", ".join(TestSet.objects.values_list("name", flat=True)) or "none yet"
            raise InputError(f"There is no test set named {name!r} (known: {known}).") from None
    names = list(TestSet.objects.values_list("name", flat=True)[:10])
    if not names:
        raise InputError("There is no test set yet; create one with import_testset first.")
    if len(names) > 1:
        raise InputError(
            f"There are several test sets ({', '.join(names)}); choose one with --testset NAME."
        )
    return TestSet.objects.get(name=names[0])


# --- a study's design: its label scheme (fixed at creation), votes per image, controls ---


@dataclass(frozen=True)
class LabelScheme:
    """What a test set's annotators vote in (``ferml.labels``): fixed when it is created."""

    scheme: str = "bin3"
    custom_labels: tuple[str, ...] = ()
    extra_answers: tuple[str, ...] = ()


def check_label_scheme(scheme: str = "bin3", custom_labels=(), extra_answers=()) -> LabelScheme:
    """A label scheme from what a user typed: ``scheme`` is bin3, fer7, affect8 or custom
    (then ``custom_labels`` lists the labels, or a comma-separated string of them)."""
    scheme = (scheme or "bin3").strip().lower()
    if isinstance(custom_labels, str):
        custom_labels = custom_labels.split(",")
    if isinstance(extra_answers, str):
        extra_answers = extra_answers.split(",")
    custom = [c for c in custom_labels if str(c).strip()]
    if custom and scheme != CUSTOM_SCHEME:
        raise InputError(f"Custom labels are given, but the label scheme is {scheme!r}; "
                         f"choose the scheme {CUSTOM_SCHEME!r} for a list of your own.")
    try:
        labels = scheme_labels(scheme, custom)
        extras = check_extra_answers(extra_answers)
    except LabelError as exc:
        raise InputError(f"The label scheme is not usable: {exc}.") from None
    return LabelScheme(scheme, tuple(labels) if scheme == CUSTOM_SCHEME else (), tuple(extras))


@dataclass(frozen=True)
class Overlap:
    """How many votes each image gets and how control images are served."""

    votes_per_image: int | None = None  # None: every annotator labels every image
    max_votes_per_image: int | None = None  # above votes_per_image: adaptive overlap
    adaptive_stop: str = UNANIMOUS
    control_rate: int = 20
    control_feedback: bool = False


MAX_VOTES_PER_IMAGE = 100


def check_overlap(votes_per_image=None, max_votes_per_image=None, adaptive_stop: str = UNANIMOUS,
                  control_rate: int = 20, control_feedback: bool = False) -> Overlap:
    """An Overlap from what a user gave, with a sentence for each value out of range."""
    if votes_per_image is not None and not 1 <= votes_per_image <= MAX_VOTES_PER_IMAGE:
        raise InputError(f"Votes per image must be 1 to {MAX_VOTES_PER_IMAGE}, not {votes_per_image}.")
    if max_votes_per_image is not None:
        if votes_per_image is None:
            raise InputError("A maximum of votes per image needs votes per image (the minimum) as well.")
        if not votes_per_image <= max_votes_per_image <= MAX_VOTES_PER_IMAGE:
            raise InputError(f"The maximum of votes per image must be {votes_per_image} (the minimum) to "
                             f"{MAX_VOTES_PER_IMAGE}, not {max_votes_per_image}.")
    if adaptive_stop not in STOP_RULES:
        raise InputError(f"Unknown stop rule {adaptive_stop!r}; choose {' or '.join(STOP_RULES)}.")
    if control_rate is None or not (control_rate == 0 or 2 <= control_rate <= 1000):
        raise InputError(f"The control rate is one image in N: N must be 0 (no control images) or 2 to "
                         f"1000, not {control_rate}.")
    return Overlap(votes_per_image, max_votes_per_image if max_votes_per_image != votes_per_image else None,
                   adaptive_stop, control_rate, bool(control_feedback))


def apply_label_scheme(testset: TestSet, scheme: LabelScheme) -> None:
    """Give a new test set its scheme; an existing one keeps its own (a different one is refused)."""
    if testset.pk is not None and testset.images.exists():
        if (testset.label_scheme, tuple(testset.custom_labels), tuple(testset.extra_answers)) != (
                scheme.scheme, scheme.custom_labels, scheme.extra_answers):
            raise InputError(
                f"Test set {testset.name!r} votes in {describe_scheme(testset)}; a label scheme is fixed "
                "when the test set is created. Import into a new test set for another scheme."
            )
        return
    testset.label_scheme = scheme.scheme
    testset.custom_labels = list(scheme.custom_labels)
    testset.extra_answers = list(scheme.extra_answers)


def describe_scheme(testset: TestSet) -> str:
    """``fer7 (angry, disgust, ...), extras: unsure``: a test set's scheme in words."""
    text = f"{testset.scheme_name} ({', '.join(testset.labels)})"
    if testset.extra_answers:
        text += f", extra answers: {', '.join(testset.extra_answers)}"
    return text


def do_set_overlap(testset: TestSet, overlap: Overlap) -> None:
    """Store how the test set's images are served and count what each image still needs."""
    from .voting import refresh_images

    with transaction.atomic():
        for name, value in vars(overlap).items():
            setattr(testset, name, value)
        testset.save(update_fields=list(vars(overlap)))
        if testset.pooled:
            refresh_images(testset)
        else:  # every annotator labels every image: nothing is served by counts or leases
            testset.images.update(n_votes=0, n_needed=0, complete=False)
            Lease.objects.filter(image__testset=testset).delete()


def describe_design(testset: TestSet) -> str:
    """The test set's design in a few sentences: scheme, votes per image, control images."""
    from .controls import count_controls

    lines = [f"Test set {testset.name!r} votes in {describe_scheme(testset)}."]
    if not testset.pooled:
        lines.append("Every annotator labels every image.")
    elif testset.max_votes_per_image:
        lines.append(f"Votes per image: {testset.votes_per_image} to {testset.max_votes_per_image} from a pool "
                     f"(adaptive: an image stops at {testset.votes_per_image} when {testset.adaptive_stop}).")
    else:
        lines.append(f"Votes per image: {testset.votes_per_image} from a pool.")
    n_controls = count_controls(testset)
    rate = f"one served image in {testset.control_rate}" if testset.control_rate else "never served"
    feedback = ", with the expected answer shown after the vote" if testset.control_feedback else ""
    lines.append(f"Control images: {n_controls} ({rate}{feedback}).")
    return "\n".join(lines)


# --- annotators left out of a test set's statistics ---------------------------------------


def do_exclude(testset: TestSet, annotator, reason: str, by=None) -> Exclusion:
    """Leave ``annotator`` out of ``testset``'s statistics, with the reason (recorded)."""
    reason = (reason or "").strip()
    if not reason:
        raise InputError(f"Say why {annotator.username} is excluded: the report lists the reason.")
    with transaction.atomic():
        current = Exclusion.objects.select_for_update().filter(
            testset=testset, annotator=annotator, lifted_at__isnull=True).first()
        if current is not None:
            raise InputError(f"{annotator.username} is already excluded from {testset.name} ({current.reason}).")
        return Exclusion.objects.create(testset=testset, annotator=annotator, reason=reason, created_by=by)


def do_include(testset: TestSet, annotator, by=None) -> Exclusion:
    """Count ``annotator``'s votes again; the lifted exclusion stays on record."""
    from django.utils import timezone

    with transaction.atomic():
        current = Exclusion.objects.select_for_update().filter(
            testset=testset, annotator=annotator, lifted_at__isnull=True).first()
        if current is None:
            raise InputError(f"{annotator.username} is not excluded from {testset.name}.")
        current.lifted_at, current.lifted_by = timezone.now(), by
        current.save(update_fields=["lifted_at", "lifted_by"])
        return current
