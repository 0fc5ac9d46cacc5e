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
from datetime import timedelta

import numpy as np
from django.core import signing
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from core.errors import InputError, shorten
from ferml.labels import NOT_A_FACE, UNSURE, canonical

from .models import LABELS, Image, Lease, TestSet, Vote, VoteEvent

# Keys the labelling page binds: 1..n for a scheme's labels in order, these for the extras.
EXTRA_KEYS = {UNSURE: "0", NOT_A_FACE: "x"}
# Keys of the default scheme (bin3); a test set's own are ``answer_keys(testset)``.
LABEL_KEYS = {str(number): label for number, label in enumerate(LABELS, start=1)}
# Longer than this, the annotator walked away: the time says nothing about the image.
MAX_TIME_SPENT_MS = 60 * 60 * 1000
# How long an image served from a pool stays held for the annotator it was served to.
LEASE_SECONDS = 300
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


def answer_keys(testset: TestSet) -> dict[str, str]:
    """The labelling page's key for each answer of ``testset``: 1..n, then the extras'."""
    keys = {str(number): label for number, label in enumerate(testset.labels, start=1)}
    keys.update({EXTRA_KEYS[extra]: extra for extra in testset.extra_answers})
    return keys


def answer_names(answers: list[str]) -> str:
    """``a, b or c``: how messages list the answers a vote may hold."""
    return f"{', '.join(answers[:-1])} or {answers[-1]}" if len(answers) > 1 else answers[0]


def parse_label(value: str | None, answers: list[str] = LABELS) -> str | None:
    """The answer ``value`` spells, or None: the one definition for the labelling page and
    the votes csv. An answer is its name in any case, spaces around it ignored, or another
    spelling that ``ferml.labels`` knows (FER+'s column names such as ``happiness``,
    ``unknown`` and ``NF`` among them)."""
    label = canonical(value or "")
    return label if label in answers else None


def check_label(value: str | None, answers: list[str] = LABELS) -> str:
    label = parse_label(value, answers)
    if label is None:
        raise InputError(f"Unknown label {shorten(value)!r}: choose {answer_names(answers)}.")
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
    testset = image.testset
    label = check_label(label, testset.answers)
    with transaction.atomic():
        for _ in range(3):
            vote = _insert_new_vote(image, annotator, label, time_spent_ms)
            if vote is not None:
                VoteEvent.objects.create(image=image, annotator=annotator, action=VoteEvent.Action.CAST, label=label)
                _votes_changed(testset, image.pk, +1, annotator)
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
        _votes_changed(testset, image.pk, 0, annotator)
        return VoteResult(vote, "change")


def _votes_changed(testset: TestSet, image_id: int, added: int, annotator=None) -> None:
    """In a pooled test set, keep the image's vote count and what it still needs with a vote
    just written, in the same transaction; a vote ends the voter's lease on it."""
    if not testset.pooled:
        return  # everyone labels everything: nothing is served by counts
    refresh_images(testset, [image_id])
    if annotator is not None:
        Lease.objects.filter(image_id=image_id, annotator=annotator).delete()


def refresh_images(testset: TestSet, image_ids=None) -> None:
    """Count the votes of these images (all of the test set's when None) again and store
    ``n_votes``, ``n_needed`` and ``complete`` by the test set's overlap rule.

    The image rows are locked first (PostgreSQL's NO KEY UPDATE, which a vote's foreign-key
    check does not wait for), so two votes on one image count each other.
    """
    rule, answers = testset.overlap, testset.answers
    images = Image.objects.filter(testset=testset)
    if image_ids is not None:
        images = images.filter(pk__in=list(image_ids))
    stored = {pk: (n, needed, done) for pk, n, needed, done in images.select_for_update(no_key=True, of=("self",))
              .order_by("pk").values_list("pk", "n_votes", "n_needed", "complete")}
    ids = list(stored)
    counts: dict[int, list[int]] = {pk: [0] * len(answers) for pk in ids}
    position = {answer: i for i, answer in enumerate(answers)}
    votes = (Vote.objects.filter(testset=testset) if image_ids is None else Vote.objects.filter(image_id__in=ids))
    for image_id, label, n in votes.order_by().values_list("image_id", "label").annotate(n=Count("id")):
        if label in position and image_id in counts:
            counts[image_id][position[label]] += n
    changed = []
    for pk in ids:
        needed = rule.needed(counts[pk]) if rule is not None else 0
        state = (sum(counts[pk]), needed, rule is not None and needed == 0)
        if state != stored[pk]:
            changed.append(Image(pk=pk, n_votes=state[0], n_needed=state[1], complete=state[2]))
    Image.objects.bulk_update(changed, ["n_votes", "n_needed", "complete"], batch_size=2000)


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
        _votes_changed(testset, vote.image_id, -1)
        return vote


