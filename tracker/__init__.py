"""Tracker: a local-first, InfluxDB 1.x-compatible live-tracking server."""

__version__ = "0.1.0"
