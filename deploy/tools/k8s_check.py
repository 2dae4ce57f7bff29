#!/usr/bin/env python3
"""Consistency checks on rendered Kubernetes manifests (the output of
`kubectl kustomize`), offline. Schema validation is a separate step (kubernetes-validate,
when installed); this catches what a schema cannot:

  * no Secret is rendered (secrets are referenced, never inlined); the Secret names
    and keys referenced are listed;
  * every configMapRef / configMapKeyRef names a rendered ConfigMap;
  * Services, PodDisruptionBudgets and NetworkPolicies select at least one workload,
    and a Service's targetPort exists on the selected containers;
  * HPAs and Ingresses point at rendered Deployments / Services and ports;
  * every container runs non-root, with a read-only root filesystem, no privilege
    escalation, ALL capabilities dropped, and resource requests and limits;
  * Deployment containers have readiness and liveness probes whose ports exist;
  * terminationGracePeriodSeconds covers the preStop sleep plus the service's own
    drain (PAYMENTS_DRAIN_TIMEOUT_SECS, INGESTOR_SHUTDOWN_GRACE_SECS);
  * the admin port (a container port named `admin`: PaymentsAdmin, reflection) is
    behind no Ingress and open to no other namespace, and payments-api's Ingress
    routes only /payments.v1.PaymentsService/;
  * in an overlay (a namespaced render), the migration Job's name ends with the
    payments-api image tag, so each release's Job is a new one.

usage: k8s_check.py RENDERED.yaml...
"""

from __future__ import annotations

import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("k8s: SKIP consistency check (PyYAML is not installed)")
    sys.exit(3)

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Which drain setting bounds each container's shutdown, by container name.
DRAIN_SETTING = {
    "payments-api": "PAYMENTS_DRAIN_TIMEOUT_SECS",
    "webhook-ingestor": "INGESTOR_SHUTDOWN_GRACE_SECS",
}