def do_delete_vote(vote: Vote) -> None:
    """Staff removal of a vote (admin), recorded as VoteEvent(delete)."""
    with transaction.atomic():
        VoteEvent.objects.create(
            image_id=vote.image_id, annotator_id=vote.annotator_id, action=VoteEvent.Action.DELETE,
            previous_label=vote.label,
        )
        vote.delete()
        _votes_changed(vote.testset, vote.image_id, -1)


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
    image_ids = (Image.objects.filter(testset=testset, control_label="").order_by()
                 .values_list("id", flat=True))
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


def upcoming_images(annotator, testset: TestSet, *, after: int | None = None, count: int = 2,
                    order: _Order | None = None) -> list[int]:
    """Ids of the next ``count`` images ``annotator`` has not labelled (everyone labels
    everything), in their own order (``order``, when the caller has it already).

    The order is a circle: with ``after`` (the image just voted or skipped) the search
    starts behind it, so a skipped image comes back only after the others.
    """
    order = order or _order(annotator, testset)
    at = order.position(annotator.pk, after)
    return _unlabelled(annotator, testset, order, 0 if at is None else at + 1, count)


def progress(annotator, testset: TestSet, *, total: int | None = None) -> Progress:
    """The annotator's votes of the test set's images (every image when everyone labels
    everything; a pooled test set has no fixed number per annotator: ``study_progress``)."""
    return Progress(
        done=Vote.objects.filter(testset=testset, annotator=annotator).count(),
        total=testset.images.count() if total is None else total,
    )


def study_progress(testset: TestSet) -> Progress:
    """A pooled test set's complete regular images of all its regular images."""
    regular = Image.objects.filter(testset=testset, control_label="")
    return Progress(done=regular.filter(complete=True).count(), total=regular.count())


# --- control images ----------------------------------------------------------------------
#
# A control image is served among the others (one in ``control_rate``), to every annotator
# once, in an order of their own, and looks like any other image on the page.

_controls: dict[int, tuple[int, tuple[int, ...]]] = {}  # test set -> (images_version, control ids)


def control_ids(testset: TestSet, version: int | None = None) -> tuple[int, ...]:
    """Ids of the test set's control images, kept per process for its images_version."""
    if version is None:
        version = TestSet.objects.filter(pk=testset.pk).values_list("images_version", flat=True).first()
    kept = _controls.get(testset.pk)
    if kept is not None and kept[0] == version:
        return kept[1]
    ids = tuple(Image.objects.filter(testset=testset).exclude(control_label="").order_by("pk")
                .values_list("pk", flat=True))
    _controls[testset.pk] = (version, ids)
    return ids


def _due_control(annotator, testset: TestSet, controls: tuple[int, ...], n_votes: int,
                 exclude: set[int], anyway: bool = False) -> int | None:
    """The control image to serve now, if one is due (or ``anyway``) and one is left."""
    if not controls or testset.control_rate <= 0:
        return None
    seen = set(Vote.objects.filter(annotator=annotator, image_id__in=controls).values_list("image_id", flat=True))
    due = anyway or len(seen) < (n_votes + 1) // testset.control_rate
    if not due:
        return None
    left = [pk for pk in controls if pk not in seen and pk not in exclude]
    return min(left, key=lambda pk: _rank(annotator.pk, pk)) if left else None


# --- the pool's queue ----------------------------------------------------------------------

_QUEUE_BATCH = 64


def _pool_candidates(annotator, testset: TestSet, exclude: set[int], now) -> list[int]:
    """Open regular images the annotator has not voted, that need more votes than others
    hold leases for: fewest votes first, then in the annotator's own order."""
    voted = Vote.objects.filter(image=OuterRef("pk"), annotator=annotator)
    queue = (Image.objects.filter(testset=testset, complete=False, control_label="")
             .exclude(Exists(voted)).order_by("n_votes", "pk").values_list("pk", "n_votes", "n_needed"))
    skipped = set(Lease.objects.filter(annotator=annotator, skipped=True, image__testset=testset)
                  .values_list("image_id", flat=True))
    offset, later = 0, []
    while True:
        rows = list(queue[offset:offset + _QUEUE_BATCH])
        if not rows:
            return later  # images the annotator skipped come back when nothing else is left
        offset += len(rows)
        rows = [row for row in rows if row[0] not in exclude]
        held = dict(Lease.objects.filter(image_id__in=[row[0] for row in rows], expires_at__gt=now, skipped=False)
                    .exclude(annotator=annotator).values("image_id").annotate(n=Count("id"))
                    .values_list("image_id", "n"))
        open_rows = [row for row in rows if row[2] > held.get(row[0], 0)]
        fresh = [row for row in open_rows if row[0] not in skipped]
        later += [row[0] for row in open_rows if row[0] in skipped]
        if fresh:
            return [pk for _, _, pk in sorted((n, _rank(annotator.pk, pk), pk) for pk, n, _ in fresh)] + later


