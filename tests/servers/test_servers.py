"""The test servers themselves, exercised with obstore (and raw http.client where
the wire matters).  Observed obstore exception types (obstore 0.12.1):

* 403 (wrong secret, forbidden path, injected 403) -> ``obstore.exceptions.PermissionDeniedError``
* 404 (missing key / file)                         -> builtin ``FileNotFoundError``
* 503 / 500 / 429 / 416, reset connection, cut body -> ``obstore.exceptions.GenericError``
"""

from __future__ import annotations

import asyncio
import http.client
import os
import time

import obstore
import pytest
from obstore.exceptions import GenericError, PermissionDeniedError
from obstore.store import HTTPStore

from tests.servers import FAST_RETRY, NO_RETRY, TEST_CLIENT_OPTIONS
from tests.servers.fault_proxy import FaultProxy
from tests.servers.http_server import RangeHTTPServer
from tests.servers.s3_server import S3Server, S3ServerError

DATA = os.urandom(300_000)


def run(coro):
    return asyncio.run(coro)


def http_store(base_url: str, retry=NO_RETRY) -> HTTPStore:
    return HTTPStore.from_url(base_url, client_options=TEST_CLIENT_OPTIONS, retry_config=retry)


def raw(url_base: str, method: str, path: str, headers=None, conn=None):
    """One request with http.client; returns (status, headers(lower), body)."""
    host, port = url_base.removeprefix("http://").split(":")
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if own:
            conn.close()


@pytest.fixture(scope="module")
def s3_object(s3_server: S3Server, s3_bucket: str) -> str:
    key = "servers-test/data.bin"
    s3_server.put_bytes(s3_bucket, key, DATA)
    return key


@pytest.fixture
def http_object(http_server: RangeHTTPServer) -> str:
    http_server.put_bytes("dir/data.bin", DATA)
    return "data.bin"


# ----------------------------------------------------------------------------- S3


def test_s3_range_reads(s3_server, s3_bucket, s3_object):
    store = s3_server.store(s3_bucket, retry_config=NO_RETRY, client_options=TEST_CLIENT_OPTIONS)

    async def go():
        a = await obstore.get_range_async(store, s3_object, start=100, end=1100)
        parts = await obstore.get_ranges_async(
            store, s3_object, starts=[0, 5000, 299_000], ends=[16, 6000, 300_000]
        )
        meta = await obstore.head_async(store, s3_object)
        return a, parts, meta

    a, parts, meta = run(go())
    assert bytes(a) == DATA[100:1100]
    assert [bytes(p) for p in parts] == [DATA[0:16], DATA[5000:6000], DATA[299_000:300_000]]
    assert meta["size"] == len(DATA)
    assert meta["e_tag"]


