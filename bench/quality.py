"""Retrieval quality on real patent abstracts: does a text-only demand find offers of the same field?

    python -m bench.quality [--data ../shared/data/abstracts_by_cpc.jsonl.gz] [--per-group 30] [--matching KEY=VALUE]

Every abstract becomes a single-patent offer classified under its CPC group. For a seeded sample of
patents of each group, a demand is written from the first sentence of the abstract alone (no IPC codes,
no budget), posted by the patent's own seller so that the patent itself is filtered out. A hit is an
offer of the same CPC group among the engine's top 10: its real open matches, the demand applied
and then withdrawn through :meth:`Engine.apply` (``min_score`` and the inferred field included; a
result the broker never sees counts as a miss). Precision@10 is averaged within each group, then over
groups. A plain BM25 over jieba tokens, with the corpus's own IDF, runs on the same demands as the
baseline. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jieba
import numpy as np

from bench.matching_option import add_matching_option, matching_config, settings_entry
from matcher import Engine, MatchingConfig
from matcher.engine import entity_from_event
from schemas import BuyerDemand, PatentOffer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "abstracts_by_cpc.jsonl.gz"
_SENTENCE_END = re.compile(r"(?<=[。！？])|(?<=[.!?])\s+")
_WORD = re.compile(r"\w", re.UNICODE)


def load(path: Path) -> list[dict[str, Any]]:
    """Records with an abstract worth matching (a few in the set are empty)."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if len(r.get("abstract", "").strip()) >= 20]


def first_sentence(text: str) -> str:
    for part in _SENTENCE_END.split(text.strip()):
        if len(part.strip()) >= 8:
            return part.strip()
    return text.strip()


def is_chinese(text: str) -> bool:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text) * 3 >= len(text)


def offer_event(i: int, record: dict[str, Any]) -> PatentOffer:
    abstract = record["abstract"][:10_000]
    return PatentOffer.model_validate(
        {
            "event_id": f"q-offer-{i}", "schema_version": 1, "occurred_at": "2026-01-01T00:00:00+00:00",
            "source": "quality", "version": 1, "status": "active", "offer_id": f"offer-{i}",
            "seller": {"party_id": f"seller-{i}", "name": "seller", "kind": "enterprise", "region": "CN-BJ"},
            "patents": [{
                "number": record["pub_id"], "title": first_sentence(abstract)[:500], "abstract": abstract,
                "language": "zh" if is_chinese(abstract) else "en", "ipc": [record["cpc_group"]],
                "kind": "invention", "legal_status": "granted", "filing_date": "2020-01-01",
            }],
            "deal_types": ["assignment", "non_exclusive_license"],
        }
    )  # fmt: skip


def demand_event(i: int, record: dict[str, Any]) -> BuyerDemand:
    return BuyerDemand.model_validate(
        {
            "event_id": f"q-demand-{i}", "schema_version": 1, "occurred_at": "2026-01-01T00:00:00+00:00",
            "source": "quality", "version": 1, "status": "active", "demand_id": f"demand-{i}",
            "buyer": {"party_id": f"seller-{i}", "name": "buyer", "kind": "enterprise", "region": "CN-BJ"},
            "intent": "acquire", "description": first_sentence(record["abstract"])[:5000], "require_granted": False,
        }
    )  # fmt: skip


class Bm25:
    """Plain BM25 (k1 = 1.2, b = 0.75) over jieba tokens, IDF from the corpus itself."""

    def __init__(self, documents: list[str]) -> None:
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths = np.zeros(len(documents))
        for doc_id, text in enumerate(documents):
            counts = Counter(self.tokens(text))
            self.lengths[doc_id] = sum(counts.values())
            for term, tf in counts.items():
                self.postings[term].append((doc_id, tf))
        self.average = float(self.lengths.mean())
        self.n = len(documents)

    @staticmethod
    def tokens(text: str) -> list[str]:
        return [t.lower() for t in jieba.lcut(text) if _WORD.search(t)]

    def top(self, query: str, k: int, exclude: int) -> list[int]:
        scores = np.zeros(self.n)
        for term in set(self.tokens(query)):
            entries = self.postings.get(term)
            if not entries:
                continue
            ids = np.fromiter((d for d, _ in entries), dtype=np.int64)
            tf = np.fromiter((t for _, t in entries), dtype=np.float64)
            idf = math.log(1 + (self.n - len(entries) + 0.5) / (len(entries) + 0.5))
            scores[ids] += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * self.lengths[ids] / self.average))
        scores[exclude] = -1.0
        best = np.argsort(-scores, kind="stable")[:k]
        return [int(i) for i in best if scores[i] > 0]


def macro(per_group: dict[str, list[float]]) -> float:
    return round(statistics.mean(statistics.mean(v) for v in per_group.values()), 4)


def run(data: Path, per_group: int, seed: int, config: MatchingConfig | None = None) -> dict[str, Any]:
    records = load(data)
    records = [r for r in records if re.fullmatch(r"[A-Z]{2}[0-9A-Z]{3,24}", r["pub_id"])]
    engine = Engine(config)
    for i, record in enumerate(records):
        engine.load(entity_from_event(offer_event(i, record), engine.analyzer, engine.config))
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_group[record["cpc_group"]].append(i)
    rng = random.Random(seed)
    samples = {g: rng.sample(ids, min(per_group, len(ids))) for g, ids in sorted(by_group.items())}

    bm25 = Bm25([r["abstract"] for r in records])
    engine_p: dict[str, list[float]] = defaultdict(list)
    bm25_p: dict[str, list[float]] = defaultdict(list)
    for group, ids in samples.items():
        for i in ids:
            event = demand_event(i, records[i])
            engine.apply(event)
            found = engine.views.view(("demand", event.demand_id))
            hits = sum(records[int(c.counterpart_id.split("-")[1])]["cpc_group"] == group for c in found[:10])
            engine_p[group].append(hits / 10)
            baseline = bm25.top(event.description, 10, exclude=i)
            bm25_p[group].append(sum(records[j]["cpc_group"] == group for j in baseline) / 10)
            engine.apply(
                event.model_copy(update={"version": 2, "status": "withdrawn", "event_id": f"{event.event_id}-w"})
            )
    return settings_entry(config) | {
        "offers": len(records),
        "groups": len(samples),
        "demands": sum(len(v) for v in samples.values()),
        "macro_p_at_10": macro(engine_p),
        "bm25_macro_p_at_10": macro(bm25_p),
        "per_group": {
            g: [round(statistics.mean(engine_p[g]), 3), round(statistics.mean(bm25_p[g]), 3)] for g in samples
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-group", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    add_matching_option(parser)
    args = parser.parse_args()
    config = matching_config(args.matching, parser)
    print(json.dumps(run(args.data, args.per_group, args.seed, config), ensure_ascii=False))


if __name__ == "__main__":
    main()
