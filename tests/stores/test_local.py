"""Local files as file:// URLs and plain paths (str, pathlib, relative), against GDAL."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import daskcog
from georeader import InvalidURLError, ObjectNotFoundError
from tests.stores.helpers import LEVELS, elapsed, read_async, read_dask


def _forms(path: Path) -> dict[str, object]:
    return {"file-url": f"file://{path}", "str-path": str(path), "pathlib": path}


@pytest.mark.parametrize("form", ["file-url", "str-path", "pathlib"])
@pytest.mark.parametrize("level", LEVELS)
def test_async_reader_matches_gdal(cog_path, reference, form, level):
    got = read_async(_forms(cog_path)[form], overview_level=level)
    np.testing.assert_array_equal(got, reference[level])


@pytest.mark.parametrize("form", ["file-url", "str-path", "pathlib"])
def test_daskcog_threads_matches_gdal(cog_path, reference, form):
    np.testing.assert_array_equal(read_dask(_forms(cog_path)[form], chunks=64), reference[0])
    np.testing.assert_array_equal(
        read_dask(_forms(cog_path)[form], chunks="auto", overview_level=1), reference[1]
    )


def test_relative_path_is_made_absolute(cog_path, reference, monkeypatch):
    monkeypatch.chdir(cog_path.parent)
    arr = daskcog.open(cog_path.name, chunks=64)
    assert arr.source.url == f"file://{cog_path}"  # absolute: works after unpickling elsewhere
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])


def test_striped_file_local_is_exact(striped_path, striped_reference):
    np.testing.assert_array_equal(read_async(striped_path), striped_reference)
    np.testing.assert_array_equal(read_dask(striped_path, chunks=64), striped_reference)


@pytest.mark.parametrize("form", ["file-url", "str-path"])
def test_missing_file_is_object_not_found(tmp_path, form):
    path = tmp_path / "absent.tif"
    target = _forms(path)[form]
    exc, seconds = elapsed(lambda: read_async(target))
    assert isinstance(exc, ObjectNotFoundError) and isinstance(exc, FileNotFoundError), repr(exc)
    assert str(path) in str(exc)
    assert seconds < 2
    with pytest.raises(ObjectNotFoundError):
        daskcog.open(target)


def test_local_files_take_no_store_options(cog_path):
    with pytest.raises(InvalidURLError, match="no store options"):
        read_async(cog_path, region="us-east-1")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_access_denied(cog_path, tmp_path):
    from georeader import AccessDeniedError

    path = tmp_path / "locked.tif"
    path.write_bytes(cog_path.read_bytes())
    path.chmod(0)
    with pytest.raises(AccessDeniedError):
        read_async(path)
