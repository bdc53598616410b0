#!/usr/bin/env python3
"""Runs the services of deploy/compose.yaml as local processes and proves the
network works end to end (called by scripts/compose-smoke, which installs
PyYAML and eth-account and says what this does; see there).

Everything comes from the compose file and the files it names:
  - each service's command: the `entrypoint`/`command` of compose.yaml over
    the ENTRYPOINT/CMD of its Dockerfile (`build`), the executable replaced
    by the local one (`lockgate`: LOCKGATE_BIN, `anvil`: the npm anvil);
  - its environment: the Dockerfile's ENV, then compose's `environment`
    (compose's order), in an otherwise empty environment (PATH, HOME);
  - its files: every `volumes` bind mount is copied to
    WORK/SERVICE/fs/CONTAINER-PATH, gateway TOMLs rewritten (below), and
    every absolute path in the environment or a TOML must be a mounted one,
    the image's WORKDIR or the data directory (WORK/SERVICE/data);
  - its start: in `depends_on` order and condition (service_healthy: its
    compose `healthcheck` command passes; service_completed_successfully:
    it exited 0); health checks run as compose runs them (rewritten to the
    local ports), polled every 0.25 s instead of every `interval`, until
    `start_period + interval * retries`.

Addresses. Each listening port of each service (from its `--port` argument
or, for `lockgate serve`, LOCKGATE_LISTEN; its published `ports` must be
among them) gets a free
127.0.0.1 port; the `postgres` service is the local server (--pg). Every URL
and host:port in the TOMLs, environments and commands is rewritten through
that map, a wildcard or loopback listen address to the service's own port.
A host name that is not a compose service, or a port the service does not
listen on, is an error: nothing is left pointing at a container.

PostgreSQL. The init scripts mounted into /docker-entrypoint-initdb.d run on
the local server as the postgres image runs them (psql ON_ERROR_STOP as the
superuser), with every role and database they create renamed NAME_SUFFIX
(unique per run); the gateways' database_url user and database are renamed
the same way. Roles, passwords, ownership and REVOKE CONNECT are kept (the
local server trusts 127.0.0.1, so the passwords are not checked, but the
CONNECT privileges are: that each role cannot connect to the other's
database is checked). Dropped at the end.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

T0 = time.monotonic()
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "postgres": 5432, "postgresql": 5432}
WILDCARD = {"0.0.0.0", "::", "[::]", "127.0.0.1", "localhost"}
URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.I)
HOSTPORT_RE = re.compile(r"^([A-Za-z0-9_.-]+|\[[0-9a-fA-F:]+\]):(\d+)$")
# SQL comments, string literals and quoted identifiers (split out with their
# delimiters: the odd pieces of SQL_SKIP.split).
SQL_SKIP = re.compile(r"(--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", re.S)
# The postgres image's port (the compose file does not name it).
POSTGRES_PORT = 5432


class Fail(Exception):
    pass


def code(sql: str) -> str:
    """SQL without its comments, string literals and quoted identifiers."""
    return "".join(SQL_SKIP.split(sql)[::2])


def say(message: str) -> None:
    print(f"compose-smoke [{time.monotonic() - T0:5.1f}s] {message}", flush=True)


def free_ports(count: int) -> list[int]:
    """Distinct free 127.0.0.1 ports (all held until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def duration(text, default: float) -> float:
    """A compose duration ("5s", "1m30s", "500ms") in seconds."""
    if text is None:
        return default
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text)):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}[unit]
    return total


