"""The README keeps up with the code: the two commands, every setting, every metric."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import contracts
import gateway
import gateway.consumers.subscribe as subscribe_api
import gateway.core
import publishers
from gateway.process.settings import RUN_OPTIONS
from tests.helpers import parse_python

README = (Path(__file__).parent.parent / "README.md").read_text()
DOCS = Path(__file__).parent.parent / "docs"
SETTINGS = (DOCS / "settings.md").read_text()  # the README's settings table, moved out of it
CI = (Path(__file__).parent.parent / ".ci" / "run").read_text()


def test_two_commands_are_stated_and_ci_runs_the_test_one() -> None:
    assert "bash scripts/run" in README
    assert "bash scripts/test" in README
    assert "exec bash scripts/test" in CI


def test_every_setting_is_documented_with_its_variable() -> None:
    missing = [
        opt.flag for opt in RUN_OPTIONS if f"`{opt.flag}`" not in SETTINGS or f"`{opt.env}`" not in SETTINGS
    ]
    assert missing == []


def test_the_readme_links_its_reference_pages_and_they_exist() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert {"docs/settings.md", "docs/benchmark.md", "docs/pino.md", "docs/otlp.md"} <= linked
    assert [page for page in linked if not (DOCS.parent / page).is_file()] == []
    assert README.index("## Quick start") < README.index("## Layout")  # a guide first


def test_required_metrics_are_documented() -> None:
    for name in (
        "log_gateway_entries_received_total",
        "log_gateway_entries_published_total",
        "log_gateway_entries_rejected_total",
        "log_gateway_entries_dropped_total",
        "log_gateway_batches_published_total",
        "log_gateway_publish_retries_total",
        "log_gateway_entry_latency_seconds",
    ):
        assert name in README


def test_subscriber_example_compiles_and_names_real_api() -> None:
    block = README.split("### Subscribing to batches", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = compile(block, "README example", "exec")
    names = set(code.co_names)
    assert {"BatchSubscriber", "Filters", "SubscriberConfig"} <= names
    assert all(hasattr(subscribe_api, name) for name in ("BatchSubscriber", "Filters", "SubscriberConfig"))


def test_packages_state_their_public_names() -> None:
    for package in (contracts, gateway, gateway.core, publishers):
        assert package.__all__, package.__name__
        assert all(getattr(package, name) is not None for name in package.__all__)


def test_functions_stay_within_40_lines() -> None:
    """The platform's convention, for the code and its tests alike."""
    root = Path(__file__).parent.parent
    long = []
    for folder in ("contracts", "gateway", "publishers", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(parse_python(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > 40:
                        long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
