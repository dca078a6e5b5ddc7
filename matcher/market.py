"""A seeded synthetic market: offers, buyer demands, lenders and investors, and financing requests, in
Chinese and English, with real IPC subclasses skewed as real books are (a few fields such as G06F,
H04L, H01M and A61K hold much of it), prices in CNY / USD / EUR and parties across China and abroad.

The same seed gives the same events, so tests and benchmarks are repeatable. ``lifecycle`` adds
updates, withdrawals and expiries.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import jieba

from schemas import BuyerDemand, FinancingRequest, InputEvent, PatentOffer

__all__ = ["Market", "MarketMix"]

CHINA = timezone(timedelta(hours=8))

# subclass: (weight, [(zh term, en term)], main groups)
FIELDS: dict[str, tuple[float, list[tuple[str, str]], list[str]]] = {
    "G06F": (16, [("数据处理", "data processing"), ("存储器", "memory"), ("操作系统", "operating system"),
                  ("分布式计算", "distributed computing"), ("数据库", "database"), ("缓存", "cache")], ["16", "9", "3", "12"]),
    "H04L": (12, [("网络通信", "network communication"), ("加密", "encryption"), ("数据包", "packet"),
                  ("路由", "routing"), ("身份认证", "authentication"), ("区块链", "blockchain")], ["9", "67", "45", "12"]),
    "H01M": (10, [("锂离子电池", "lithium-ion battery"), ("正极材料", "cathode material"), ("电解液", "electrolyte"),
                  ("隔膜", "separator"), ("热管理", "thermal management"), ("固态电池", "solid-state battery")], ["10", "4", "50", "8"]),
    "A61K": (9, [("药物组合物", "pharmaceutical composition"), ("抗体", "antibody"), ("缓释制剂", "sustained release"),
                 ("中药提取物", "herbal extract"), ("纳米颗粒", "nanoparticle"), ("疫苗", "vaccine")], ["9", "31", "36", "39"]),
    "G06N": (6, [("神经网络", "neural network"), ("深度学习", "deep learning"), ("训练数据", "training data"),
                 ("推理加速", "inference acceleration"), ("知识图谱", "knowledge graph")], ["3", "20", "5"]),
    "H04W": (5, [("无线通信", "wireless communication"), ("基站", "base station"), ("信道估计", "channel estimation"),
                 ("波束成形", "beamforming"), ("终端设备", "user equipment")], ["72", "74", "24"]),
    "B60L": (4, [("电动汽车", "electric vehicle"), ("充电桩", "charging station"), ("电机控制", "motor control"),
                 ("再生制动", "regenerative braking")], ["53", "58", "15"]),
    "G01N": (4, [("气体传感器", "gas sensor"), ("光谱检测", "spectroscopy"), ("生物传感", "biosensor"),
                 ("色谱分析", "chromatography")], ["27", "21", "33"]),
    "C12N": (3, [("基因编辑", "gene editing"), ("细胞培养", "cell culture"), ("重组蛋白", "recombinant protein")], ["15", "5", "9"]),
    "H01L": (4, [("半导体器件", "semiconductor device"), ("晶圆", "wafer"), ("封装结构", "packaging"),
                 ("薄膜晶体管", "thin-film transistor")], ["21", "23", "29"]),
    "F24S": (2, [("太阳能集热器", "solar collector"), ("光热发电", "solar thermal"), ("储热", "heat storage")], ["10", "20"]),
    "F27D": (2, [("余热回收", "waste heat recovery"), ("工业炉", "industrial furnace"), ("换热器", "heat exchanger")], ["17", "1"]),
    "A61B": (3, [("医学影像", "medical imaging"), ("内窥镜", "endoscope"), ("生理信号", "physiological signal")], ["5", "6", "1"]),
    "B29C": (2, [("注塑成型", "injection molding"), ("三维打印", "3d printing"), ("模具", "mold")], ["45", "64"]),
    "G06Q": (4, [("电子商务", "e-commerce"), ("供应链", "supply chain"), ("金融风控", "risk control")], ["10", "30", "40"]),
    "C08L": (2, [("高分子材料", "polymer"), ("复合材料", "composite material"), ("阻燃", "flame retardant")], ["23", "63"]),
}  # fmt: skip
# More real subclasses, for the long tail of the book.
TAIL_SUBCLASSES = [
    "A01N",
    "A23L",
    "A61F",
    "A61M",
    "A61P",
    "B01D",
    "B01J",
    "B21D",
    "B23K",
    "B25J",
    "B32B",
    "B60W",
    "B62D",
    "B65G",
    "C01B",
    "C02F",
    "C04B",
    "C07D",
    "C07K",
    "C09D",
    "C12Q",
    "C22C",
    "E04B",
    "E21B",
    "F01D",
    "F02M",
    "F16H",
    "F21V",
    "F25B",
    "G01B",
    "G01R",
    "G01S",
    "G02B",
    "G05B",
    "G06K",
    "G06T",
    "G06V",
    "G08G",
    "G09G",
    "G10L",
    "G11C",
    "H02J",
    "H02K",
    "H02M",
    "H03K",
    "H04B",
    "H04N",
    "H05K",
    "Y02E",
]
_TECH_CHARS = frozenset(
    "电器材料机光热化学子能控制传感信号数据网络算法结构装置系统模块层膜液气压力温度频波量管线路板片芯晶体合金属塑纤维"
    "酶蛋白细胞基因药剂疗诊医车轮轴齿泵阀炉池储充放磁射激像图视声音码存计驱动测检器件极导阻容流场效应半固态离聚酯胶"
    "粉浆涂镀焊接切削铸锻模具纳米陶瓷玻璃碳硅铝铜铁钛锂钠钾镁锌镍钴锰氢氧氮硫磷氯催反分过滤吸附蒸馏萃取发酵培养抗原"
    "疫苗菌株病毒载肽核酸序列编辑表达筛选标记成扫描识别定位导航通天线站终端协议加密认证节点由交换缓调度优训练推理神经"
)
_EN_HEADS = [
    "thermo",
    "electro",
    "nano",
    "poly",
    "micro",
    "opto",
    "hydro",
    "bio",
    "cryo",
    "ferro",
    "photo",
    "piezo",
    "magneto",
    "chrono",
    "aero",
    "geo",
    "spectro",
    "litho",
    "plasma",
    "quantum",
]
_EN_STEMS = [
    "lith",
    "sil",
    "carb",
    "flux",
    "graph",
    "phos",
    "vanad",
    "zircon",
    "cell",
    "gel",
    "lay",
    "fib",
    "cort",
    "dyn",
    "cap",
    "mod",
    "sens",
    "trans",
    "vert",
    "lumin",
    "ferr",
    "polar",
    "kinet",
    "morph",
    "plex",
]
_EN_TAILS = ["ide", "ate", "ene", "ite", "ium", "ase", "or", "ic", "ane", "ix"]
_GENERIC = [
    ("控制", "control"),
    ("效率", "efficiency"),
    ("成本", "cost"),
    ("稳定性", "stability"),
    ("结构", "structure"),
    ("模块", "module"),
    ("检测", "detection"),
    ("材料", "material"),
    ("性能", "performance"),
    ("工艺", "process"),
]
CN_REGIONS = ["CN-BJ", "CN-SH", "CN-GD", "CN-JS", "CN-ZJ", "CN-SC", "CN-HB", "CN-SN", "CN-TJ", "CN-AH", "CN-SD"]
ABROAD = [("US-CA", "US", "USD"), ("US-MA", "US", "USD"), ("DE-BY", "EP", "EUR"), ("JP-13", "JP", "USD"),
          ("KR-11", "KR", "USD"), ("GB-ENG", "EP", "EUR"), ("FR-IDF", "EP", "EUR")]  # fmt: skip
ZH_TEMPLATES = ["一种基于{a}的{b}方法", "{a}与{b}的集成系统", "用于{b}的{a}装置", "一种改进的{a}结构及其制备方法"]
EN_TEMPLATES = [
    "{A} system using {b}",
    "Method for {a} with improved {b}",
    "{A} device for {b}",
    "Apparatus and method of {a}",
]
ZH_SENTENCES = ["本发明涉及{a}领域，通过{b}提高了效率和可靠性。", "该方案结合{a}和{b}，降低成本，便于产业化。",
                "实验表明，所述{a}在{b}场景下性能显著提升。"]  # fmt: skip
EN_SENTENCES = ["The invention relates to {a} and improves {b} efficiency.", "Combining {a} with {b} reduces cost.",
                "Experiments show the {a} performs well in {b} applications."]  # fmt: skip


@dataclass(frozen=True)
class MarketMix:
    """Shares of each kind of entity among new listings."""

    offers: float = 0.55
    buyers: float = 0.33
    financiers: float = 0.04
    requests: float = 0.08


class Market:
    """Deterministic generator of market events from a seed."""

    def __init__(self, seed: int, *, start: datetime | None = None, mix: MarketMix | None = None) -> None:
        self.rng = random.Random(seed)
        self.clock = start or datetime(2026, 1, 5, 9, 0, tzinfo=CHINA)
        self.mix = mix or MarketMix()
        self._fields = list(FIELDS) + TAIL_SUBCLASSES
        self._weights = [FIELDS[f][0] if f in FIELDS else 0.6 for f in self._fields]
        self._serial = 0
        self.patent_numbers: list[str] = []
        self._parties = [f"party-{i:05d}" for i in range(max(50, 2000))]

    # ---- helpers ---------------------------------------------------------------------------------
    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=self.rng.randint(1, 90))
        return self.clock

    def _id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial:08d}"

    def _field(self) -> str:
        return self.rng.choices(self._fields, weights=self._weights)[0]

    def _topic(self) -> tuple[str, str]:
        subclass = self._field()
        return subclass, self.rng.choice(_groups(subclass))

    def _code(self, topic: tuple[str, str], depth: int | None = None) -> str:
        subclass, group = topic
        depth = depth or self.rng.choice([3, 4, 5, 5, 5])
        if depth == 3:
            return subclass
        if depth == 4:
            return f"{subclass} {group}/00"
        return f"{subclass} {group}/{self.rng.choice(['02', '04', '06', '10', '12', '0525', '16', '20'])}"

    def _party(self, kind: str, region: str) -> dict[str, Any]:
        party_id = self.rng.choice(self._parties)
        return {"party_id": party_id, "name": f"{party_id} {kind}", "kind": kind, "region": region}

    def _envelope(self, entity: str, version: int = 1, expires_days: float | None = None) -> dict[str, Any]:
        at = self._tick()
        env: dict[str, Any] = {
            "event_id": self._id("evt"), "schema_version": 1, "occurred_at": at.isoformat(),
            "source": self.rng.choice(["sipop", "bj-auto-ip-alliance", "js-ip-exchange", "us-tto-network"]),
            "version": version, "status": "active",
        }  # fmt: skip
        if expires_days is not None:
            env["expires_at"] = (at + timedelta(days=expires_days)).isoformat()
        return env

    def _words(self, topic: tuple[str, str], zh: bool, k: int) -> list[str]:
        """``k`` distinct terms of a topic, the frequent ones more often (Zipf), a few generic ones."""
        vocabulary = _topic_vocabulary(topic)[0 if zh else 1]
        chosen: dict[str, None] = {}
        while len(chosen) < k:
            if self.rng.random() < 0.15:
                chosen[self.rng.choice(_GENERIC)[0 if zh else 1]] = None
            else:
                chosen[vocabulary[min(int(self.rng.paretovariate(1.1)) - 1, len(vocabulary) - 1)]] = None
        return list(chosen)

    def _text(self, topic: tuple[str, str], zh: bool, templates: list[str], k: int = 2) -> str:
        words = self._words(topic, zh, k + 1)
        template = self.rng.choice(templates)
        a, b, rest = words[0], words[1], words[2:]
        text = template.format(a=a, b=b, A=a.capitalize())
        if rest:
            text += ("涉及" + "、".join(rest) + "。") if zh else (" Also: " + ", ".join(rest) + ".")
        return text

    def _money(self, low: float, high: float, currency: str) -> dict[str, str]:
        amount = self.rng.lognormvariate(0, 1) * (low + high) / 6
        amount = min(max(amount, low), high)
        scale = {"CNY": 1.0, "USD": 1 / 7.1, "EUR": 1 / 7.75}[currency]
        return {"amount": str(Decimal(round(amount * scale, -3)).quantize(Decimal(1))), "currency": currency}

    def _patent(self, topic: tuple[str, str], zh: bool, territory: str) -> dict[str, Any]:
        digits = self.rng.randrange(10**8, 10**9)
        suffix = {"CN": "B", "US": "B2", "EP": "B1", "JP": "B2", "KR": "B1"}[territory]
        number = f"{territory}{digits}{suffix}"
        self.patent_numbers.append(number)
        filed = datetime(2012, 1, 1) + timedelta(days=self.rng.randint(0, 4500))
        granted = self.rng.random() < 0.75
        patent: dict[str, Any] = {
            "number": number,
            "title": self._text(topic, zh, ZH_TEMPLATES if zh else EN_TEMPLATES, k=1),
            "abstract": "".join(self._text(topic, zh, ZH_SENTENCES if zh else EN_SENTENCES, k=4) + ("" if zh else " ")
                                for _ in range(2)).strip(),
            "language": "zh" if zh else "en",
            "ipc": [self._code(topic, self.rng.choice([4, 5, 5]))] + ([self._code(self._topic(), 5)] if self.rng.random() < 0.2 else []),
            "kind": "invention" if self.rng.random() < 0.8 else "utility_model",
            "legal_status": "granted" if granted else "pending",
            "filing_date": filed.date().isoformat(),
            "claims_count": self.rng.randint(3, 30),
            "family_size": self.rng.randint(1, 12),
            "forward_citations": self.rng.randint(0, 60),
        }  # fmt: skip
        if self.rng.random() < 0.6:
            patent["appraised_value"] = self._money(200_000, 30_000_000, "CNY")
        return patent

    # ---- entities --------------------------------------------------------------------------------
    def offer(
        self, *, offer_id: str | None = None, version: int = 1, expires_days: float | None = None
    ) -> dict[str, Any]:
        topic = self._topic()
        domestic = self.rng.random() < 0.8
        region, territory, currency = (
            (self.rng.choice(CN_REGIONS), "CN", "CNY") if domestic else self.rng.choice(ABROAD)
        )
        zh = domestic and self.rng.random() < 0.85
        size = 1 if self.rng.random() < 0.85 else self.rng.randint(2, 6)
        deal_types = self.rng.choice([["assignment"], ["assignment", "exclusive_license"],
                                      ["non_exclusive_license"], ["exclusive_license", "sole_license"]])  # fmt: skip
        event = {
            **self._envelope("offer", version, expires_days),
            "offer_id": offer_id or self._id("offer"),
            "seller": self._party(self.rng.choice(["enterprise", "university", "institute"]), region),
            "patents": [self._patent(topic, zh, territory) for _ in range(size)],
            "deal_types": deal_types,
            "keywords": self._words(topic, zh, 2),
        }
        if self.rng.random() < 0.8:
            event["asking_price"] = self._money(50_000, 20_000_000, currency)
        return event

    def buyer(
        self, *, demand_id: str | None = None, version: int = 1, expires_days: float | None = None
    ) -> dict[str, Any]:
        topic = self._topic()
        zh = self.rng.random() < 0.65
        region = self.rng.choice(CN_REGIONS) if zh else self.rng.choice(ABROAD)[0]
        intent = self.rng.choice(["acquire", "license"])
        event: dict[str, Any] = {
            **self._envelope("demand", version, expires_days),
            "demand_id": demand_id or self._id("demand"),
            "buyer": self._party("enterprise", region),
            "intent": intent,
            "description": self._text(topic, zh, ZH_SENTENCES if zh else EN_SENTENCES, k=3),
            "keywords": self._words(topic, zh, 1),
            "require_granted": self.rng.random() < 0.5,
        }
        if self.rng.random() < 0.7:
            event["ipc"] = [self._code(topic)]
        if self.rng.random() < 0.75:
            event["budget"] = {"max": self._money(100_000, 15_000_000, "CNY")["amount"], "currency": "CNY"}
        if self.rng.random() < 0.3:
            event["territories"] = self.rng.choice([["CN"], ["CN", "US"], ["US", "EP"]])
        if self.rng.random() < 0.3:
            event["min_remaining_years"] = self.rng.choice([3, 5, 8])
        return event

    def financier(
        self, *, demand_id: str | None = None, version: int = 1, expires_days: float | None = None
    ) -> dict[str, Any]:
        lend = self.rng.random() < 0.6
        region = self.rng.choice(CN_REGIONS)
        low = self.rng.choice([100_000, 500_000, 1_000_000])
        event: dict[str, Any] = {
            **self._envelope("demand", version, expires_days),
            "demand_id": demand_id or self._id("financier"),
            "buyer": self._party("bank" if lend else "fund", region),
            "intent": "lend" if lend else "invest",
            "description": "知识产权质押融资，支持科技型中小企业" if lend else "Equity investment in patent-rich SMEs",
            "budget": {"min": str(low), "max": str(low * self.rng.choice([10, 20, 50])), "currency": "CNY"},
            "require_granted": self.rng.random() < 0.5,
        }
        if lend:
            event["max_loan_to_value"] = self.rng.choice([0.3, 0.5, 0.7])
            if self.rng.random() < 0.6:
                event["regions_served"] = self.rng.sample(CN_REGIONS, 4)
        elif self.rng.random() < 0.5:
            event["ipc"] = [self._field()]
        return event

    def request(
        self, *, request_id: str | None = None, version: int = 1, expires_days: float | None = None
    ) -> dict[str, Any]:
        topic = self._topic()
        region = self.rng.choice(CN_REGIONS)
        collateral: list[dict[str, Any]] = []
        for _ in range(self.rng.randint(1, 3)):
            if self.patent_numbers and self.rng.random() < 0.5:
                collateral.append({"number": self.rng.choice(self.patent_numbers)})
            else:
                collateral.append(self._patent(topic, True, "CN"))
        numbers = [c["number"] for c in collateral]
        collateral = [c for i, c in enumerate(collateral) if c["number"] not in numbers[:i]]
        return {
            **self._envelope("financing", version, expires_days),
            "request_id": request_id or self._id("request"),
            "applicant": self._party("enterprise", region),
            "instrument": "pledge_loan" if self.rng.random() < 0.7 else "equity",
            "amount": self._money(100_000, 20_000_000, "CNY"),
            "term_months": self.rng.choice([12, 24, 36]),
            "collateral": collateral,
            "purpose": "扩大生产的流动资金",
        }

    # ---- logs ------------------------------------------------------------------------------------
    def listings(self, count: int, *, expiring: float = 0.0) -> list[dict[str, Any]]:
        """``count`` new listings in the market's mix (as JSON-ready dicts)."""
        makers: list[Callable[..., dict[str, Any]]] = [self.offer, self.buyer, self.financier, self.request]
        shares = [self.mix.offers, self.mix.buyers, self.mix.financiers, self.mix.requests]
        out = []
        for _ in range(count):
            make = self.rng.choices(makers, weights=shares)[0]
            days = self.rng.uniform(0.01, 2.0) if self.rng.random() < expiring else None
            out.append(make(expires_days=days))
        return out

    def lifecycle(
        self, count: int, *, updates: float = 0.15, withdrawals: float = 0.1, expiring: float = 0.1
    ) -> list[dict[str, Any]]:
        """New listings interleaved with updates (a new version, re-drawn content) and withdrawals."""
        log: list[dict[str, Any]] = []
        live: list[dict[str, Any]] = []
        for event in self.listings(count, expiring=expiring):
            log.append(event)
            live.append(event)
            roll = self.rng.random()
            if live and roll < updates + withdrawals:
                previous = self.rng.choice(live)
                if roll < updates:
                    changed = self._redraw(previous)
                    live[live.index(previous)] = changed
                    log.append(changed)
                else:
                    withdrawn = {**previous, **self._envelope("x", previous["version"] + 1), "status": "withdrawn"}
                    withdrawn.pop("expires_at", None)
                    live.remove(previous)
                    log.append(withdrawn)
        return log

    def churn(self, count: int, *, lifetime_days: float = 1.0, withdrawals: float = 0.2) -> list[dict[str, Any]]:
        """A market in a steady state: ``count`` events in time order, each new listing expiring after
        about ``lifetime_days`` and some withdrawn before, so that the open book stops growing once
        the first listings expire (about ``lifetime_days`` of event time in)."""
        makers: list[Callable[..., dict[str, Any]]] = [self.offer, self.buyer, self.financier, self.request]
        shares = [self.mix.offers, self.mix.buyers, self.mix.financiers, self.mix.requests]
        log: list[dict[str, Any]] = []
        live: list[dict[str, Any]] = []
        while len(log) < count:
            if live and self.rng.random() < withdrawals:
                previous = live.pop(self.rng.randrange(len(live)))
                withdrawn = {**previous, **self._envelope("x", previous["version"] + 1), "status": "withdrawn"}
                withdrawn.pop("expires_at", None)
                log.append(withdrawn)
                continue
            make = self.rng.choices(makers, weights=shares)[0]
            listing = make(expires_days=self.rng.uniform(0.5, 1.5) * lifetime_days)
            log.append(listing)
            live.append(listing)
            if len(log) % 512 == 0:  # the expired ones can no longer be withdrawn
                live = [e for e in live if datetime.fromisoformat(e["expires_at"]) > self.clock]
        return log

    def _redraw(self, previous: dict[str, Any]) -> dict[str, Any]:
        version = previous["version"] + 1
        for key, make in (("offer_id", self.offer), ("request_id", self.request)):
            if key in previous:
                return make(**{key: previous[key]}, version=version)
        if previous.get("intent") in ("lend", "invest"):
            return self.financier(demand_id=previous["demand_id"], version=version)
        return self.buyer(demand_id=previous["demand_id"], version=version)


