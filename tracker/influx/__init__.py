"""The InfluxDB 1.x-compatible HTTP surface."""
