"""The deployment files (docker-compose.yml, backend/Dockerfile, deploy/nginx.conf) agree.

There is no Docker engine where the tests run, so these tests parse the files and check that the
pieces fit together: names, ports, credentials, health checks and the settings the backend reads.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
NGINX_CONF_TARGET = "/etc/nginx/conf.d/default.conf"
SPA_ROOT_TARGET = "/usr/share/nginx/html"


# --- compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, nested defaults --


@dataclass(frozen=True)
class Var:
    name: str
    default: str | None  # None when the expression has no default


def _expressions(text: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each top-level ${...} in `text`, skipping $$ escapes."""
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
        elif text.startswith("${", i):
            depth, j = 0, i + 1
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            assert depth == 0, f"unbalanced ${{...}} in {text!r}"
            yield i, j + 1
            i = j + 1
        else:
            i += 1


def parse_var(expr: str) -> Var:
    """`${NAME:-default}` -> Var("NAME", "default"); the default stays uninterpolated."""
    match = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-(.*))?\}", expr, re.DOTALL)
    assert match, f"unsupported interpolation {expr!r}"
    return Var(match.group(1), match.group(2))


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """What compose makes of `text` with `env` as the variables it sees."""
    out, last = [], 0
    for start, end in _expressions(text):
        out.append(text[last:start].replace("$$", "$"))
        var = parse_var(text[start:end])
        assert var.default is not None or var.name in env, f"{var.name} has no default"
        value = env.get(var.name)
        # ":-" also replaces an empty value; the tests only set non-empty ones.
        out.append(value if value else interpolate(var.default or "", env))
        last = end
    out.append(text[last:].replace("$$", "$"))
    return "".join(out)


def only_var(text: str) -> Var:
    """`text` must be exactly one ${...} expression."""
    spans = list(_expressions(text))
    assert spans == [(0, len(text))], f"expected a single ${{...}} expression, got {text!r}"
    return parse_var(text)


# --- compose helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """The service's environment as a dict, from either the mapping or the list syntax."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(svc: dict[str, Any]) -> list[Mount]:
    result = []
    for vol in svc.get("volumes", []):
        if isinstance(vol, str):
            source, target, *rest = vol.split(":")
            result.append(Mount(source, target, "ro" in (rest[0].split(",") if rest else [])))
        else:
            result.append(Mount(vol["source"], vol["target"], bool(vol.get("read_only"))))
    return result


def mount_at(svc: dict[str, Any], target: str) -> Mount:
    found = [m for m in mounts(svc) if m.target == target]
    assert len(found) == 1, f"expected one mount at {target}, got {found}"
    return found[0]


def published_container_ports(svc: dict[str, Any]) -> list[int]:
    ports = []
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            text = interpolate(str(entry), {})
            ports.append(int(text.rsplit(":", 1)[-1].split("/")[0]))
    return ports


