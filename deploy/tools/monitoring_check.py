#!/usr/bin/env python3
"""Consistency of the monitoring files, offline:

  * k8s/components/monitoring/prometheusrule.yaml carries exactly the groups of
    prometheus/alerts.yml (`--write` regenerates it from them);
  * every alert has a severity (critical or warning), a summary, a description and a
    runbook_url pointing at its own section of RUNBOOK.md, which exists;
  * every metric the alerts and the Grafana dashboard query is in the metrics table of
    the root README.md, and every metric of that table is registered in the sources
    (its name, less the `payments_` prefix the registry adds and the `_total` the
    encoder adds, is a string literal in telemetry/, payments-api/ or webhook-ingestor/);
  * the dashboard is valid JSON, every query panel uses the `datasource` variable;
  * in each rendered manifest given, a ServiceMonitor selects a rendered Service that
    has the port it scrapes, and a rendered PrometheusRule matches alerts.yml.

usage: monitoring_check.py ROOT [RENDERED.yaml...]
       monitoring_check.py ROOT --write
"""

from __future__ import annotations

import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("monitoring: SKIP (PyYAML is not installed)")
    sys.exit(3)

RULES = "deploy/prometheus/alerts.yml"
PROMETHEUS_RULE = "deploy/k8s/components/monitoring/prometheusrule.yaml"
DASHBOARD = "deploy/k8s/components/monitoring/grafana-dashboard-payments.json"
RUNBOOK = "deploy/RUNBOOK.md"
README = "README.md"
SOURCES = ["telemetry/src", "payments-api/src", "webhook-ingestor/src"]
METRIC = re.compile(r"\b(?:payments|process)_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def read(root: str, path: str) -> str:
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


def prometheus_rule(groups: list) -> str:
    header = (
        "# Generated from deploy/prometheus/alerts.yml by\n"
        "# `python3 deploy/tools/monitoring_check.py . --write`: edit that file, not this one.\n"
    )
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "payments", "labels": {"app.kubernetes.io/part-of": "payments"}},
        "spec": {"groups": groups},
    }
    return header + yaml.safe_dump(doc, sort_keys=False, width=1000, allow_unicode=True)


def check_alerts(groups: list, runbook: str) -> list[str]:
    problems = []
    headings = set(re.findall(r"^### (\w+)\s*$", runbook, re.M))
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            where = f"alert {name}"
            if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
                problems.append(f"{where}: severity must be critical or warning")
            notes = rule.get("annotations", {})
            for key in ("summary", "description"):
                if not notes.get(key):
                    problems.append(f"{where}: no {key}")
            if notes.get("runbook_url") != f"{RUNBOOK}#{name.lower()}":
                problems.append(f"{where}: runbook_url must be {RUNBOOK}#{name.lower()}")
            if name not in headings:
                problems.append(f"{where}: no '### {name}' section in {RUNBOOK}")
    return problems


def catalogue(readme: str) -> set[str]:
    return set(re.findall(r"^\| `((?:payments|process)_[a-z0-9_]+)`", readme, re.M))


def base_name(metric: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix) and not metric.endswith("_total" + suffix):
            return metric[: -len(suffix)]
    return metric


def registered(root: str) -> str:
    text = []
    for src in SOURCES:
        for dirpath, _, files in os.walk(os.path.join(root, src)):
            text += [read(dirpath, f) for f in files if f.endswith(".rs")]
    return "\n".join(text)


def check_metrics(root: str, queries: dict[str, str], readme: str) -> list[str]:
    problems = []
    known = catalogue(readme)
    if not known:
        return [f"{README}: no metrics table (rows starting with | `payments_…`)"]
    for where, query in queries.items():
        for metric in set(METRIC.findall(query)):
            name = base_name(metric)
            if name not in known:
                problems.append(f"{where}: {metric} is not in the metrics table of {README}")
    sources = registered(root)
    for metric in sorted(known):
        name = metric.removeprefix("payments_").removesuffix("_total")
        if f'"{name}"' not in sources:
            problems.append(f"{README}: {metric} is not registered in {', '.join(SOURCES)}")
    return problems


def dashboard_queries(dashboard: dict, problems: list[str]) -> dict[str, str]:
    queries = {}
    if not dashboard.get("uid"):
        problems.append(f"{DASHBOARD}: no uid")
    variables = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
    if "datasource" not in variables:
        problems.append(f"{DASHBOARD}: no `datasource` variable")
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{DASHBOARD}: panel {title!r} does not use the datasource variable")
        if not panel.get("targets"):
            problems.append(f"{DASHBOARD}: panel {title!r} has no query")
        for target in panel.get("targets", []):
            queries[f"dashboard panel {title!r}"] = queries.get(f"dashboard panel {title!r}", "") + " " + target.get("expr", "")
    return queries


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def check_rendered(path: str, groups: list) -> list[str]:
    problems = []
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        name = f"{os.path.basename(path)}: ServiceMonitor {monitor['metadata']['name']}"
        selected = [s for s in services if matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        if not selected:
            problems.append(f"{name}: selects no Service")
        for endpoint in monitor["spec"].get("endpoints", []):
            for service in selected:
                ports = {p.get("name") for p in service["spec"].get("ports", [])}
                if endpoint.get("port") not in ports:
                    problems.append(f"{name}: Service {service['metadata']['name']} has no port {endpoint.get('port')!r}")
    for rule in (d for d in docs if d["kind"] == "PrometheusRule"):
        if rule["spec"].get("groups") != groups:
            problems.append(f"{os.path.basename(path)}: PrometheusRule differs from {RULES}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = argv[1]
    groups = yaml.safe_load(read(root, RULES))["groups"]
    generated = prometheus_rule(groups)
    if argv[2:] == ["--write"]:
        with open(os.path.join(root, PROMETHEUS_RULE), "w", encoding="utf-8") as f:
            f.write(generated)
        print(f"monitoring: wrote {PROMETHEUS_RULE}")
        return 0
    problems = []
    if not os.path.exists(os.path.join(root, PROMETHEUS_RULE)) or read(root, PROMETHEUS_RULE) != generated:
        problems.append(f"{PROMETHEUS_RULE} is not generated from {RULES}: run `python3 deploy/tools/monitoring_check.py . --write`")
    problems += check_alerts(groups, read(root, RUNBOOK))
    try:
        dashboard = json.loads(read(root, DASHBOARD))
    except json.JSONDecodeError as e:
        dashboard = {}
        problems.append(f"{DASHBOARD}: {e}")
    queries = dashboard_queries(dashboard, problems)
    for group in groups:
        for rule in group["rules"]:
            queries[f"alert {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    problems += check_metrics(root, queries, read(root, README))
    for path in argv[2:]:
        problems += check_rendered(path, groups)
    for p in problems:
        print(f"monitoring: {p}")
    alerts = sum(1 for g in groups for r in g["rules"] if "alert" in r)
    if not problems:
        print(f"monitoring: {alerts} alerts with runbook sections, rules in sync, {len(queries)} queries over documented, registered metrics")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
