"""The matching engine: pure Python and numpy, no Kafka, no clock, no I/O.

Events come in validated (``schemas``); :class:`Engine` keeps the open book and emits
:class:`Notice` s — a match entering or leaving a seeker's top K, with its explanation.
"""

from matcher.candidates import Candidate, match_id
from matcher.config import MatchingConfig, Weights
from matcher.engine import Engine, Notice, Result
from matcher.oracle import fold, oracle_matches
from matcher.shard import Shard
from matcher.text import TextAnalyzer, default_analyzer

__all__ = [
    "Candidate",
    "Engine",
    "MatchingConfig",
    "Notice",
    "Result",
    "Shard",
    "TextAnalyzer",
    "Weights",
    "default_analyzer",
    "fold",
    "match_id",
    "oracle_matches",
]
