"""Benchmarks of p2pchat (issue 8): mesh formation, fan-out against a bare Twisted relay,
the cost of an idle peer, and a profile of the hot path.  Run ``python -m bench --help``."""
