#!/usr/bin/env python3
"""Checks the environment variables the deployment files give each binary against
the binaries' source, so a renamed or removed setting is caught here rather than
silently ignored in production.

For every container of payments-api (and its migration), webhook-ingestor and
stripe-sim in the Compose file and in each rendered kustomize overlay:
  * every variable it is given must be read by that binary: a string literal
    "NAME" in the crate's (or payments-core's) non-test sources; for stripe-sim,
    STRIPE_SIM_<FLAG> where <flag> is one of its flags;
  * variables in a ConfigMap shared through envFrom must be read by at least one
    of the binaries that load it;
  * every variable the binary requires (`.secret("X")`, `.required("X")`,
    `.secret_list("X")` in its config.rs) must be given;
  * RUST_LOG needs the crate to use tracing's EnvFilter from the environment;
    OTEL_* variables are standard OpenTelemetry settings: when the binary's crate
    depends neither on payments-telemetry nor on an opentelemetry crate they are
    reported as having no effect (a warning, not a failure).

usage: env_check.py REPO_ROOT COMPOSE_FILE [RENDERED_K8S.yaml...]
"""

from __future__ import annotations

import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("env: SKIP variable check (PyYAML is not installed)")
    sys.exit(3)

CRATE_SOURCES = {
    "payments-api": ["payments-api/src", "payments-core/src"],
    "webhook-ingestor": ["webhook-ingestor/src", "payments-core/src"],
    "stripe-sim": ["stripe-sim/src"],
}
CONFIG_FILES = {
    "payments-api": "payments-api/src/config.rs",
    "webhook-ingestor": "webhook-ingestor/src/config.rs",
}
REQUIRED_CALL = re.compile(r'\.(?:secret|required|secret_list)\(\s*"([A-Z][A-Z0-9_]*)"\s*\)')
# Either of these satisfies payments-api's token verification key.
ONE_OF = {"payments-api": [("PAYMENTS_JWT_SECRET", "PAYMENTS_JWT_PUBLIC_KEY_FILE", "PAYMENTS_JWT_JWKS_URL")]}
# `<binary> migrate` reads DATABASE_URL and nothing else.
MIGRATE_REQUIRES = ["DATABASE_URL"]


class Sources:
    def __init__(self, root: str):
        self.root = root
        self.text: dict[str, str] = {}
        for crate, dirs in CRATE_SOURCES.items():
            parts = []
            for d in dirs:
                for base, _, files in os.walk(os.path.join(root, d)):
                    for name in files:
                        if name.endswith(".rs") and not name.endswith("_tests.rs") and name != "tests.rs":
                            with open(os.path.join(base, name), encoding="utf-8") as f:
                                parts.append(f.read())
            self.text[crate] = "\n".join(parts)
        # Crates whose manifest pulls in OpenTelemetry (directly or through the
        # workspace's telemetry crate): the OTEL_* variables mean something there.
        self.otel: set[str] = set()
        for crate in CRATE_SOURCES:
            manifest = os.path.join(root, crate, "Cargo.toml")
            if os.path.exists(manifest):
                with open(manifest, encoding="utf-8") as f:
                    if re.search(r"^\s*(opentelemetry|payments-telemetry)", f.read(), re.MULTILINE):
                        self.otel.add(crate)

    def reads(self, crate: str, name: str) -> bool:
        text = self.text.get(crate, "")
        if name.startswith("STRIPE_SIM_") and crate == "stripe-sim":
            flag = name[len("STRIPE_SIM_") :].lower().replace("_", "-")
            return f'"{flag}"' in text and "STRIPE_SIM_" in text
        return f'"{name}"' in text

    def required(self, crate: str) -> list[str]:
        path = CONFIG_FILES.get(crate)
        if not path or not os.path.exists(os.path.join(self.root, path)):
            return []
        with open(os.path.join(self.root, path), encoding="utf-8") as f:
            return sorted(set(REQUIRED_CALL.findall(f.read())))


