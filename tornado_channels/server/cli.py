"""The ``tornado-channels`` command: its flags, generated from the settings, and its start.

Every flag comes from a settings field (core/settings.py) of the server,
the broker or the channel routes, with the field's default and help; each
can also be set in the environment as ``TORNADO_CHANNELS_<NAME>``
(``--redis-url`` is ``TORNADO_CHANNELS_REDIS_URL``), and a flag on the
command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..brokers.settings import BrokerSettings
from ..core import settings as declare
from ..outbox.settings import OutboxSettings
from ..web.backend import BackendSettings
from ..web.config import ChannelConfig
from ..web.events import EventSettings
from .settings import ServerSettings, Settings

#: The settings classes the command line is made of, in the order --help shows them.
GROUPS: tuple[tuple[str, type], ...] = (
    ("server", ServerSettings),
    ("broker and history", BrokerSettings),
    ("channels", ChannelConfig),
    ("backend hooks", BackendSettings),
    ("transactional outbox", OutboxSettings),
    ("lifecycle events", EventSettings),
)


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser: one flag per setting, defaults from the environment when set."""
    environ = dict(os.environ) if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="tornado-channels",
        description="WebSocket channels: subscribe at ws://host/<channel>, "
        "publish with POST /<channel> (or POST /<prefix>/ for every channel below it).",
        epilog=f"Every flag can be set in the environment as {declare.ENV_PREFIX}<FLAG>, "
        f"e.g. {declare.ENV_PREFIX}REDIS_URL. 'tornado-channels token --help': mint a "
        "channel token for development; 'tornado-channels outbox-schema': the outbox's SQL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for title, cls in GROUPS:
        group = parser.add_argument_group(title)
        for field, about in declare.declared(cls):
            default = field.default
            name = declare.env_name(field)
            if name in environ:
                try:
                    default = declare.parse(field, environ[name])
                except ValueError as exc:
                    raise ValueError(f"{name}={environ[name]!r}: {exc}") from None
            options: dict[str, Any] = {"default": default, "help": about.help, "dest": field.name}
            if declare.kind(field) == "bool":
                options["action"] = argparse.BooleanOptionalAction
            else:
                options["type"] = lambda text, field=field: declare.parse(field, text)
                options["metavar"] = about.metavar or field.name.upper()
            if about.choices:
                options["choices"] = about.choices
                options.pop("metavar", None)
            group.add_argument(declare.flag_name(field), **options)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_settings(
    argv: Sequence[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """The settings of a process started with ``argv`` in ``environ``."""
    args = build_parser(environ).parse_args(argv)
    values = vars(args)

    def of(cls: type) -> Any:
        return cls(**{field.name: values[field.name] for field, _ in declare.declared(cls)})

    return Settings(
        of(ServerSettings),
        of(BrokerSettings),
        of(ChannelConfig),
        of(BackendSettings),
        of(OutboxSettings),
        of(EventSettings),
    )


def flags_table() -> str:
    """The README's table of flags, as Markdown, from the same settings."""
    rows = ["| flag | default | |", "| --- | --- | --- |"]
    for _title, cls in GROUPS:
        for field, about in declare.declared(cls):
            shown = declare.shown_default(field, about)
            rows.append(f"| `{declare.flag_name(field)}` | {shown} | {about.help} |")
    return "\n".join(rows) + "\n"


def configure_logging(level: str) -> None:
    """Lifecycle events at INFO; per-message lines and access logs at DEBUG."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # One access-log line per publish would be a per-message log at INFO.
    access = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("tornado.access").setLevel(access)


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop to run on: uvloop when chosen or, for "auto", when installed.

    uvloop runs Tornado's IOLoop unchanged and takes less CPU per callback
    and per socket event.  None when uvloop is asked for and missing.
    """
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop if choice == "auto" else None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def mint(argv: Sequence[str], environ: dict[str, str] | None = None) -> int:
    """``tornado-channels token ...``: print a token signed with the configured secret."""
    from ..web.tokens import TokenVerifier

    environ = dict(os.environ) if environ is None else environ

    def env(name: str) -> str | None:
        return environ.get(declare.ENV_PREFIX + name)

    parser = argparse.ArgumentParser(
        prog="tornado-channels token",
        description="Mint a channel token (HS256, signed with --token-secret), for development "
        "and tests: a real deployment's backend mints its users' tokens itself.",
    )
    parser.add_argument("--sub", help="the user id (the token's 'sub')")
    parser.add_argument("--subscribe", default="", help="comma-separated subscribe grants")
    parser.add_argument("--publish", default="", help="comma-separated publish grants")
    parser.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
    parser.add_argument("--token-secret", default=env("TOKEN_SECRET"), help="the HMAC secret")
    parser.add_argument("--token-audience", default=env("TOKEN_AUDIENCE"), help="its 'aud'")
    parser.add_argument("--token-issuer", default=env("TOKEN_ISSUER"), help="its 'iss'")
    args = parser.parse_args(argv)
    if not args.token_secret:
        parser.error(f"no secret: pass --token-secret or set {declare.ENV_PREFIX}TOKEN_SECRET")
    verifier = TokenVerifier(
        [args.token_secret], audience=args.token_audience, issuer=args.token_issuer
    )

    def grants(text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    print(verifier.mint(args.sub, grants(args.subscribe), grants(args.publish), args.ttl))
    return 0


def outbox_schema(argv: Sequence[str], environ: dict[str, str] | None = None) -> int:
    """``tornado-channels outbox-schema``: print the SQL the outbox consumer creates."""
    from ..outbox.schema import DEFAULT_TABLE, schema_sql

    environ = dict(os.environ) if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="tornado-channels outbox-schema",
        description="Print the outbox's tables, sequence and trigger as idempotent SQL, for "
        "those who run migrations themselves (the server creates them when missing).",
    )
    parser.add_argument(
        "--outbox-table",
        default=environ.get(declare.ENV_PREFIX + "OUTBOX_TABLE", DEFAULT_TABLE),
        help="the outbox table",
    )
    args = parser.parse_args(argv)
    try:
        sql = schema_sql(args.outbox_table)
    except ValueError as exc:
        parser.error(str(exc))
    print(sql, end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tornado-channels`` console script (and ``... token``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return mint(argv[1:])
    if argv[:1] == ["outbox-schema"]:
        return outbox_schema(argv[1:])
    from .serve import serve  # The whole server, only once the flags are read.

    try:
        settings = parse_settings(argv)
    except ValueError as exc:
        # Said as argparse says its errors, without building the parser (which
        # reads the environment) again: a bad variable fails even for --help.
        print(f"tornado-channels: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.server.log_level)
    loop_factory = event_loop_factory(settings.server.event_loop)
    if loop_factory is None:
        build_parser().error("--event-loop uvloop: uvloop is not installed (pip install uvloop)")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(settings))
