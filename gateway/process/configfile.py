"""A TOML config file (``run --config FILE``) read into settings by name.

The rule: **tables group, they do not rename.** A key is a setting's flag name
with underscores (``max_batch_delay_ms = 100``) at the top level or inside one
table (``[batch]``, ``[spool]``, ...); the table's name is only a label, so a key
reads the same in the file, in ``LOG_GATEWAY_*``, in ``--help`` and in
``config show``. Tables do not nest, and a setting is given once.

Only the file's shape is checked here (unknown keys, duplicates, nesting);
:mod:`gateway.process.settings` checks each value's type and parses it with the
option's own parser, the same one a flag's text goes through.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = ["read_config"]


def read_config(path: Path, known: Collection[str]) -> dict[str, Any]:
    """The settings in ``path`` by name, tables flattened, values as TOML gave them.

    Raises:
        ValueError: the file cannot be read or is not TOML, or a key is unknown
            (with the nearest known one suggested), nested too deep or given twice.
    """
    import tomllib  # noqa: PLC0415 - only a run with --config reads TOML

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the config file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid TOML file: {exc}") from None
    found: dict[str, Any] = {}
    for name, value in document.items():
        if isinstance(value, dict):
            for key, inner in value.items():
                _take(found, key, inner, known, table=name)
        else:
            _take(found, name, value, known, table=None)
    return found


def _take(found: dict[str, Any], key: str, value: Any, known: Collection[str], table: str | None) -> None:
    where = f" in [{table}]" if table else ""
    if isinstance(value, dict):
        # A bad file, not a bad call: a ValueError like every other complaint about it.
        raise ValueError(f"[{table}.{key}]: tables do not nest; put its keys in [{key}]")  # noqa: TRY004
    if key not in known:
        raise ValueError(f"unknown key {key!r}{where}{_suggestion(key, known, table)}")
    if key in found:
        raise ValueError(f"{key!r}{where} is given twice")
    found[key] = value


def _suggestion(key: str, known: Collection[str], table: str | None) -> str:
    prefixed = f"{table}_{key}"
    if table and prefixed in known:
        return f"; keys keep their full names in a table: did you mean {prefixed!r}?"
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
