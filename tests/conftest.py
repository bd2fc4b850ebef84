"""Marker registration only.  (Nothing here may import the reactor: pytest-twisted picks it.)"""


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "faults: multi-host fault tests in network namespaces (root; ~4 min); "
        "select with -m faults, leave out with -m 'not faults'")
    config.addinivalue_line(
        "markers", "soak: the bounded soak test (P2PCHAT_SOAK_SECONDS, default 15)")