def backend_port(compose: dict[str, Any]) -> int:
    exposed = [int(str(p).split("/")[0]) for p in service(compose, "backend").get("expose", [])]
    assert len(exposed) == 1, f"backend should expose exactly one port, got {exposed}"
    return exposed[0]


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    lines = [
        ln
        for ln in path.read_text(encoding="utf-8").splitlines()
        if not ln.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT arguments as argv (JSON exec form or shell form)."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


# --- nginx configuration -----------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def get(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


def _nginx_tokens(text: str) -> Iterator[str]:
    pattern = re.compile(
        r"""#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'#]+)"""
    )
    for match in pattern.finditer(text):
        if match.group(0).startswith("#"):
            continue
        dq, sq, punct, word = match.groups()
        yield punct or word or (dq if dq is not None else sq or "")


def parse_nginx(text: str) -> list[Directive]:
    tokens = list(_nginx_tokens(text))
    pos = 0

    def block() -> list[Directive]:
        nonlocal pos
        items: list[Directive] = []
        while pos < len(tokens):
            if tokens[pos] == "}":
                pos += 1
                return items
            words: list[str] = []
            while tokens[pos] not in ("{", ";", "}"):
                words.append(tokens[pos])
                pos += 1
            assert words, f"empty directive near token {pos}"
            if tokens[pos] == ";":
                pos += 1
                items.append(Directive(words[0], words[1:]))
            elif tokens[pos] == "{":
                pos += 1
                items.append(Directive(words[0], words[1:], block()))
            else:
                raise AssertionError(f"missing ';' after {words}")
        return items

    return block()


def location_for(server: Directive, uri: str) -> Directive:
    """The location nginx picks for `uri`: exact match, else the longest prefix.

    Regular-expression locations are not modelled; the test refuses to guess around them.
    """
    locations = server.get("location")
    regex = [loc for loc in locations if loc.args[0] in ("~", "~*")]
    assert not regex, "this test does not model regex locations; extend location_for()"
    for loc in locations:
        if loc.args[0] == "=" and loc.args[1] == uri:
            return loc
    prefixes = [loc for loc in locations if loc.args[0] != "=" and uri.startswith(loc.args[-1])]
    assert prefixes, f"no location matches {uri}"
    return max(prefixes, key=lambda loc: len(loc.args[-1]))


def directive_value(server: Directive, loc: Directive, name: str) -> list[str] | None:
    """Arguments of a single-valued directive, from the location or else the server."""
    for scope in (loc, server):
        found = scope.get(name)
        if found:
            return found[-1].args
    return None


def proxy_headers(server: Directive, loc: Directive) -> dict[str, str]:
    """proxy_set_header is inherited only when the location sets none of its own."""
    own = loc.get("proxy_set_header") or server.get("proxy_set_header")
    return {d.args[0].lower(): d.args[1] for d in own}


def size_in_bytes(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, f"bad size {value!r}"
    return (
        int(match.group(1))
        * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    )


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"bad time {value!r}"
    unit = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "ms": 0.001}[match.group(2)]
    return int(int(match.group(1)) * unit)


@pytest.fixture(scope="module")
def nginx_server(compose: dict[str, Any]) -> Directive:
    mount = mount_at(service(compose, "frontend"), NGINX_CONF_TARGET)
    conf = (REPO_ROOT / mount.source).resolve()
    assert conf.is_file(), f"{mount.source} is mounted into nginx but does not exist"
    servers = [d for d in parse_nginx(conf.read_text(encoding="utf-8")) if d.name == "server"]
    assert len(servers) == 1
    return servers[0]


# --- tests: compose ----------------------------------------------------------------------------


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"db", "backend", "frontend"}


def test_db_uses_postgres_with_a_named_volume_and_a_healthcheck(compose: dict[str, Any]) -> None:
    db = service(compose, "db")
    assert db["image"].startswith("postgres:")
    data = mount_at(db, "/var/lib/postgresql/data")
    assert data.source in compose["volumes"], "the database must live in a named volume"
    test = db["healthcheck"]["test"]
    command = test if isinstance(test, str) else " ".join(test[1:])
    assert "pg_isready" in command


def test_backend_database_url_matches_the_db_credentials(compose: dict[str, Any]) -> None:
    db_env = environment(service(compose, "db"))
    url = environment(service(compose, "backend"))["DATABASE_URL"]

    # Swap each ${...} for a marker so the URL can be split without guessing at its content.
    spans = list(_expressions(url))
    exprs = {f"var{i}marker": url[s:e] for i, (s, e) in enumerate(spans)}
    template = url
    for marker, expr in exprs.items():
        template = template.replace(expr, marker, 1)
    parts = urlsplit(template)

    assert parts.scheme in ("postgresql", "postgres", "postgresql+psycopg")
    assert parts.hostname == "db"
    assert parts.port == 5432
    assert only_var(exprs[parts.username or ""]) == only_var(db_env["POSTGRES_USER"])
    assert only_var(exprs[parts.password or ""]) == only_var(db_env["POSTGRES_PASSWORD"])
    assert only_var(exprs[parts.path.lstrip("/")]) == only_var(db_env["POSTGRES_DB"])

    # With the defaults and with overrides, both services see the same credentials.
    for env in ({}, {"POSTGRES_USER": "u1", "POSTGRES_PASSWORD": "p2", "POSTGRES_DB": "d3"}):
        resolved = urlsplit(interpolate(url, env))
        assert resolved.username == interpolate(db_env["POSTGRES_USER"], env)
        assert resolved.password == interpolate(db_env["POSTGRES_PASSWORD"], env)
        assert resolved.path == "/" + interpolate(db_env["POSTGRES_DB"], env)


