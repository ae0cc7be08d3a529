"""Settings declared once: a dataclass field with its help text is also its flag (pure).

Each layer keeps its settings in a frozen dataclass (``ChannelConfig`` for the
routes, ``BrokerSettings``, ``ServerSettings``), and declares each field with
:func:`setting`: its default, a line of help, and what values it takes.  The
command line (server/cli.py) is generated from those fields, with an
environment variable for each (``TORNADO_CHANNELS_<NAME>``), and so is the
README's table of flags: a default can only ever be written in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Every flag can also be set in the environment, as ENV_PREFIX + its name in capitals.
ENV_PREFIX = "TORNADO_CHANNELS_"

_KEY = "tornado_channels.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """What a settings field says about itself (see :func:`setting`)."""

    help: str
    #: For the flag: the values it takes (argparse choices).
    choices: tuple[str, ...] = ()
    #: How the default reads in --help and the README, when not its plain value.
    shown: str | None = None
    #: Whether a flag exists for it (False for library-only fields).
    flag: bool = True
    #: A unit or format hint for the flag's value (e.g. "SECONDS").
    metavar: str | None = None


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    shown: str | None = None,
    flag: bool = True,
    metavar: str | None = None,
) -> Any:
    """A dataclass field declared with its default, its help, and how its flag reads."""
    about = Setting(help, choices, shown, flag, metavar)
    return dataclasses.field(default=default, metadata={_KEY: about})


def declared(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    """The fields of settings class ``cls`` that have flags, with what each says about itself."""
    for field in dataclasses.fields(cls):
        about = field.metadata.get(_KEY)
        if isinstance(about, Setting) and about.flag:
            yield field, about


def flag_name(field: dataclasses.Field[Any]) -> str:
    """``max_message_size`` -> ``--max-message-size``."""
    return "--" + field.name.replace("_", "-")


def env_name(field: dataclasses.Field[Any]) -> str:
    """``max_message_size`` -> ``TORNADO_CHANNELS_MAX_MESSAGE_SIZE``."""
    return ENV_PREFIX + field.name.upper()


def kind(field: dataclasses.Field[Any]) -> str:
    """The field's type, as one of: bool, int, float, str, optional, list."""
    annotation = str(field.type).replace(" ", "")
    kinds = {
        "bool": "bool",
        "int": "int",
        "float": "float",
        "str": "str",
        "str|None": "optional",
        "tuple[str,...]": "list",
    }
    if annotation not in kinds:
        raise TypeError(f"setting {field.name} has a type no flag can carry: {field.type}")
    return kinds[annotation]


def parse(field: dataclasses.Field[Any], text: str) -> Any:
    """A flag's or environment variable's text as the field's value."""
    what = kind(field)
    if what == "bool":
        return text.strip().lower() in ("1", "true", "yes", "on")
    if what == "int":
        return int(text)
    if what == "float":
        return float(text)
    if what == "list":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if what == "optional":
        return text or None
    return text


def shown_default(field: dataclasses.Field[Any], about: Setting) -> str:
    """The default as --help and the README show it."""
    if about.shown is not None:
        return about.shown
    value = field.default
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
