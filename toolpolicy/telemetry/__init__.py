"""Telemetry of both halves: Prometheus metrics, one log line and one audit record per request, OTel traces."""
