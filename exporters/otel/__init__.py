"""OpenTelemetry output: job lifecycle traces and OTLP metrics, alongside the Prometheus endpoint."""