def unescape(value, where: str):
    """compose's `$$` escape; any other interpolation is not supported here."""
    if isinstance(value, dict):
        return {k: unescape(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [unescape(v, where) for v in value]
    if isinstance(value, str):
        if "$" in value.replace("$$", ""):
            raise Fail(f"{where}: variable interpolation ({value!r}) is not supported by compose-smoke")
        return value.replace("$$", "$")
    return value


def dockerfile_image(path: Path) -> dict:
    """ENTRYPOINT, CMD, ENV and WORKDIR of a Dockerfile's last stage."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.strip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    image = {"entrypoint": [], "cmd": [], "env": {}, "workdir": "/"}
    for line in lines:
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "FROM":
            image = {"entrypoint": [], "cmd": [], "env": {}, "workdir": "/"}
        elif word in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, list):
                raise Fail(f"{path}: {word} is not in the JSON (exec) form, which compose-smoke needs")
            image[word.lower()] = value
            if word == "ENTRYPOINT":
                image["cmd"] = []
        elif word == "ENV":
            parts = shlex.split(rest)
            if parts and "=" not in parts[0]:
                image["env"][parts[0]] = " ".join(parts[1:])
            else:
                for part in parts:
                    key, _, value = part.partition("=")
                    image["env"][key] = value
        elif word == "WORKDIR":
            image["workdir"] = rest
    return image


class Service:
    def __init__(self, name: str):
        self.name = name
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.health: list[str] | None = None
        self.health_timeout = 30.0
        self.health_deadline = 90.0
        self.deps: dict[str, str] = {}
        self.ports: dict[int, int] = {}  # container port -> local port
        self.mounts: dict[str, Path] = {}  # container path -> local path
        self.external = False
        self.proc: subprocess.Popen | None = None
        self.started = self.healthy = self.done = None  # times
        self.root: Path | None = None

    def log(self, which: str) -> Path:
        return self.root / f"{self.name}.{which}"


class Network:
    def __init__(self, args):
        self.args = args
        self.compose_file = Path(args.compose).resolve()
        self.base = self.compose_file.parent
        self.work = Path(args.work)
        self.suffix = args.suffix
        pg = urlsplit(args.pg)
        self.pg = args.pg
        self.pg_host, self.pg_port = pg.hostname or "127.0.0.1", pg.port or POSTGRES_PORT
        self.services: dict[str, Service] = {}
        self.renamed: dict[str, str] = {}  # PostgreSQL role and database names
        self.roles: dict[str, str] = {}  # new role name -> password
        self.owners: dict[str, str] = {}  # new database -> new owner role
        self.raw: dict = {}
        self.timings: list[tuple[str, float]] = []
        self.pids = self.work / "pids"
        self.contracts: list[tuple[str, str, str]] = []  # (where, rpc url as written, contract)

    # ------------------------------------------------------------ addresses

    def map_hostport(self, host: str, port: int, where: str) -> tuple[str, int]:
        if host not in self.services:
            raise Fail(
                f"{where}: host {host!r} is not a service of {self.compose_file.name} "
                f"({', '.join(sorted(self.services))}): compose-smoke cannot map it to a local address"
            )
        service = self.services[host]
        if port not in service.ports:
            raise Fail(f"{where}: {host}:{port}: service {host} listens on {sorted(service.ports) or 'no port'} only")
        return ("127.0.0.1" if not service.external else self.pg_host), service.ports[port]

    def map_url(self, url: str, where: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            raise Fail(f"{where}: {url!r} names no host")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
        except KeyError:
            raise Fail(f"{where}: {url!r}: no port and no default port known for {parts.scheme!r}") from None
        host, local = self.map_hostport(parts.hostname, port, where)
        userinfo, at, _ = parts.netloc.rpartition("@")
        path = parts.path
        if parts.scheme.lower() in ("postgres", "postgresql"):
            user, colon, password = userinfo.partition(":")
            database = path.lstrip("/")
            for kind, name in (("role", user), ("database", database)):
                if name not in self.renamed:
                    raise Fail(f"{where}: the {kind} {name!r} is not one the PostgreSQL init scripts create")
            userinfo = self.renamed[user] + colon + password
            path = "/" + self.renamed[database]
        return urlunsplit((parts.scheme, f"{userinfo}{at}{host}:{local}", path, parts.query, parts.fragment))

    def map_value(self, value: str, service: Service, where: str, key: str = "") -> str:
        """An address or a path as the service sees it, rewritten to the local one."""
        m = HOSTPORT_RE.match(value)
        if m and "://" not in value:
            host, port = m.group(1), int(m.group(2))
            if host in WILDCARD or key.lower() in ("listen", "lockgate_listen"):
                if not service.ports:
                    return "127.0.0.1:0"  # a command that does not listen (evm-deploy)
                if port not in service.ports:
                    raise Fail(f"{where}: {service.name} listens on {value}, a port it has no mapping for")
                return f"127.0.0.1:{service.ports[port]}"
            host, local = self.map_hostport(host, port, where)
            return f"{host}:{local}"
        if value.startswith("/"):
            return str(self.map_path(value, service, where))
        return URL_RE.sub(lambda u: self.map_url(u.group(0), where), value)

    def map_path(self, path: str, service: Service, where: str) -> Path:
        for container, local in sorted(service.mounts.items(), key=lambda m: -len(m[0])):
            if path == container or path.startswith(container.rstrip("/") + "/"):
                return local / os.path.relpath(path, container) if path != container else local
        raise Fail(f"{where}: {path} is not mounted in {service.name} (volumes), nor its data directory")

    # ------------------------------------------------------------ the plan

    def load(self) -> None:
        compose = yaml.safe_load(self.compose_file.read_text())
        raw = unescape(compose.get("services") or {}, "services")
        self.raw = raw
        if not raw:
            raise Fail(f"{self.compose_file}: no services")
        for name in raw:
            self.services[name] = Service(name)
        # First every service's ports (all addresses are mapped through them).
        images = {}
        for name, spec in raw.items():
            service = self.services[name]
            service.root = self.work / name
            service.root.mkdir(parents=True)
            if "build" not in spec:
                if name == "postgres" and str(spec.get("image", "")).startswith("postgres:"):
                    service.external = True
                    service.ports = {POSTGRES_PORT: self.pg_port}
                    for key in ("POSTGRES_USER", "POSTGRES_DB"):
                        if key in (spec.get("environment") or {}):
                            raise Fail(f"services.{name}: {key} is set; compose-smoke creates only what the init scripts create")
                    continue
                raise Fail(f"services.{name}: no `build`; compose-smoke runs only services built from a Dockerfile here (and postgres)")
            build = spec["build"]
            context = self.base / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
            image = images[name] = dockerfile_image(dockerfile)
            entrypoint = spec.get("entrypoint", image["entrypoint"])
            command = spec.get("command", image["cmd"] if "entrypoint" not in spec else [])
            if isinstance(entrypoint, str):
                entrypoint = shlex.split(entrypoint)
            if isinstance(command, str):
                command = shlex.split(command)
            service.argv = [str(a) for a in entrypoint + command]
            env = dict(image["env"])
            environment = spec.get("environment") or {}
            if isinstance(environment, list):
                environment = dict(e.split("=", 1) for e in environment)
            env.update({k: "" if v is None else str(v) for k, v in environment.items()})
            service.env = env
            listening = set()
            for flag, value in zip(service.argv, service.argv[1:]):
                if flag == "--port":
                    listening.add(int(value))
            # The image sets LOCKGATE_LISTEN for every lockgate command; only
            # `serve` listens.
            if "LOCKGATE_LISTEN" in env and service.argv[1:2] == ["serve"]:
                listening.add(int(env["LOCKGATE_LISTEN"].rsplit(":", 1)[1]))
            for published in spec.get("ports", []):
                target = int(str(published).rsplit(":", 1)[-1].split("/")[0])
                if target not in listening:
                    raise Fail(f"services.{name}: publishes container port {target}, on which it does not listen ({sorted(listening)})")
            service.ports = dict.fromkeys(sorted(listening), 0)
            service.mounts[image["workdir"]] = service.root / "data"
            if "LOCKGATE_DATA_DIR" in env:
                service.mounts[env["LOCKGATE_DATA_DIR"]] = service.root / "data"
            (service.root / "data").mkdir()
        wanted = [(s, port) for s in self.services.values() if not s.external for port in s.ports]
        for (service, port), local in zip(wanted, free_ports(len(wanted))):
            service.ports[port] = local
        # The PostgreSQL init scripts (renames every role and database).
        self.plan_postgres()
        # Then files, commands, environments, health checks.
        for name, spec in raw.items():
            service = self.services[name]
            deps = spec.get("depends_on") or {}
            service.deps = (
                {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}
                if isinstance(deps, dict) else {d: "service_started" for d in deps}
            )
            for dep in service.deps:
                if dep not in self.services:
                    raise Fail(f"services.{name}: depends on {dep}, which is not a service")
            self.plan_health(service, spec.get("healthcheck"))
            if service.external:
                continue
            for volume in spec.get("volumes", []):
                source, target = str(volume).split(":")[:2]
                if not source.startswith((".", "/")):
                    raise Fail(f"services.{name}: named volume {source} on {target}: not supported by compose-smoke")
                service.mounts[target] = service.root / "fs" / target.lstrip("/")
            for volume in spec.get("volumes", []):
                source, target = str(volume).split(":")[:2]
                self.copy_mount(service, self.base / source, service.mounts[target], f"services.{name}.volumes {source}")
            service.argv = self.plan_argv(service)
            env = {}
            for key, value in service.env.items():
                env[key] = self.map_value(value, service, f"services.{name}.environment.{key}", key)
            service.env = env

    def plan_postgres(self) -> None:
        postgres = self.raw.get("postgres")
        if postgres is None:
            return
        scripts = []
        for volume in postgres.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if target.startswith("/docker-entrypoint-initdb.d/"):
                if not target.endswith(".sql"):
                    raise Fail(f"services.postgres.volumes {source}: only .sql init scripts are supported by compose-smoke")
                scripts.append((target, self.base / source))
        sql = "\n".join(path.read_text() for _, path in sorted(scripts))
        # Comments and literals ('strings', "identifiers") are kept as they are.
        pieces = SQL_SKIP.split(sql)
        create = re.compile(r"\bCREATE\s+(ROLE|USER|DATABASE)\s+(\S+)", re.I)
        created = create.findall(code(sql))
        if not created:
            raise Fail("services.postgres: the init scripts create no role or database")
        for _, name in created:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise Fail(f"services.postgres: init scripts: compose-smoke renames plain lower-case names only, not {name}")
        self.renamed = {name: f"{name}_{self.suffix}" for _, name in created}
        if any(len(new) > 63 for new in self.renamed.values()):
            raise Fail(f"PostgreSQL names too long: {sorted(self.renamed.values())}")
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.renamed)) + r")\b")
        sql = "".join(p if i % 2 else pattern.sub(lambda m: self.renamed[m.group(1)], p) for i, p in enumerate(pieces))
        # What the rewritten scripts create must be exactly the renamed names
        # (only those are dropped at the end: never a role of someone else's).
        now = create.findall(code(sql))
        if sorted(now) != sorted((k, self.renamed[n]) for k, n in created) or pattern.search(code(sql)):
            raise Fail(f"services.postgres: renaming the init scripts' names failed: they create {now}")
        passwords = dict(re.findall(r"\bCREATE\s+(?:ROLE|USER)\s+(\w+)[^;]*?\bPASSWORD\s+'((?:[^']|'')*)'", sql, re.I))
        self.roles = {n: passwords.get(n, "").replace("''", "'") for k, n in now if k.upper() in ("ROLE", "USER")}
        databases = [n for k, n in now if k.upper() == "DATABASE"]
        owners = dict(re.findall(r"\bCREATE\s+DATABASE\s+(\w+)\s+(?:WITH\s+)?OWNER\s*=?\s*(\w+)", code(sql), re.I))
        self.owners = {d: owners.get(d, "postgres") for d in databases}
        (self.work / "postgres-init.sql").write_text(sql)
        # Written before anything is created: the bash wrapper runs it too.
        drop = [f"DROP DATABASE IF EXISTS {d} WITH (FORCE);" for d in databases]
        drop += [f"DROP ROLE IF EXISTS {r};" for r in self.roles]
        (self.work / "cleanup.sql").write_text("\n".join(drop) + "\n")

    def plan_health(self, service: Service, check) -> None:
        if not check or check.get("disable"):
            return
        test = check.get("test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not test or test[0] == "NONE":
            return
        where = f"services.{service.name}.healthcheck"
        kind, argv = test[0], [str(a) for a in test[1:]]
        if kind == "CMD-SHELL":
            argv = ["/bin/sh", "-c", " ".join(argv)]
        elif kind != "CMD":
            raise Fail(f"{where}: test must start with CMD or CMD-SHELL")
        rewritten = []
        for arg in argv:
            # The service's own ports, as it reaches itself inside its container.
            for port in service.ports:
                arg = re.sub(rf"(?<![\d.])(127\.0\.0\.1|localhost)([:/]){port}(?!\d)",
                             lambda m: f"{m.group(1)}{m.group(2)}{service.ports[port]}", arg)
            rewritten.append(arg)
        if rewritten and rewritten[0] == "pg_isready":
            rewritten += ["-p", str(self.pg_port)]
            rewritten = [self.pg_host if prev == "-h" else a for prev, a in zip([""] + rewritten, rewritten)]
        if service.external and rewritten[0] != "pg_isready":
            raise Fail(f"{where}: compose-smoke runs only a pg_isready health check of the local server")
        if not service.external and not any(str(p) in " ".join(rewritten) for p in service.ports.values()):
            raise Fail(f"{where}: names none of the service's ports ({sorted(service.ports)}) as 127.0.0.1: cannot rewrite it")
        service.health = rewritten
        interval = duration(check.get("interval"), 30)
        service.health_timeout = duration(check.get("timeout"), 30)
        service.health_deadline = duration(check.get("start_period"), 0) + interval * int(check.get("retries", 3))

    def plan_argv(self, service: Service) -> list[str]:
        where = f"services.{service.name}.command"
        argv = list(service.argv)
        executables = {"lockgate": self.args.bin, "anvil": self.args.anvil}
        if argv[0] not in executables:
            raise Fail(f"{where}: no local executable for {argv[0]!r} (only {sorted(executables)})")
        out = [executables[argv[0]]]
        for prev, arg in zip(argv, argv[1:]):
            if prev == "--host" and arg in WILDCARD:
                out.append("127.0.0.1")
            elif prev == "--port":
                out.append(str(service.ports[int(arg)]))
            else:
                out.append(self.map_value(arg, service, where))
        return out

    def copy_mount(self, service: Service, source: Path, target: Path, where: str) -> None:
        if not source.is_file():
            raise Fail(f"{where}: not a file (compose-smoke copies files only)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix != ".toml":
            shutil.copyfile(source, target)
            return
        text = source.read_text()
        data = tomllib.loads(text)
        changes: dict[str, str] = {}

        def walk(value, path):
            if isinstance(value, dict):
                return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if isinstance(value, str):
                key = path.rsplit(".", 1)[-1]
                new = self.map_value(value, service, f"{os.path.relpath(source)} {path}", key)
                if new != value:
                    if changes.get(value, new) != new:
                        raise Fail(f"{where}: {value!r} would be rewritten two ways")
                    changes[value] = new
                return new
            return value

        expected = walk(data, "")
        for old, new in changes.items():
            text = text.replace(f'"{old}"', f'"{new}"').replace(f"'{old}'", f"'{new}'")
        if tomllib.loads(text) != expected:
            raise Fail(f"{where}: rewriting the addresses in the text changed more than the addresses")
        target.write_text(text)

    # ------------------------------------------------------------ running

    def psql(self, *args: str, url: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url or self.pg, *args],
            capture_output=True, text=True, check=check, timeout=60,
        )

    def create_databases(self) -> None:
        if not self.renamed:
            return
        try:
            self.psql("-f", str(self.work / "postgres-init.sql"))
        except subprocess.CalledProcessError as e:
            raise Fail(f"postgres-init.sql (renamed) failed on the local server: {e.stderr.strip()}") from None
        # Each role reaches its own database and no other one (REVOKE ... FROM PUBLIC).
        base = urlsplit(self.pg)
        for role, password in self.roles.items():
            for database, owner in self.owners.items():
                login = f"{role}:{quote(password, safe='')}" if password else role
                url = urlunsplit((base.scheme, f"{login}@{self.pg_host}:{self.pg_port}", "/" + database, "", ""))
                result = self.psql("-c", "SELECT 1", url=url, check=False)
                if (result.returncode == 0) != (owner == role):
                    raise Fail(f"PostgreSQL: role {role} {'cannot' if owner == role else 'can'} connect to {database}: {result.stderr.strip()}")
        say(f"PostgreSQL {self.pg_host}:{self.pg_port}: created {', '.join(sorted(self.owners))} "
            f"(roles {', '.join(sorted(self.roles))}; neither reaches the other's database)")

    def start(self, service: Service) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(service.root / "data"), **service.env}
        with open(service.log("out"), "wb") as out, open(service.log("err"), "wb") as err:
            service.proc = subprocess.Popen(
                service.argv, env=env, cwd=service.root / "data", stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        with open(self.pids, "a") as f:
            f.write(f"{service.proc.pid} {service.argv[0]}\n")
        service.started = time.monotonic()
        ports = ", ".join(f"{p}->127.0.0.1:{l}" for p, l in service.ports.items())
        say(f"started {service.name} (pid {service.proc.pid}{'; ' + ports if ports else ''}): "
            f"{Path(service.argv[0]).name} {shlex.join(service.argv[1:])}")

    def check_health(self, service: Service) -> bool:
        try:
            result = subprocess.run(service.health, capture_output=True, timeout=service.health_timeout,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def condition_met(self, dep: str, condition: str) -> bool:
        service = self.services[dep]
        if condition == "service_started":
            return service.started is not None
        if condition == "service_healthy":
            return service.healthy is not None
        if condition == "service_completed_successfully":
            return service.done is not None
        raise Fail(f"depends_on condition {condition!r} is not supported")

    def tail(self, service: Service) -> str:
        out = []
        for which in ("out", "err"):
            path = service.log(which)
            if path.exists() and path.stat().st_size:
                lines = path.read_text(errors="replace").splitlines()[-25:]
                out.append(f"--- {service.name} std{which} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(out) or f"--- {service.name}: no output"

    def bring_up(self) -> None:
        """Starts every service in depends_on order; returns when all are up."""
        deadline = time.monotonic() + self.args.timeout
        for service in self.services.values():
            if service.external:
                service.started = time.monotonic()
        while True:
            now = time.monotonic()
            pending = False
            for service in self.services.values():
                if service.started is None:
                    pending = True
                    if all(self.condition_met(d, c) for d, c in service.deps.items()):
                        self.start(service)
                    continue
                if service.proc is not None and service.done is None:
                    status = service.proc.poll()
                    if status is not None:
                        if status != 0 or self.raw[service.name].get("restart", "no") != "no":
                            raise Fail(f"{service.name} exited with status {status}\n{self.tail(service)}")
                        service.done = now
                        self.timings.append((f"{service.name} completed", now - service.started))
                        say(f"{service.name} completed: {service.log('out').read_text().strip()}")
                        continue
                if service.health is not None and service.healthy is None:
                    pending = True
                    if self.check_health(service):
                        service.healthy = time.monotonic()
                        self.timings.append((f"{service.name} healthy", service.healthy - service.started))
                        say(f"{service.name} healthy (its compose health check passed)")
                    elif now - service.started > service.health_deadline:
                        raise Fail(f"{service.name} not healthy after {service.health_deadline:.0f} s "
                                   f"(start_period + interval * retries): {shlex.join(service.health)}\n{self.tail(service)}")
            if not pending:
                return
            if now > deadline:
                waiting = [s.name for s in self.services.values() if s.started is None]
                raise Fail(f"the network did not come up in {self.args.timeout} s (not started: {waiting})")
            time.sleep(0.25)

    def check_deployment(self) -> None:
        """The contract htlc-deploy printed is the one the gateways name."""
        deployed = {}
        for name, service in self.services.items():
            if service.argv[1:2] == ["evm-deploy"] and service.done is not None:
                rpc = service.argv[service.argv.index("--rpc-url") + 1]
                deployed[rpc] = json.loads(service.log("out").read_text())
        for name, service in self.services.items():
            config = service.env.get("LOCKGATE_CONFIG")
            if not config or service.argv[1:2] != ["serve"]:
                continue
            for evm in tomllib.loads(Path(config).read_text()).get("evm", []):
                got = deployed.get(evm.get("rpc_url"))
                if got is None:
                    raise Fail(f"{name}: [[evm]] {evm.get('rpc_url')}: no htlc-deploy service deployed to it")
                if got.get("contract") != evm.get("contract") or got.get("deployBlock", -1) < evm.get("deploy_block", 0):
                    raise Fail(f"{name}: [[evm]] has contract {evm.get('contract')} from block "
                               f"{evm.get('deploy_block', 0)}, htlc-deploy deployed {got}")
                say(f"{name}'s [[evm]] contract {evm['contract']} is the one htlc-deploy deployed")

    def gateway_url(self, name: str) -> str:
        service = self.services.get(name)
        if service is None or "LOCKGATE_LISTEN" not in service.env:
            raise Fail(f"no gateway service {name} (transfer-demo.py needs gateway-a and gateway-b)")
        return "http://" + service.env["LOCKGATE_LISTEN"]

    def ready(self, name: str) -> None:
        url = self.gateway_url(name) + "/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        except OSError as e:
            status, body = None, str(e)
        if status != 200:
            raise Fail(f"{name}: GET {url} answered {status}: {body}")
        say(f"{name}: GET /readyz 200 {body.strip()[:100]}")

    def transfer(self) -> None:
        demo = self.base / "compose" / "transfer-demo.py"
        argv = [sys.executable, str(demo)]
        for side in ("a", "b"):
            name = f"gateway-{side}"
            argv += [f"--{side}", self.gateway_url(name), f"--config-{side}", self.services[name].env["LOCKGATE_CONFIG"]]
        say(f"running {os.path.relpath(demo)} --a {self.gateway_url('gateway-a')} --b {self.gateway_url('gateway-b')}")
        start = time.monotonic()
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Fail("transfer-demo.py did not finish in 180 s") from None
        self.timings.append(("transfer-demo.py", time.monotonic() - start))
        for line in (result.stdout + result.stderr).splitlines():
            print(f"    | {line}", flush=True)
        if result.returncode != 0 or "OK: the transfer completed on both ledgers" not in result.stdout:
            raise Fail(f"transfer-demo.py exited {result.returncode} without completing the transfer\n"
                       + "\n".join(self.tail(self.services[n]) for n in ("gateway-a", "gateway-b")))

    def after(self) -> None:
        for service in self.services.values():
            if service.proc is not None and service.done is None and service.proc.poll() is not None:
                raise Fail(f"{service.name} exited with status {service.proc.returncode}\n{self.tail(service)}")
            if service.proc is not None and "panicked" in service.log("err").read_text(errors="replace"):
                raise Fail(f"{service.name} logged a panic\n{self.tail(service)}")

    def stop(self) -> None:
        running = [s for s in reversed(list(self.services.values())) if s.proc is not None and s.proc.poll() is None]
        for service in running:
            try:
                os.killpg(service.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 10
        for service in running:
            try:
                service.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{service.name} did not stop on SIGTERM in 10 s: SIGKILL")
                try:
                    os.killpg(service.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                service.proc.wait()

    def drop_databases(self) -> None:
        cleanup = self.work / "cleanup.sql"
        if cleanup.exists():
            result = self.psql("-f", str(cleanup), check=False)
            if result.returncode != 0:
                say(f"dropping the databases failed: {result.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description="See scripts/compose-smoke.")
    parser.add_argument("--compose", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--bin", required=True, help="the lockgate binary")
    parser.add_argument("--anvil", required=True, help="the anvil binary")
    parser.add_argument("--pg", required=True, help="the local PostgreSQL server (a superuser's URL)")
    parser.add_argument("--suffix", required=True, help="appended to every PostgreSQL name")
    parser.add_argument("--timeout", type=float, default=180, help="for the whole network to come up")
    args = parser.parse_args()

    def on_signal(number, _frame):
        raise SystemExit(128 + number)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    network = Network(args)
    status = 1
    try:
        network.load()
        mapping = ", ".join(
            f"{name}:{port}->{'127.0.0.1' if not s.external else network.pg_host}:{local}"
            for name, s in network.services.items() for port, local in s.ports.items()
        )
        say(f"{network.compose_file.name}: {len(network.services)} services; addresses {mapping}")
        start = time.monotonic()
        network.create_databases()
        network.timings.append(("PostgreSQL roles and databases", time.monotonic() - start))
        start = time.monotonic()
        network.bring_up()
        network.check_deployment()
        for name in ("gateway-a", "gateway-b"):
            network.ready(name)
        network.timings.append(("network up (all healthy)", time.monotonic() - start))
        network.transfer()
        network.after()
        status = 0
    except Fail as e:
        print(f"compose-smoke: FAILED: {e}", file=sys.stderr, flush=True)
    except SystemExit as e:  # a signal (on_signal)
        print(f"compose-smoke: interrupted, stopping (exit {e.code})", file=sys.stderr, flush=True)
        status = e.code
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        start = time.monotonic()
        network.stop()
        network.drop_databases()
        network.timings.append(("stopped, databases dropped", time.monotonic() - start))
    print("compose-smoke: timings")
    for what, seconds in network.timings:
        print(f"  {what:<34} {seconds:6.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
