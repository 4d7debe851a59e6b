"""Writes the JSON Schema of every Kafka envelope (and the dictionary batch) to files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.dictionary import DictionaryPush
from schemas.events import ENVELOPES

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema"


def _models() -> dict[str, type[BaseModel]]:
    named: dict[str, type[BaseModel]] = {}
    for model in ENVELOPES:
        default = model.model_fields["schema_"].default
        named[f"{default.name}.v{default.version}"] = model
    named["syncbus.dictionary_batch.v1"] = DictionaryPush
    return named


def rendered() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    files: dict[str, str] = {}
    for name, model in _models().items():
        schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
        if model is not DictionaryPush:
            _pin_envelope_schema(schema, model)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
        files[f"{name}.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return files


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in rendered().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _pin_envelope_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The ``schema`` field names this envelope and version only (a consumer refuses the
    others: the worker sends a request of another version to the DLQ)."""
    ref = model.model_fields["schema_"].default
    schema["properties"]["schema"] = {
        "type": "object",
        "properties": {"name": {"const": ref.name}, "version": {"const": ref.version}},
        "required": ["name", "version"],
        "default": {"name": ref.name, "version": ref.version},
    }
    defs = schema.get("$defs", {})
    defs.pop("SchemaRef", None)
    if not defs:
        schema.pop("$defs", None)
