"""crowd: self-hosted crowdsourcing with redundant assignment and Dawid-Skene aggregation."""

__version__ = "0.1.0"
