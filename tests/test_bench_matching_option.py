"""``--matching KEY=VALUE`` of the benchmarks: a setting reaches the engine measured, is printed with the
result (bench.engine, bench.quality, bench.pipeline), and a saved book is read back only with the settings
it was built with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import pipeline
from bench.engine import saved_build
from bench.matching_option import add_matching_option, changed_settings, matching_config
from matcher import MatchingConfig


def parsed(*pairs: str) -> MatchingConfig:
    parser = argparse.ArgumentParser()
    add_matching_option(parser)
    args = parser.parse_args([arg for pair in pairs for arg in ("--matching", pair)])
    return matching_config(args.matching, parser)


def test_settings_are_validated_as_the_service_validates_its_environment() -> None:
    config = parsed("inference_pool=0", "weights.field=0.3", "min_score=0.5")
    assert (config.inference_pool, config.weights.field, config.min_score) == (0, 0.3, 0.5)
    assert config.weights.text == MatchingConfig().weights.text  # the other weights keep their defaults
    assert changed_settings(config) == {"inference_pool": 0, "weights": {"field": 0.3}, "min_score": 0.5}
    assert changed_settings(parsed()) == {} and changed_settings(None) == {}


@pytest.mark.parametrize(
    "pair", ["top_k=many", "no_such_setting=1", "inference_pool", "=3", "weights.color=1", "weights=1"]
)
def test_a_bad_setting_stops_the_benchmark_with_the_reason(pair: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parsed(pair)
    assert "error:" in capsys.readouterr().err


def test_a_saved_book_is_read_back_only_with_its_settings(tmp_path: Path) -> None:
    book = tmp_path / "book.pkl"
    engine, _, _ = saved_build(book, 300, 5, True, parsed("inference_pool=0"))
    assert engine.config.inference_pool == 0
    again, _, _ = saved_build(book, 300, 5, True, parsed("inference_pool=0"))
    assert again.config.inference_pool == 0 and again.sizes() == engine.sizes()
    with pytest.raises(SystemExit, match="holds a book built with"):
        saved_build(book, 300, 5, True, None)


def test_the_pipeline_matches_with_the_settings_and_says_which() -> None:
    defaults = pipeline.run(400, 8, "python", "churn")
    one_each = pipeline.run(400, 8, "python", "churn", parsed("top_k=1"))
    assert "matching" not in defaults and one_each["matching"] == {"top_k": 1}
    assert 0 < one_each["match_events_per_event"] < defaults["match_events_per_event"]
