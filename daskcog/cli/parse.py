"""Parsing the command line's values: pure functions, and the click options built on them.

Each `parse_*` turns one string into a value or raises `click.BadParameter`
(click reports it as a usage error, exit code 2). `global_options` adds the
options every command takes, accepted before or after the command name: their
values gather in the root context's `obj` dict (`Settings`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def parse_store_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE, VALUE read as JSON when it parses (`client_options={"allow_http":true}`)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def parse_resolution(text: str) -> float | tuple[float, float]:
    """X or X,Y: positive pixel sizes."""
    try:
        parts = [float(p) for p in text.replace(",", " ").split()]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and min(parts) > 0:
        return (parts[0], parts[1])
    raise click.BadParameter(f"expected a positive number or X,Y; got {text!r}")


def parse_bounds(text: str) -> tuple[float, float, float, float]:
    """LEFT,BOTTOM,RIGHT,TOP with left < right and bottom < top."""
    try:
        parts = tuple(float(p) for p in text.replace(",", " ").split())
    except ValueError:
        parts = ()
    if len(parts) != 4 or parts[0] >= parts[2] or parts[1] >= parts[3]:
        raise click.BadParameter(
            f"expected LEFT,BOTTOM,RIGHT,TOP with left<right, bottom<top; got {text!r}"
        )
    left, bottom, right, top = parts
    return (left, bottom, right, top)


def parse_bands(text: str) -> tuple[int, ...]:
    """B or B,B,...: 1-based band numbers."""
    try:
        bands = tuple(int(p) for p in text.replace(",", " ").split())
    except ValueError:
        bands = ()
    if not bands or min(bands) < 1:
        raise click.BadParameter(f"expected 1-based band numbers (B or B,B,...); got {text!r}")
    return bands


class Parsed(click.ParamType):
    """A click type over one of the `parse_*` functions."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if not isinstance(value, str) else self.parse(value)


STORE_OPTION = Parsed("KEY=VALUE", parse_store_option)
RESOLUTION = Parsed("RES", parse_resolution)
BOUNDS = Parsed("L,B,R,T", parse_bounds)
BANDS = Parsed("B[,B...]", parse_bands)
POSITIVE = click.IntRange(min=1)


@dataclass
class Settings:
    """The global options, wherever on the line they were given."""

    scheduler: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    debug: bool = False


def settings(ctx: click.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    found = settings(ctx)
    if param.name == "scheduler" and value is not None:
        found.scheduler = value
    elif param.name == "store_option":
        found.store_options.update(value)
    elif param.name == "debug" and value:
        found.debug = True


def global_options(command: F) -> F:
    """--scheduler, --store-option (repeatable) and --debug, for the group and each command."""
    options = [
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            expose_value=False,
            callback=_remember,
            help="address of a running Dask scheduler (tcp://host:8786); default: a local cluster "
            "for mosaic and demo, the threaded scheduler for info and stats",
        ),
        click.option(
            "--store-option",
            type=STORE_OPTION,
            multiple=True,
            expose_value=False,
            callback=_remember,
            help="obstore option, repeatable; VALUE is JSON when it parses "
            "(e.g. region=eu-west-1, client_options='{\"allow_http\":true}')",
        ),
        click.option(
            "--debug", is_flag=True, expose_value=False, callback=_remember, help="show tracebacks"
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
