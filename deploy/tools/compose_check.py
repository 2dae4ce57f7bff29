#!/usr/bin/env python3
"""Offline structural check of a Compose file, for machines without `docker compose`.

It is not Compose itself. What it does:
  * reads the env file (KEY=VALUE lines) and interpolates the Compose file the way
    Compose does (`$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`,
    `${VAR?e}`, `${VAR:+a}`, `${VAR+a}`), failing on a required variable that is
    missing and on a bare `$` that Compose would reject;
  * checks the structure: known top-level keys, every service has an image or a
    build, build contexts, Dockerfiles and `--target` stages exist, `depends_on`
    names existing services with valid conditions (and `service_healthy` targets
    define a health check) without cycles, durations, ports, restart policies,
    environment values, named volumes are declared and bind-mounted files exist;
  * validates the interpolated document against the Compose JSON schema when the
    `check-jsonschema` command is installed (its vendored `compose-spec` schema, no
    network); otherwise says that this part was skipped.

Exit status: 0 when every check that ran passed, 1 on a problem, 3 when PyYAML is
missing (nothing was checked).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    print("compose: SKIP structural check (PyYAML is not installed: pip install pyyaml)")
    sys.exit(3)

TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")


class Problems(list):
    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


def read_env_file(path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export ") :]
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not NAME.fullmatch(key):
                raise SystemExit(f"{path}:{number}: not a KEY=VALUE line: {line!r}")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key] = value
    return env


def interpolate(text: str, env: dict[str, str], where: str, problems: Problems) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                problems.add(where, f"unclosed ${{ in {text!r}")
                return text
            out.append(braced(text[i + 2 : j - 1], env, where, problems))
            i = j
        else:
            m = NAME.match(text, i + 1)
            if not m:
                problems.add(where, f"invalid interpolation at {text[i:i + 12]!r} (write $$ for a literal $)")
                out.append(c)
                i += 1
                continue
            out.append(env.get(m.group(0), ""))
            i = m.end()
    return "".join(out)


def braced(expr: str, env: dict[str, str], where: str, problems: Problems) -> str:
    m = NAME.match(expr)
    if not m:
        problems.add(where, f"invalid variable name in ${{{expr}}}")
        return ""
    name, rest = m.group(0), expr[m.end() :]
    value = env.get(name)
    if rest == "":
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = interpolate(rest[len(op) :], env, where, problems)
            unset = value is None
            empty = unset or value == ""
            missing = empty if op.startswith(":") else unset
            if op.endswith("-"):
                return arg if missing else value
            if op.endswith("?"):
                if missing:
                    problems.add(where, f"required variable {name} is missing: {arg}")
                    return ""
                return value
            return "" if missing else arg
    problems.add(where, f"invalid interpolation ${{{expr}}}")
    return ""


def walk(node, env, where, problems):
    """Interpolates every string value (keys are left as they are, as Compose does)."""
    if isinstance(node, dict):
        return {k: walk(v, env, f"{where}.{k}".lstrip("."), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v, env, f"{where}[{n}]", problems) for n, v in enumerate(node)]
    if isinstance(node, str):
        return interpolate(node, env, where, problems)
    return node


def dockerfile_stages(path: str) -> set[str]:
    stages = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*FROM\s+.+?\s+AS\s+(\S+)\s*$", line, re.IGNORECASE)
            if m:
                stages.add(m.group(1).lower())
    return stages


def check_duration(value, where, problems):
    if not isinstance(value, str) or not DURATION.match(value):
        problems.add(where, f"not a duration like 10s or 1m30s: {value!r}")


def check_port(spec, where, problems):
    if isinstance(spec, int):
        return
    if isinstance(spec, dict):
        if "target" not in spec:
            problems.add(where, "long-form port without target")
        return
    text = str(spec)
    text, _, proto = text.partition("/")
    if proto and proto not in ("tcp", "udp", "sctp"):
        problems.add(where, f"unknown protocol {proto!r}")
    parts = text.rsplit(":", 2) if not text.startswith("[") else [text]
    numbers = parts[-2:] if len(parts) >= 2 else parts
    for part in numbers:
        for n in part.split("-"):
            if not n.isdigit() or not 0 < int(n) < 65536:
                problems.add(where, f"bad port {part!r} in {spec!r}")


def check_service(name, svc, doc, base_dir, problems):
    where = f"services.{name}"
    if not isinstance(svc, dict):
        problems.add(where, "must be a mapping")
        return
    if "image" not in svc and "build" not in svc:
        problems.add(where, "needs an image or a build")
    build = svc.get("build")
    if isinstance(build, str):
        build = {"context": build}
    if isinstance(build, dict):
        context = os.path.normpath(os.path.join(base_dir, build.get("context", ".")))
        if not os.path.isdir(context):
            problems.add(f"{where}.build.context", f"{context} is not a directory")
        else:
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                problems.add(f"{where}.build.dockerfile", f"{dockerfile} does not exist")
            elif "target" in build and build["target"].lower() not in dockerfile_stages(dockerfile):
                problems.add(f"{where}.build.target", f"no stage {build['target']!r} in {dockerfile}")
    env = svc.get("environment", {})
    if isinstance(env, dict):
        for key, value in env.items():
            if not (value is None or isinstance(value, (str, int, float, bool))):
                problems.add(f"{where}.environment.{key}", "must be a scalar")
    elif isinstance(env, list):
        for item in env:
            if not isinstance(item, str):
                problems.add(f"{where}.environment", f"list items must be KEY=VALUE strings: {item!r}")
    else:
        problems.add(f"{where}.environment", "must be a mapping or a list")
    for n, port in enumerate(svc.get("ports", []) or []):
        check_port(port, f"{where}.ports[{n}]", problems)
    restart = svc.get("restart")
    if restart is not None and not re.fullmatch(r"no|always|unless-stopped|on-failure(:\d+)?", str(restart)):
        problems.add(f"{where}.restart", f"unknown policy {restart!r}")
    if "stop_grace_period" in svc:
        check_duration(svc["stop_grace_period"], f"{where}.stop_grace_period", problems)
    for key in ("command", "entrypoint"):
        value = svc.get(key)
        if value is not None and not (isinstance(value, str) or all(isinstance(v, str) for v in value)):
            problems.add(f"{where}.{key}", "must be a string or a list of strings")
    hc = svc.get("healthcheck")
    if hc is not None:
        test = hc.get("test")
        if isinstance(test, list):
            if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                problems.add(f"{where}.healthcheck.test", "a list must start with CMD, CMD-SHELL or NONE")
            elif not all(isinstance(t, str) for t in test):
                problems.add(f"{where}.healthcheck.test", "items must be strings")
        elif not isinstance(test, str) and not hc.get("disable"):
            problems.add(f"{where}.healthcheck.test", "missing")
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in hc:
                check_duration(hc[key], f"{where}.healthcheck.{key}", problems)
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for n, vol in enumerate(svc.get("volumes", []) or []):
        vwhere = f"{where}.volumes[{n}]"
        if isinstance(vol, dict):
            source = vol.get("source")
            kind = vol.get("type", "volume")
        else:
            parts = str(vol).split(":")
            if len(parts) == 1:
                continue  # anonymous volume
            source = parts[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "volume" and source and source not in declared_volumes:
            problems.add(vwhere, f"named volume {source!r} is not declared under volumes:")
        if kind == "bind" and source and not source.startswith(("/", "~")):
            path = os.path.normpath(os.path.join(base_dir, source))
            if not os.path.exists(path):
                problems.add(vwhere, f"bind source {path} does not exist")
    for network in svc.get("networks", []) or []:
        if network not in (doc.get("networks") or {}) and network != "default":
            problems.add(f"{where}.networks", f"network {network!r} is not declared")


def check_depends_on(services, problems):
    graph: dict[str, list[str]] = {}
    for name, svc in services.items():
        deps = svc.get("depends_on", {}) if isinstance(svc, dict) else {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        graph[name] = list(deps)
        for dep, spec in deps.items():
            where = f"services.{name}.depends_on.{dep}"
            if dep not in services:
                problems.add(where, "no such service")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition not in CONDITIONS:
                problems.add(where, f"unknown condition {condition!r}")
            target = services[dep]
            hc = target.get("healthcheck") if isinstance(target, dict) else None
            if condition == "service_healthy" and (not hc or hc.get("disable")):
                problems.add(where, f"service_healthy, but {dep} defines no health check here")
            if condition == "service_completed_successfully" and target.get("restart") not in (None, "no"):
                problems.add(where, f"{dep} restarts ({target.get('restart')}), so it may never complete")
    seen: dict[str, int] = {}

    def visit(node, path):
        state = seen.get(node, 0)
        if state == 1:
            problems.add("depends_on", "cycle: " + " -> ".join(path + [node]))
            return
        if state == 2:
            return
        seen[node] = 1
        for dep in graph.get(node, []):
            if dep in graph:
                visit(dep, path + [node])
        seen[node] = 2

    for node in graph:
        visit(node, [])


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: compose_check.py COMPOSE_FILE ENV_FILE", file=sys.stderr)
        return 2
    compose_path, env_path = sys.argv[1], sys.argv[2]
    base_dir = os.path.dirname(os.path.abspath(compose_path))
    problems = Problems()
    with open(compose_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        print(f"{compose_path}: not a mapping")
        return 1
    doc = walk(raw, read_env_file(env_path), "", problems)
    for key in doc:
        if key not in TOP_LEVEL and not str(key).startswith("x-"):
            problems.add(str(key), "unknown top-level key")
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        problems.add("services", "missing or empty")
        services = {}
    for name, svc in services.items():
        check_service(name, svc, doc, base_dir, problems)
    check_depends_on(services, problems)

    schema = "SKIP (check-jsonschema not installed)"
    if not problems and shutil.which("check-jsonschema"):
        # The schema describes the interpolated model; drop the x- extensions it allows anyway.
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tmp:
            json.dump(doc, tmp)
        try:
            run = subprocess.run(
                ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", tmp.name],
                capture_output=True,
                text=True,
            )
        finally:
            os.unlink(tmp.name)
        if run.returncode != 0:
            problems.add("schema", (run.stdout + run.stderr).strip())
        else:
            schema = "passed (check-jsonschema, vendored compose-spec schema)"

    if problems:
        print(f"compose: {compose_path} with {env_path}: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(
        f"compose: structural check passed for {len(services)} services "
        f"({', '.join(services)}), interpolated with {os.path.basename(env_path)}; "
        f"JSON schema: {schema}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
