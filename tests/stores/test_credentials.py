"""Credentials stay out of task graphs, reprs, pickles, logs and error messages.

`daskcog.open("s3://...", access_key_id=..., secret_access_key=...)` splits the
secrets off and puts only a credential *name* into the graph; named sets are
registered per process (`daskcog.credentials.register`) or per cluster
(`register_on_cluster`). Searched here, against the real SeaweedFS server: every
task key, every repr, pickle and cloudpickle of the graph (high-level and
materialised, before and after a reduction), DEBUG log records of a compute,
errors raised by failing reads, and the failure report of `errors="nodata"`.
The same search runs for signed URLs: their query and each of its values are
secrets too.
"""

from __future__ import annotations

import logging
import pickle
import traceback
from datetime import timedelta
from urllib.parse import parse_qsl

import cloudpickle
import numpy as np
import obstore
import pytest

import daskcog
from daskcog.runtime import credentials as creds
from georeader import AccessDeniedError, StoreReadError
from georeader.io import RetryPolicy
from tests.stores.helpers import HTTP_OPTIONS, record_requests, s3_options, settle

SHORT_STORE_RETRY = RetryPolicy(attempts=2, total_seconds=3).store_retry_config()
SHORT_READ_RETRY = RetryPolicy(attempts=1)


def _texts_of_graph(arr) -> dict[str, bytes]:
    """Everything a graph can leak through: keys, reprs, pickles (high level and materialised)."""
    data = arr.data
    out: dict[str, bytes] = {}
    for label, collection in (
        ("array", data),
        ("sum", data.sum()),
        ("slice", data[:, 10:100, 5:250]),
    ):
        graph = collection.__dask_graph__()
        materialised = dict(graph)
        out[f"{label} keys"] = "\n".join(map(str, materialised)).encode()
        out[f"{label} task reprs"] = "\n".join(repr(v) for v in materialised.values()).encode()
        out[f"{label} pickle (HighLevelGraph)"] = pickle.dumps(graph)
        out[f"{label} cloudpickle (HighLevelGraph)"] = cloudpickle.dumps(graph)
        out[f"{label} pickle (tasks)"] = pickle.dumps(materialised)
        out[f"{label} cloudpickle (tasks)"] = cloudpickle.dumps(materialised)
    out["dask keys"] = repr(data.__dask_keys__()).encode()
    out["repr GeoArray"] = repr(arr).encode()
    out["str GeoArray"] = str(arr).encode()
    out["repr spec"] = repr(arr.source).encode()
    out["repr dask array"] = repr(data).encode()
    out["dask array name"] = data.name.encode()
    out["pickle GeoArray"] = cloudpickle.dumps(arr)
    return out


def _assert_absent(secret: str, texts: dict[str, bytes]) -> None:
    needle = secret.encode()
    leaks = [label for label, text in texts.items() if needle in text]
    assert not leaks, f"secret found in: {leaks}"


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_secret_never_in_graph_reprs_pickles_logs(s3_server, s3_cog, reference, caplog):
    secret = s3_server.secret_key
    arr = daskcog.open(s3_cog, chunks=64, **s3_options(s3_server))
    texts = _texts_of_graph(arr)
    _assert_absent(secret, texts)
    _assert_absent(s3_server.access_key, texts)  # the key id is split off too
    assert arr.source.credentials and arr.source.credentials.startswith("auto-")

    caplog.set_level(logging.DEBUG)
    got = arr.data.compute(scheduler="threads")
    np.testing.assert_array_equal(got, reference[0])
    logged = caplog.text + "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records
    )
    assert secret not in logged


def test_secret_never_in_errors_of_failing_reads(s3_server, s3_cog, range_proxy_s3, cog_path):
    from tests.stores.helpers import tile_byte_ranges

    secret = s3_server.secret_key
    opts = s3_options(s3_server, endpoint=range_proxy_s3.url, retry_config=SHORT_STORE_RETRY)
    arr = daskcog.open(s3_cog, chunks=64, retry=SHORT_READ_RETRY, **opts)
    range_proxy_s3.fail_ranges(tile_byte_ranges(cog_path, rows=lambda row: True), status=503)
    with pytest.raises(StoreReadError) as info:
        arr.data.compute(scheduler="threads")
    settle(lambda: range_proxy_s3.requests_total)
    text = _error_text(info.value)
    assert s3_cog in text
    assert secret not in text

    # errors="nodata": the failure report names URL and window, never the secret
    tolerant = daskcog.open(s3_cog, chunks=64, errors="nodata", retry=SHORT_READ_RETRY, **opts)
    tolerant.data.compute(scheduler="threads")
    report = tolerant.failures()
    assert report and all(f.url == s3_cog for f in report)
    assert secret not in repr(report)
    record_requests("s3 credentials: failing reads (503 on every tile)", range_proxy_s3)

    # a wrong secret: the error names the URL, not the secret that was given
    wrong = "Wr0ng-Secret-For-The-Leak-Test-123456"
    with pytest.raises(AccessDeniedError) as info:
        daskcog.open(s3_cog, **s3_options(s3_server, secret_access_key=wrong))
    assert wrong not in _error_text(info.value)
    assert s3_cog in str(info.value)


