"""The public surface of the two libraries is small and explicit: changing it is a decision."""

from __future__ import annotations

import ast
from pathlib import Path

import matcher
import schemas

ROOT = Path(__file__).parent.parent


def test_matcher_exports() -> None:
    assert sorted(matcher.__all__) == [
        "Candidate", "Engine", "MatchingConfig", "Notice", "Result", "Shard", "TextAnalyzer", "Weights",
        "default_analyzer", "fold", "match_id", "oracle_matches",
    ]  # fmt: skip
    assert all(hasattr(matcher, name) for name in matcher.__all__)


def test_schemas_exports() -> None:
    assert {"PatentOffer", "BuyerDemand", "FinancingRequest", "MatchEvent", "DeadLetter", "decode", "encode",
            "normalize_ipc", "ipc_levels", "Rejection", "dead_letter"} <= set(schemas.__all__)  # fmt: skip
    assert all(hasattr(schemas, name) for name in schemas.__all__)


def imports_of(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_the_engine_is_pure_and_the_contract_stands_alone() -> None:
    """DESIGN.md: matcher/ never imports streams/ (nor Kafka, Faust, a clock); schemas/ imports neither."""
    assert not imports_of("matcher") & {"streams", "faust", "aiokafka", "time", "asyncio", "socket", "os"}
    assert not imports_of("schemas") & {"streams", "matcher", "faust", "aiokafka"}


def test_the_engine_never_reads_the_clock() -> None:
    for path in (ROOT / "matcher").rglob("*.py"):
        text = path.read_text()
        for call in ("datetime.now", ".utcnow(", "date.today", "time.time(", "perf_counter("):
            assert call not in text, f"{path.name} reads the clock ({call}): time comes in with the event"
