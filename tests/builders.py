"""Small, readable event builders for engine tests: defaults that match, overrides that don't."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from schemas import BuyerDemand, FinancingRequest, PatentOffer

CN = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=CN)
_serial = iter(range(1, 10**9))


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def envelope(minute: float, version: int, status: str = "active", expires: float | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "event_id": f"e{next(_serial)}",
        "schema_version": 1,
        "occurred_at": at(minute),
        "source": "test",
        "version": version,
        "status": status,
    }
    if expires is not None:
        env["expires_at"] = at(expires)
    return env


def patent(number: str = "CN114514340B", **over: Any) -> dict[str, Any]:
    base = {
        "number": number,
        "title": "一种高镍三元锂离子电池正极材料及其制备方法",
        "abstract": "通过铝镁共掺杂与表面包覆提高锂离子电池正极材料的循环稳定性和热稳定性。",
        "language": "zh",
        "ipc": ["H01M 10/0525", "H01M 4/525"],
        "kind": "invention",
        "legal_status": "granted",
        "filing_date": "2021-11-18",
        "claims_count": 10,
        "family_size": 3,
        "forward_citations": 7,
        "appraised_value": {"amount": "4000000", "currency": "CNY"},
    }
    base.update(over)
    return base


def offer(offer_id: str = "o1", *, minute: float = 0, version: int = 1, status: str = "active",
          expires: float | None = None, **over: Any) -> PatentOffer:  # fmt: skip
    doc = {
        **envelope(minute, version, status, expires),
        "offer_id": offer_id,
        "seller": {"party_id": f"seller-{offer_id}", "name": "江苏电池", "kind": "enterprise", "region": "CN-JS"},
        "patents": [patent()],
        "deal_types": ["assignment", "exclusive_license"],
        "asking_price": {"amount": "3000000", "currency": "CNY"},
        "keywords": ["锂离子电池", "正极材料"],
    }
    doc.update(over)
    return PatentOffer.model_validate(doc)


def demand(demand_id: str = "d1", *, minute: float = 1, version: int = 1, status: str = "active",
           expires: float | None = None, **over: Any) -> BuyerDemand:  # fmt: skip
    doc = {
        **envelope(minute, version, status, expires),
        "demand_id": demand_id,
        "buyer": {"party_id": f"buyer-{demand_id}", "name": "北京汽车", "kind": "enterprise", "region": "CN-BJ"},
        "intent": "acquire",
        "description": "寻求锂离子电池正极材料相关专利，提高循环寿命",
        "ipc": ["H01M 10/0525"],
        "budget": {"max": "5000000", "currency": "CNY"},
    }
    doc.update(over)
    return BuyerDemand.model_validate(doc)


def lender(demand_id: str = "bank1", *, minute: float = 2, version: int = 1, status: str = "active",
           expires: float | None = None, **over: Any) -> BuyerDemand:  # fmt: skip
    doc = {
        **envelope(minute, version, status, expires),
        "demand_id": demand_id,
        "buyer": {"party_id": f"bank-{demand_id}", "name": "北京银行", "kind": "bank", "region": "CN-BJ"},
        "intent": "lend",
        "description": "知识产权质押贷款",
        "budget": {"min": "500000", "max": "10000000", "currency": "CNY"},
        "max_loan_to_value": 0.5,
        "regions_served": ["CN-BJ", "CN-JS"],
    }
    doc.update(over)
    return BuyerDemand.model_validate(doc)


def request(request_id: str = "r1", *, minute: float = 3, version: int = 1, status: str = "active",
            expires: float | None = None, **over: Any) -> FinancingRequest:  # fmt: skip
    doc = {
        **envelope(minute, version, status, expires),
        "request_id": request_id,
        "applicant": {"party_id": f"sme-{request_id}", "name": "苏州中小企业", "kind": "enterprise", "region": "CN-JS"},
        "instrument": "pledge_loan",
        "amount": {"amount": "1500000", "currency": "CNY"},
        "term_months": 24,
        "collateral": [patent("CN200000001B")],
    }
    doc.update(over)
    return FinancingRequest.model_validate(doc)
