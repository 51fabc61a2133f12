"""daskcog's settings, read from dask.config (namespace `daskcog`).

Why dask.config: users already configure Dask there (YAML files, `dask.config.set`,
`DASK_*` environment variables), and a distributed client forwards its config to the
workers it starts, so a setting reaches the processes that read. The defaults live in
`daskcog/daskcog.yaml`, loaded with `dask.config.update_defaults` as Dask's own
libraries (distributed, dask-cuda) load theirs.

Each value is read where it is used, in the process that uses it (never frozen at
import), so `dask.config.set(...)` takes effect at once.

The environment variables of earlier versions (`DASKCOG_READER_CACHE_SIZE`,
`DASKCOG_READAHEAD_BYTES`) are still honoured, read here only: when set, they replace
the YAML default (a `dask.config.set` or a `DASK_DASKCOG__*` variable still wins).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import dask.config
import yaml

import georeader

DEFAULTS_FILE = Path(__file__).resolve().parents[1] / "daskcog.yaml"

LEGACY_ENVIRONMENT = {
    "DASKCOG_READER_CACHE_SIZE": "reader-cache-size",
    "DASKCOG_READAHEAD_BYTES": "readahead-bytes",
}
"""Environment variables of earlier versions -> the setting each one sets the default of."""


def _load_defaults() -> None:
    with DEFAULTS_FILE.open() as f:
        defaults: dict[str, Any] = yaml.safe_load(f)
    for variable, key in LEGACY_ENVIRONMENT.items():
        value = os.environ.get(variable)
        if value is not None:
            defaults["daskcog"][key] = int(value)
    dask.config.update_defaults(defaults)


_load_defaults()


def get(key: str) -> Any:
    """The value of `daskcog.<key>` in this process's dask.config."""
    return dask.config.get(f"daskcog.{key}")


def get_int(key: str) -> int:
    """An integer setting (a YAML or environment string is converted)."""
    return int(get(key))


def get_bool(key: str) -> bool:
    """A true / false setting: an environment variable's string ("false", "0", "off", "no"
    or their capitals) is false, as dask.config leaves such strings unparsed."""
    value = get(key)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "off", "no")
    return bool(value)


_applied: dict[str, Any] | None = None
_base: dict[str, Any] = {}
"""georeader's values of the keys daskcog changed, from before it changed them."""


def apply_georeader() -> None:
    """Make georeader's settings in this process follow dask.config's `daskcog.georeader`.

    Cheap when nothing changed (one dask.config lookup and a small dict compare), so it
    runs at every entry point and chunk task: a worker follows the config it was given.
    A key set back to null returns to georeader's value from before daskcog changed it.
    """
    global _applied
    wanted = dask.config.get("daskcog.georeader", default=None) or {}
    if wanted == _applied:
        return
    current = dataclasses.asdict(georeader.settings())
    changes: dict[str, Any] = {}
    for key, value in wanted.items():
        name = key.replace("-", "_")
        if value is None:
            if name in _base:
                changes[name] = _base.pop(name)
            continue
        _base.setdefault(name, current.get(name))
        changes[name] = value
    if changes:
        georeader.configure(**changes)
    _applied = dict(wanted)
