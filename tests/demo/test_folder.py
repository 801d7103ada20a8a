"""`perfkit demo` writes and deletes only inside a folder of its own (marked), never an app's stores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from perfkit.cli import main
from perfkit.demo import folder
from perfkit.errors import ConfigurationError


def make_app_store(app: Path) -> Path:
    """An app's own monitor store, with a history row, where the monitor's default puts it."""
    store = app / ".perfkit" / "monitor.db"
    store.parent.mkdir(parents=True)
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE history (minute INTEGER, data TEXT)")
        conn.execute("INSERT INTO history VALUES (1, 'the app''s own history')")
    return store


def test_demo_in_an_apps_folder_keeps_the_apps_monitor_store(tmp_path: Path) -> None:
    """Run with the default --dir in a folder holding an app's .perfkit/monitor.db: that store and its
    history survive; the demo's stores live in .perfkit/demo, which it marks as its own."""
    app = tmp_path / "app"
    store = make_app_store(app)
    before = store.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "perfkit", "demo", "--no-serve", "--quick", "--scale", "0.01",
         "--duration", "0.1s", "--users", "1"],
        cwd=app, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PERFKIT_")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert store.read_bytes() == before
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT data FROM history").fetchall() == [("the app's own history",)]
    assert folder.owned(app / ".perfkit" / "demo")
    assert (app / ".perfkit" / "demo" / "monitor.db").exists()
    assert sorted(p.name for p in (app / ".perfkit").iterdir()) == ["demo", "monitor.db"]


@pytest.mark.parametrize("content", ["monitor.db", "notes.txt"])
def test_a_folder_the_demo_did_not_create_is_refused(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --dir holding files but no marker exits 2 naming --dir, and nothing in it is touched."""
    (tmp_path / content).write_text("someone else's")
    argv = ["--no-serve", "--quick", "--scale", "0.01", "--duration", "0.1s", "--users", "1"]
    assert main(["demo", *argv, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--dir" in err and folder.MARKER in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [content]
    assert (tmp_path / content).read_text() == "someone else's"


def test_a_file_as_dir_is_refused(tmp_path: Path) -> None:
    """--dir naming a file is refused by name."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigurationError, match="--dir"):
        folder.claim(tmp_path / "f")


def test_new_and_empty_folders_are_claimed_and_marked_ones_reused(tmp_path: Path) -> None:
    """A new folder (parents included) or an empty one gets the marker; a marked folder is reused with
    its files kept."""
    new = folder.claim(tmp_path / "a" / "b")
    assert folder.owned(new)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder.owned(folder.claim(empty))
    (new / "demo.db").write_text("seeded")
    assert folder.claim(tmp_path / "a" / "b") == new
    assert (new / "demo.db").read_text() == "seeded"


def test_the_monitor_store_is_deleted_only_in_the_demos_folder(tmp_path: Path) -> None:
    """Even when handed settings for a folder without the marker, the demo keeps its monitor store."""
    from perfkit.demo.prepare import forget_monitoring
    from perfkit.demo.settings import DemoSettings
    from perfkit.errors import PerfkitError

    store = make_app_store(tmp_path)
    settings = DemoSettings.choose(store.parent, token="t")
    with pytest.raises(PerfkitError, match="kept"):
        forget_monitoring(settings)
    assert store.exists()
    folder.claim(tmp_path / "demo")
    forget_monitoring(DemoSettings.choose(tmp_path / "demo", token="t"))
