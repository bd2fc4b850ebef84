"""Marker registration, and byte-compiling the checkout once.  (Nothing here may import the
reactor: pytest-twisted picks it.)"""

import compileall
from pathlib import Path


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "faults: multi-host fault tests in network namespaces (root; ~4 min); "
        "select with -m faults, leave out with -m 'not faults'")
    config.addinivalue_line(
        "markers", "soak: the bounded soak test (P2PCHAT_SOAK_SECONDS, default 15)")
    # The end-to-end tests start many twistd peers from this checkout; where
    # PYTHONDONTWRITEBYTECODE is set, each would compile every module from source.
    root = Path(__file__).resolve().parent.parent
    for folder in ("p2pchat", "twisted/plugins"):
        compileall.compile_dir(str(root / folder), quiet=1)