def test_backend_waits_for_a_healthy_database(compose: dict[str, Any]) -> None:
    depends = service(compose, "backend")["depends_on"]
    assert isinstance(depends, dict), "the list form of depends_on cannot wait for health"
    assert depends["db"]["condition"] == "service_healthy"


def test_backend_is_not_published_and_checks_its_health_endpoint(compose: dict[str, Any]) -> None:
    backend = service(compose, "backend")
    port = backend_port(compose)
    assert "ports" not in backend, "only nginx should reach the backend (it trusts X-Forwarded-For)"
    check = " ".join(backend["healthcheck"]["test"][1:])
    assert re.search(rf"['\"]http://127\.0\.0\.1:{port}/health['\"]", check), check


def test_backend_environment_keys_are_settings(compose: dict[str, Any]) -> None:
    env = environment(service(compose, "backend"))
    unknown = sorted(set(env) - set(Settings.model_fields))
    assert not unknown, f"the backend does not read {unknown}"
    # The defaults compose fills in must be valid settings too.
    resolved = {key: interpolate(value, {}) for key, value in env.items()}
    settings = Settings(_env_file=None, **resolved)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.MIGRATE_ON_START is True
    assert Path(resolved["DATA_DIR"]) == settings.DATA_DIR
    assert settings.SECRET_KEY is None, "the default must let the backend generate its key"


def test_backend_data_dir_is_a_named_volume(compose: dict[str, Any]) -> None:
    backend = service(compose, "backend")
    data_dir = environment(backend)["DATA_DIR"]
    assert mount_at(backend, data_dir).source in compose["volumes"]


def test_frontend_serves_the_spa_and_waits_for_the_backend(compose: dict[str, Any]) -> None:
    frontend = service(compose, "frontend")
    assert frontend["image"].startswith("nginx:")
    assert published_container_ports(frontend) == [80]
    spa = mount_at(frontend, SPA_ROOT_TARGET)
    assert (REPO_ROOT / spa.source).resolve() == REPO_ROOT / "frontend" / "dist"
    assert spa.read_only
    assert mount_at(frontend, NGINX_CONF_TARGET).read_only
    assert frontend["depends_on"]["backend"]["condition"] == "service_healthy"


# --- tests: Dockerfile -------------------------------------------------------------------------


