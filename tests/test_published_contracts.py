"""What outside producers rely on stays true: committed JSON Schemas and the events doc."""

from __future__ import annotations

from pathlib import Path

from cli.export_schemas import SCHEMA_DIR, rendered

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def test_committed_json_schemas_match_the_models() -> None:
    expected = rendered()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert committed == expected, "run `syncbus export-schemas` and commit the result"


def test_events_doc_names_every_schema_and_topic() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for filename in rendered():
        assert filename in text
    for topic in ("requests.<domain>", "syncbus.progress", "syncbus.audit", "syncbus.dlq"):
        assert topic in text
