"""Preloaded into the command line's local-cluster workers: Ctrl-C is the client's to handle.

A terminal's Ctrl-C reaches every process of the foreground group, workers included:
each printed its own KeyboardInterrupt traceback (~100 lines) and the nanny logged their
deaths. The command line's process catches Ctrl-C, prints one line and closes the
cluster, which stops the workers; so workers ignore SIGINT (registered through
`distributed.worker.preload` by `daskcog.cli.cluster`).
"""

from __future__ import annotations

import signal
import threading

if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