def test_backend_image_builds_from_the_repo_root(compose: dict[str, Any]) -> None:
    build = service(compose, "backend")["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == REPO_ROOT
    assert build["dockerfile"] == "backend/Dockerfile"
    assert (REPO_ROOT / build["dockerfile"]).is_file()


def test_dockerfile_installs_requirements_and_runs_uvicorn(compose: dict[str, Any]) -> None:
    steps = dockerfile_instructions(REPO_ROOT / "backend" / "Dockerfile")
    keywords = [k for k, _ in steps]
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11")

    install = next(
        i for i, (k, a) in enumerate(steps) if k == "RUN" and "-r backend/requirements.txt" in a
    )
    copy_reqs = next(
        i for i, (k, a) in enumerate(steps) if k == "COPY" and "backend/requirements.txt" in a
    )
    copy_code = next(
        i for i, (k, a) in enumerate(steps) if k == "COPY" and a.split()[0] == "backend/"
    )
    assert copy_reqs < install < copy_code, "requirements must be installed before the code"

    # The app finds alembic.ini next to backend/ (config.REPO_ROOT = backend's parent).
    workdir = PurePosixPath("/")
    copied: dict[str, PurePosixPath] = {}
    for keyword, args in steps:
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword == "COPY":
            *sources, target = [a for a in args.split() if not a.startswith("--")]
            into = workdir / target
            for src in sources:
                # A folder's contents land in the target; a file lands inside a target folder.
                file_into_folder = not src.endswith("/") and (target.endswith("/") or target == ".")
                copied[src] = into / PurePosixPath(src).name if file_into_folder else into
    assert workdir == copied["backend/"], "the server must start in the backend folder"
    assert copied["alembic.ini"] == copied["backend/"].parent / "alembic.ini"

    users = [a for k, a in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the server must not run as root"
    assert keywords.index("CMD") > keywords.index("USER")

    cmd = exec_form(next(a for k, a in steps if k == "CMD"))
    assert cmd[:2] == ["uvicorn", "main:app"]
    assert cmd[cmd.index("--port") + 1] == str(backend_port(compose))
    assert "--proxy-headers" in cmd


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        ln.strip()
        for ln in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for required in (".git", ".venv", ".env", "frontend/node_modules", "frontend/dist"):
        assert required in patterns, f".dockerignore should exclude {required}"


# --- tests: nginx ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["/api/v1/auth/login", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json"]
)
def test_nginx_proxies_backend_paths(
    compose: dict[str, Any], nginx_server: Directive, uri: str
) -> None:
    loc = location_for(nginx_server, uri)
    proxy = loc.get("proxy_pass")
    assert len(proxy) == 1, f"{uri} is not proxied (location {loc.args})"
    target = urlsplit(proxy[0].args[0])
    assert target.scheme == "http"
    assert (target.hostname, target.port) == ("backend", backend_port(compose))
    assert target.path == "", "a URI part in proxy_pass would rewrite the request path"

    headers = proxy_headers(nginx_server, loc)
    assert headers["host"] == "$host"
    assert headers["x-real-ip"] == "$remote_addr"
    assert headers["x-forwarded-proto"] == "$scheme"
    # uvicorn runs with --forwarded-allow-ips='*' and takes the first X-Forwarded-For entry, so
    # nginx must overwrite it; $proxy_add_x_forwarded_for would keep a client-forged address.
    assert headers["x-forwarded-for"] == "$remote_addr"


def test_nginx_streams_the_api(nginx_server: Directive) -> None:
    loc = location_for(nginx_server, "/api/v1/chat/stream")
    assert directive_value(nginx_server, loc, "proxy_buffering") == ["off"]
    timeout = directive_value(nginx_server, loc, "proxy_read_timeout")
    assert timeout is not None and seconds(timeout[0]) >= 3600


def test_nginx_accepts_large_uploads(nginx_server: Directive) -> None:
    loc = location_for(nginx_server, "/api/v1/datasets")
    size = directive_value(nginx_server, loc, "client_max_body_size")
    assert size is not None and size_in_bytes(size[0]) >= 1 << 30


def test_nginx_spa_history_fallback(nginx_server: Directive) -> None:
    loc = location_for(nginx_server, "/models/chat")
    assert not loc.get("proxy_pass")
    try_files = loc.get("try_files")
    assert try_files and try_files[0].args[-1] == "/index.html"
    assert "$uri" in try_files[0].args
    assert directive_value(nginx_server, loc, "root") == [SPA_ROOT_TARGET]


def test_nginx_caches_hashed_assets_without_falling_back(nginx_server: Directive) -> None:
    loc = location_for(nginx_server, "/assets/index-abc123.js")
    cache = [d.args for d in loc.get("add_header") if d.args[0].lower() == "cache-control"]
    assert cache and "immutable" in cache[0][1]
    # A missing asset answered with index.html would be cached as that asset for a year.
    try_files = loc.get("try_files")
    assert try_files and try_files[0].args[-1] == "=404"
