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
    """The JSON Schema (draft 2020-12) of one contract, with its event type recorded."""
    schema = contract.model_json_schema(mode="validation")
    for part in [schema, *schema.get("$defs", {}).values()]:
        _optional_means_absent(part)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{_SCHEMA_BASE}{contract.EVENT_TYPE or contract.__name__}.schema.json"
    schema["x-cloudevents-type"] = contract.EVENT_TYPE
    return schema


def _optional_means_absent(schema: dict[str, Any]) -> None:
    """Optional fields may be left out but not be null: say so in the schema."""
    for prop in schema.get("properties", {}).values():
        variants = prop.get("anyOf")
        if prop.get("default", 0) is None and variants and {"type": "null"} in variants:
            kept = [v for v in variants if v != {"type": "null"}]
            del prop["anyOf"], prop["default"]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})


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
