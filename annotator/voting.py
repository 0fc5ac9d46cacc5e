"""Casting, changing and undoing votes, and the order in which an annotator sees images.

Every write appends a ``VoteEvent``; a vote is never silently overwritten. Writes are
safe under concurrency: the (image, annotator) unique constraint plus a row lock make a
double submission land on the one existing vote instead of creating a second or failing.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.core import signing
from django.db import connection, transaction
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
        for _ in range(3):
            vote = _insert_new_vote(image, annotator, label, time_spent_ms)
            if vote is not None:
                VoteEvent.objects.create(image=image, annotator=annotator, action=VoteEvent.Action.CAST, label=label)
                return VoteResult(vote, "cast")
            # ordered by pk, not by Vote's default ordering, which would join (and lock) the
            # image and test set rows that other votes' foreign-key checks need
            vote = (Vote.objects.select_for_update(of=("self",)).filter(image=image, annotator=annotator)
                    .order_by("pk").first())
            if vote is not None:
                break
            # the vote that was in the way was undone in between: try the insert again
        else:
            raise InputError("This vote could not be stored while others changed it; try again.")
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


def _insert_new_vote(image: Image, annotator, label: str, time_spent_ms: int | None) -> Vote | None:
    """The annotator's first vote for ``image``, or None when they have one already.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (PostgreSQL, SQLite 3.35+) on the
    (image, annotator) constraint: a first vote, the common case, costs one statement where
    a locking read, a savepoint and an insert would cost four round trips, and a concurrent
    double submission still lands on the one row.
    """
    now = timezone.now()
    vote = Vote(image=image, annotator=annotator, testset_id=image.testset_id, label=label,
                time_spent_ms=time_spent_ms, created_at=now, updated_at=now)
    fields, sql = _vote_insert(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(getattr(vote, f.attname), connection) for f in fields])
        row = cursor.fetchone()
    if row is None:
        return None
    vote.pk = row[0]
    vote._state.adding = False
    return vote


@functools.cache
def _vote_insert(vendor: str) -> tuple[list, str]:
    """The fields and statement of ``_insert_new_vote``, written once per database kind."""
    fields = [Vote._meta.get_field(name) for name in
              ("image", "annotator", "testset", "label", "created_at", "updated_at", "time_spent_ms")]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(Vote._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) "
           f"ON CONFLICT ({quote(fields[0].column)}, {quote(fields[1].column)}) DO NOTHING "
           f"RETURNING {quote(Vote._meta.pk.column)}")
    return fields, sql


def do_undo_last_vote(annotator, testset: TestSet) -> Vote | None:
    """Delete ``annotator``'s most recent vote in ``testset``; return it (unsaved) or None."""
    with transaction.atomic():
        vote = (
            Vote.objects.select_for_update(of=("self",))
            .filter(annotator=annotator, testset=testset)
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
#
# Each annotator sees the images in an order of their own: by a hash of (annotator, image).
# The order of a whole test set is computed once per server process and kept (``_Order``),
# checked on each request against the test set's ``images_version``, which every added or
# removed image raises. The next unlabelled images are then found by asking the database
# about a few candidates at a time, never by reading every image or vote.

# Candidates asked about per query; past the last, all of the annotator's votes are read once.
_CANDIDATE_BATCHES = (32, 256)
# Image ids a process keeps in orders (16 bytes each: 32 MB); past it the least recently
# used order goes first (FER+'s 35,887 images: the orders of 55 annotators).
_IDS_KEPT = 2_000_000


def _rank(annotator_id: int, image_id: int) -> bytes:
    # A hash per image keeps each annotator's order stable when images are added.
    return hashlib.blake2b(f"{annotator_id}:{image_id}".encode(), digest_size=8).digest()


def annotator_order(annotator, image_ids) -> list[int]:
    """``image_ids`` in ``annotator``'s own fixed order (the same on every request)."""
    return sorted(image_ids, key=lambda image_id: _rank(annotator.pk, image_id))


@dataclass(frozen=True)
class _Order:
    """One annotator's order of one test set's images."""

    version: int  # the test set's images_version when it was computed
    ids: np.ndarray  # image ids in the annotator's order
    ranks: np.ndarray  # their ranks as unsigned 64-bit numbers, ascending

    @classmethod
    def build(cls, annotator_id: int, image_ids, version: int) -> "_Order":
        ids = np.fromiter(image_ids, dtype=np.int64)
        ranks = np.fromiter((int.from_bytes(_rank(annotator_id, int(i)), "big") for i in ids),
                            dtype=np.uint64, count=len(ids))
        by_rank = np.argsort(ranks, kind="stable")
        return cls(version, ids[by_rank], ranks[by_rank])

    @property
    def n_images(self) -> int:
        return len(self.ids)

    def position(self, annotator_id: int, image_id: int | None) -> int | None:
        """Where ``image_id`` stands in the order; None when it is not an image of the test set."""
        if image_id is None or not 0 < image_id < 2**63:
            return None
        rank = np.uint64(int.from_bytes(_rank(annotator_id, image_id), "big"))
        at = int(np.searchsorted(self.ranks, rank))
        while at < len(self.ranks) and self.ranks[at] == rank:
            if self.ids[at] == image_id:
                return at
            at += 1
        return None


_orders: OrderedDict[tuple[int, int], _Order] = OrderedDict()
_orders_lock = threading.Lock()


def _order(annotator, testset: TestSet) -> _Order:
    """``annotator``'s order of ``testset``, from this process's store when still whole."""
    # Read before the images: a version never stands for fewer images than it counted.
    version = TestSet.objects.filter(pk=testset.pk).values_list("images_version", flat=True).first()
    key = (annotator.pk, testset.pk)
    with _orders_lock:
        order = _orders.get(key)
        if order is not None and order.version == version:
            _orders.move_to_end(key)
            return order
    image_ids = Image.objects.filter(testset=testset).order_by().values_list("id", flat=True)
    order = _Order.build(annotator.pk, image_ids, version)
    with _orders_lock:
        _orders[key] = order
        _orders.move_to_end(key)
        while len(_orders) > 1 and sum(o.n_images for o in _orders.values()) > _IDS_KEPT:
            _orders.popitem(last=False)
    return order


def _unlabelled(annotator, testset: TestSet, order: _Order, start: int, count: int) -> list[int]:
    """The first ``count`` images from position ``start`` on (round the circle) that
    ``annotator`` has not labelled."""
    n = order.n_images
    found: list[int] = []
    offset = 0
    for batch in _CANDIDATE_BATCHES:
        if offset >= n or len(found) >= count:
            return found
        candidates = [int(order.ids[(start + offset + k) % n]) for k in range(min(batch, n - offset))]
        done = set(Vote.objects.filter(annotator=annotator, image_id__in=candidates).order_by()
                   .values_list("image_id", flat=True))
        found += [i for i in candidates if i not in done][: count - len(found)]
        offset += len(candidates)
    if offset < n and len(found) < count:
        # A long run of labelled images ahead: read the annotator's votes here once.
        done = set(Vote.objects.filter(annotator=annotator, testset=testset).order_by()
                   .values_list("image_id", flat=True))
        for k in range(offset, n):
            image_id = int(order.ids[(start + k) % n])
            if image_id not in done:
                found.append(image_id)
                if len(found) == count:
                    break
    return found


def upcoming_images(annotator, testset: TestSet, *, after: int | None = None, count: int = 2) -> list[int]:
    """Ids of the next ``count`` images ``annotator`` has not labelled.

    The order is a circle: with ``after`` (the image just voted or skipped) the search
    starts behind it, so a skipped image comes back only after the others.
    """
    order = _order(annotator, testset)
    return _upcoming(annotator, testset, order, after, count)


def _upcoming(annotator, testset, order: _Order, after: int | None, count: int) -> list[int]:
    at = order.position(annotator.pk, after)
    return _unlabelled(annotator, testset, order, 0 if at is None else at + 1, count)


def progress(annotator, testset: TestSet, *, total: int | None = None) -> Progress:
    return Progress(
        done=Vote.objects.filter(testset=testset, annotator=annotator).count(),
        total=testset.images.count() if total is None else total,
    )


def shown_token(image_id: int) -> str:
    """A signed 'image shown at' stamp, so form posts without JavaScript are timed too."""
    return signing.dumps({"i": image_id, "t": int(timezone.now().timestamp() * 1000)}, salt=_SHOWN_SALT)


def time_since_shown(token: str | None, image_id: int) -> int | None:
    if not token:
        return None
    try:
        stamp = signing.loads(token, salt=_SHOWN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(stamp, dict) or stamp.get("i") != image_id:
        return None
    return check_time_spent(int(timezone.now().timestamp() * 1000) - int(stamp.get("t", 0)))


@dataclass(frozen=True)
class LabellingState:
    """Image ids of the test set (its order holds only those): the page needs no more of them."""

    current: int | None  # None when the annotator has labelled every image
    preload: int | None  # the image after ``current``, for the browser to fetch early
    progress: Progress


def labelling_state(annotator, testset: TestSet, *, image_id: int | None = None,
                    after: int | None = None) -> LabellingState:
    """What the labelling page shows: a requested image, or the next unlabelled one."""
    order = _order(annotator, testset)
    if order.position(annotator.pk, image_id) is not None:
        upcoming = [i for i in _upcoming(annotator, testset, order, image_id, 2) if i != image_id]
        current_id, preload_id = image_id, (upcoming[0] if upcoming else None)
    else:
        upcoming = _upcoming(annotator, testset, order, after, 2)
        current_id = upcoming[0] if upcoming else None
        preload_id = upcoming[1] if len(upcoming) > 1 else None
    return LabellingState(current_id, preload_id, progress(annotator, testset, total=order.n_images))
