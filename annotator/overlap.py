"""How many more votes an image of a pooled test set needs (SPEC "Crowd-shaped studies").

Pure Python, no Django: the vote and import paths keep ``Image.n_votes`` and
``Image.complete`` by it, and the queue serves an image only while it needs more votes
than the annotators already holding it will give.

A rule has a minimum and a maximum number of votes (equal without adaptive overlap).
Below the minimum an image always needs more; at the maximum it needs none; in between
it stops by the rule: ``unanimous`` when every vote so far is the same answer, ``decided``
when no further vote up to the maximum could change its majority (the leading label is
ahead of the second by more than the votes still possible). Extra answers ("unsure", "not
a face") are votes: they count towards the minimum and the maximum, and break unanimity,
but no majority counts them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

UNANIMOUS = "unanimous"
DECIDED = "decided"
STOP_RULES = (UNANIMOUS, DECIDED)


@dataclass(frozen=True)
class OverlapRule:
    minimum: int
    maximum: int
    stop: str = UNANIMOUS
    n_labels: int = 3  # the first n_labels answers are labels; the rest are extra answers

    def __post_init__(self):
        if self.minimum < 1 or self.maximum < self.minimum:
            raise ValueError(f"votes per image: need 1 <= minimum <= maximum, got {self.minimum} and {self.maximum}")
        if self.stop not in STOP_RULES:
            raise ValueError(f"unknown stop rule {self.stop!r}; choose {' or '.join(STOP_RULES)}")

    @property
    def adaptive(self) -> bool:
        return self.maximum > self.minimum

    def needed(self, counts: Sequence[int]) -> int:
        """Votes the image surely still needs, given its votes per answer (labels first).

        0 means complete. Under ``decided`` it is the fewest votes that could decide the
        image (all of them for the leader), so the queue never hands out more than that.
        """
        n = sum(counts)
        if n < self.minimum:
            return self.minimum - n
        if n >= self.maximum:
            return 0
        left = self.maximum - n
        if self.stop == UNANIMOUS:
            return 0 if sum(1 for c in counts if c) <= 1 else left
        labels = sorted(counts[: self.n_labels], reverse=True) + [0, 0]
        lead = labels[0] - labels[1]
        if lead > left:
            return 0
        return min(left, (left - lead) // 2 + 1)

    def complete(self, counts: Sequence[int]) -> bool:
        return self.needed(counts) == 0

    def saved(self, counts: Sequence[int]) -> int:
        """Votes the adaptive stop saved on a complete image: the maximum less its votes."""
        return max(0, self.maximum - sum(counts)) if self.complete(counts) else 0
