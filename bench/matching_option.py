"""``--matching KEY=VALUE``: the benchmarks' way to measure a setting of :class:`MatchingConfig`.

The service reads the same settings from ``PATENTMATCH_MATCHING__*``; a benchmark takes them on its
command line so that a trade-off is one command on each side, for example the inferred field's cost
to latency and its gain in precision::

    python -m bench.engine --size 100000 --matching inference_pool=0
    python -m bench.quality --matching inference_pool=0

A nested field is named with dots (``weights.field=0.3``). Values are validated as the service
validates its environment: a wrong name or value stops the benchmark with pydantic's message.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from matcher import MatchingConfig

__all__ = ["add_matching_option", "changed_settings", "matching_config", "settings_entry"]


def add_matching_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matching",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of matcher.config.MatchingConfig for this run (repeatable; dots for nested fields, "
        "e.g. weights.field=0.3); the defaults otherwise",
    )


def _nested(pairs: list[str]) -> dict[str, Any]:
    """``["weights.field=0.3", "top_k=5"]`` → ``{"weights": {"field": "0.3"}, "top_k": "5"}``."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--matching wants KEY=VALUE, not {pair!r}")
        *parents, leaf = key.strip().split(".")
        level = nested
        for name in parents:
            level = level.setdefault(name, {})
        level[leaf] = value.strip()
    return nested


def matching_config(pairs: list[str], parser: argparse.ArgumentParser) -> MatchingConfig:
    """The defaults with ``pairs`` applied; a bad pair ends the program with the parser's usage."""
    try:
        return MatchingConfig.model_validate(_nested(pairs))  # a weight not named keeps its default
    except (ValueError, ValidationError) as error:
        parser.error(str(error))


def changed_settings(config: MatchingConfig | None) -> dict[str, Any]:
    """What ``config`` sets otherwise than the defaults (empty for the defaults), to print with a result."""
    return {} if config is None else config.model_dump(exclude_defaults=True)


def settings_entry(config: MatchingConfig | None) -> dict[str, Any]:
    """``{"matching": …}`` with what ``config`` changes, to merge into a result; nothing for the defaults."""
    changed = changed_settings(config)
    return {"matching": changed} if changed else {}