def test_named_credentials(s3_server, s3_cog, reference):
    name = "stores-test-named"
    public = {k: v for k, v in s3_options(s3_server).items() if not creds.is_secret(k)}
    assert set(public) == {"endpoint", "region", "client_options"}
    creds.register(name, access_key_id=s3_server.access_key, secret_access_key=s3_server.secret_key)
    try:
        arr = daskcog.open(s3_cog, chunks=64, credentials=name, **public)
        assert arr.source.credentials == name
        _assert_absent(s3_server.secret_key, _texts_of_graph(arr))
        np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
        with pytest.raises(ValueError, match="either"):
            daskcog.open(s3_cog, credentials=name, **s3_options(s3_server))
    finally:
        creds.unregister(name)
    # a graph whose credentials are not registered in the process that runs it
    daskcog.cache_clear()
    with pytest.raises(creds.CredentialsNotFoundError, match=name) as info:
        arr.data.compute(scheduler="threads")
    assert s3_server.secret_key not in _error_text(info.value)
    with pytest.raises(creds.CredentialsNotFoundError):
        daskcog.open(s3_cog, credentials="never-registered", **public)


def test_credentials_reach_distributed_workers(s3_server, s3_cog, reference):
    """One spawned worker process: secrets arrive through the plugin, not the graph."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        # secrets given as options: registered on the workers under an anonymous name
        arr = daskcog.open(s3_cog, chunks=64, **s3_options(s3_server))
        _assert_absent(s3_server.secret_key, _texts_of_graph(arr))
        np.testing.assert_array_equal(arr.data.compute(), reference[0])
        # a named set registered on the cluster
        public = {k: v for k, v in s3_options(s3_server).items() if not creds.is_secret(k)}
        creds.register_on_cluster(client, "stores-cluster", access_key_id=s3_server.access_key,
                                  secret_access_key=s3_server.secret_key)
        try:
            named = daskcog.open(
                s3_cog, chunks=(2, 96, 128), credentials="stores-cluster", **public
            )
            np.testing.assert_array_equal(named.data.compute(), reference[0])
            assert client.run(creds.registered_names).popitem()[1].count("stores-cluster") == 1
        finally:
            creds.unregister("stores-cluster")


# -- signed URLs: the query is a secret like a key ---------------------------------
def _signed(
    s3_server, s3_bucket: str, s3_cog: str, endpoint: str | None = None
) -> tuple[str, list[str]]:
    """A presigned URL of the COG, and the secrets in it (the query and each long value)."""
    key = s3_cog.split("/", 3)[3]
    url = obstore.sign(
        s3_server.store(s3_bucket, endpoint=endpoint), "GET", key, timedelta(seconds=120)
    )
    query = url.partition("?")[2]
    return url, [query, *(v for _, v in parse_qsl(query) if len(v) >= 8)]


def test_signed_query_never_in_graph_reprs_pickles_logs(
    s3_server, s3_bucket, s3_cog, reference, caplog
):
    url, secrets = _signed(s3_server, s3_bucket, s3_cog)

    def sign(plain: str) -> str:
        return _signed(s3_server, s3_bucket, s3_cog)[0]

    for arr in (daskcog.open(url, chunks=64, **HTTP_OPTIONS),
                daskcog.open(url, chunks=64, sign=sign, **HTTP_OPTIONS)):
        texts = _texts_of_graph(arr)
        for secret in secrets:
            _assert_absent(secret, texts)
        assert arr.source.credentials.startswith("signed-")
        caplog.set_level(logging.DEBUG)
        np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
        logged = caplog.text + "\n".join(
            f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records
        )
        for secret in secrets:
            assert secret not in logged
        reader = daskcog.open(url, chunks=64, **HTTP_OPTIONS)
        assert all(secret not in repr(reader) for secret in secrets)


def test_signed_query_never_in_errors_of_failing_reads(
    s3_server, s3_bucket, s3_cog, range_proxy_s3, cog_path
):
    from tests.stores.helpers import tile_byte_ranges

    url, secrets = _signed(s3_server, s3_bucket, s3_cog, endpoint=range_proxy_s3.url)
    opts = {"client_options": {"allow_http": True}, "retry_config": SHORT_STORE_RETRY}
    arr = daskcog.open(url, chunks=64, retry=SHORT_READ_RETRY, **opts)
    range_proxy_s3.fail_ranges(tile_byte_ranges(cog_path, rows=lambda row: True), status=503)
    with pytest.raises(StoreReadError) as info:
        arr.data.compute(scheduler="threads")
    settle(lambda: range_proxy_s3.requests_total)
    text = _error_text(info.value)
    assert url.partition("?")[0] in text
    assert all(secret not in text for secret in secrets)

    tolerant = daskcog.open(url, chunks=64, errors="nodata", retry=SHORT_READ_RETRY, **opts)
    tolerant.data.compute(scheduler="threads")
    report = tolerant.failures()
    assert report and all(f.url == url.partition("?")[0] for f in report)
    assert all(secret not in repr(report) for secret in secrets)
    record_requests("signed URL: failing reads (503 on every tile)", range_proxy_s3)

    # refused: the error names the plain URL, never the query it was given
    range_proxy_s3.fail_ranges([])
    daskcog.cache_clear()
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=00")
    with pytest.raises(AccessDeniedError) as info:
        daskcog.open(tampered, **opts)
    text = _error_text(info.value)
    assert url.partition("?")[0] in str(info.value)
    assert (
        all(secret not in text for secret in secrets[1:]) and tampered.partition("?")[2] not in text
    )


def test_mosaic_graphs_hold_no_secrets(s3_server, s3_bucket, s3_cog, reference):
    """Mosaics carry Scene values: public options and a credential name, never the secrets."""
    url, secrets = _signed(s3_server, s3_bucket, s3_cog)
    signed = daskcog.mosaic([url], chunks=64, **HTTP_OPTIONS)
    keyed = daskcog.mosaic([s3_cog], chunks=64, **s3_options(s3_server))
    for secret in secrets:
        _assert_absent(secret, _texts_of_graph(signed))
    _assert_absent(s3_server.secret_key, _texts_of_graph(keyed))
    for arr in (signed, keyed):
        np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
