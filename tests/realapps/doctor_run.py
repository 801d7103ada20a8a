"""`perfkit doctor` against each real app, wired as its README says (not a test: a report to read).

    python -m tests.realapps.doctor_run [--json]

For each app of `../shared/realapps/`: its cached venv (harness.ensure_venv), a fresh database and its
setup, `perfkit.instrument(app, engine=...)` appended to its wire file, then `perfkit doctor --app` in the
app's venv with a monitor token, on the health-check, docs and OpenAPI paths the app has. Prints what
doctor printed; the exit code is doctor's (the worst over the apps).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.realapps import harness

PATHS = {"fastapi-template": ["/api/v1/utils/health-check/", "/docs", "/api/v1/openapi.json"]}


def doctor(folder: Path, extra: list[str]) -> int:
    app = harness.RealApp.load(folder)
    with tempfile.TemporaryDirectory(prefix=f"perfkit-doctor-{app.name}-") as tmp:
        copy = Path(tmp) / app.name
        shutil.copytree(folder, copy)
        for path in [copy, *copy.rglob("*")]:  # the shared folder is read-only; so is the copy's mode
            path.chmod(path.stat().st_mode | 0o200)
        venv, _ = harness.ensure_venv(app, copy)
        wire = copy / app.spec["wire_file"]
        wire.write_text(wire.read_text(encoding="utf-8") + harness.wiring(app), encoding="utf-8")
        with harness.fresh_database(app) as db:
            env = harness.app_env(app, copy, venv, db)
            env |= {"PERFKIT_MONITOR_TOKEN": "realapp-doctor", "PERFKIT_MONITOR_URL": f"sqlite:///{tmp}/m.db"}
            for cmd in app.spec.get("setup", []):
                harness.run(cmd, cwd=copy, env=env, step=f"{app.name} setup (doctor)")
            paths = [arg for p in PATHS.get(app.name, ["/"]) for arg in ("--path", p)]
            command = [str(venv / "bin" / "python"), "-m", "perfkit", "doctor", "--app", app.spec["app"]]
            proc = subprocess.run(
                [*command, *paths, *extra], cwd=copy, env=env, capture_output=True, text=True,
                timeout=harness.STEP_TIMEOUT, check=False,
            )  # fmt: skip
        print(f"== {app.name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc.returncode


def main() -> int:
    extra = sys.argv[1:]
    return max([doctor(folder, extra) for folder in harness.find_apps(harness.realapps_dir())], default=0)


if __name__ == "__main__":
    raise SystemExit(main())
