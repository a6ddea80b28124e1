"""JSON Schema for every contract, for the TypeScript side and the AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.events import CONTRACTS
from contracts.models import ContractModel

__all__ = ["export_schemas", "json_schema"]

_SCHEMA_BASE = "https://schemas.cortex.dev/logging/"


def json_schema(contract: type[ContractModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract, with its event type recorded.

    Clean under Ajv's strict mode (the platform validates with Ajv): no unknown
    keywords (the event type is in ``$comment``), no ``"default": null`` on fields
    that may be absent but not null, and each property titled by its wire name.
    """
    schema = contract.model_json_schema(mode="validation")
    for part in [schema, *schema.get("$defs", {}).values()]:
        _optional_means_absent(part)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{_SCHEMA_BASE}{contract.EVENT_TYPE or contract.__name__}.schema.json"
    if contract.EVENT_TYPE:
        schema["$comment"] = f"CloudEvents type and NATS subject: {contract.EVENT_TYPE}"
    return schema


def _optional_means_absent(schema: dict[str, Any]) -> None:
    """Optional fields may be left out but not be null: say so in the schema (no null
    variant, no null default, which Ajv's ``useDefaults`` would write into valid events)."""
    for name, prop in schema.get("properties", {}).items():
        prop["title"] = name  # pydantic's title-cased "Createdat" helps nobody
        variants = prop.get("anyOf")
        if variants and {"type": "null"} in variants:
            kept = [v for v in variants if v != {"type": "null"}]
            del prop["anyOf"]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        if "default" in prop and prop["default"] is None:
            del prop["default"]


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<event type>.schema.json`` for every contract into ``directory``.

    Returns:
        The files written, in contract order.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in CONTRACTS:
        path = directory / f"{contract.EVENT_TYPE}.schema.json"
        path.write_text(json.dumps(json_schema(contract), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
