"""`check_store_options`: unknown keywords are a TypeError at call time, whatever the store.

Before it, a misspelt keyword reached obstore at compute time (`UnknownConfigurationKeyError`
for S3, "HTTPStore does not accept any configuration" for HTTP, "local files take no store
options" for a path), or was dropped without a word (a misspelt `retry_config` key).
"""

from __future__ import annotations

import pytest

from georeader.errors import GeoreaderError, UnknownOptionError
from georeader.io import check_store_options, stub_names


def test_misspelt_s3_option_names_the_intended_one() -> None:
    with pytest.raises(TypeError, match=r"'regoin' \(did you mean 'region'\?\).*s3://bucket/a.tif"):
        check_store_options("s3://bucket/a.tif", {"regoin": "us-west-2"})


def test_error_is_both_georeader_error_and_type_error() -> None:
    with pytest.raises(UnknownOptionError) as info:
        check_store_options("s3://bucket/a.tif", {"regoin": "us-west-2"})
    assert isinstance(info.value, GeoreaderError)
    assert isinstance(info.value, TypeError)


def test_local_path_takes_no_store_options() -> None:
    with pytest.raises(TypeError, match=r"'chunck' \(did you mean 'chunks'\?\).*local file"):
        check_store_options("/data/a.tif", {"chunck": 256}, entry_keywords=("chunks", "bands"))


def test_http_url_refuses_s3_keys() -> None:
    with pytest.raises(TypeError, match=r"'region', 'skip_signature'.*https://example.org/a.tif"):
        check_store_options("https://example.org/a.tif", {"region": "x", "skip_signature": True})


def test_every_unknown_name_is_listed_once() -> None:
    with pytest.raises(TypeError) as info:
        check_store_options("gs://bucket/a.tif", {"regoin": "x", "skip_signature": True, "foo": 1})
    message = str(info.value)
    assert "'regoin'" in message and "'foo'" in message and "skip_signature" not in message


@pytest.mark.parametrize(
    "options",
    [
        {"region": "us-west-2", "skip_signature": True},
        {"REGION": "us-west-2"},  # obstore lower-cases names
        {"aws_region": "us-west-2", "AWS_SKIP_SIGNATURE": True},  # its environment names
        {"endpoint_url": "http://localhost:9000", "token": "t"},  # aliases the stubs lack
        {"client_options": {"allow_http": True, "timeout": "5s"}},
        {"retry_config": {"max_retries": 2, "backoff": {"base": 2}}},
        {"config": {"region": "x"}, "credential_provider": None},
        {"requester_pays": True, "max_concurrency": 4, "credentials": "prod"},
    ],
)
def test_s3_accepts_obstores_names_and_aliases(options: dict) -> None:
    check_store_options("s3://bucket/a.tif", options)


def test_virtual_hosted_s3_https_url_takes_s3_options() -> None:
    check_store_options("https://bucket.s3.us-west-2.amazonaws.com/a.tif", {"region": "us-west-2"})


def test_gcs_and_azure_names() -> None:
    check_store_options("gs://bucket/a.tif", {"skip_signature": True, "google_bucket": "bucket"})
    check_store_options("az://container/a.tif", {"account_name": "acc", "use_emulator": True})
    with pytest.raises(TypeError, match=r"'account_nme' \(did you mean 'account_name'\?\)"):
        check_store_options("az://container/a.tif", {"account_nme": "acc"})
    with pytest.raises(TypeError, match="'account_name'"):
        check_store_options("gs://bucket/a.tif", {"account_name": "acc"})


def test_nested_client_and_retry_keys_are_checked() -> None:
    with pytest.raises(TypeError, match=r"client_options\['alow_http'\].*'allow_http'"):
        check_store_options("https://example.org/a.tif", {"client_options": {"alow_http": True}})
    # obstore drops an unknown retry key without a word
    with pytest.raises(TypeError, match=r"retry_config\['max_retrie'\].*'max_retries'"):
        check_store_options("s3://bucket/a.tif", {"retry_config": {"max_retrie": 1}})


def test_requester_pays_is_for_s3_only() -> None:
    check_store_options("https://example.org/a.tif", {"requester_pays": False})
    with pytest.raises(TypeError, match="requester_pays"):
        check_store_options("gs://bucket/a.tif", {"requester_pays": True})


def test_signed_urls_take_client_and_retry_options_only() -> None:
    check_store_options("s3://bucket/a.tif", {"sign": str, "client_options": {"timeout": "5s"}})
    with pytest.raises(TypeError, match="signed URL"):
        check_store_options("s3://bucket/a.tif", {"sign": str, "region": "x"})


def test_signed_query_never_shown() -> None:
    with pytest.raises(TypeError) as info:
        check_store_options("https://example.org/a.tif?sig=SECRET", {"regoin": "x"})
    assert "SECRET" not in str(info.value)


def test_names_come_from_obstores_stubs() -> None:
    assert {"region", "skip_signature", "access_key_id"} <= stub_names("s3")
    assert {"account_name", "sas_key"} <= stub_names("azure")
    assert "allow_http" in stub_names("client_options")
    assert "max_retries" in stub_names("retry_config")


def test_georeaders_reader_checks_its_options_too() -> None:
    import asyncio

    from georeader import AsyncGeoTIFFReader

    with pytest.raises(UnknownOptionError, match=r"'regoin' \(did you mean 'region'\?\)"):
        asyncio.run(AsyncGeoTIFFReader.open("s3://bucket/a.tif", regoin="us-west-2"))
