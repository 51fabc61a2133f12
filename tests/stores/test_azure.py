"""Azure through Azurite (the Azure Storage emulator, installed from npm on first use),
and credential providers registered by name. Nothing mocked: Azurite checks SAS
signatures and expiry, SeaweedFS checks SigV4.

* SAS URLs (obstore's `sign` on the emulator's account) read, and a signer renews
  them after they expire.
* Planetary Computer's provider (`obstore.auth.planetary_computer`) pointed at a
  local token endpoint that issues container tokens living 3 seconds: a compute
  on a distributed worker that lasts longer than one token succeeds, the worker
  building its own provider from a factory and keeping it.
* boto3's provider (`obstore.auth.boto3`) by name against SeaweedFS.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta

import numpy as np
import obstore
import pytest

import daskcog
from daskcog.runtime import credentials as creds
from tests.servers.azurite_server import ACCOUNT, TokenEndpoint
from tests.servers.fault_proxy import FaultProxy
from tests.stores.helpers import HTTP_OPTIONS, record_requests

KEY = "stores/cog.tif"


@pytest.fixture(scope="module")
def azure_cog(azurite_server, azurite_container, cog_path) -> str:
    """az:// URL of the test COG uploaded to Azurite."""
    obstore.put(azurite_server.store(azurite_container), KEY, cog_path)
    return f"az://{azurite_container}/{KEY}"


@pytest.fixture
def token_endpoint(azurite_server):
    endpoint = TokenEndpoint(azurite_server, life=3.0)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def _pc_provider(sas_url: str, container: str):
    """What a user registers: a factory, because providers hold HTTP sessions."""
    from obstore.auth.planetary_computer import PlanetaryComputerCredentialProvider

    return PlanetaryComputerCredentialProvider(
        account_name=ACCOUNT, container_name=container, sas_url=sas_url
    )


def test_azure_with_the_account_key(azurite_server, azure_cog, reference):
    arr = daskcog.open(azure_cog, chunks=64, **azurite_server.options())
    assert arr.source.credentials.startswith("auto-")  # the account key is split off
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])


def test_sas_url_reads_and_is_renewed(azurite_server, azurite_container, azure_cog, reference):
    store = azurite_server.store(azurite_container)
    signed: list[str] = []

    def sign(url: str) -> str:
        signed.append(url)
        return obstore.sign(store, "GET", KEY, timedelta(seconds=2))

    url = sign("")
    assert "sig=" in url and "se=" in url
    arr = daskcog.open(url, chunks=64, sign=sign, **HTTP_OPTIONS)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    time.sleep(2.5)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    assert 2 <= len(signed) <= 3  # renewed, not once per request (3: the first compute was slow)
    assert daskcog.cache_info().opens == 1


def test_planetary_computer_provider_outlives_its_tokens_on_a_worker(
    azurite_server, azurite_container, azure_cog, token_endpoint, reference
):
    distributed = pytest.importorskip("distributed")
    proxy = FaultProxy("127.0.0.1", azurite_server.port)  # 250 ms a request: a compute > 3 s
    try:
        proxy.configure(latency_ms=250, methods=["GET"], path_pattern=KEY)
        public = {"endpoint": f"{proxy.url}/{ACCOUNT}", "client_options": {"allow_http": True}}
        factory = functools.partial(_pc_provider, token_endpoint.url, azurite_container)
        with distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
        ) as cluster, distributed.Client(cluster) as client:
            creds.register_on_cluster(client, "pc-test", provider_factory=factory)
            try:
                arr = daskcog.open(azure_cog, chunks=64, credentials="pc-test", **public)
                start = time.perf_counter()
                got = arr.data.compute()
                seconds = time.perf_counter() - start
                np.testing.assert_array_equal(got, reference[0])
                assert seconds > token_endpoint.life, seconds
                # one provider per process (the client's and the worker's), each refreshed
                # by obstore when its token ran out
                built = client.run(creds.built_providers)
                assert list(built.values()) == [["pc-test"]]
                assert token_endpoint.issued >= 3
                record_requests(
                    "azure: Planetary Computer provider, 3 s tokens",
                    proxy, compute_seconds=round(seconds, 1), tokens_issued=token_endpoint.issued,
                )
            finally:
                creds.unregister("pc-test")
    finally:
        proxy.stop()


def test_boto3_provider_by_name(s3_server, s3_cog, reference):
    boto3 = pytest.importorskip("boto3")
    from obstore.auth.boto3 import Boto3CredentialProvider

    session = boto3.Session(
        aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    creds.register("boto3-test", provider=Boto3CredentialProvider(session))
    try:
        arr = daskcog.open(
            s3_cog, chunks=64, credentials="boto3-test", endpoint=s3_server.endpoint,
            client_options={"allow_http": True},
        )
        np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    finally:
        creds.unregister("boto3-test")


def test_a_provider_that_does_not_pickle_needs_a_factory():
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("holds a session")

    with pytest.raises(TypeError, match="provider_factory"):  # refused before any client use
        creds.register_on_cluster(None, "no-pickle", provider=Unpicklable())