def matches(selector: dict, labels: dict) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check(docs: list[dict], source: str) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def ns(d):
        return d["metadata"].get("namespace", "")

    def ident(d):
        return f"{d['kind']}/{d['metadata']['name']}"

    workloads = [d for d in docs if d["kind"] in WORKLOADS]

    def pod_spec(w):
        return w["spec"]["template"]["spec"]

    def pod_labels(w):
        return w["spec"]["template"]["metadata"].get("labels") or {}

    configmaps = {(ns(c), c["metadata"]["name"]): c.get("data") or {} for c in by_kind.get("ConfigMap", [])}

    for s in by_kind.get("Secret", []):
        problems.append(f"{ident(s)}: a Secret is rendered; secrets must be created out of band")

    secret_refs: dict[str, set[str]] = {}
    for w in workloads:
        spec = pod_spec(w)
        where = ident(w)
        pod_sc = spec.get("securityContext") or {}
        containers = (spec.get("initContainers") or []) + spec["containers"]
        for c in containers:
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext") or {}
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{cw}: runAsNonRoot is not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cw}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cw}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{cw}: capabilities.drop lacks ALL")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        problems.append(f"{cw}: resources.{part}.{r} missing")
            env_values: dict[str, str] = {}
            for ef in c.get("envFrom") or []:
                ref = ef.get("configMapRef")
                if ref:
                    data = configmaps.get((ns(w), ref["name"]))
                    if data is None and not ref.get("optional"):
                        problems.append(f"{cw}: configMapRef {ref['name']} is not rendered")
                    env_values.update(data or {})
                if ef.get("secretRef"):
                    secret_refs.setdefault(ef["secretRef"]["name"], set()).add("*")
            for e in c.get("env") or []:
                if "value" in e:
                    env_values[e["name"]] = e["value"]
                vf = e.get("valueFrom") or {}
                if "secretKeyRef" in vf:
                    ref = vf["secretKeyRef"]
                    secret_refs.setdefault(ref["name"], set()).add(ref["key"])
                if "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    data = configmaps.get((ns(w), ref["name"]))
                    if data is None or ref["key"] not in data:
                        problems.append(f"{cw}: configMapKeyRef {ref['name']}/{ref['key']} is not rendered")
            port_names = {p.get("name") for p in c.get("ports") or []}
            port_numbers = {p["containerPort"] for p in c.get("ports") or []}
            probes = {k: c.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe") if c.get(k)}
            if w["kind"] == "Deployment":
                for needed in ("readinessProbe", "livenessProbe"):
                    if needed not in probes:
                        problems.append(f"{cw}: no {needed}")
            for kind, probe in probes.items():
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe:
                        port = probe[handler]["port"]
                        ok = port in port_names if isinstance(port, str) else port in port_numbers
                        if not ok:
                            problems.append(f"{cw}: {kind} port {port!r} is not a container port")
            if w["kind"] != "Job":
                grace = spec.get("terminationGracePeriodSeconds", 30)
                pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
                setting = DRAIN_SETTING.get(c["name"])
                if setting:
                    if setting not in env_values:
                        problems.append(f"{cw}: {setting} is not set explicitly (its drain must fit the grace period)")
                    else:
                        drain = int(env_values[setting])
                        if grace < pre + drain + 1:
                            problems.append(
                                f"{cw}: terminationGracePeriodSeconds {grace} < preStop {pre} + {setting} {drain} + 1"
                            )

    def selected(namespace, selector_labels=None, selector=None):
        out = []
        for w in workloads:
            if ns(w) != namespace:
                continue
            labels = pod_labels(w)
            if selector_labels is not None and all(labels.get(k) == v for k, v in selector_labels.items()):
                out.append(w)
            elif selector is not None and matches(selector, labels):
                out.append(w)
        return out

    services = {(ns(s), s["metadata"]["name"]): s for s in by_kind.get("Service", [])}
    for s in services.values():
        sel = s["spec"].get("selector")
        if not sel:
            continue
        chosen = selected(ns(s), selector_labels=sel)
        if not chosen:
            problems.append(f"{ident(s)}: selector {sel} matches no workload")
            continue
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            for w in chosen:
                ports = [cp for c in pod_spec(w)["containers"] for cp in c.get("ports") or []]
                ok = any(cp.get("name") == target for cp in ports) if isinstance(target, str) else any(
                    cp["containerPort"] == target for cp in ports
                )
                if not ok:
                    problems.append(f"{ident(s)}: targetPort {target!r} is not a port of {ident(w)}")

    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not selected(ns(pdb), selector=pdb["spec"]["selector"]):
            problems.append(f"{ident(pdb)}: selects no workload")
    for np in by_kind.get("NetworkPolicy", []):
        sel = np["spec"]["podSelector"]
        if sel and not selected(ns(np), selector=sel):
            problems.append(f"{ident(np)}: podSelector selects no workload")
    deployments = {(ns(d), d["metadata"]["name"]) for d in by_kind.get("Deployment", [])}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] != "Deployment" or (ns(hpa), ref["name"]) not in deployments:
            problems.append(f"{ident(hpa)}: scaleTargetRef {ref['kind']}/{ref['name']} is not rendered")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"{ident(hpa)}: minReplicas > maxReplicas")
    for ing in by_kind.get("Ingress", []):
        for rule in ing["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = path["backend"]["service"]
                svc = services.get((ns(ing), backend["name"]))
                if not svc:
                    problems.append(f"{ident(ing)}: backend Service {backend['name']} is not rendered")
                    continue
                port = backend["port"]
                names = {p.get("name") for p in svc["spec"]["ports"]}
                numbers = {p["port"] for p in svc["spec"]["ports"]}
                if ("name" in port and port["name"] not in names) or ("number" in port and port["number"] not in numbers):
                    problems.append(f"{ident(ing)}: backend port {port} is not a port of Service {backend['name']}")

    problems += check_public_surface(by_kind, services, ns, ident)

    refs = ", ".join(f"{name} [{', '.join(sorted(keys))}]" for name, keys in sorted(secret_refs.items()))
    if problems:
        print(f"k8s: {source}: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
    else:
        print(f"k8s: {source}: consistency checks passed ({len(docs)} objects); secrets referenced: {refs or 'none'}")
    return problems


def admin_ports(workload: dict) -> set:
    """The names and numbers of the container ports named `admin`."""
    ports = set()
    for c in workload["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == "admin":
                ports |= {"admin", p["containerPort"]}
    return ports


def check_public_surface(by_kind, services, ns, ident) -> list[str]:
    problems = []
    workloads = {(ns(w), w["metadata"]["name"]): w for w in by_kind.get("Deployment", [])}
    admin_of_service = {}
    for key, svc in services.items():
        selector = svc["spec"].get("selector") or {}
        for w in workloads.values():
            labels = w["spec"]["template"]["metadata"].get("labels") or {}
            if ns(w) == key[0] and selector and all(labels.get(k) == v for k, v in selector.items()):
                admin = admin_ports(w)
                admin_of_service[key] = {
                    p.get("name") for p in svc["spec"]["ports"] if p.get("targetPort") in admin or p["port"] in admin
                } | {p["port"] for p in svc["spec"]["ports"] if p.get("targetPort") in admin or p["port"] in admin}
    for ing in by_kind.get("Ingress", []):
        for rule in ing["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = path["backend"]["service"]
                port = backend["port"].get("name", backend["port"].get("number"))
                if port in admin_of_service.get((ns(ing), backend["name"]), set()):
                    problems.append(f"{ident(ing)}: routes {path['path']} to the admin port of {backend['name']}")
                if backend["name"] == "payments-api" and path["path"] != "/payments.v1.PaymentsService/":
                    problems.append(f"{ident(ing)}: payments-api is published at {path['path']}, not only /payments.v1.PaymentsService/")
    for np in by_kind.get("NetworkPolicy", []):
        selected = [w for w in workloads.values() if ns(w) == ns(np) and all(
            (w["spec"]["template"]["metadata"].get("labels") or {}).get(k) == v
            for k, v in (np["spec"]["podSelector"].get("matchLabels") or {}).items())]
        admin = set().union(*(admin_ports(w) for w in selected)) if selected else set()
        for rule in np["spec"].get("ingress") or []:
            outside = any("namespaceSelector" in peer or "ipBlock" in peer for peer in rule.get("from") or [{"ipBlock": {}}])
            ports = {p.get("port") for p in rule.get("ports") or []} or admin
            if outside and admin & ports:
                problems.append(f"{ident(np)}: the admin port is open to other namespaces or addresses")
    for job in by_kind.get("Job", []):
        labels = job["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") != "migration" or not ns(job):
            continue
        api = workloads.get((ns(job), "payments-api"))
        images = [c["image"] for c in api["spec"]["template"]["spec"]["containers"]] if api else []
        tags = [i.rsplit(":", 1)[1] for i in images if ":" in i.rsplit("/", 1)[-1]]
        if not tags or not job["metadata"]["name"].endswith("-" + tags[0]):
            problems.append(f"{ident(job)}: the migration Job's name does not carry the release's tag {tags}")
    return problems


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    failed = False
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        failed |= bool(check(docs, path))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
