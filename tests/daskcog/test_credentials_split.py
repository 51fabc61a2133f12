"""Secrets are found wherever they sit in the store options, and merge back exactly."""

from __future__ import annotations

from daskcog.runtime.credentials import anonymous_name, merge, split_secrets


def test_nested_secrets_are_split_off_and_merge_back() -> None:
    options = {
        "region": "eu-west-1",
        "config": {"aws_secret_access_key": "SEKRIT", "aws_endpoint": "http://127.0.0.1:9000"},
        "client_options": {
            "allow_http": True,
            "default_headers": {"Authorization": "Basic U0VLUklU"},
        },
        "session_token": "TOKEN",
    }
    public, secret = split_secrets(options)
    assert (
        "SEKRIT" not in repr(public)
        and "U0VLUklU" not in repr(public)
        and "TOKEN" not in repr(public)
    )
    assert public["config"] == {"aws_endpoint": "http://127.0.0.1:9000"}
    assert merge(public, secret) == options


def test_anonymous_names_are_stable_but_keyed() -> None:
    secret = {"password": "hunter2"}
    assert anonymous_name(secret) == anonymous_name(dict(secret))
    import hashlib
    import json

    unkeyed = hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()[:16]
    assert anonymous_name(secret) != f"auto-{unkeyed}"
