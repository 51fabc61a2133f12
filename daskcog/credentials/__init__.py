"""Credentials stay out of task graphs: graphs carry a credential *name*, each worker process
resolves it (see `daskcog.runtime.credentials` for the rules)."""

from daskcog.runtime.credentials import (
    CredentialsNotFoundError,
    CredentialsPlugin,
    register,
    register_on_cluster,
    resolve,
    unregister,
)

__all__ = [
    "CredentialsNotFoundError", "CredentialsPlugin", "register", "register_on_cluster", "resolve",
    "unregister",
]
