"""Bilingual text: tokens for Chinese (jieba's segmenter) and English (a small normaliser), and term
weights.

Chinese is cut by rjieba, the Rust port of jieba with the same dictionary and HMM: the same words as
``jieba.lcut`` (a test holds it so), eleven times faster, and without jieba's 80 MB dictionary in every
worker. jieba itself remains the source of the IDF table.

Relevance must be a function of the two texts alone — never of what else is in the book — or a
seeker's matches would change whenever an unrelated listing arrives, and the open matches would stop
being a function of the final book. So term weights come from *static* tables, never from the live
corpus: jieba's bundled general-corpus IDF for Chinese, and wordfreq's general-corpus frequencies of
English, German, French and Spanish words for the rest (so that "lithium" outweighs "system"). An
operator can pass a table of their own (for example built from a historical corpus) as configuration.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import rjieba
import wordfreq

__all__ = ["QUERY_NORM_TERMS", "TextAnalyzer", "default_analyzer", "query_norm"]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANGUL = "\uac00-\ud7a3"
_RUNS = re.compile(rf"[{_HAN}]+|[{_HANGUL}]+|[^\W_{_HAN}{_HANGUL}]+")
_HANGUL_RUN = re.compile(rf"[{_HANGUL}]")
_CJK = re.compile(rf"[{_HAN}]")
_JIEBA_HAN = re.compile(r"[\u4e00-\u9fd5]+")
"""The characters jieba segments; it yields any other character alone (a one-character term, dropped).
rjieba would join a run of rarer ones (extension A, compatibility ideographs) into one word."""

# Function words, and the boilerplate every patent abstract repeats ("a method ... comprising ...").
_EN_STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "according",
        "after",
        "again",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "between",
        "both",
        "but",
        "by",
        "can",
        "comprise",
        "comprises",
        "comprising",
        "configured",
        "could",
        "de",
        "der",
        "die",
        "disclosed",
        "disclosure",
        "does",
        "each",
        "embodiment",
        "embodiments",
        "first",
        "for",
        "from",
        "further",
        "has",
        "have",
        "having",
        "herein",
        "in",
        "include",
        "includes",
        "including",
        "into",
        "invention",
        "is",
        "it",
        "its",
        "may",
        "means",
        "more",
        "most",
        "non",
        "not",
        "of",
        "on",
        "one",
        "or",
        "other",
        "out",
        "over",
        "particular",
        "present",
        "provide",
        "provided",
        "provides",
        "providing",
        "said",
        "second",
        "so",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "thereby",
        "therefore",
        "these",
        "they",
        "third",
        "this",
        "those",
        "through",
        "thus",
        "to",
        "two",
        "under",
        "up",
        "upon",
        "use",
        "used",
        "using",
        "via",
        "was",
        "were",
        "wherein",
        "whereby",
        "which",
        "while",
        "with",
        "within",
        "without",
    ]
)
_ZH_STOP = frozenset(
    [
        "本发明",
        "本实用新型",
        "本申请",
        "公开",
        "提供",
        "一种",
        "所述",
        "其中",
        "包括",
        "设置",
        "以及",
        "及其",
        "通过",
        "用于",
        "具有",
        "一个",
        "多个",
        "进行",
        "实现",
        "采用",
        "能够",
        "可以",
        "从而",
        "由于",
        "同时",
        "并且",
        "或者",
        "上述",
        "该",
        "其",
        "的",
        "了",
        "和",
        "与",
        "及",
        "在",
        "是",
        "为",
        "对",
        "将",
        "由",
        "被",
        "中",
        "上",
        "下",
        "等",
        "个",
    ]
)
# Filler of abstracts ("experiments show ... improves efficiency"): in every text, it links everything.
_EN_STOP |= frozenset(
    """also application applications combining experiment experiments improve improved improves performs
    reduce reduces relate relates show shows well""".split()
)
# Function words of the other languages patent abstracts arrive in (German, French, Spanish).
_EN_STOP |= frozenset(
    """aus bei betrifft das dem den der des die durch ein eine einem einen einer eines erfindung für ist mit
    oder sich sind über und von vom wird werden zu zum zur au aux ce dans du en est et il la le les par pour qui
    sur un une al con del el las los para por que se su una""".split()
)
_ZH_STOP |= frozenset("涉及 领域 提高 实验 表明 显著 提升 场景 方案 结合 便于 降低".split())
# The parts and joints every claim-style abstract names ("a device comprising a unit connected to ..."):
# general-corpus weights rate them as telling, but in a patent they say nothing of its field.
_EN_STOP |= frozenset(
    """apparatus arranged assembly component connected device disposed element least mechanism member
    method plurality portion respectively structure system unit""".split()
)
_ZH_STOP |= frozenset(
    """装置 系统 方法 设备 结构 组件 单元 部件 本体 机构 一端 另一端
    连接 相连 连通 固定 安装 位于 设于 设有 组成 构成 若干""".split()
)
_UNKNOWN_TERM_WEIGHT = 8.0
_WORD_LANGUAGES = ("en", "de", "fr", "es")
_RARE_WORD_FREQUENCY = 1e-6
"""Words rarer than one in a million are all as telling: they weigh -ln(1e-6) ≈ 13.8, about the
weight of the rarest words of jieba's table (13.9)."""