def _take_lease(annotator, testset: TestSet, candidates: list[int], now) -> int | None:
    """The first candidate that still needs more votes than others hold, leased to the
    annotator; its row lock makes annotators asking at once take different images (the
    second waits for the first's lease, or for a vote on the image, and counts again)."""
    for pk in candidates:
        with transaction.atomic():
            image = (Image.objects.select_for_update(no_key=True, of=("self",))
                     .filter(pk=pk, complete=False).values_list("n_needed", flat=True).first())
            if image is None:
                continue
            held = (Lease.objects.filter(image_id=pk, expires_at__gt=now, skipped=False)
                    .exclude(annotator=annotator).count())
            if image <= held:
                continue
            _lease(annotator, pk, now)
            return pk
    return None


def _lease(annotator, image_id: int, now, *, skipped: bool = False) -> None:
    seconds = 24 * 3600 if skipped else LEASE_SECONDS
    Lease.objects.update_or_create(image_id=image_id, annotator=annotator,
                                   defaults={"expires_at": now + timedelta(seconds=seconds), "skipped": skipped})


def do_skip(annotator, image: Image) -> None:
    """The annotator passes ``image`` over: in a pooled test set their lease becomes a
    mark that serves it to them again only when nothing else is left."""
    if image.testset.pooled and not image.is_control:
        _lease(annotator, image.pk, timezone.now(), skipped=True)


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

    current: int | None  # None when no image is left for the annotator
    preload: int | None  # the image after ``current``, for the browser to fetch early
    progress: Progress  # the annotator's (everyone labels everything) or the study's (pooled)
    votes: int = 0  # the annotator's votes in the test set


def labelling_state(annotator, testset: TestSet, *, image_id: int | None = None,
                    after: int | None = None) -> LabellingState:
    """What the labelling page shows: a requested image, or the next one for the annotator.

    Every annotator labels every image, in an order of their own, unless the test set is
    pooled: then the next image is one that still needs votes, fewest first, held for the
    annotator by a short lease. Control images come in between, one in ``control_rate``.
    """
    order = _order(annotator, testset)
    controls = control_ids(testset, order.version)
    requested = image_id if (order.position(annotator.pk, image_id) is not None or image_id in controls) else None
    n_votes = Vote.objects.filter(testset=testset, annotator=annotator).count()
    if testset.pooled:
        return _pooled_state(annotator, testset, controls, n_votes, requested, after)
    exclude = {i for i in (requested, after) if i is not None}
    current = requested
    if current is None:
        current = _due_control(annotator, testset, controls, n_votes, exclude)
    if current is None or current in controls:
        # the next regular images after the last one shown (a control holds no place)
        upcoming = upcoming_images(annotator, testset, after=after, order=order)
        if current is None:
            current = upcoming.pop(0) if upcoming else _due_control(
                annotator, testset, controls, n_votes, exclude, anyway=True)
    else:
        upcoming = upcoming_images(annotator, testset, after=current, order=order)
    preload = next((i for i in upcoming if i != current), None)
    total = order.n_images + len(controls)
    return LabellingState(current, preload, Progress(n_votes, total), n_votes)


def _pooled_state(annotator, testset: TestSet, controls, n_votes: int, requested: int | None,
                  after: int | None) -> LabellingState:
    now = timezone.now()
    exclude = {i for i in (requested, after) if i is not None}
    current = requested
    if current is None:
        current = _due_control(annotator, testset, controls, n_votes, exclude)
    candidates = _pool_candidates(annotator, testset, exclude, now)
    for _ in range(3):  # others asking at once may take every candidate: look again
        if current is not None or not candidates:
            break
        current = _take_lease(annotator, testset, candidates, now)
        if current is None:
            candidates = _pool_candidates(annotator, testset, exclude, now)
    if current is not None and current == requested and current not in controls:
        _lease(annotator, current, now)  # shown again (a reload, an undo): held again
    preload = next((pk for pk in candidates if pk != current), None)
    return LabellingState(current, preload, study_progress(testset), n_votes)
