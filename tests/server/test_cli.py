"""The command line is generated from the settings: one default per setting, everywhere."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tornado_channels.brokers.settings import BrokerSettings
from tornado_channels.core import settings as declare
from tornado_channels.outbox.schema import schema_sql
from tornado_channels.outbox.settings import OutboxSettings
from tornado_channels.server.cli import (
    GROUPS,
    event_loop_factory,
    flags_table,
    main,
    parse_settings,
)
from tornado_channels.server.settings import ServerSettings
from tornado_channels.web.backend import BackendSettings
from tornado_channels.web.config import ChannelConfig
from tornado_channels.web.events import EventSettings

from ..helpers import ROOT


def test_library_and_command_line_defaults_are_the_same() -> None:
    """With no flag and no environment, the process runs on each settings class's defaults."""
    settings = parse_settings([], environ={})
    assert settings.server == ServerSettings()
    assert settings.broker == BrokerSettings()
    assert settings.channels == ChannelConfig()
    assert settings.events == EventSettings()


def test_every_declared_setting_has_a_flag_and_an_environment_variable() -> None:
    """Each field is settable as --name and TORNADO_CHANNELS_NAME, and both reach the settings."""
    for _title, cls in GROUPS:
        for field, about in declare.declared(cls):
            sample = {"bool": "1", "int": "7", "float": "2.5", "str": "x", "optional": "k"}
            text = sample.get(declare.kind(field), "a,b")
            if field.name in ("event_loop", "log_level"):
                text = "asyncio" if field.name == "event_loop" else "debug"
            elif about.choices:
                text = about.choices[-1]
            elif cls is BackendSettings and declare.kind(field) == "optional":
                text = "http://127.0.0.1:8000/hook"  # A hook URL must be one.
            from_env = parse_settings([], environ={declare.env_name(field): text})
            group = {
                ServerSettings: "server",
                BrokerSettings: "broker",
                ChannelConfig: "channels",
                BackendSettings: "hooks",
                OutboxSettings: "outbox",
                EventSettings: "events",
            }
            value = getattr(getattr(from_env, group[cls]), field.name)
            assert value == declare.parse(field, text), field.name
            flag = declare.flag_name(field)
            argv = [flag] if declare.kind(field) == "bool" else [flag, text]
            from_flag = parse_settings(argv, environ={})
            assert getattr(getattr(from_flag, group[cls]), field.name) == value, field.name


def test_a_flag_wins_over_the_environment() -> None:
    """--port on the command line overrides TORNADO_CHANNELS_PORT."""
    settings = parse_settings(["--port", "6001"], environ={"TORNADO_CHANNELS_PORT": "7001"})
    assert settings.server.port == 6001


def test_lists_are_comma_separated_without_blanks() -> None:
    """--read-only 'users/, news/,' is the two prefixes."""
    settings = parse_settings(["--read-only", "users/, news/,"], environ={})
    assert settings.channels.read_only == ("users/", "news/")


def test_an_impossible_setting_is_a_clear_error() -> None:
    """--max-message-size 0 exits with status 2 and says what is wrong."""
    result = subprocess.run(
        [sys.executable, "-m", "tornado_channels", "--max-message-size", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "max_message_size must be positive" in result.stderr


def test_the_readme_table_of_flags_is_the_generated_one() -> None:
    """docs/flags.md lists exactly the flags, defaults and help the command has."""
    text = (ROOT / "docs" / "flags.md").read_text()
    table = flags_table()
    assert table in text, "docs/flags.md's table is out of date: make flags"


def test_nginx_refuses_the_bodies_the_workers_refuse() -> None:
    """render_nginx.py reads the workers' default body limits from the settings."""
    env = {"TC_RUN_DIR": str(Path("/tmp")), "TC_BASE_PORT": "6001", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "render_nginx.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    defaults = ChannelConfig()
    assert f"client_max_body_size {defaults.max_message_size};" in result.stdout
    assert f"client_max_body_size {defaults.max_batch_bytes};" in result.stdout


@pytest.mark.parametrize("name", ["--port", "--redis-url", "--max-message-size", "--log-level"])
def test_help_names_each_flag(name: str) -> None:
    """--help lists the flags, with their defaults and the environment variable form."""
    result = subprocess.run(
        [sys.executable, "-m", "tornado_channels", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert name in result.stdout
    assert "TORNADO_CHANNELS_REDIS_URL" in " ".join(result.stdout.split())


def test_event_loop_factories() -> None:
    """Auto and uvloop pick uvloop (a dependency), asyncio picks asyncio's own."""
    import uvloop

    assert event_loop_factory("auto") is uvloop.new_event_loop
    assert event_loop_factory("uvloop") is uvloop.new_event_loop
    assert event_loop_factory("asyncio") is asyncio.new_event_loop


def test_a_bad_environment_value_is_a_one_line_error_even_for_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TORNADO_CHANNELS_PORT=abc: exit status 2 and a line naming the variable, no traceback."""
    monkeypatch.setenv("TORNADO_CHANNELS_PORT", "abc")
    assert main(["--help"]) == 2
    error = capsys.readouterr().err
    assert "TORNADO_CHANNELS_PORT='abc'" in error
    assert "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


def test_help_points_to_the_token_command(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names 'tornado-channels token', the development token minter."""
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "tornado-channels token" in capsys.readouterr().out


def test_outbox_schema_prints_the_sql_the_consumer_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """'tornado-channels outbox-schema' prints schema_sql() of the table asked for."""
    assert main(["outbox-schema"]) == 0
    assert capsys.readouterr().out == schema_sql()
    assert main(["outbox-schema", "--outbox-table", "orders_outbox"]) == 0
    assert capsys.readouterr().out == schema_sql("orders_outbox")


def test_outbox_schema_refuses_a_table_name_it_cannot_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A table name that is not a plain identifier exits 2, saying why, without a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(["outbox-schema", "--outbox-table", "x; DROP TABLE users"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "outbox table" in error
    assert "Traceback" not in error


def test_a_bad_outbox_table_stops_the_server_at_start() -> None:
    """--outbox-dsn with an unusable --outbox-table exits 2 before listening."""
    argv = ["--outbox-dsn", "postgresql://nowhere", "--outbox-table", "Bad", "--port", "1"]
    assert main(argv) == 2
