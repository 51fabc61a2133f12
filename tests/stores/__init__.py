"""Tests against real object stores: the project's S3 (SeaweedFS) and HTTP servers, local files."""
