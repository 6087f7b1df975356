"""Basic-canary arithmetic against the cases of Argo's utils/replicaset/canary_test.go
(TestCalculateReplicaCountsForCanary without traffic routing, TestApproximateWeightedNewStableReplicaCounts):
inputs and expected counts are Argo's, the table and the code are ours."""

from __future__ import annotations

import pytest

from rollouts.engine.replicas import Pool, basic_canary_counts, closest_split, surge_and_unavailable

# (id, replicas, setWeight, maxSurge, maxUnavailable, promoteFull, (stable spec, available),
#  (canary spec, available), (older spec, available) or None, expected (canary, stable))
BASIC = [
    ('do-not-add-extra-rss-in-scaledowncount-when-spec-replica-availablerepl', 10, 100, 3, 0, False, (7, 8), (6, 3), None, (6, 7)),
    ('use-max-surge-int-to-scale-up-canary', 10, 20, 2, 0, False, (10, 10), (0, 0), None, (2, 10)),
    ('use-max-surge-percentage-to-scale-up-canary', 10, 20, '20%', 0, False, (10, 10), (0, 0), None, (2, 10)),
    ('scale-down-extra-stable-replicas', 10, 20, '20%', 0, False, (10, 10), (2, 2), None, (2, 8)),
    ('do-not-go-past-max-surge', 10, 30, 2, 0, False, (10, 10), (0, 0), None, (2, 10)),
    ('use-max-unavailable-int-to-scale-down-stablers', 10, 20, 0, 2, False, (10, 10), (0, 0), None, (0, 8)),
    ('use-max-surge-percentage-to-scale-down-stablers', 10, 20, 0, '20%', False, (10, 10), (0, 0), None, (0, 8)),
    ('do-not-go-past-max-unavailable', 10, 30, 0, 2, False, (10, 10), (0, 0), None, (0, 8)),
    ('use-max-surge-and-max-unavailable', 10, 50, 2, 1, False, (10, 10), (0, 0), None, (2, 9)),
    ('scale-canaryrs-to-zero-on-setweight-of-0', 10, 0, 1, 1, False, (10, 10), (1, 1), None, (0, 10)),
    ('scale-stable-to-zero-on-setweight-of-100', 10, 100, 1, 1, False, (1, 1), (10, 10), None, (10, 0)),
    ('do-not-scale-canaryrs-down-to-zero-on-non-zero-weight', 1, 20, 1, 0, False, (1, 1), (0, 0), None, (1, 1)),
    ('do-not-scale-canaryrs-down-to-zero-on-non-100-weight', 1, 90, 1, 0, False, (1, 1), (0, 0), None, (1, 1)),
    ('scale-canaryrs-to-zero-on-50-weight-without-surge', 1, 49, 0, 1, False, (1, 1), (0, 0), None, (0, 1)),
    ('scale-stablers-down-to-zero-on-50-weight-without-surge', 1, 51, 0, 1, False, (1, 1), (0, 0), None, (0, 0)),
    ('scale-canaryrs-to-one-on-50-weight-without-surge-and-stable-replicas', 1, 51, 0, 1, False, (0, 0), (0, 0), None, (1, 0)),
    ('scale-up-stable-before-canaryrs', 10, 30, 1, 0, False, (1, 1), (0, 0), (3, 3), (1, 7)),
    ('scale-down-canaryrs-and-stable', 10, 30, 0, 3, False, (8, 5), (4, 4), None, (3, 7)),
    ('scale-down-stable-and-canary-available', 10, 100, 1, 0, False, (10, 2), (10, 8), None, (9, 2)),
    ('do-not-scale-down-canaryrs-or-stable-when-older-rs-count-scaledowncoun', 10, 30, 0, 1, False, (8, 6), (4, 2), (3, 3), (4, 8)),
    ('do-not-round-past-maxsurge-with-uneven-setweight-divisor', 10, 5, 0, 1, False, (10, 10), (0, 0), None, (0, 9)),
    ('do-not-round-past-maxsurge-with-uneven-setweight-divisor-part-2', 10, 5, 0, 1, False, (9, 9), (0, 0), None, (1, 9)),
    ('use-maxunavailable-of-1-when-percentage-of-maxunavailable-and-maxsurge', 10, 10, '0%', '0%', False, (10, 10), (0, 0), None, (0, 9)),
    ('honor-maxsurge-during-scale-up-when-stablers-unavailable', 4, 100, 1, 0, False, (4, 1), (0, 0), None, (1, 4)),
    ('scale-down-to-maxunavailable-without-exceeding-maxsurge', 3, 99, 0, 2, False, (3, 3), (0, 0), None, (0, 1)),
    ('scale-down-to-maxunavailable-without-exceeding-maxsurge-part-2', 3, 99, 0, 2, False, (1, 1), (0, 0), None, (2, 1)),
    ('honor-maxunavailable-when-aborting-or-reducing-weight-part-1', 4, 0, 1, 0, False, (0, 0), (4, 4), None, (4, 1)),
    ('honor-maxunavailable-when-aborting-or-reducing-weight-part-2', 4, 0, 1, 0, False, (1, 0), (4, 4), None, (4, 1)),
    ('honor-maxunavailable-when-aborting-or-reducing-weight-part-3', 4, 0, 1, 0, False, (1, 1), (4, 4), None, (3, 1)),
    ('promote-full-does-not-consider-weight', 4, 1, 4, 4, True, (4, 4), (0, 0), None, (4, 0)),
    ('promote-full-still-honors-maxsurge-maxunavailable', 4, 1, 3, 0, True, (4, 4), (0, 0), None, (3, 4)),
]


