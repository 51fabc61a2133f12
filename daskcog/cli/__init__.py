"""The `daskcog` command line: `app` (click wiring, exit codes) parses with `parse`, runs the
`commands` and prints through `output`; `cluster` gives the Dask session, `demo` its sample data."""

from daskcog.cli.app import main

__all__ = ["main"]
