"""How many more votes an image needs, worked by hand (annotator.overlap)."""
import pytest

from annotator.overlap import DECIDED, UNANIMOUS, OverlapRule

# answers: three labels, then one extra answer ("unsure")
FIXED = OverlapRule(3, 3, UNANIMOUS, n_labels=3)
UNANIMOUS_3_7 = OverlapRule(3, 7, UNANIMOUS, n_labels=3)
DECIDED_3_7 = OverlapRule(3, 7, DECIDED, n_labels=3)


@pytest.mark.parametrize("rule, counts, needed", [
    (FIXED, [0, 0, 0, 0], 3),
    (FIXED, [1, 1, 0, 0], 1),
    (FIXED, [1, 1, 1, 0], 0),
    (FIXED, [2, 2, 0, 0], 0),  # over the target (a lease ran out): nothing more
    # unanimous: below the minimum the rest of it; at it, unanimous stops, else up to 7
    (UNANIMOUS_3_7, [2, 0, 0, 0], 1),
    (UNANIMOUS_3_7, [3, 0, 0, 0], 0),
    (UNANIMOUS_3_7, [0, 0, 0, 3], 0),  # three "unsure": unanimous too
    (UNANIMOUS_3_7, [2, 1, 0, 0], 4),
    (UNANIMOUS_3_7, [2, 0, 0, 1], 4),  # an extra answer breaks unanimity
    (UNANIMOUS_3_7, [5, 2, 0, 0], 0),  # at the maximum
    # decided: 7 - n votes are left; it stops when the leader is ahead by more than that.
    # Otherwise it surely needs the fewest votes that could decide it: k > (left - lead) / 2.
    (DECIDED_3_7, [3, 0, 0, 0], 1),  # lead 3, left 4: one more vote for the leader decides
    (DECIDED_3_7, [2, 1, 0, 0], 2),  # lead 1, left 4: k > 1.5
    (DECIDED_3_7, [1, 1, 1, 0], 3),  # lead 0, left 4: k > 2
    (DECIDED_3_7, [4, 0, 0, 0], 0),  # lead 4 > left 3
    (DECIDED_3_7, [3, 1, 0, 1], 1),  # n 5, left 2, lead 2: k > 0
    (DECIDED_3_7, [4, 1, 0, 0], 0),  # n 5, left 2, lead 3
    (DECIDED_3_7, [2, 2, 0, 1], 2),  # n 5, left 2, a tie: both remaining votes
])
def test_votes_still_needed(rule, counts, needed):
    assert rule.needed(counts) == needed
    assert rule.complete(counts) == (needed == 0)


def test_votes_saved_by_an_adaptive_stop():
    assert UNANIMOUS_3_7.saved([3, 0, 0, 0]) == 4
    assert UNANIMOUS_3_7.saved([2, 1, 0, 0]) == 0  # still open
    assert UNANIMOUS_3_7.saved([5, 2, 0, 0]) == 0  # went to the maximum
    assert FIXED.saved([1, 1, 1, 0]) == 0


@pytest.mark.parametrize("minimum, maximum, stop, message", [
    (0, 3, UNANIMOUS, "need 1 <= minimum <= maximum"),
    (4, 3, UNANIMOUS, "need 1 <= minimum <= maximum"),
    (3, 5, "sometimes", "unknown stop rule 'sometimes'"),
])
def test_a_rule_out_of_range_is_refused(minimum, maximum, stop, message):
    with pytest.raises(ValueError, match=message):
        OverlapRule(minimum, maximum, stop)