def _stem(word: str) -> str:
    """A light English plural folder: enough to make 'sensors' meet 'sensor', 'batteries' 'battery'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _english_term(word: str) -> str | None:
    """One word's term: lower-cased and plural-folded (numbers of 2+ digits kept); None for a stop word
    or a single character."""
    word = word.lower()
    if len(word) < 2 or word in _EN_STOP:
        return None
    return _stem(word)


@dataclass(frozen=True)
class TextAnalyzer:
    """Turns text into terms and weighs them. ``idf`` maps a term to its weight (higher = rarer)."""

    idf: Mapping[str, float]
    unknown_weight: float = _UNKNOWN_TERM_WEIGHT
    word_weights: Mapping[str, float] = field(default_factory=dict)
    """Weights of alphabetic words that ``idf`` does not hold; such a word missing here too is rare."""
    rare_word_weight: float = _UNKNOWN_TERM_WEIGHT

    def tokens(self, text: str) -> list[str]:
        terms: list[str] = []
        for run in _RUNS.findall(text):
            if _CJK.match(run):
                for block in _JIEBA_HAN.findall(run):
                    terms.extend(w for w in rjieba.cut(block, True) if len(w) > 1 and w not in _ZH_STOP)
            elif _HANGUL_RUN.match(run):
                # Korean words carry their particles (시스템은, 발명의): character pairs meet across them.
                terms.extend(run[i : i + 2] for i in range(len(run) - 1))
            elif (term := _english_term(run)) is not None:  # a run of other letters and digits is one word
                terms.append(term)
        # One string object per distinct term, however many records carry it.
        return [sys.intern(t) for t in terms]

    def term_counts(self, texts: Iterable[str]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokens(text))
        return counts

    def weight(self, term: str) -> float:
        """The term's weight in its table; an alphabetic word in neither table is rare, and any other
        unknown term (a number, a Chinese or Korean term jieba's table lacks) weighs ``unknown_weight``."""
        known = self.idf.get(term)
        if known is None:
            known = self.word_weights.get(term)
        if known is not None:
            return known
        if term.isalpha() and not _CJK.search(term) and not _HANGUL_RUN.search(term):
            return self.rare_word_weight
        return self.unknown_weight

    def query_weights(self, texts: Iterable[str], boosted: Iterable[str] = ()) -> dict[str, float]:
        """Weights of a query's distinct terms; terms from ``boosted`` texts (keywords) count 1.5×."""
        weights = {term: self.weight(term) for term in self.term_counts(texts)}
        for term in self.term_counts(boosted):
            weights[term] = 1.5 * self.weight(term)
        return weights


def language_of(text: str) -> str:
    """'zh' when the text is mostly Chinese characters, else 'en'."""
    cjk = len(_CJK.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return "zh" if cjk * 3 >= latin else "en"


@lru_cache(maxsize=1)
def default_analyzer() -> TextAnalyzer:
    """jieba's bundled general-corpus IDF table, loaded once per process.

    The table is read directly: ``jieba.analyse`` would load it at import and leave the file open."""
    idf: dict[str, float] = {}
    table = resources.files("jieba") / "analyse" / "idf.txt"
    with table.open("r", encoding="utf-8") as lines:
        for line in lines:
            word, _, weight = line.strip().rpartition(" ")
            if word:
                idf[word] = float(weight)
    median = statistics.median(idf.values())
    return TextAnalyzer(
        idf=idf,
        unknown_weight=float(min(median, _UNKNOWN_TERM_WEIGHT)),
        word_weights=common_word_weights(),
        rare_word_weight=-math.log(_RARE_WORD_FREQUENCY),
    )


def common_word_weights() -> dict[str, float]:
    """-ln(frequency) of every word at least one in a million in English, German, French or Spanish
    (its highest frequency among them), from wordfreq's tables.

    Only these ~110k words are kept (about 10 MB); wordfreq's own caches of the full lists (well over
    100 MB) are dropped after each language."""
    weights: dict[str, float] = {}
    for language in _WORD_LANGUAGES:
        for word, frequency in wordfreq.get_frequency_dict(language).items():
            if frequency >= _RARE_WORD_FREQUENCY:
                weight = -math.log(frequency)
                if weight < weights.get(word, math.inf):
                    weights[sys.intern(word)] = weight
        wordfreq.get_frequency_dict.cache_clear()
        wordfreq.get_frequency_list.cache_clear()
    return weights


QUERY_NORM_TERMS = 20


def query_norm(query: Mapping[str, float]) -> float:
    """What a document's share of ``query`` is measured against: the weight of its 20 strongest terms.

    With the whole sum, every further word of a detailed description made every offer cover less of
    it: the first sentence of a long Chinese abstract (50 terms) found no offer on topic at all. A
    document covering more than this weight is fully relevant."""
    return sum(sorted(query.values(), reverse=True)[:QUERY_NORM_TERMS])


def saturate(tf: float, doc_len: float, *, k1: float, b: float, avg_len: float) -> float:
    """BM25's term-frequency saturation, scaled into [0, 1]."""
    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avg_len))
    return norm / (k1 + 1)


def log_scale(value: float, full_at: float) -> float:
    """0 at 0, 1 at ``full_at`` and beyond, logarithmic in between."""
    return min(1.0, math.log1p(max(value, 0.0)) / math.log1p(full_at))