def test_s3_upload_file(s3_server, s3_bucket, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello seaweed" * 1000)
    s3_server.upload(s3_bucket, "servers-test/f.bin", p)
    store = s3_server.store(s3_bucket, retry_config=NO_RETRY)
    assert bytes(obstore.get(store, "servers-test/f.bin").bytes()) == p.read_bytes()


def test_s3_checks_signatures(s3_server, s3_bucket, s3_object):
    path = f"/{s3_bucket}/{s3_object}"
    status, _, body = s3_server.request("GET", path)
    assert status == 200 and body == DATA
    status, _, body = s3_server.request("GET", path, secret_key="not-the-secret")
    assert status == 403 and b"SignatureDoesNotMatch" in body
    status, _, _ = raw(s3_server.endpoint, "GET", path)  # anonymous
    assert status == 403

    bad = s3_server.store(s3_bucket, secret_access_key="not-the-secret", retry_config=NO_RETRY)
    with pytest.raises(PermissionDeniedError, match="403"):
        obstore.get_range(bad, s3_object, start=0, end=10)
    with pytest.raises(PermissionDeniedError):
        obstore.head(bad, s3_object)
    bad_key = s3_server.store(s3_bucket, access_key_id="nobody", retry_config=NO_RETRY)
    with pytest.raises(PermissionDeniedError):
        obstore.get_range(bad_key, s3_object, start=0, end=10)


def test_s3_missing_key(s3_server, s3_bucket):
    store = s3_server.store(s3_bucket, retry_config=NO_RETRY)
    with pytest.raises(FileNotFoundError):
        obstore.get_range(store, "servers-test/missing.bin", start=0, end=10)
    with pytest.raises(FileNotFoundError):
        obstore.head(store, "servers-test/missing.bin")


def test_s3_server_reports_missing_binary():
    t0 = time.monotonic()
    with pytest.raises(S3ServerError, match="weed"):
        S3Server(weed_binary="/nonexistent/weed", startup_timeout=5)
    assert time.monotonic() - t0 < 5


def test_s3_server_reports_early_exit_with_log(tmp_path):
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fake weed: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(S3ServerError, match="(?s)exited with code 3.*fake weed: cannot start"):
        S3Server(weed_binary=str(fake), startup_timeout=10)
    assert time.monotonic() - t0 < 5


def test_s3_server_start_stop_cleans_up():
    server = S3Server(startup_timeout=30)
    try:
        tmp, pid = server.data_dir, server._proc.pid
        sockets = server._socket_paths()
        assert server.startup_seconds < 30
        assert server.request("PUT", "/cleanup-check")[0] == 200
    finally:
        server.stop()
    assert not server.running and server.port is None
    assert not os.path.exists(tmp)
    assert not any(os.path.exists(p) for p in sockets)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_s3_server_metadata(s3_server):
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.running
    assert s3_server.startup_seconds is not None and s3_server.startup_seconds < 60
    assert os.path.isdir(s3_server.data_dir)


# ----------------------------------------------------------------------------- HTTP


def test_http_range_reads(http_server, http_object):
    store = http_store(http_server.url + "/dir")

    async def go():
        a = await obstore.get_range_async(store, http_object, start=10, end=20)
        parts = await obstore.get_ranges_async(
            store, http_object, starts=[0, 1000, 299_990], ends=[5, 2000, 300_000]
        )
        return a, parts

    a, parts = run(go())
    assert bytes(a) == DATA[10:20]
    assert [bytes(p) for p in parts] == [DATA[0:5], DATA[1000:2000], DATA[299_990:300_000]]
    meta = obstore.head(store, http_object)
    assert meta["size"] == len(DATA) and meta["e_tag"] and meta["last_modified"]
    log = http_server.requests(path="dir/data.bin")
    assert ("GET", "/dir/data.bin", "bytes=10-19") in log
    assert ("HEAD", "/dir/data.bin", None) in log


def test_http_wire_behaviour(http_server, http_object):
    u = http_server.url
    s, h, b = raw(u, "GET", "/dir/data.bin")
    assert s == 200 and b == DATA and h["content-length"] == str(len(DATA))
    assert h["etag"] and h["last-modified"] and h["accept-ranges"] == "bytes"
    s, h2, b = raw(u, "GET", "/dir/data.bin", {"Range": "bytes=5-9"})
    assert s == 206 and b == DATA[5:10] and h2["content-range"] == f"bytes 5-9/{len(DATA)}"
    assert h2["etag"] == h["etag"]
    s, h2, b = raw(u, "GET", "/dir/data.bin", {"Range": "bytes=-4"})
    assert s == 206 and b == DATA[-4:]
    s, h2, b = raw(u, "GET", "/dir/data.bin", {"Range": "bytes=299998-999999"})
    assert s == 206 and b == DATA[299_998:]
    s, h2, _ = raw(u, "GET", "/dir/data.bin", {"Range": f"bytes={len(DATA)}-"})
    assert s == 416 and h2["content-range"] == f"bytes */{len(DATA)}"
    s, _, _ = raw(u, "GET", "/dir/data.bin", {"Range": "bytes=abc"})
    assert s == 416
    s, h2, b = raw(u, "HEAD", "/dir/data.bin")
    assert s == 200 and b == b"" and h2["content-length"] == str(len(DATA))
    s, _, b = raw(u, "GET", "/dir/data.bin", {"If-None-Match": h["etag"]})
    assert s == 304 and b == b""
    s, _, _ = raw(u, "GET", "/dir/data.bin", {"If-Match": '"other"'})
    assert s == 412
    assert raw(u, "GET", "/dir/nothing.bin")[0] == 404
    assert raw(u, "GET", "/dir")[0] == 404
    assert raw(u, "GET", "/../../etc/passwd")[0] == 404
    # keep-alive: several requests over one connection
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=10)
    try:
        for i in range(3):
            s, _, b = raw(u, "GET", "/dir/data.bin", {"Range": f"bytes={i}-{i}"}, conn=conn)
            assert s == 206 and b == DATA[i:i + 1]
    finally:
        conn.close()


def test_http_errors_in_obstore(http_server, http_object):
    store = http_store(http_server.url + "/dir")
    with pytest.raises(FileNotFoundError):
        obstore.get_range(store, "missing.bin", start=0, end=4)
    with pytest.raises(FileNotFoundError):
        obstore.head(store, "missing.bin")
    http_server.forbid("dir/data.bin")
    with pytest.raises(PermissionDeniedError, match="403"):
        obstore.get_range(store, http_object, start=0, end=4)
    with pytest.raises(PermissionDeniedError):
        obstore.head(store, http_object)
    http_server.allow("dir/data.bin")
    with pytest.raises(GenericError, match="416"):
        obstore.get_range(store, http_object, start=len(DATA), end=len(DATA) + 10)
    assert bytes(obstore.get_range(store, http_object, start=0, end=4)) == DATA[:4]


