"""deploy/scale/: two reference topologies past one Prometheus, both storing in VictoriaMetrics, rules on vmalert.

(a) Prometheus sharded by `hashmod` of the target address over SHARDS scrapers, each scraping its share
    and remote-writing everything to VictoriaMetrics; (b) vmagent in cluster mode
    (-promscrape.cluster.membersCount/memberNum), which shards the same way by itself. Both start from
    the scrape configs of the shipped prometheus.yml (hpcwatch.promconfig: the relabelling that gives
    every target `cluster` and `node`, and whatever limits it sets), so a change there reaches here.
    vmalert evaluates deploy/prometheus/rules/*.yml (infrastructure and SLO rules) on VictoriaMetrics
    and writes recording rules and alert state back. Measurements: docs/scaling.md.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

SHARDS = 2  # the shipped example; docs/scaling.md says how many a fleet needs and how to make more
SCALE_DIR = "scale"
VM_URL = "http://127.0.0.1:8428"  # the systemd examples run everything on one storage host
ALERTMANAGER_URL = "http://127.0.0.1:9093"
VMAGENT_CONFIG = f"{SCALE_DIR}/vmagent/scrape.yml"


def shard_path(shard: int, shards: int = SHARDS) -> str:
    return f"{SCALE_DIR}/prometheus-sharded/shard-{shard}-of-{shards}.yml"


def _shipped() -> dict[str, Any]:
    from hpcwatch import promconfig
    return yaml.safe_load(promconfig.render(""))


def hashmod_relabel(shard: int, shards: int) -> list[dict[str, Any]]:
    """Keep the targets whose address hashes to `shard` (Prometheus' hashmod: md5 of the address, mod N)."""
    return [{"source_labels": ["__address__"], "modulus": shards, "target_label": "__tmp_hash",
             "action": "hashmod"},
            {"source_labels": ["__tmp_hash"], "regex": str(shard), "action": "keep"}]


def prometheus_shard(shard: int, shards: int = SHARDS, vm_url: str = VM_URL) -> dict[str, Any]:
    """Scraper `shard` of `shards`: the shipped scrape configs, its hashmod share, remote_write, no rules."""
    cfg = _shipped()
    cfg.pop("rule_files", None)  # rules run on vmalert, over every shard's data
    cfg.pop("alerting", None)
    for job in cfg["scrape_configs"]:
        job["relabel_configs"] = hashmod_relabel(shard, shards) + list(job.get("relabel_configs") or [])
    cfg["remote_write"] = [{"url": f"{vm_url}/api/v1/write",
                            # A shard holds only a few hours for its own queries; VictoriaMetrics keeps history.
                            "queue_config": {"max_samples_per_send": 10000, "capacity": 30000,
                                             "max_shards": 20}}]
    return cfg


def vmagent_scrape() -> dict[str, Any]:
    """vmagent's -promscrape.config: the shipped scrape configs (vmagent shards by itself), less the
    fields only Prometheus knows (promconfig.PROMETHEUS_ONLY_FIELDS; vmagent parses strictly)."""
    from hpcwatch.promconfig import PROMETHEUS_ONLY_FIELDS

    cfg = _shipped()
    jobs = [{k: v for k, v in job.items() if k not in PROMETHEUS_ONLY_FIELDS}
            for job in copy.deepcopy(cfg["scrape_configs"])]
    return {"global": {k: v for k, v in cfg["global"].items() if k != "evaluation_interval"}, "scrape_configs": jobs}


def _yaml(header: str, what: str, doc: dict[str, Any]) -> str:
    note = "".join(f"# {line}\n" for line in what.splitlines())
    return header + note + yaml.safe_dump(doc, sort_keys=False, width=100)


SHARD_NOTE = """\
Prometheus scraper {shard} of {shards} (sharded by hashmod of the target address). Run one per file with
  prometheus --config.file=/etc/prometheus/{name} --storage.tsdb.retention.time=6h
targets/ as for deploy/prometheus/prometheus.yml; every shard reads the same target files and keeps
its share. Rules and alerts run on vmalert (deploy/scale/systemd/hpcwatch-vmalert.service)."""

VMAGENT_NOTE = """\
vmagent scrape config: the shipped scrape configs; each member of the vmagent cluster scrapes its
share (-promscrape.cluster.membersCount/-promscrape.cluster.memberNum, see
deploy/scale/systemd/hpcwatch-vmagent@.service) and remote-writes to VictoriaMetrics."""


def _unit(description: str, exec_start: str, extra: str = "") -> str:
    return f"""[Unit]
Description={description}
Documentation=https://github.com/hpcwatch/hpcwatch/blob/main/docs/scaling.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=5s
LimitNOFILE=65536
{extra}
[Install]
WantedBy=multi-user.target
"""


def systemd_units(header: str) -> dict[str, str]:
    """Template units: a Prometheus shard and a vmagent member per instance number, one vmalert."""
    rules = "/etc/prometheus/rules/*.yml"
    units = {
        "hpcwatch-prometheus-shard@.service": _unit(
            "hpcwatch Prometheus scraper shard %i (hashmod)",
            f"/usr/bin/prometheus --config.file=/etc/prometheus/shard-%i-of-{SHARDS}.yml "
            "--storage.tsdb.path=/var/lib/prometheus/shard-%i --storage.tsdb.retention.time=6h "
            "--web.listen-address=:909%i",
            "User=prometheus\nStateDirectory=prometheus/shard-%i\n"),
        "hpcwatch-vmagent@.service": _unit(
            "hpcwatch vmagent cluster member %i",
            "/usr/bin/vmagent -promscrape.config=/etc/victoria-metrics/vmagent-scrape.yml "
            f"-promscrape.cluster.membersCount={SHARDS} -promscrape.cluster.memberNum=%i "
            f"-remoteWrite.url={VM_URL}/api/v1/write -remoteWrite.tmpDataPath=/var/lib/vmagent-%i "
            "-httpListenAddr=:843%i",
            "DynamicUser=yes\nStateDirectory=vmagent-%i\n"),
        "hpcwatch-vmalert.service": _unit(
            "hpcwatch rules on VictoriaMetrics (vmalert)",
            f"/usr/bin/vmalert -rule={rules} -datasource.url={VM_URL} -remoteWrite.url={VM_URL} "
            f"-remoteRead.url={VM_URL} -notifier.url={ALERTMANAGER_URL} -evaluationInterval=30s "
            "-httpListenAddr=:8880",
            "DynamicUser=yes\n"),
    }
    return {f"{SCALE_DIR}/systemd/{name}": header + text for name, text in units.items()}


def kubernetes_overlay(header: str, rule_files: dict[str, str]) -> dict[str, str]:
    """A kustomize overlay: VictoriaMetrics, a vmagent StatefulSet in cluster mode, vmalert on the shipped rules."""
    base = f"{SCALE_DIR}/kubernetes"
    ns = "hpcwatch"
    scrape = {"global": {"scrape_interval": "30s", "scrape_timeout": "15s"},
              "scrape_configs": [
                  {"job_name": job, "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [ns]}}],
                   "relabel_configs": [
                       {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                        "regex": job, "action": "keep"},
                       {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
                       {"target_label": "cluster", "replacement": "mycluster"}],
                   **({"honor_labels": True} if job == "hpcwatch-cluster" else {})}
                  for job in ("hpcwatch-node", "hpcwatch-cluster")]}
    vmagent = {"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "vmagent", "namespace": ns},
               "spec": {"serviceName": "vmagent", "replicas": SHARDS,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": "vmagent"}},
                        "template": {"metadata": {"labels": {"app.kubernetes.io/name": "vmagent"}},
                                     "spec": {"serviceAccountName": "vmagent", "containers": [{
                                         "name": "vmagent", "image": "victoriametrics/vmagent:v1.93.16",
                                         "args": ["-promscrape.config=/config/scrape.yml",
                                                  f"-promscrape.cluster.membersCount={SHARDS}",
                                                  "-promscrape.cluster.memberNum=$(POD_NAME)",
                                                  "-remoteWrite.url=http://victoria-metrics:8428/api/v1/write",
                                                  "-remoteWrite.tmpDataPath=/tmp/vmagent"],
                                         "env": [{"name": "POD_NAME", "valueFrom": {
                                             "fieldRef": {"fieldPath": "metadata.name"}}}],
                                         "ports": [{"name": "http", "containerPort": 8429}],
                                         "volumeMounts": [{"name": "config", "mountPath": "/config"}]}],
                                         "volumes": [{"name": "config",
                                                      "configMap": {"name": "vmagent-scrape"}}]}}}}
    vm = {"apiVersion": "apps/v1", "kind": "StatefulSet",
          "metadata": {"name": "victoria-metrics", "namespace": ns},
          "spec": {"serviceName": "victoria-metrics", "replicas": 1,
                   "selector": {"matchLabels": {"app.kubernetes.io/name": "victoria-metrics"}},
                   "template": {"metadata": {"labels": {"app.kubernetes.io/name": "victoria-metrics"}},
                                "spec": {"containers": [{
                                    "name": "victoria-metrics", "image": "victoriametrics/victoria-metrics:v1.93.16",
                                    "args": ["-storageDataPath=/storage", "-retentionPeriod=13"],
                                    "ports": [{"name": "http", "containerPort": 8428}],
                                    "volumeMounts": [{"name": "storage", "mountPath": "/storage"}]}]}},
                   "volumeClaimTemplates": [{"metadata": {"name": "storage"}, "spec": {
                       "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}}}]}}
    vmalert = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vmalert", "namespace": ns},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "vmalert"}},
                        "template": {"metadata": {"labels": {"app.kubernetes.io/name": "vmalert"}},
                                     "spec": {"containers": [{
                                         "name": "vmalert", "image": "victoriametrics/vmalert:v1.93.16",
                                         "args": ["-rule=/rules/*.yml",
                                                  "-datasource.url=http://victoria-metrics:8428",
                                                  "-remoteWrite.url=http://victoria-metrics:8428",
                                                  "-remoteRead.url=http://victoria-metrics:8428",
                                                  "-notifier.url=http://alertmanager:9093",
                                                  "-evaluationInterval=30s"],
                                         "volumeMounts": [{"name": "rules", "mountPath": "/rules"}]}],
                                         "volumes": [{"name": "rules", "configMap": {"name": "hpcwatch-rules"}}]}}}}
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                 "spec": {"selector": {"app.kubernetes.io/name": name},
                          "ports": [{"name": "http", "port": port, "targetPort": port}],
                          **({"clusterIP": "None"} if name == "vmagent" else {})}}
                for name, port in (("victoria-metrics", 8428), ("vmagent", 8429))]
    rbac = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vmagent", "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "vmagent", "namespace": ns},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "vmagent", "namespace": ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vmagent"},
             "subjects": [{"kind": "ServiceAccount", "name": "vmagent", "namespace": ns}]}]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../../kubernetes/base", "victoria-metrics.yaml", "vmagent.yaml", "vmalert.yaml",
                      "hpcwatch-rules.yaml"],
        "configMapGenerator": [{"name": "vmagent-scrape", "namespace": ns, "files": ["scrape.yml"]}]}
    rules_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hpcwatch-rules", "namespace": ns},
                 "data": dict(sorted(rule_files.items()))}

    def dump(*docs: dict[str, Any]) -> str:
        return yaml.safe_dump_all(docs, sort_keys=False, width=100)

    return {f"{base}/kustomization.yaml": header + "# kubectl apply -k deploy/scale/kubernetes (set `cluster` in "
            "scrape.yml)\n" + dump(kustomization),
            f"{base}/scrape.yml": header + dump(scrape),
            f"{base}/vmagent.yaml": header + dump(vmagent, *rbac, services[1]),
            f"{base}/victoria-metrics.yaml": header + dump(vm, services[0]),
            f"{base}/vmalert.yaml": header + dump(vmalert),
            f"{base}/hpcwatch-rules.yaml": header + "# deploy/prometheus/rules/*.yml for vmalert\n" + dump(rules_map)}


def files(header: str, rule_files: dict[str, str]) -> dict[str, str]:
    """{path relative to deploy/: text} of both topologies; `rule_files` {file name: text} go to vmalert."""
    out = {shard_path(i): _yaml(header, SHARD_NOTE.format(shard=i, shards=SHARDS,
                                                          name=shard_path(i).rsplit("/", 1)[1]),
                                prometheus_shard(i))
           for i in range(SHARDS)}
    out[VMAGENT_CONFIG] = _yaml(header, VMAGENT_NOTE, vmagent_scrape())
    out.update(systemd_units(header))
    out.update(kubernetes_overlay(header, rule_files))
    return out
