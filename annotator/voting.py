"""Casting, changing and undoing votes, and the order in which an annotator sees images.

Every write appends a ``VoteEvent``; a vote is never silently overwritten. Writes are
safe under concurrency: the (image, annotator) unique constraint plus a row lock make a
double submission land on the one existing vote instead of creating a second or failing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core import signing
from django.db import transaction
from django.utils import timezone

from ferml.labels import canonical

from .errors import InputError
from .models import LABELS, Image, TestSet, Vote, VoteEvent

# Keys the labelling page binds, in the order of LABELS; the page sends the label itself.
LABEL_KEYS = {str(number): label for number, label in enumerate(LABELS, start=1)}
LABEL_NAMES = f"{', '.join(LABELS[:-1])} or {LABELS[-1]}"
# Longer than this, the annotator walked away: the time says nothing about the image.
MAX_TIME_SPENT_MS = 60 * 60 * 1000
_SHOWN_SALT = "annotator.shown"


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    action: str  # "cast", "change" or "unchanged"


@dataclass(frozen=True)
class Progress:
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def parse_label(value: str | None) -> str | None:
    """The vote label ``value`` spells, or None: the one definition for the labelling page
    and the votes csv. A label is its name in any case, spaces around it ignored."""
    label = canonical(value or "")
    return label if label in LABELS else None


def check_label(value: str | None) -> str:
    label = parse_label(value)
    if label is None:
        raise InputError(f"Unknown label {value!r}: choose {LABEL_NAMES}.")
    return label


def check_time_spent(value) -> int | None:
    """Milliseconds as sent by the page; None when missing or not believable."""
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    return ms if 0 <= ms <= MAX_TIME_SPENT_MS else None


def do_cast_vote(annotator, image: Image, label: str, *, time_spent_ms: int | None = None) -> VoteResult:
    """Store ``annotator``'s label for ``image``: cast it, change it, or (same label) keep it.

    A second submission of the same label changes nothing; a different label keeps the
    one Vote row and appends a VoteEvent(change) with the previous label.
    """
    label = check_label(label)
    with transaction.atomic():
        # get_or_create retries the lookup when a concurrent insert wins the race.
        vote, created = Vote.objects.select_for_update().get_or_create(
            image=image, annotator=annotator, defaults={"label": label, "time_spent_ms": time_spent_ms}
        )
        if created:
            VoteEvent.objects.create(image=image, annotator=annotator, action=VoteEvent.Action.CAST, label=label)
            return VoteResult(vote, "cast")
        if vote.label == label:
            return VoteResult(vote, "unchanged")
        previous = vote.label
        vote.label = label
        vote.time_spent_ms = time_spent_ms
        vote.save(update_fields=["label", "time_spent_ms", "updated_at"])
        VoteEvent.objects.create(
            image=image, annotator=annotator, action=VoteEvent.Action.CHANGE, label=label, previous_label=previous
        )
        return VoteResult(vote, "change")


def do_undo_last_vote(annotator, testset: TestSet) -> Vote | None:
    """Delete ``annotator``'s most recent vote in ``testset``; return it (unsaved) or None."""
    with transaction.atomic():
        vote = (
            Vote.objects.select_for_update(of=("self",))
            .filter(annotator=annotator, image__testset=testset)
            .order_by("-updated_at", "-id")
            .first()
        )
        if vote is None:
            return None
        VoteEvent.objects.create(
            image_id=vote.image_id, annotator=annotator, action=VoteEvent.Action.UNDO, previous_label=vote.label
        )
        vote.delete()
        return vote


def do_delete_vote(vote: Vote) -> None:
    """Staff removal of a vote (admin), recorded as VoteEvent(delete)."""
    with transaction.atomic():
        VoteEvent.objects.create(
            image_id=vote.image_id, annotator_id=vote.annotator_id, action=VoteEvent.Action.DELETE,
            previous_label=vote.label,
        )
        vote.delete()


# --- what to show next ----------------------------------------------------------------


def _rank(annotator_id: int, image_id: int) -> bytes:
    # A hash per image keeps each annotator's order stable when images are added.
    return hashlib.blake2b(f"{annotator_id}:{image_id}".encode(), digest_size=8).digest()


def annotator_order(annotator, image_ids) -> list[int]:
    """``image_ids`` in ``annotator``'s own fixed order (the same on every request)."""
    return sorted(image_ids, key=lambda image_id: _rank(annotator.pk, image_id))


def upcoming_images(annotator, testset: TestSet, *, after: int | None = None, count: int = 2) -> list[int]:
    """Ids of the next ``count`` images ``annotator`` has not labelled.

    The order is a circle: with ``after`` (the image just voted or skipped) the search
    starts behind it, so a skipped image comes back only after the others.
    """
    order = annotator_order(annotator, Image.objects.filter(testset=testset).values_list("id", flat=True))
    if after is not None and after in order:
        at = order.index(after) + 1
        order = order[at:] + order[:at]
    done = set(Vote.objects.filter(annotator=annotator, image__testset=testset).values_list("image_id", flat=True))
    return [image_id for image_id in order if image_id not in done][:count]


def progress(annotator, testset: TestSet) -> Progress:
    return Progress(
        done=Vote.objects.filter(annotator=annotator, image__testset=testset).count(),
        total=testset.images.count(),
    )


def shown_token(image: Image) -> str:
    """A signed 'image shown at' stamp, so form posts without JavaScript are timed too."""
    return signing.dumps({"i": image.pk, "t": int(timezone.now().timestamp() * 1000)}, salt=_SHOWN_SALT)


def time_since_shown(token: str | None, image: Image) -> int | None:
    if not token:
        return None
    try:
        stamp = signing.loads(token, salt=_SHOWN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(stamp, dict) or stamp.get("i") != image.pk:
        return None
    return check_time_spent(int(timezone.now().timestamp() * 1000) - int(stamp.get("t", 0)))


@dataclass(frozen=True)
class LabellingState:
    current: Image | None  # None when the annotator has labelled every image
    preload: Image | None  # the image after ``current``, for the browser to fetch early
    progress: Progress


def labelling_state(annotator, testset: TestSet, *, image_id: int | None = None,
                    after: int | None = None) -> LabellingState:
    """What the labelling page shows: a requested image, or the next unlabelled one."""
    current = None
    if image_id is not None:
        current = Image.objects.filter(testset=testset, pk=image_id).first()
    if current is not None:
        upcoming = [i for i in upcoming_images(annotator, testset, after=current.pk, count=2) if i != current.pk]
        preload_id = upcoming[0] if upcoming else None
    else:
        upcoming = upcoming_images(annotator, testset, after=after, count=2)
        current = Image.objects.get(pk=upcoming[0]) if upcoming else None
        preload_id = upcoming[1] if len(upcoming) > 1 else None
    preload = Image.objects.get(pk=preload_id) if preload_id else None
    return LabellingState(current, preload, progress(annotator, testset))
