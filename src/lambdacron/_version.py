"""The package version; the index keys its cached verdicts by it (a new version may accept
what an older one refused)."""

__version__ = "0.2.0"
