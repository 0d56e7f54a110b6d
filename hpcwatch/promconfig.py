"""deploy/prometheus/prometheus.yml: the scrape, rule and alerting config every installation starts from.

One `cluster` story (docs/operator-guide.md, "The cluster label"): every target gets `cluster` and
`node` as target labels from its file_sd target group, so node-level series carry the cluster
whichever exporter serves them (hpcwatch's node agent or a plain node_exporter). The cluster
agent's scheduler families name their own cluster (slurm.conf ClusterName, or the Flux option);
`honor_labels` keeps that, while its own health series take the target label.
Targets live only in file_sd files: the tests and `hpcwatch demo` run this file byte for byte and
write nothing but those files.
"""

from __future__ import annotations

from hpcwatch.metric_names import CLUSTER_AGENT_JOB as CLUSTER_JOB
from hpcwatch.metric_names import NODE_AGENT_JOB as NODE_JOB
from hpcwatch.metric_names import NODE_EXPORTER_JOB

# file_sd globs, relative to prometheus.yml: {job: glob}; Alertmanager's under "alertmanager".
TARGET_FILES = {NODE_JOB: "targets/hpcwatch-node-*.yml", CLUSTER_JOB: "targets/hpcwatch-cluster-*.yml",
                NODE_EXPORTER_JOB: "targets/node-exporter-*.yml", "alertmanager": "targets/alertmanager-*.yml"}
SCRAPE_INTERVAL = "30s"  # the cluster agent refreshes every 30 s: scraping faster buys nothing
EVALUATION_INTERVAL = "30s"

# Scrape limits (docs/scaling.md, "Protections"). A target past sample_limit fails its whole scrape
# (`up` 0; HpcwatchTargetSeriesGrowing warns before), so each limit sits well above what the target
# legitimately sends. Node targets, from the series budget (tests/series_budget.json: 585 series on the
# 2-CPU fixture node with 4 jobs, 16 per further running job): a 256-CPU node (8 node_cpu series per CPU)
# at the default per-job cap of 128 jobs with 8 H100 GPUs (~1,200 series, their docs example) sends about
# 5,800 series; 20,000 is over three times that (tests/unit/test_series_budget.py checks).
NODE_SAMPLE_LIMIT = 20_000
# The cluster agent's series grow with queues, users and Lustre targets (top-N jobs per target), not
# per node: the bound only stops a runaway (a label that explodes) from taking Prometheus down.
CLUSTER_SAMPLE_LIMIT = 2_000_000
LABEL_LIMIT = 30  # the widest series (hpc_gpu_info) has 7 labels, plus job, instance, cluster, node
LABEL_VALUE_LENGTH_LIMIT = 1024  # our user-supplied values are cut at 128; mount points can be long
# Scrape-config fields Prometheus knows and vmagent (strict parsing, as Debian 12 ships it) refuses:
# a vmagent config built from these scrape jobs must leave them out (vmagent takes sample_limit).
PROMETHEUS_ONLY_FIELDS = ("label_limit", "label_value_length_limit")

def _limits(samples: int) -> str:
    return (f"    sample_limit: {samples}\n    label_limit: {LABEL_LIMIT}\n"
            f"    label_value_length_limit: {LABEL_VALUE_LENGTH_LIMIT}\n")


_NODE_RELABEL = """\
    relabel_configs:
      - source_labels: [__address__]    # node = the host part of the address
        regex: "(.+):\\\\d+"
        target_label: node
"""

# node_exporter's NUMA families label the NUMA node `node`, which the target label `node` renames to
# exported_node: give it a name of its own (numa_node), so dashboards can tell host and NUMA node apart.
_NUMA_RELABEL = """\
    metric_relabel_configs:
      - source_labels: [exported_node]  # node_memory_numa_*: node_exporter's NUMA node number
        regex: "(.+)"
        target_label: numa_node
      - regex: exported_node
        action: labeldrop
"""

TEMPLATE = f"""\
# Prometheus for hpcwatch: the node agents (or node_exporter), the cluster agent, the generated rules
# and Alertmanager. Copy deploy/prometheus/ to /etc/prometheus/ and list your hosts in targets/:
# this file holds no address, so it never needs editing.
#
# The cluster label. Every target takes `cluster` from its file_sd target group (and `node` from its
# address), so node metrics carry it whoever exports them. One file per cluster and job, e.g.
# targets/hpcwatch-node-mycluster.yml:
#   - targets: ["cn001:19466", "cn002:19466"]
#     labels: {{cluster: mycluster}}
# targets/hpcwatch-cluster-mycluster.yml (the same name as ClusterName in slurm.conf):
#   - targets: ["head1:19467"]
#     labels: {{cluster: mycluster}}
# targets/alertmanager-local.yml:
#   - targets: ["localhost:9093"]
# The cluster agent's scheduler families carry their own `cluster` (from slurm.conf); honor_labels
# keeps it. If the two names differ, the alert HpcSchedulerMetricsMissing says so.
#
# Limits: a node target past sample_limit ({NODE_SAMPLE_LIMIT:,} series, over three times a 256-CPU, 8-GPU node
# at the per-job cap) or a series past label_limit fails that scrape; docs/scaling.md ("Protections").
global:
  scrape_interval: {SCRAPE_INTERVAL}
  scrape_timeout: 15s
  evaluation_interval: {EVALUATION_INTERVAL}

rule_files:
  - rules/*.yml

alerting:
  alertmanagers:
    - file_sd_configs:
        - files: ["{TARGET_FILES["alertmanager"]}"]

scrape_configs:
  # The node agent on every compute node (hpcwatch serve, :19466).
  - job_name: {NODE_JOB}
{_limits(NODE_SAMPLE_LIMIT)}    file_sd_configs:
      - files: ["{TARGET_FILES[NODE_JOB]}"]
{_NODE_RELABEL}{_NUMA_RELABEL}
  # The cluster agent, one per cluster (hpcwatch serve --agent cluster, :19467).
  - job_name: {CLUSTER_JOB}
    honor_labels: true                  # scheduler families keep the cluster slurm.conf names
{_limits(CLUSTER_SAMPLE_LIMIT)}    file_sd_configs:
      - files: ["{TARGET_FILES[CLUSTER_JOB]}"]
{_NODE_RELABEL}
  # A plain node_exporter, where a site keeps it for node metrics (then run the node agent with
  # --no-collector.node): the same labels, so hpcwatch's dashboards and alerts work on it.
  - job_name: {NODE_EXPORTER_JOB}
{_limits(NODE_SAMPLE_LIMIT)}    file_sd_configs:
      - files: ["{TARGET_FILES[NODE_EXPORTER_JOB]}"]
{_NODE_RELABEL}{_NUMA_RELABEL}"""


def render(header: str) -> str:
    """The file's text behind a generated-file header."""
    return header + TEMPLATE
