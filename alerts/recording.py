"""Recording rules that pre-aggregate what the cluster-wide dashboard panels read, per cluster.

At 10,000 nodes a panel such as "CPU busy" would sum a million node_cpu_seconds_total series on every
dashboard refresh, for every viewer; recorded once per evaluation, the panel reads one series per
cluster. Each rule records sums and counts (never averages), so a dashboard that selects several
clusters divides the sums and gets the exact mean over all of their nodes. Names follow Prometheus'
`level:metric:operations` convention; each rule carries a promtool case with the value it must record.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcwatch import metric_names as n

GROUP = "hpcwatch-aggregation"
N = 'cluster="c1",instance="n{i}:19466",job="hpcwatch-node"'  # test series of node i


@dataclass(frozen=True)
class RecordingRule:
    """One recorded series, and a promtool case: input series (1m interval), when, what it records."""

    record: str
    expr: str
    series: tuple[tuple[str, str], ...]
    eval_time: str
    expected: tuple[tuple[str, float], ...]  # (labels in braces, value)


def _nodes(metric: str, labels: str, values: str, nodes: int = 2) -> tuple[tuple[str, str], ...]:
    return tuple((f"{metric}{{{labels},{N.format(i=i)}}}", values) for i in range(1, nodes + 1))


def rules() -> list[RecordingRule]:
    cpu = n.NODE_CPU_SECONDS
    return [
        RecordingRule(
            n.REC_CPU_COUNT, f'count by (cluster) ({cpu}{{mode="idle"}})',
            _nodes(cpu, 'cpu="0",mode="idle"', "0+30x10") + _nodes(cpu, 'cpu="1",mode="idle"', "0+60x10")
            + _nodes(cpu, 'cpu="0",mode="user"', "0+30x10"),
            "10m", (('{cluster="c1"}', 4),)),
        # Idle CPU-seconds per second, summed: 1 - this / the count above is the cluster's busy share.
        RecordingRule(
            n.REC_CPU_IDLE_RATE, f'sum by (cluster) (rate({cpu}{{mode="idle"}}[5m]))',
            _nodes(cpu, 'cpu="0",mode="idle"', "0+30x10") + _nodes(cpu, 'cpu="1",mode="idle"', "0+60x10")
            + _nodes(cpu, 'cpu="0",mode="user"', "0+30x10"),
            "10m", (('{cluster="c1"}', 3.0),)),   # two nodes x (0.5 + 1.0) idle seconds per second
        RecordingRule(
            n.REC_GPU_UTILIZATION_SUM, f"sum by (cluster) ({n.GPU_UTILIZATION})",
            _nodes(n.GPU_UTILIZATION, 'gpu="0",uuid="GPU-0"', "0.25x10"),
            "5m", (('{cluster="c1"}', 0.5),)),
        RecordingRule(
            n.REC_GPU_COUNT, f"count by (cluster) ({n.GPU_UTILIZATION})",
            _nodes(n.GPU_UTILIZATION, 'gpu="0",uuid="GPU-0"', "0.25x10", nodes=3),
            "5m", (('{cluster="c1"}', 3),)),
        RecordingRule(
            n.REC_LUSTRE_CLIENT_BYTES_RATE, f"sum by (cluster, fs, operation) (rate({n.LUSTRE_CLIENT_BYTES}[5m]))",
            _nodes(n.LUSTRE_CLIENT_BYTES, 'fs="scratch",client="ffff1",operation="read"', "0+6000x10"),
            "10m", (('{cluster="c1",fs="scratch",operation="read"}', 200.0),)),
        RecordingRule(
            n.REC_LUSTRE_CLIENT_OPS_RATE, f"sum by (cluster, fs, operation) (rate({n.LUSTRE_CLIENT_OPS}[5m]))",
            _nodes(n.LUSTRE_CLIENT_OPS, 'fs="scratch",client="ffff1",operation="open"', "0+60x10"),
            "10m", (('{cluster="c1",fs="scratch",operation="open"}', 2.0),)),
        RecordingRule(
            n.REC_NFS_IO_BYTES_RATE, f"sum by (cluster, mountpoint, kind) (rate({n.NFS_IO_BYTES}[5m]))",
            _nodes(n.NFS_IO_BYTES, 'export="nfs01:/home",mountpoint="/home",kind="normal_read"', "0+600x10"),
            "10m", (('{cluster="c1",kind="normal_read",mountpoint="/home"}', 20.0),)),
    ]


def group() -> dict:
    """The rule group as Prometheus reads it."""
    return {"name": GROUP, "rules": [{"record": r.record, "expr": r.expr} for r in rules()]}


def unit_tests() -> list[dict]:
    """One promtool promql_expr_test per rule: the recorded series, by name, with its expected value."""
    return [{"name": f"{r.record} records", "interval": "1m",
             "input_series": [{"series": s, "values": v} for s, v in r.series],
             "promql_expr_test": [{"expr": r.record, "eval_time": r.eval_time,
                                   "exp_samples": [{"labels": f"{r.record}{labels}", "value": value}
                                                   for labels, value in r.expected]}]}
            for r in rules()]
