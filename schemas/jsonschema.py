"""JSON Schema for every event: the contract upstream platforms validate against before they publish.

The committed files under ``schemas/json/`` are generated from the models by
``patentmatch schemas export``; a test fails when they drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import BuyerDemand, DeadLetter, FinancingRequest, MatchEvent, PatentOffer

__all__ = ["SCHEMA_DIR", "export_json_schemas", "json_schemas"]

SCHEMA_DIR = Path(__file__).parent / "json"

_MODELS: dict[str, type[BaseModel]] = {
    "patent_offer": PatentOffer,
    "buyer_demand": BuyerDemand,
    "financing_request": FinancingRequest,
    "match_event": MatchEvent,
    "dead_letter": DeadLetter,
}


def json_schemas() -> dict[str, str]:
    """File name → JSON Schema text, for every event."""
    out: dict[str, str] = {}
    for name, model in _MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://patentmatch.example/schemas/{name}.schema.json"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def export_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in json_schemas().items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
