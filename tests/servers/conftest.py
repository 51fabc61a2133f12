"""Make the server fixtures available to tests/servers even if the root conftest
does not list ``tests.servers.fixtures`` in ``pytest_plugins`` (registering it
twice is a no-op, so the same session-scoped servers are shared either way)."""


def pytest_configure(config):
    config.pluginmanager.import_plugin("tests.servers.fixtures")
