"""The committed contract (JSON Schema files, examples, README) matches the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from schemas.jsonschema import SCHEMA_DIR, json_schemas
from streams.examples import example_events

ROOT = Path(__file__).parent.parent
SCHEMA_FOR = {"offer": "patent_offer", "demand": "buyer_demand", "financing": "financing_request"}


def test_committed_json_schemas_are_what_the_models_generate() -> None:
    generated = json_schemas()
    committed = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == set(generated), "run: patentmatch schemas export"
    for name, text in generated.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale: patentmatch schemas export"


def test_export_command_reports_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "schemas", "export", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_validate_against_the_published_json_schema() -> None:
    examples = example_events()
    assert {e.kind for e in examples} == set(SCHEMA_FOR)
    for example in examples:
        schema = json.loads((SCHEMA_DIR / f"{SCHEMA_FOR[example.kind]}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(json.loads(example.raw))


def test_json_schema_rejects_an_unknown_field() -> None:
    schema = json.loads((SCHEMA_DIR / "buyer_demand.schema.json").read_text())
    demand = json.loads(next(e.raw for e in example_events() if e.kind == "demand"))
    demand["surprise"] = True
    assert not jsonschema.Draft202012Validator(schema).is_valid(demand)
