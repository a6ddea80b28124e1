"""Every check of a setting lives in gateway.process.settings: the CLI only parses, calls and reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from gateway.process.settings import (
    ARCHIVE_OPTIONS,
    RUN_OPTIONS,
    TAIL_OPTIONS,
    Option,
    SettingError,
    archive_config,
    check_bench,
    read_options,
    required_connection,
    run_settings,
    state_dir,
    tail_options,
)


def defaults(options: tuple[Option, ...], **changed: Any) -> dict[str, Any]:
    return read_options(argparse.Namespace(), options, environ={}) | changed


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"workers": 0}, "--workers must be at least 1, got 0"),
        ({"connect_timeout_s": 0.0}, "--connect-timeout-s must be positive, got 0.0"),
        ({"connect_timeout_s": float("nan")}, "--connect-timeout-s must be positive, got nan"),
        ({"workers": 0, "max_batch_entries": 0}, "--max-batch-entries must be at least 1, got 0"),
    ],
)
def test_run_settings_name_the_first_bad_setting(changed: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError) as caught:
        run_settings(defaults(RUN_OPTIONS, **changed))
    assert str(caught.value) == message


def test_run_settings_pass_good_values_through() -> None:
    config, connection = run_settings(defaults(RUN_OPTIONS, workers=3, gateway_id="g"))
    assert config.gateway_id == "g"
    assert connection.servers == ()


def test_state_dir_is_the_flag_else_under_xdg_state_home(tmp_path: Path) -> None:
    values = defaults(RUN_OPTIONS)
    assert state_dir(values | {"state_dir": tmp_path}) == tmp_path
    assert state_dir(values, {"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/cortex-log-gateway")
    assert state_dir(values, {}) == Path.home() / ".local" / "state" / "cortex-log-gateway"


def test_archive_and_tail_need_a_server_and_archive_a_directory(tmp_path: Path) -> None:
    for options in (ARCHIVE_OPTIONS, TAIL_OPTIONS):
        with pytest.raises(SettingError, match="--nats-url / LOG_GATEWAY_NATS_URL is required"):
            required_connection(defaults(options))
    assert required_connection(defaults(TAIL_OPTIONS, nats_url=("nats://h:4222",))).servers
    with pytest.raises(SettingError, match=r"^--dir / LOG_GATEWAY_DIR is required$"):
        archive_config(defaults(ARCHIVE_OPTIONS))
    with pytest.raises(SettingError, match=r"^--max-segment-bytes must be at least 1, got 0$"):
        archive_config(defaults(ARCHIVE_OPTIONS, dir=tmp_path, max_segment_bytes=0))
    assert archive_config(defaults(ARCHIVE_OPTIONS, dir=tmp_path)).directory == tmp_path


@pytest.mark.parametrize(
    ("color", "tty", "environ", "as_json", "expected"),
    [
        ("always", False, {}, False, True),
        ("never", True, {}, False, False),
        ("auto", True, {}, False, True),
        ("auto", False, {}, False, False),
        ("auto", True, {"NO_COLOR": ""}, False, False),
        ("always", True, {}, True, False),
    ],
)
def test_tail_colors_as_asked(
    color: str, tty: bool, environ: dict[str, str], as_json: bool, expected: bool
) -> None:
    values = defaults(TAIL_OPTIONS, color=color, json=as_json)
    assert tail_options(values, isatty=lambda: tty, environ=environ).color is expected


def test_bench_needs_100_entries_and_a_round() -> None:
    check_bench(100, 1)
    for entries, rounds in ((99, 1), (100, 0)):
        with pytest.raises(SettingError, match="--entries must be at least 100 and --rounds at least 1"):
            check_bench(entries, rounds)


def test_a_setting_from_a_variable_is_named_by_its_variable() -> None:
    values = read_options(argparse.Namespace(), RUN_OPTIONS, environ={"LOG_GATEWAY_MAX_BATCH_ENTRIES": "0"})
    with pytest.raises(SettingError, match=r"^LOG_GATEWAY_MAX_BATCH_ENTRIES must be at least 1, got 0$"):
        run_settings(values)
    flag = read_options(argparse.Namespace(max_batch_entries="0"), RUN_OPTIONS, environ={})
    with pytest.raises(SettingError, match=r"^--max-batch-entries must be at least 1, got 0$"):
        run_settings(flag)


@pytest.mark.parametrize(
    ("dest", "flag", "choices"),
    [
        ("overflow", "--overflow", "block, drop_oldest or drop_newest"),
        ("spool_fsync", "--spool-fsync", "always, interval or never"),
    ],
)
def test_a_bad_choice_lists_the_choices(dest: str, flag: str, choices: str) -> None:
    """Before: ``'foo' is not a valid OverflowPolicy``."""
    with pytest.raises(SettingError) as caught:
        read_options(argparse.Namespace(**{dest: "foo"}), RUN_OPTIONS, environ={})
    env = "LOG_GATEWAY_" + dest.upper()
    assert str(caught.value) == f"{flag} / {env}: expected {choices}, got 'foo'"
    assert read_options(
        argparse.Namespace(**{dest: "NEVER" if dest == "spool_fsync" else "Drop_Oldest"}),
        RUN_OPTIONS,
        environ={},
    )[dest] in ("never", "drop_oldest")
