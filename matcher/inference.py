"""The field of a demand that names no IPC codes, inferred from the offers its description finds best.

Such a demand matches on text alone: the field part of the score does not apply to it. Yet the offers
its words find best mostly sit in one or two IPC groups, and the offers of those groups that share
fewer of its words are still what a buyer in that field wants, while a word shared by chance pulls in
offers of unrelated fields. So, for a seeker whose field is inferred:

1. its *pool* is its best ``inference_pool`` candidates by the parts that do apply (the views keep
   that prefix of its ranking exact);
2. the best ``inference_votes`` of the pool (its *voters*) lend their IPC codes;
3. a candidate's inferred field is its mean IPC closeness to the voters (the field part's own
   closeness, :func:`matcher.scoring.field_score`), and joins its score with the field's weight;
4. its open matches are the best K of the pool by that score, those still at ``min_score`` or above.

The pool is a function of the book, and so is all that follows: the open matches stay a function of
the final book (DESIGN.md's invariant), and the oracle computes them with this same function over its
brute-force pool. On real abstracts (``python -m bench.quality``) it took precision@10 from 0.3729 to
about 0.42.

Each change of a seeker's inferred field re-announces every open match of the seeker with its new score,
so it is kept from changing for little: the voters count alike, not by their scores (it changes only when
the codes among them do), and it is kept to one decimal. Both cost little: 0.4247 with voters weighted
by score and six decimals, 0.4221 alike, 0.4212 alike and to one decimal; and the one decimal took the
match events of 300 offers arriving at ``python -m bench.engine``'s 100k book from 4,961 to 4,382 (a
one-off count).
"""

from __future__ import annotations

from collections.abc import Sequence

from matcher.candidates import Candidate
from matcher.config import MatchingConfig
from matcher.entities import Demand
from matcher.ipc import FieldCodes
from matcher.scoring import round_score

__all__ = ["closeness_by_level", "closeness_to_voters", "inference_weight", "open_ranking", "reranked"]


def inference_weight(demand: Demand, config: MatchingConfig) -> float:
    """The summed weight of the parts that apply between ``demand`` and any offer, if its field is to
    be inferred (it names no IPC codes, and inference is on: ``inference_pool`` above 0); 0 if not."""
    weights = config.weights
    if demand.codes or not weights.field or not config.inference_pool:
        return 0.0
    price = weights.price if demand.has_budget else 0.0
    return weights.text + price + weights.strength + weights.region + weights.freshness


def open_ranking(pool: Sequence[Candidate], config: MatchingConfig) -> list[Candidate]:
    """A seeker's open matches, from its candidates best first (at least its first
    ``config.ranked_depth(True)``, exactly as the final book ranks them, unless it has fewer)."""
    if not pool or not pool[0].inference_weight:
        return list(pool[: config.top_k])
    pool = pool[: config.ranked_depth(True)]
    return _best(_scored(pool, pool[: config.inference_votes], config), config)


def reranked(
    before: Sequence[Candidate], ranking: Sequence[Candidate], pool: Sequence[Candidate], config: MatchingConfig
) -> list[Candidate]:
    """``open_ranking(pool)``, given ``ranking``, the open ranking of the same seeker's pool ``before``.

    When the voters are the very same candidates, every candidate of both pools keeps its inferred field
    and so its score: only the newcomers are scored, and merged into the ranking, as long as no
    candidate that left the pool was in it (its place would go to one of the pool ranked below, whose
    scores are not kept). Most changes are such: an arriving offer lands below the voters in three
    of four rankings of ``python -m bench.engine``'s 100k book."""
    depth, votes = config.ranked_depth(True), config.inference_votes
    before, pool = before[:depth], pool[:depth]
    if not pool or not pool[0].inference_weight or not before or not before[0].inference_weight:
        return open_ranking(pool, config)
    voters = pool[:votes]
    if len(voters) != len(before[:votes]) or any(a is not b for a, b in zip(voters, before, strict=False)):
        return open_ranking(pool, config)
    kept = set(map(id, pool))
    in_ranking = {c.match_id for c in ranking}
    if any(id(c) not in kept and c.match_id in in_ranking for c in before):
        return open_ranking(pool, config)
    was = set(map(id, before))
    newcomers = [c for c in pool if id(c) not in was]
    ranked = [(-c.score, c.counterpart_id, c.financier_id or "", c.inferred_field or 0.0, c) for c in ranking]
    return _best(ranked + _scored(newcomers, voters, config), config)


