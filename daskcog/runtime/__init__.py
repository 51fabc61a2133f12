"""Per-process machinery every daskcog graph runs on: settings, the I/O loop, the reader
cache, read-ahead, failure records, credentials, and the registry of process state."""
