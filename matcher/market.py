"""A seeded synthetic market: offers, buyer demands, lenders and investors, and financing requests, in
Chinese and English, with real IPC subclasses skewed as real books are (a few fields such as G06F,
H04L, H01M and A61K hold much of it), prices in CNY / USD / EUR and parties across China and abroad.

The same seed gives the same events, so tests and benchmarks are repeatable. ``lifecycle`` adds
updates, withdrawals and expiries.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

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
        self._fields = list(FIELDS)
        self._weights = [FIELDS[f][0] for f in self._fields]
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

    def _code(self, subclass: str, depth: int | None = None) -> str:
        depth = depth or self.rng.choice([3, 4, 5, 5, 5])
        if depth == 3:
            return subclass
        group = self.rng.choice(FIELDS[subclass][2])
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

    def _terms(self, subclass: str, k: int) -> list[tuple[str, str]]:
        vocabulary = FIELDS[subclass][1]
        return self.rng.sample(vocabulary, min(k, len(vocabulary)))

    def _text(self, subclass: str, zh: bool, templates: list[str]) -> str:
        (a_zh, a_en), (b_zh, b_en) = self._terms(subclass, 2)
        template = self.rng.choice(templates)
        if zh:
            return template.format(a=a_zh, b=b_zh)
        return template.format(a=a_en, b=b_en, A=a_en.capitalize())

    def _money(self, low: float, high: float, currency: str) -> dict[str, str]:
        amount = self.rng.lognormvariate(0, 1) * (low + high) / 6
        amount = min(max(amount, low), high)
        scale = {"CNY": 1.0, "USD": 1 / 7.1, "EUR": 1 / 7.75}[currency]
        return {"amount": str(Decimal(round(amount * scale, -3)).quantize(Decimal(1))), "currency": currency}

    def _patent(self, subclass: str, zh: bool, territory: str) -> dict[str, Any]:
        digits = self.rng.randrange(10**8, 10**9)
        suffix = {"CN": "B", "US": "B2", "EP": "B1", "JP": "B2", "KR": "B1"}[territory]
        number = f"{territory}{digits}{suffix}"
        self.patent_numbers.append(number)
        filed = datetime(2012, 1, 1) + timedelta(days=self.rng.randint(0, 4500))
        granted = self.rng.random() < 0.75
        patent: dict[str, Any] = {
            "number": number,
            "title": self._text(subclass, zh, ZH_TEMPLATES if zh else EN_TEMPLATES),
            "abstract": "".join(self._text(subclass, zh, ZH_SENTENCES if zh else EN_SENTENCES) + ("" if zh else " ")
                                for _ in range(2)).strip(),
            "language": "zh" if zh else "en",
            "ipc": [self._code(subclass, self.rng.choice([4, 5, 5]))] + ([self._code(self._field(), 5)] if self.rng.random() < 0.2 else []),
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
        subclass = self._field()
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
            "patents": [self._patent(subclass, zh, territory) for _ in range(size)],
            "deal_types": deal_types,
            "keywords": [t[0] if zh else t[1] for t in self._terms(subclass, 2)],
        }
        if self.rng.random() < 0.8:
            event["asking_price"] = self._money(50_000, 20_000_000, currency)
        return event

    def buyer(
        self, *, demand_id: str | None = None, version: int = 1, expires_days: float | None = None
    ) -> dict[str, Any]:
        subclass = self._field()
        zh = self.rng.random() < 0.65
        region = self.rng.choice(CN_REGIONS) if zh else self.rng.choice(ABROAD)[0]
        intent = self.rng.choice(["acquire", "license"])
        event: dict[str, Any] = {
            **self._envelope("demand", version, expires_days),
            "demand_id": demand_id or self._id("demand"),
            "buyer": self._party("enterprise", region),
            "intent": intent,
            "description": self._text(subclass, zh, ZH_SENTENCES if zh else EN_SENTENCES),
            "keywords": [t[0] if zh else t[1] for t in self._terms(subclass, 1)],
            "require_granted": self.rng.random() < 0.5,
        }
        if self.rng.random() < 0.7:
            event["ipc"] = [self._code(subclass)]
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
        subclass = self._field()
        region = self.rng.choice(CN_REGIONS)
        collateral: list[dict[str, Any]] = []
        for _ in range(self.rng.randint(1, 3)):
            if self.patent_numbers and self.rng.random() < 0.5:
                collateral.append({"number": self.rng.choice(self.patent_numbers)})
            else:
                collateral.append(self._patent(subclass, True, "CN"))
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
