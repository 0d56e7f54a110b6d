"""Grafana provisioning files for the dashboards: the Prometheus data source and the dashboard provider.

The data source's `timeInterval` is the scrape interval of the shipped prometheus.yml: Grafana derives
`$__interval`'s floor and `$__rate_interval` (max of interval + scrape interval, 4 x scrape interval)
from it, so a rate() in a panel always spans enough samples.
"""

from __future__ import annotations

from hpcwatch.promconfig import SCRAPE_INTERVAL

DATASOURCE_FILE = "provisioning/datasources/hpcwatch.yml"
DASHBOARDS_FILE = "provisioning/dashboards/hpcwatch.yml"
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/hpcwatch"  # where deploy/grafana/dashboards/*.json go

DATASOURCE = f"""\
# Copy to /etc/grafana/provisioning/datasources/; set url to your Prometheus.
apiVersion: 1
datasources:
  - name: Prometheus
    type: prometheus
    access: proxy
    url: http://localhost:9090
    isDefault: true
    jsonData:
      timeInterval: {SCRAPE_INTERVAL}          # the scrape_interval of deploy/prometheus/prometheus.yml
"""

DASHBOARDS = f"""\
# Copy to /etc/grafana/provisioning/dashboards/ and deploy/grafana/dashboards/*.json to {DASHBOARDS_PATH}/.
apiVersion: 1
providers:
  - name: hpcwatch
    folder: hpcwatch
    type: file
    disableDeletion: true
    allowUiUpdates: false                # the JSON is generated: change the code, not the dashboard
    options:
      path: {DASHBOARDS_PATH}
"""


def files(header: str) -> dict[str, str]:
    """{path relative to deploy/grafana/: text}."""
    return {DATASOURCE_FILE: header + DATASOURCE, DASHBOARDS_FILE: header + DASHBOARDS}
