"""The project's own test servers: a real S3 server (SeaweedFS), a range-capable
HTTP server and a fault-injecting proxy, plus pytest fixtures (``fixtures.py``).

Everything listens on 127.0.0.1 only.  Importing this package starts nothing.
"""

from __future__ import annotations

from datetime import timedelta

#: obstore ``retry_config`` that disables retries (faults surface as errors at once).
NO_RETRY = {"max_retries": 0, "retry_timeout": timedelta(seconds=10)}

#: obstore ``retry_config`` that retries quickly (for tests that expect recovery).
FAST_RETRY = {
    "max_retries": 5,
    "retry_timeout": timedelta(seconds=20),
    "backoff": {"init_backoff": timedelta(milliseconds=10),
                "max_backoff": timedelta(milliseconds=100), "base": 2},
}

#: obstore ``client_options`` for tests: plain HTTP allowed, bounded timeouts.
TEST_CLIENT_OPTIONS = {"allow_http": True, "timeout": "20s", "connect_timeout": "5s"}

__all__ = ["NO_RETRY", "FAST_RETRY", "TEST_CLIENT_OPTIONS"]
