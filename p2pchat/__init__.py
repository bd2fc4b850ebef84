"""p2pchat: a serverless, IRC-style chat for a local network."""

__version__ = "0.1.0"