# ----------------------------------------------------------------------------- proxy


def test_proxy_transparent_http(fault_proxy_http, http_server, http_object):
    store = http_store(fault_proxy_http.url + "/dir")
    assert bytes(obstore.get_range(store, http_object, start=7, end=77)) == DATA[7:77]
    assert obstore.head(store, http_object)["size"] == len(DATA)
    assert bytes(obstore.get(store, http_object).bytes()) == DATA
    st = fault_proxy_http.stats()
    assert st["requests_total"] == 3 and st["faults_total"] == 0
    assert fault_proxy_http.requests_by_path["/dir/data.bin"] == 3
    assert http_server.requests(path="dir/data.bin")[0] == ("GET", "/dir/data.bin", "bytes=7-76")


def test_proxy_keeps_s3_signatures_valid(s3_server, s3_bucket, s3_object, fault_proxy_s3):
    store = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)

    async def go():
        a = await obstore.get_range_async(store, s3_object, start=0, end=1000)
        parts = await obstore.get_ranges_async(store, s3_object, starts=[10, 2000], ends=[20, 4000])
        return a, parts

    a, parts = run(go())
    assert bytes(a) == DATA[:1000]
    assert [bytes(p) for p in parts] == [DATA[10:20], DATA[2000:4000]]
    # a signed PUT (with a body) and a listing (XML response) through the proxy
    obstore.put(store, "servers-test/via-proxy.bin", b"x" * 50_000)
    assert obstore.head(store, "servers-test/via-proxy.bin")["size"] == 50_000
    listed = obstore.list(store, prefix="servers-test/").collect()
    assert "servers-test/via-proxy.bin" in {m["path"] for m in listed}
    # raw signed request signed for the proxy's address: valid; wrong secret: still 403
    path = f"/{s3_bucket}/{s3_object}"
    assert s3_server.request("GET", path, endpoint=fault_proxy_s3.url)[0] == 200
    st, _, body = s3_server.request("GET", path, endpoint=fault_proxy_s3.url, secret_key="bad")
    assert st == 403 and b"SignatureDoesNotMatch" in body
    bad = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, secret_access_key="bad",
                          retry_config=NO_RETRY)
    with pytest.raises(PermissionDeniedError):
        obstore.get_range(bad, s3_object, start=0, end=10)
    assert fault_proxy_s3.faults == {}
    assert fault_proxy_s3.requests_total >= 8


def test_proxy_streams_large_uploads(s3_server, s3_bucket, fault_proxy_s3, monkeypatch):
    from tests.servers import fault_proxy as fp

    # bodies above the threshold are streamed to the upstream instead of buffered
    monkeypatch.setattr(fp, "_MAX_BUFFERED_BODY", 100_000)
    store = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    payload = os.urandom(1_500_000)
    obstore.put(store, "servers-test/streamed.bin", payload, use_multipart=False)
    direct = s3_server.store(s3_bucket, retry_config=NO_RETRY)
    assert bytes(obstore.get(direct, "servers-test/streamed.bin").bytes()) == payload
    assert ("PUT", f"/{s3_bucket}/servers-test/streamed.bin", "forwarded:200") in fault_proxy_s3.log


def test_proxy_injects_503(s3_server, s3_bucket, s3_object, fault_proxy_s3):
    fault_proxy_s3.configure(fail_first=2, fail_status=503)
    store = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    for _ in range(2):
        with pytest.raises(GenericError, match="503"):
            obstore.get_range(store, s3_object, start=0, end=10)
    assert bytes(obstore.get_range(store, s3_object, start=0, end=10)) == DATA[:10]
    assert fault_proxy_s3.faults["status"] == 2
    assert [o for _, _, o in fault_proxy_s3.log] == ["status:503", "status:503", "forwarded:206"]

    # with retries on, obstore rides over the injected 503s
    fault_proxy_s3.reset()
    fault_proxy_s3.configure(fail_first=2, fail_status=503)
    retrying = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, retry_config=FAST_RETRY)
    assert bytes(obstore.get_range(retrying, s3_object, start=5, end=15)) == DATA[5:15]
    assert fault_proxy_s3.requests_total == 3 and fault_proxy_s3.faults["status"] == 2


