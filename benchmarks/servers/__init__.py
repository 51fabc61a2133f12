"""Servers for benchmarks: a range server fast enough not to be what a benchmark measures."""

from benchmarks.servers.launcher import RangeServer, ServerStats

__all__ = ["RangeServer", "ServerStats"]