def crate_of(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return name if name in CRATE_SOURCES else None


def judge(crate, name, srcs, warnings) -> str | None:
    """None when fine; otherwise why not."""
    if name.startswith("OTEL_"):
        if crate not in srcs.otel:
            warnings.add(f"{name} given to {crate}, which does not depend on OpenTelemetry (yet): no effect")
        return None
    if name == "RUST_LOG":
        # payments-telemetry builds the EnvFilter for the crates that use it.
        text = srcs.text.get(crate, "")
        if crate in srcs.otel or "from_default_env" in text or '"RUST_LOG"' in text:
            return None
        return "RUST_LOG is not read (no EnvFilter from the environment)"
    if srcs.reads(crate, name):
        return None
    return f"{name} is not read by {crate}"


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: env_check.py REPO_ROOT COMPOSE_FILE [RENDERED_K8S.yaml...]", file=sys.stderr)
        return 2
    root, compose_path, rendered = sys.argv[1], sys.argv[2], sys.argv[3:]
    srcs = Sources(root)
    problems: list[str] = []
    warnings: set[str] = set()
    checked = 0

    def check_container(where, crate, names, shared, command=()):
        nonlocal checked
        migrate = list(command)[:1] == ["migrate"]
        for name in sorted(names):
            why = judge(crate, name, srcs, warnings)
            if migrate and name not in MIGRATE_REQUIRES and name not in ("RUST_LOG", "OTEL_SERVICE_NAME"):
                why = why or f"{name} is given to `migrate`, which reads only {', '.join(MIGRATE_REQUIRES)}"
            if why:
                problems.append(f"{where}: {why}")
            checked += 1
        given = set(names) | set(shared)
        if migrate:
            for name in MIGRATE_REQUIRES:
                if name not in given:
                    problems.append(f"{where}: required {name} is not given")
            return
        required = srcs.required(crate)
        if crate in CONFIG_FILES and not required:
            warnings.add(f"{CONFIG_FILES[crate]}: found no required variables (did the reader change?)")
        for name in required:
            if name not in given:
                problems.append(f"{where}: required {name} is not given")
        for group in ONE_OF.get(crate, []):
            if not given.intersection(group):
                problems.append(f"{where}: one of {', '.join(group)} is required")

    with open(compose_path, encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    for svc_name, svc in (compose.get("services") or {}).items():
        build = svc.get("build")
        crate = build.get("target") if isinstance(build, dict) else None
        if crate not in CRATE_SOURCES:
            continue
        env = svc.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        check_container(f"compose {svc_name}", crate, names, [], svc.get("command") or [])

    for path in rendered:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        consumers: dict[str, set[str]] = {}
        for d in docs:
            if d["kind"] not in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                crate = crate_of(c["image"])
                if not crate:
                    continue
                shared: list[str] = []
                for ef in c.get("envFrom") or []:
                    ref = ef.get("configMapRef")
                    if ref:
                        consumers.setdefault(ref["name"], set()).add(crate)
                        shared += list(configmaps.get(ref["name"], {}))
                names = [e["name"] for e in c.get("env") or []]
                command = (c.get("command") or []) + (c.get("args") or [])
                check_container(f"{os.path.basename(path)} {d['kind']}/{d['metadata']['name']}", crate, names, shared, command)
        for cm, crates in consumers.items():
            for name in configmaps.get(cm, {}):
                verdicts = [judge(crate, name, srcs, warnings) for crate in sorted(crates)]
                if all(verdicts):
                    problems.append(f"{os.path.basename(path)} ConfigMap/{cm}: {name} is read by none of {', '.join(sorted(crates))}")
                checked += 1

    for w in sorted(warnings):
        print(f"env: WARNING {w}")
    if problems:
        print(f"env: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"env: {checked} variable settings checked against the sources; every one is read, every required one is given")
    return 0


if __name__ == "__main__":
    sys.exit(main())
