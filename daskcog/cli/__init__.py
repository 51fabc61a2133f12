"""The `daskcog` command line (`app`), the clusters it runs on (`cluster`) and `daskcog demo`."""

from daskcog.cli.app import main

__all__ = ["main"]
