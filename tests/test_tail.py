"""What ``patentmatch tail`` prints for a notification."""

from __future__ import annotations

from datetime import UTC, datetime

from matcher import Engine
from streams.tail import render
from tests.builders import lender, request

EMITTED = datetime(2026, 3, 2, tzinfo=UTC)


def test_a_match_is_printed_with_every_reason_and_a_revoke_with_why() -> None:
    engine = Engine()
    engine.apply(lender())
    (notice,) = engine.apply(request()).notices
    event = notice.to_event(EMITTED).model_dump(mode="json")
    printed = render(event).plain
    assert printed.startswith("MATCH  #1  financing   r1 ⇄ bank1  score")
    assert len(event["reasons"]) >= 5 and all(f"· {reason}" in printed for reason in event["reasons"])
    (revoke,) = engine.apply(lender(version=2, status="withdrawn")).notices
    printed = render(revoke.to_event(EMITTED).model_dump(mode="json")).plain
    assert printed == "REVOKE     financing   r1 ⇄ bank1  (withdrawn)"
