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

from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

from matcher.candidates import Candidate
from matcher.config import MatchingConfig
from matcher.entities import Demand
from matcher.scoring import LEVEL_SCORES, levels, round_score

__all__ = ["closeness", "closeness_map", "inference_weight", "open_ranking"]


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
    inferred_for = _inferred_for(tuple(sorted(voter.field_codes for voter in pool[: config.inference_votes])))
    weight = config.weights.field
    ranked = []
    for candidate in pool:
        inferred = inferred_for(candidate.field_codes)
        w = candidate.inference_weight
        score = round_score((candidate.score * w + weight * inferred) / (w + weight))
        if score >= config.min_score:
            ranked.append((-score, candidate.counterpart_id, candidate.financier_id or "", inferred, candidate))
    ranked.sort(key=lambda entry: entry[:3])
    return [_with_score(c, -negated, inferred) for negated, _, _, inferred, c in ranked[: config.top_k]]


_VOTES_KEPT = 1024
"""Sets of voters' codes whose inferred fields are kept, at most (past that, the cache starts again)."""
_CODES_KEPT = 256
"""Sets of codes kept per set of voters' codes, at most."""
_inferred_by_votes: dict[tuple[tuple[str, ...], ...], Callable[[tuple[str, ...]], float]] = {}


def _inferred_for(votes: tuple[tuple[str, ...], ...]) -> Callable[[tuple[str, ...]], float]:
    """The inferred field of each set of codes, for the voters' codes ``votes``; cached, for a seeker is
    ranked again at each change of its pool, mostly with the same voters, and the seekers of a field
    share theirs."""
    known = _inferred_by_votes.get(votes)
    if known is not None:
        return known
    if len(_inferred_by_votes) >= _VOTES_KEPT:
        _inferred_by_votes.clear()
    maps = [(closeness_map(codes), count / len(votes)) for codes, count in Counter(votes).items()]
    fields: dict[tuple[str, ...], float] = {}

    def inferred(codes: tuple[str, ...]) -> float:
        field = fields.get(codes)
        if field is None:
            if len(fields) >= _CODES_KEPT:
                fields.clear()
            field = fields[codes] = round(sum(share * closeness(m, codes) for m, share in maps), 1)
        return field

    _inferred_by_votes[votes] = inferred
    return inferred


def closeness_map(codes: tuple[str, ...]) -> dict[str, float]:
    """Each level of ``codes`` (section, class, subclass, main group, subgroup), with the field part
    a code sharing it would score (its deepest level: 1.0, as a demand code containing the patent's),
    so that :func:`closeness` reads :func:`~matcher.scoring.field_score` off a few look-ups."""
    best: dict[str, float] = {}
    for code in codes:
        *above, deepest = levels(code)
        for depth, level in enumerate(above, start=1):
            best[level] = max(best.get(level, 0.0), LEVEL_SCORES[depth])
        best[deepest] = 1.0
    return best


def closeness(voted: dict[str, float], codes: tuple[str, ...]) -> float:
    """``field_score(voted codes, codes)``, from :func:`closeness_map` of the voted codes."""
    return max((voted[level] for level in voted.keys() & _levels_of(codes)), default=0.0)


@lru_cache(maxsize=8192)
def _levels_of(codes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(level for code in codes for level in levels(code))


def _with_score(c: Candidate, score: float, inferred: float) -> Candidate:
    return Candidate(c.kind, c.seeker_kind, c.seeker_id, c.seeker_version, c.counterpart_kind, c.counterpart_id,
                     c.counterpart_version, c.financier_id, c.financier_version, score, c.match_id, c.field_codes,
                     c.inference_weight, inferred)  # fmt: skip