@pytest.mark.parametrize(
    ("replicas", "weight", "surge", "unavailable", "promote_full", "stable", "canary", "older", "expected"),
    [c[1:] for c in BASIC],
    ids=[c[0] for c in BASIC],
)
def test_basic_canary_counts_match_argo(
    replicas: int, weight: int, surge: int | str, unavailable: int | str, promote_full: bool,
    stable: tuple[int, int], canary: tuple[int, int], older: tuple[int, int] | None, expected: tuple[int, int],
) -> None:
    """Stable precedence on scale-up, early return while older ReplicaSets have pods, stable spec replicas
    counted as available while the canary grows, an over-surged canary pulled back."""
    max_surge, max_unavailable = surge_and_unavailable(replicas, surge, unavailable)
    target_new, target_stable = closest_split(replicas, 100 if promote_full else weight, max_surge)
    others = [Pool(name="older", replicas=older[0], available=older[1])] if older else []
    new_count, stable_count, _ = basic_canary_counts(
        replicas=replicas, target_new=target_new, target_stable=target_stable, max_surge=max_surge,
        max_unavailable=max_unavailable, new=Pool(name="canary", replicas=canary[0], available=canary[1]),
        stable=Pool(name="stable", replicas=stable[0], available=stable[1]), others=others,
    )
    assert (new_count, stable_count) == expected


# (replicas, weight, maxWeight, maxSurge, expected canary, expected stable)
APPROXIMATE = [
    (0, 0, 100, 0, 0, 0),
    (0, 50, 100, 0, 0, 0),
    (0, 100, 100, 0, 0, 0),
    (0, 0, 100, 1, 0, 0),
    (0, 50, 100, 1, 0, 0),
    (0, 100, 100, 1, 0, 0),
    (1, 0, 100, 0, 0, 1),
    (1, 1, 100, 0, 0, 1),
    (1, 49, 100, 0, 0, 1),
    (1, 50, 100, 0, 1, 0),
    (1, 99, 100, 0, 1, 0),
    (1, 100, 100, 0, 1, 0),
    (1, 0, 100, 1, 0, 1),
    (1, 1, 100, 1, 1, 1),
    (1, 49, 100, 1, 1, 1),
    (1, 50, 100, 1, 1, 1),
    (1, 99, 100, 1, 1, 1),
    (1, 100, 100, 1, 1, 0),
    (2, 0, 100, 0, 0, 2),
    (2, 1, 100, 0, 1, 1),
    (2, 50, 100, 0, 1, 1),
    (2, 99, 100, 0, 1, 1),
    (2, 100, 100, 0, 2, 0),
    (2, 0, 100, 1, 0, 2),
    (2, 1, 100, 1, 1, 2),
    (2, 50, 100, 1, 1, 1),
    (2, 99, 100, 1, 2, 1),
    (2, 100, 100, 1, 2, 0),
    (3, 10, 100, 0, 1, 2),
    (3, 25, 100, 0, 1, 2),
    (3, 33, 100, 0, 1, 2),
    (3, 34, 100, 0, 1, 2),
    (3, 49, 100, 0, 1, 2),
    (3, 50, 100, 0, 2, 1),
    (3, 10, 100, 1, 1, 3),
    (3, 25, 100, 1, 1, 3),
    (3, 33, 100, 1, 1, 2),
    (3, 34, 100, 1, 1, 2),
    (3, 49, 100, 1, 2, 2),
    (3, 50, 100, 1, 2, 2),
    (10, 0, 100, 1, 0, 10),
    (10, 1, 100, 0, 1, 9),
    (10, 14, 100, 0, 1, 9),
    (10, 15, 100, 0, 2, 8),
    (10, 16, 100, 0, 2, 8),
    (10, 99, 100, 0, 9, 1),
    (10, 100, 100, 1, 10, 0),
    (10, 0, 100, 1, 0, 10),
    (10, 1, 100, 1, 1, 10),
    (10, 18, 100, 1, 2, 9),
    (10, 19, 100, 1, 2, 9),
    (10, 20, 100, 1, 2, 8),
    (10, 23, 100, 1, 2, 8),
    (10, 24, 100, 1, 3, 8),
    (10, 25, 100, 1, 3, 8),
    (10, 99, 100, 1, 10, 1),
    (10, 100, 100, 1, 10, 0),
]


@pytest.mark.parametrize(
    ("replicas", "weight", "max_weight", "surge", "canary", "stable"),
    APPROXIMATE,
    ids=[f"{r[0]}-replicas-{r[1]}of{r[2]}-surge{r[3]}" for r in APPROXIMATE],
)
def test_closest_split_matches_argo(replicas: int, weight: int, max_weight: int, surge: int, canary: int,
                                    stable: int) -> None:
    assert closest_split(replicas, weight, surge, max_weight) == (canary, stable)