_Entry = tuple[float, str, str, float, Candidate]
"""(negated score, counterpart, financier or "", inferred field, candidate): the order of a ranking."""


def _scored(candidates: Sequence[Candidate], voters: Sequence[Candidate], config: MatchingConfig) -> list[_Entry]:
    """The candidates at ``min_score`` or above once their field, inferred from ``voters``, joins their
    score."""
    votes = [voter.field_codes for voter in voters]
    by_level = closeness_by_level(votes)
    weight = config.weights.field
    entries = []
    for candidate in candidates:
        inferred = _mean_to_one_decimal(_summed_closeness(by_level, candidate.field_codes), len(votes))
        w = candidate.inference_weight
        score = round_score((candidate.score * w + weight * inferred) / (w + weight))
        if score >= config.min_score:
            entries.append((-score, candidate.counterpart_id, candidate.financier_id or "", inferred, candidate))
    return entries


def _best(entries: list[_Entry], config: MatchingConfig) -> list[Candidate]:
    """The best K entries, as candidates with their final score (an entry of a kept ranking holds one
    already: its inferred field is set)."""
    entries.sort(key=lambda entry: entry[:3])
    return [
        c if c.inferred_field is not None else _with_score(c, -negated, inferred)
        for negated, _, _, inferred, c in entries[: config.top_k]
    ]


_SLOT = 10
"""Bits per voter in a row of :func:`closeness_by_level`."""


def closeness_by_level(votes: Sequence[FieldCodes]) -> dict[str, int]:
    """Each level (section, class, subclass, main group, subgroup) of the voters' codes, with the field
    part, in tenths, a code sharing it would score against each voter (the deepest level of a voter's
    code: 10, as a demand code containing the patent's). A pool is ranked against all its voters at
    once: a candidate's closeness to each is then a few look-ups and an element-wise max.

    A level's row is one integer, voter i's closeness in its bits ``10 i`` to ``10 i + 9`` as a
    thermometer code (t tenths: t ones, :attr:`FieldCodes.thermometers`), so that the element-wise max
    of rows is their bitwise or, and the sum over the voters the count of its ones: exact, and
    0.58–0.64 of the time that lists of ints took on the pools ranked in the engine benchmark's 12
    slowest offers (bench/JOURNAL.md)."""
    by_level: dict[str, int] = {}
    for voter, codes in enumerate(votes):
        shift = _SLOT * voter
        for level, thermometer in zip(codes.levels, codes.thermometers, strict=True):
            by_level[level] = by_level.get(level, 0) | (thermometer << shift)
    return by_level


def closeness_to_voters(by_level: dict[str, int], codes: FieldCodes, voters: int) -> list[int]:
    """``field_score(voter's codes, codes)`` for each of the ``voters`` of :func:`closeness_by_level`, in
    tenths."""
    closest, slot = _closest(by_level, codes), (1 << _SLOT) - 1
    return [((closest >> (_SLOT * voter)) & slot).bit_count() for voter in range(voters)]


def _summed_closeness(by_level: dict[str, int], codes: FieldCodes) -> int:
    """The sum of :func:`closeness_to_voters`."""
    return _closest(by_level, codes).bit_count()


def _closest(by_level: dict[str, int], codes: FieldCodes) -> int:
    """Each voter's closeness to ``codes``, as a row of :func:`closeness_by_level`: the or (element-wise
    max) of the rows of the levels of ``codes``."""
    closest = 0
    for level in codes.levels:
        closest |= by_level.get(level, 0)
    return closest


def _mean_to_one_decimal(summed_tenths: int, voters: int) -> float:
    """The mean of the voters' closeness to one decimal, rounded half up in integers (exact, so that the
    same codes always give the same field whatever order the sum ran in)."""
    return (2 * summed_tenths + voters) // (2 * voters) / 10


def _with_score(c: Candidate, score: float, inferred: float) -> Candidate:
    return Candidate(c.kind, c.seeker_kind, c.seeker_id, c.seeker_version, c.counterpart_kind, c.counterpart_id,
                     c.counterpart_version, c.financier_id, c.financier_version, score, c.match_id, c.field_codes,
                     c.inference_weight, inferred)  # fmt: skip
