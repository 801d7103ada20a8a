"""Run a real application perfkit did not write: install, set up, test bare and wired, drive, collect.

Each folder of `../shared/realapps/` (beside the repository; `PERFKIT_REALAPPS_DIR` overrides) that holds
a `realapp.json` is one app (keys: ../shared/realapps/README.md). For each, `run_app()`:

1. copies the folder to a writable temporary directory (the shared folder is read-only);
2. finds or builds its virtual environment, cached under `~/.cache/perfkit-realapps/` (`XDG_CACHE_HOME`,
   or `PERFKIT_REALAPPS_CACHE`) keyed by a hash of the app's install files and commands, the Python
   version, perfkit's pyproject.toml and this checkout's path: the app's `install` commands, then
   `pip install -e <this checkout>[web,monitor]`, so the venv always runs the checkout's perfkit;
3. for every phase makes a fresh PostgreSQL database (`{database}`), runs `setup`, and drops it after:
   the app's own `test` command bare, then again with `import perfkit` + `app = perfkit.instrument(app,
   engine=engine)` appended to `wire_file` (the README's wiring) and `realapp_probe.py` observing; then
   `driver.py`, the in-process drive of the app with perfkit's rules.

`python -m tests.realapps.harness` runs every app and prints the figures and the checks (checks.py).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PERFKIT_EXTRAS = "web,monitor"
INSTALL_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "poetry.lock", "Pipfile.lock")
STEP_TIMEOUT = 600.0  # one install or test command; the whole suite stays far below


class RealAppError(Exception):
    """A real app could not be installed, set up or run; the message names the step and its output."""


def realapps_dir() -> Path:
    """Where the apps live: $PERFKIT_REALAPPS_DIR, else `<repo>/../shared/realapps`."""
    return Path(os.environ.get("PERFKIT_REALAPPS_DIR") or REPO.parent / "shared" / "realapps")


def find_apps(root: Path) -> list[Path]:
    """Every folder under `root` with a realapp.json, sorted by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "realapp.json").is_file())


REQUIRED = ("name", "install", "test", "expect_passed", "app", "wire_file")