def to_event(document: dict[str, Any]) -> InputEvent:
    """A generated document as its validated model (generated events are valid by construction)."""
    for key, model in (("offer_id", PatentOffer), ("demand_id", BuyerDemand), ("request_id", FinancingRequest)):
        if key in document:
            return model.model_validate(document)
    raise ValueError("not a market event")


@cache
def _groups(subclass: str) -> list[str]:
    if subclass in FIELDS:
        return FIELDS[subclass][2]
    rng = random.Random(subclass)
    return [str(g) for g in sorted(rng.sample(range(1, 99), 6))]


@lru_cache(maxsize=1)
def _pools() -> tuple[list[str], list[str]]:
    """Chinese technical words from jieba's dictionary (so segmentation finds them whole) and
    English technical-looking words, each sorted so that pools are the same on every machine."""
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    chinese = sorted(w for w, f in jieba.dt.FREQ.items() if f and 2 <= len(w) <= 4 and set(w) <= _TECH_CHARS)
    english = sorted({h + s + t for h in _EN_HEADS for s in _EN_STEMS for t in _EN_TAILS})
    return chinese, english


@lru_cache(maxsize=4096)
def _topic_vocabulary(topic: tuple[str, str]) -> tuple[list[str], list[str]]:
    """Each topic (subclass, main group) has its own vocabulary, the same in every market."""
    chinese, english = _pools()
    rng = random.Random("/".join(topic))
    heads = FIELDS[topic[0]][1] if topic[0] in FIELDS else []
    zh = [h[0] for h in heads] + rng.sample(chinese, 80)
    en = [w for h in heads for w in h[1].split()] + rng.sample(english, 80)
    return list(dict.fromkeys(zh)), list(dict.fromkeys(en))