@pytest.mark.parametrize(
    "status, exc",
    [(500, GenericError), (429, GenericError), (403, PermissionDeniedError)],
)
def test_proxy_injects_other_statuses(fault_proxy_http, http_object, status, exc):
    fault_proxy_http.configure(fail_first=1, fail_status=status, retry_after="0")
    store = http_store(fault_proxy_http.url + "/dir")
    with pytest.raises(exc, match=str(status)):
        obstore.get_range(store, http_object, start=0, end=10)
    assert bytes(obstore.get_range(store, http_object, start=0, end=10)) == DATA[:10]
    assert fault_proxy_http.faults == {"status": 1}


def test_proxy_reset_is_an_error(fault_proxy_http, http_object):
    fault_proxy_http.configure(reset_first=1)
    store = http_store(fault_proxy_http.url + "/dir")
    with pytest.raises(GenericError):
        obstore.get_range(store, http_object, start=0, end=10)
    assert fault_proxy_http.faults["reset"] == 1
    assert bytes(obstore.get_range(store, http_object, start=0, end=10)) == DATA[:10]
    # raw client: the connection dies without a response
    fault_proxy_http.configure(reset_first=1)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        raw(fault_proxy_http.url, "GET", "/dir/data.bin")


def test_proxy_cut_body_is_an_error(s3_server, s3_bucket, s3_object, fault_proxy_s3,
                                    fault_proxy_http, http_object):
    fault_proxy_s3.configure(truncate_first=1, truncate_bytes=1000)
    store = s3_server.store(s3_bucket, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    with pytest.raises(GenericError):
        obstore.get_range(store, s3_object, start=0, end=100_000)
    assert fault_proxy_s3.faults["truncate"] == 1
    assert bytes(obstore.get_range(store, s3_object, start=0, end=100_000)) == DATA[:100_000]

    fault_proxy_http.configure(truncate_first=1)  # default: half the body
    hstore = http_store(fault_proxy_http.url + "/dir")
    with pytest.raises(GenericError):
        obstore.get(hstore, http_object).bytes()
    assert fault_proxy_http.faults["truncate"] == 1
    assert fault_proxy_http.log[0][2] == "truncate:200"
    # raw client sees the full Content-Length but a short body
    fault_proxy_http.configure(truncate_first=1, truncate_bytes=10)
    with pytest.raises(http.client.IncompleteRead) as info:
        raw(fault_proxy_http.url, "GET", "/dir/data.bin")
    assert len(info.value.partial) == 10


def test_proxy_latency(fault_proxy_http, http_object):
    store = http_store(fault_proxy_http.url + "/dir")
    obstore.get_range(store, http_object, start=0, end=10)  # warm the connection
    t0 = time.perf_counter()
    obstore.get_range(store, http_object, start=0, end=10)
    base = time.perf_counter() - t0
    fault_proxy_http.configure(latency_ms=300, jitter_ms=20, seed=3)
    t0 = time.perf_counter()
    obstore.get_range(store, http_object, start=0, end=10)
    slow = time.perf_counter() - t0
    assert slow >= 0.27
    assert slow < base + 2.0


def test_proxy_bandwidth_cap(fault_proxy_http, http_object):
    fault_proxy_http.configure(bandwidth_bps=500_000)
    store = http_store(fault_proxy_http.url + "/dir")
    t0 = time.perf_counter()
    assert bytes(obstore.get_range(store, http_object, start=0, end=250_000)) == DATA[:250_000]
    elapsed = time.perf_counter() - t0
    assert 0.4 <= elapsed < 3.0


def test_proxy_rate_is_seeded_and_path_filtered(fault_proxy_http, http_server, http_object):
    http_server.put_bytes("dir/other.bin", b"other")

    def pattern(seed):
        fault_proxy_http.reset(seed=seed)
        fault_proxy_http.configure(fail_rate=0.5, fail_status=503, path_pattern=r"data\.bin$")
        conn = http.client.HTTPConnection("127.0.0.1", fault_proxy_http.port, timeout=10)
        out = []
        try:
            for _ in range(20):
                out.append(raw(fault_proxy_http.url, "GET", "/dir/data.bin",
                               {"Range": "bytes=0-3"}, conn=conn)[0])
                assert raw(fault_proxy_http.url, "GET", "/dir/other.bin", conn=conn)[0] == 200
        finally:
            conn.close()
        return out

    first = pattern(7)
    assert set(first) == {206, 503}
    assert fault_proxy_http.faults["status"] == first.count(503)
    assert fault_proxy_http.requests_by_path == {"/dir/data.bin": 20, "/dir/other.bin": 20}
    assert pattern(7) == first


def test_proxy_reports_upstream_down():
    # a port with nothing listening: the proxy answers 502 instead of hanging
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with FaultProxy("127.0.0.1", port, connect_timeout=2) as proxy:
        assert raw(proxy.url, "GET", "/x")[0] == 502
    with pytest.raises(ValueError):
        FaultProxy("10.0.0.1", 80)