@dataclass
class RealApp:
    folder: Path
    spec: dict[str, Any]

    @classmethod
    def load(cls, folder: Path) -> RealApp:
        try:
            spec = json.loads((folder / "realapp.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RealAppError(f"{folder}/realapp.json is not JSON: {exc}") from exc
        missing = [k for k in REQUIRED if k not in spec]
        if missing:
            raise RealAppError(f"{folder}/realapp.json lacks {', '.join(missing)}")
        if spec.get("database") not in (None, "postgresql"):
            raise RealAppError(f"{folder}/realapp.json: database {spec['database']!r} is not supported")
        return cls(folder, spec)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def install_key(self) -> str:
        """Hash of what decides the venv's contents (and of the checkout it points perfkit at)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.spec["install"]).encode())
        h.update(sys.version.encode())
        h.update(str(REPO).encode())
        h.update((REPO / "pyproject.toml").read_bytes())
        h.update(PERFKIT_EXTRAS.encode())
        for f in sorted(self.folder.iterdir()):
            if f.is_file() and (f.name in INSTALL_FILES or re.match(r"requirements.*\.txt$", f.name)):
                h.update(f.name.encode() + b"\0" + f.read_bytes())
        return h.hexdigest()[:16]


def cache_root() -> Path:
    if os.environ.get("PERFKIT_REALAPPS_CACHE"):
        return Path(os.environ["PERFKIT_REALAPPS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "perfkit-realapps"


def _clean_env() -> dict[str, str]:
    """This process's environment without what points Python at perfkit's own test venv."""
    drop = (
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONHOME",
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
        "PYTEST_CURRENT_TEST",
    )
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(cmd: str | list[str], *, cwd: Path, env: dict[str, str], step: str) -> str:
    """Run a command; its combined output, or RealAppError naming the step with the output's tail."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True,
        timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RealAppError(f"{step}: exit {proc.returncode}: {cmd}\n{out[-4000:]}")
    return out


def venv_env(venv: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else _clean_env())
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def ensure_venv(app: RealApp, copy: Path) -> tuple[Path, float]:
    """The app's cached venv (built now if missing): (its folder, seconds spent building, 0 if cached).

    Built in place (console scripts keep their absolute paths) under a lock; a `.complete` marker is
    written last, so a half-built venv (interrupted run) is thrown away and rebuilt."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{app.name}-{app.install_key()}"
    with open(root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return venv, 0.0
        start = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)], cwd=copy, env=_clean_env(), step="venv")
        env = venv_env(venv)
        for cmd in app.spec["install"]:
            run(cmd, cwd=copy, env=env, step=f"{app.name} install")
        run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", f"{REPO}[{PERFKIT_EXTRAS}]"],
            cwd=copy, env=env, step=f"{app.name} install perfkit",
        )  # fmt: skip
        (venv / ".complete").write_text(json.dumps({"app": app.name, "built": time.time()}))
        return venv, time.monotonic() - start


POSTGRES_ADMIN = os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def fresh_database(app: RealApp) -> Iterator[str | None]:
    """A new, empty PostgreSQL database for one phase (dropped after), or None if the app needs none."""
    if app.spec.get("database") is None:
        yield None
        return
    import psycopg

    name = f"perfkit_ra_{re.sub(r'[^a-z0-9]', '_', app.name.lower())}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_env(app: RealApp, copy: Path, venv: Path, database: str | None) -> dict[str, str]:
    env = venv_env(venv)
    for key, value in app.spec.get("env", {}).items():
        env[key] = str(value).replace("{app}", str(copy)).replace("{database}", database or "")
    # realapp_probe.py imports realapp_side by name; the app's own PYTHONPATH stays first
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(HERE)) if p)
    return env


def passed(output: str) -> int:
    """The pass count of a pytest summary line ("60 passed"); 0 when there is none."""
    found = re.findall(r"(\d+) passed", output)
    return int(found[-1]) if found else 0


WIRING = (
    "\n\n# perfkit, as its README says (added by tests/realapps)\n"
    "import perfkit\n{engine_import}app = perfkit.instrument(app{engine_arg})\n"
)


def wiring(app: RealApp) -> str:
    attr = app.spec["app"].split(":", 1)[1]
    if attr != "app":
        raise RealAppError(
            f"{app.name}: realapp.json 'app' must name an attribute 'app' to wire, got {attr!r}"
        )
    engine = app.spec.get("engine")
    if not engine:
        return WIRING.format(engine_import="", engine_arg="")
    module, _, name = engine.partition(":")
    return WIRING.format(
        engine_import=f"from {module} import {name} as _perfkit_engine\n",
        engine_arg=", engine=_perfkit_engine",
    )


@dataclass
class Outcome:
    app: RealApp
    venv_build_s: float = 0.0
    bare_passed: int = 0
    wired_passed: int = 0
    probe: dict[str, Any] = field(default_factory=dict)
    drive: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)


def run_app(folder: Path) -> Outcome:
    """Everything for one app; raises RealAppError with the failing step's output."""
    app = RealApp.load(folder)
    out = Outcome(app)
    with tempfile.TemporaryDirectory(prefix=f"perfkit-realapp-{app.name}-") as tmp:
        copy = Path(tmp) / app.name
        shutil.copytree(folder, copy)
        for path in [copy, *copy.rglob("*")]:  # the shared folder is read-only; so is the copy's mode
            path.chmod(path.stat().st_mode | 0o200)
        t = time.monotonic()
        venv, out.venv_build_s = ensure_venv(app, copy)
        out.seconds["venv"] = time.monotonic() - t

        def phase(label: str, extra: dict[str, str], command: list[str] | str) -> str:
            t = time.monotonic()
            with fresh_database(app) as db:
                env = {**app_env(app, copy, venv, db), **extra}
                for cmd in app.spec.get("setup", []):
                    run(cmd, cwd=copy, env=env, step=f"{app.name} setup ({label})")
                proc = subprocess.run(
                    command, cwd=copy, env=env, shell=isinstance(command, str), capture_output=True,
                    text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
                )  # fmt: skip
            out.seconds[label] = time.monotonic() - t
            out.output[label] = proc.stdout + proc.stderr
            if label == "drive" and proc.returncode != 0:
                raise RealAppError(f"{app.name} driver: exit {proc.returncode}\n{out.output[label][-4000:]}")
            return out.output[label]

        out.bare_passed = passed(phase("bare", {}, app.spec["test"]))
        wire = copy / app.spec["wire_file"]
        original = wire.read_text(encoding="utf-8")
        wire.write_text(original + wiring(app), encoding="utf-8")
        probe_out = Path(tmp) / "probe.json"
        probe_env = {
            "PYTEST_PLUGINS": "realapp_probe",
            "PERFKIT_REALAPP_PROBE_OUT": str(probe_out),
            "PERFKIT_REALAPP_APP": app.spec["app"],
        }
        out.wired_passed = passed(phase("wired", probe_env, app.spec["test"]))
        if probe_out.exists():
            out.probe = json.loads(probe_out.read_text(encoding="utf-8"))
        wire.write_text(original, encoding="utf-8")  # the driver wires perfkit itself, with rules
        drive_out = Path(tmp) / "drive.json"
        python = str(venv / "bin" / "python")
        phase(
            "drive",
            {},
            [
                python,
                str(HERE / "driver.py"),
                "--realapp",
                str(copy / "realapp.json"),
                "--out",
                str(drive_out),
            ],
        )
        out.drive = json.loads(drive_out.read_text(encoding="utf-8"))
    return out


def main() -> int:
    from tests.realapps import checks

    parser = argparse.ArgumentParser(description="Run the real apps and print perfkit's view of them.")
    parser.add_argument("--app", action="append", help="only this app (folder name); repeatable")
    parser.add_argument("--json", help="write every app's outcome (requests, report) to this file")
    args = parser.parse_args()
    root = realapps_dir()
    folders = [f for f in find_apps(root) if not args.app or f.name in args.app]
    if not folders:
        print(f"no real apps (folders with realapp.json) under {root}", file=sys.stderr)
        return 2
    failed = 0
    dumped = {}
    for folder in folders:
        t = time.monotonic()
        outcome = run_app(folder)
        print(checks.summary(outcome))
        problems = checks.all_problems(outcome)
        for check, found in problems.items():
            status = "ok" if not found else "FAIL"
            print(f"  [{status}] {check}")
            for p in found[:8]:
                print(f"         - {p}")
            if len(found) > 8:
                print(f"         ... and {len(found) - 8} more")
        failed += sum(1 for f in problems.values() if f)
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.seconds.items())
        print(f"  total {time.monotonic() - t:.1f} s ({steps})")
        dumped[outcome.app.name] = {
            "probe": outcome.probe,
            "drive": outcome.drive,
            "seconds": outcome.seconds,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(dumped, indent=1), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
