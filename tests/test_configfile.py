"""The ``--config`` file: its rule, its errors, and its place between the variables and the defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from gateway.core.limits import OverflowPolicy
from gateway.process.settings import (
    RUN_OPTIONS,
    SettingError,
    check_config,
    effective_settings,
    read_options,
    read_sourced,
    run_settings,
)
from tests.natsauth import new_key

EXAMPLE = Path(__file__).parent.parent / "deploy" / "gateway" / "log-gateway.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def from_file(path: Path, **flags: Any) -> dict[str, Any]:
    return read_options(argparse.Namespace(config=path, **flags), RUN_OPTIONS, environ={})


def test_a_key_in_a_table_keeps_its_full_name(tmp_path: Path) -> None:
    flat = from_file(write(tmp_path, "spool_max_bytes = 70000\nmax_batch_delay_ms = 250\n"))
    grouped = from_file(
        write(tmp_path, "[spool]\nspool_max_bytes = 70000\n[batch]\nmax_batch_delay_ms = 250\n")
    )
    assert flat == grouped
    assert (grouped["spool_max_bytes"], grouped["max_batch_delay_ms"]) == (70000, 250)


def test_values_go_through_the_options_own_parsers(tmp_path: Path) -> None:
    text = (
        'overflow = "drop_oldest"\nper_source = true\nmax_publish_rate = 50\n'
        'nats_url = ["nats://a:4222", "nats://b:4222"]\nredact_keys = "x, y"\nspool_dir = "/var/spool/gw"\n'
    )
    values = from_file(write(tmp_path, text))
    assert values["overflow"] is OverflowPolicy.DROP_OLDEST
    assert values["per_source"] is True
    assert values["max_publish_rate"] == 50.0
    assert isinstance(values["max_publish_rate"], float)
    assert values["nats_url"] == ("nats://a:4222", "nats://b:4222")
    assert values["redact_keys"] == frozenset({"x", "y"})
    assert values["spool_dir"] == Path("/var/spool/gw")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_bach_entries = 5\n", "unknown key 'max_bach_entries'; did you mean 'max_batch_entries'?"),
        (
            "[spool]\nmax_bytes = 70000\n",
            "unknown key 'max_bytes' in [spool]; keys keep their full names in a table: "
            "did you mean 'spool_max_bytes'?",
        ),
        ("config = 'x.toml'\n", "unknown key 'config'"),
        ('max_batch_entries = "500"\n', "max_batch_entries: expected an integer, got string '500'"),
        ("max_batch_entries = 1.5\n", "max_batch_entries: expected an integer, got float 1.5"),
        ("max_batch_entries = true\n", "max_batch_entries: expected an integer, got boolean True"),
        ('per_source = "yes"\n', "per_source: expected a boolean, got string 'yes'"),
        ("max_publish_rate = false\n", "max_publish_rate: expected a number, got boolean False"),
        ("nats_url = [1]\n", "nats_url: expected a string or an array of strings, got array [1]"),
        ("log_level = 3\n", "log_level: expected a string, got integer 3"),
        ('overflow = "sideways"\n', "overflow: expected block, drop_oldest or drop_newest, got 'sideways'"),
        ('log_level = "loud"\n', "log_level: expected debug, info, warning or error, got 'loud'"),
        ("[a.b]\nworkers = 2\n", "[a.b]: tables do not nest; put its keys in [b]"),
        ("workers = 2\n[x]\nworkers = 3\n", "'workers' in [x] is given twice"),
        ("workers = \n", "not a valid TOML file: Invalid value (at line 1, column 11)"),
    ],
)
def test_a_bad_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingError) as caught:
        from_file(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_missing_file_is_a_setting_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"nope\.toml: cannot read the config file: No such file"):
        from_file(tmp_path / "nope.toml")


def test_the_whole_file_is_checked_even_where_a_flag_wins(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="max_batch_entries: expected an integer"):
        from_file(write(tmp_path, 'max_batch_entries = "many"\n'), max_batch_entries="7")


def test_flag_beats_variable_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(tmp_path, "max_batch_entries = 7\nmax_batch_bytes = 4096\nmax_open_sources = 9\n")
    args = argparse.Namespace(config=path, max_batch_entries="3")
    environ = {"LOG_GATEWAY_MAX_BATCH_ENTRIES": "5", "LOG_GATEWAY_MAX_BATCH_BYTES": "8192"}
    sourced = read_sourced(args, RUN_OPTIONS, environ)
    assert sourced["max_batch_entries"] == (3, "flag")
    assert sourced["max_batch_bytes"] == (8192, "env")
    assert sourced["max_open_sources"] == (9, "file")
    assert sourced["max_batch_delay_ms"] == (100, "default")


def test_check_reports_cross_field_errors_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[buffer]\nmax_buffered_bytes = 4096\n[batch]\nmax_batch_bytes = 8192\n")
    with pytest.raises(SettingError) as caught:
        check_config(path)
    assert str(caught.value) == (f"{path}: max_buffered_bytes (4096) must be at least max_batch_bytes (8192)")


def test_check_ignores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_GATEWAY_MAX_BATCH_ENTRIES", "0")
    assert check_config(write(tmp_path, "max_batch_entries = 10\nworkers = 2\n")) == 2


def show(lines: list[str]) -> dict[str, tuple[str, str]]:
    rows = [line.split() for line in lines[1:]]
    return {row[0]: (" ".join(row[1:-1]), row[-1]) for row in rows}


def test_show_masks_secrets_and_url_credentials_but_not_key_paths(tmp_path: Path) -> None:
    seed = tmp_path / "user.nk"
    seed.write_text(new_key("user").seed)
    text = f'nats_url = "nats://gw:url-pw@h:4222"\nnats_nkey_seed = "{seed}"\nnats_token = "tok-secret"\n'
    args = argparse.Namespace(config=write(tmp_path, text), nats_user="gw")
    lines = effective_settings(args, {"LOG_GATEWAY_NATS_PASSWORD": "env-pw"})
    shown = show(lines)
    assert shown["nats_url"] == ("nats://***@h:4222", "file")
    assert shown["nats_token"] == ("***", "file")
    assert shown["nats_password"] == ("***", "env")
    assert shown["nats_user"] == ("gw", "flag")
    assert shown["nats_nkey_seed"] == (str(seed), "file")
    assert shown["tls_ca"] == ("-", "default")
    assert lines[0].split() == ["setting", "value", "source"]
    assert set(shown) == {opt.dest for opt in RUN_OPTIONS}
    assert not [word for word in ("url-pw", "tok-secret", "env-pw") if word in "\n".join(lines)]


def test_the_deploy_example_loads_and_passes_check() -> None:
    assert check_config(EXAMPLE) > 10
    values = from_file(EXAMPLE)
    config, connection = run_settings(values)
    assert connection.servers == ("nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222")
    assert connection.inbox_prefix == "_INBOX_log_gateway"  # what deploy/nats/permissions.conf allows
    assert config.stream.replicas == 3
    assert config.redact is True
    assert values["http_port"] == 9464
