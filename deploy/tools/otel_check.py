#!/usr/bin/env python3
"""Offline check of an OpenTelemetry collector configuration: every receiver,
processor, exporter and extension a pipeline (or the service) names is defined,
every pipeline has receivers and exporters, and the pipeline names are known
signal types. It does not run the collector (`otelcol validate` would).

usage: otel_check.py CONFIG.yaml
"""

import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("otel: SKIP collector config check (PyYAML is not installed)")
    sys.exit(3)


def main() -> int:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    problems = []
    service = cfg.get("service") or {}
    for ext in service.get("extensions") or []:
        if ext not in (cfg.get("extensions") or {}):
            problems.append(f"service.extensions: {ext} is not defined")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines: none")
    for name, pipe in pipelines.items():
        if name.split("/", 1)[0] not in ("traces", "metrics", "logs", "profiles"):
            problems.append(f"pipeline {name}: unknown signal type")
        for kind in ("receivers", "processors", "exporters"):
            listed = pipe.get(kind) or []
            if kind != "processors" and not listed:
                problems.append(f"pipeline {name}: no {kind}")
            for component in listed:
                if component not in (cfg.get(kind) or {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
    if problems:
        print(f"otel: {path}: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"otel: {path}: {len(pipelines)} pipelines, every component defined")
    return 0


if __name__ == "__main__":
    sys.exit(main())
