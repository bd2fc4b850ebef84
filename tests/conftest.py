"""Marker registration, and byte-compiling the checkout once.  (Nothing here may import the
reactor: pytest-twisted picks it.)"""

from bench.procs import precompile


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "faults: multi-host fault tests in network namespaces (root; ~4 min); "
        "select with -m faults, leave out with -m 'not faults'")
    config.addinivalue_line(
        "markers", "soak: the bounded soak test (P2PCHAT_SOAK_SECONDS, default 15)")
    # The end-to-end tests start many twistd peers from this checkout, as the bench does.
    precompile()


def pytest_runtest_setup(item) -> None:
    """Unit tests time things on a fake clock: the machine's load must not stretch the
    timeouts they check (p2pchat.busy).  Peers started as processes see the real load."""
    from p2pchat import busy

    busy.source = lambda: 1.0
