"""Every code block of the README runs as written (Python) or names what exists (shell).

Python blocks (```python) run in order, in one namespace and one event loop, as one session of
`python -m asyncio` would run them (top-level `await` allowed), in a scratch working directory. The
README's service addresses (`redis://127.0.0.1:6379/0`, `postgresql://postgres@127.0.0.1:5432/test`) are
mapped to the suite's own (`PERFKIT_TEST_REDIS_URL` with a Redis database of this test's own,
`PERFKIT_TEST_POSTGRES_URL`); everything the blocks open is closed afterwards.

Shell blocks (```bash, ```sh, ```shell) are checked line by line, not run: `make X` needs a target `X`
in the Makefile, `perfkit ...` must parse with perfkit's own argument parser, `pip install` may name
only extras pyproject.toml defines, and a path run with `bash` must exist.

A block that cannot run on its own is marked, with its reason, on the line just before its fence:

    <!-- readme-test: skip because ... -->

Prefer making it runnable. Blocks in any other language must be one of `NOT_CODE` (output, data).
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from perfkit.cli import build_parser

from .conftest import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md"]
README_REDIS_DB = 13  # the README's keys live in a Redis database of this test's own
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\b(?P<reason>.*?)-->")
PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell"}
NOT_CODE = {"text", "json", "toml", "yaml", "ini", "output"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str
    skip: str | None  # the reason given by a skip marker, if any

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the skip marker just above each, if any."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening["fence"], opening["lang"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        previous = lines[i - 1] if i > 0 else ""
        marker = SKIP_MARKER.search(previous)
        skip = (marker["reason"].strip() or "no reason given") if marker else None
        found.append(Block(path, i + 2, lang, "\n".join(body) + "\n", skip))
        i = j + 1
    return found


def test_blocks_reads_fences_languages_and_skip_markers(tmp_path: Path) -> None:
    """The extractor finds every fenced block with its language and first line, honours a skip marker
    on the line just above a fence (with its reason), and ignores markers further away."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# t\n```python\nx = 1\n```\n<!-- readme-test: skip because it needs a GPU -->\n"
        "~~~bash\nmake gpu\n~~~\n<!-- readme-test: skip because far -->\n\n```\nplain\n```\n"
    )
    found = blocks(doc)
    assert [(b.lang, b.line, b.code, b.skip) for b in found] == [
        ("python", 3, "x = 1\n", None),
        ("bash", 7, "make gpu\n", "because it needs a GPU"),
        ("", 12, "plain\n", None),
    ]


def test_the_readme_opens_with_make_demo_and_make_test() -> None:
    """The README's first code block shows `make demo` and `make test`, in that order."""
    first = blocks(ROOT / "README.md")[0]
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert commands[:2] == ["make demo", "make test"], first.code


def test_every_block_is_checked() -> None:
    """Each block is Python, shell, data/output, or carries a skip marker with a reason."""
    for path in DOCUMENTS:
        for block in blocks(path):
            known = PYTHON | SHELL | NOT_CODE
            assert block.lang in known or block.skip, (
                f"{block.where}: a ```{block.lang or '(no language)'} block; tag it as one of "
                f"{sorted(known)} or mark it '<!-- readme-test: skip because ... -->'"
            )
            assert block.skip != "no reason given", f"{block.where}: a skip marker needs its reason"


# -- shell blocks -------------------------------------------------------------------------------------


def shell_commands(code: str) -> list[list[str]]:
    """Command lines of a shell block: `\\` continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m[1] for m in re.finditer(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE)}


def pyproject_extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["project"]["optional-dependencies"])


def check_command(words: list[str], where: str) -> None:
    program, args = words[0], words[1:]
    if program == "make":
        missing = [t for t in args if not t.startswith("-") and "=" not in t and t not in make_targets()]
        assert not missing, f"{where}: the Makefile has no target {missing}"
    elif program == "perfkit" or words[:3] == ["python", "-m", "perfkit"]:
        argv = args if program == "perfkit" else words[3:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{where}: `{shlex.join(words)}` does not parse (exit {exc.code})") from None
    elif words[:2] == ["pip", "install"]:
        for spec in args[1:]:
            if match := re.fullmatch(r"perfkit\[([\w,-]+)\]", spec):
                unknown = set(match[1].split(",")) - pyproject_extras()
                assert not unknown, f"{where}: pyproject.toml has no extra {sorted(unknown)}"
    elif program == "bash":
        assert (ROOT / args[0]).exists(), f"{where}: {args[0]} does not exist"
    else:
        raise AssertionError(
            f"{where}: `{program}`: tests/test_readme.py does not know how to check it; teach "
            "check_command() or mark the block '<!-- readme-test: skip because ... -->'"
        )


def shell_blocks() -> list[Block]:
    return [b for path in DOCUMENTS for b in blocks(path) if b.lang in SHELL and not b.skip]


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda b: b.where)
def test_shell_block_names_what_exists(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command of a shell block names a Makefile target, parses as a perfkit command line, ..."""
    for words in shell_commands(block.code):
        check_command(words, block.where)
    capsys.readouterr()  # argparse's usage text on a failure is in the assertion already


# -- Python blocks ------------------------------------------------------------------------------------


def _with_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def service_urls() -> dict[str, str]:
    """README address -> the suite's service."""
    return {
        "redis://127.0.0.1:6379/0": _with_db(REDIS_URL, README_REDIS_DB),
        "postgresql://postgres@127.0.0.1:5432/test": POSTGRES_URL,
    }


def prepare(code: str) -> str:
    """The block's code with the README's service addresses mapped to the suite's; needs the service."""
    for readme_url, test_url in service_urls().items():
        if readme_url in code:
            (require_redis if readme_url.startswith("redis") else require_postgres)()
            code = code.replace(readme_url, test_url)
    return code


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Compile with top-level await allowed (line numbers are the README's) and run in `namespace`."""
    source = "\n" * (block.line - 1) + prepare(block.code)
    code = compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # noqa: S307  # the README's own code, which is what is under test
    if inspect.iscoroutine(result):
        await result


async def close_everything(namespace: dict[str, Any]) -> None:
    """Close what the blocks opened: caches (cleared first), job queues, engines, instrumented apps."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from perfkit import Cache, JobQueue

    for value in list(namespace.values()):
        state = getattr(getattr(value, "state", None), "perfkit", None)
        if state is not None:
            await state.close()
    for value in list(namespace.values()):
        if isinstance(value, Cache):
            await value.clear()
            await value.close()
        elif isinstance(value, JobQueue):
            await value.close()
    for value in list(namespace.values()):
        if isinstance(value, AsyncEngine):
            await value.dispose()


@pytest.fixture
async def readme_redis() -> AsyncIterator[None]:
    """The README test's Redis database is emptied of its keys afterwards (SCAN + DEL; it is ours)."""
    yield
    import redis.asyncio as aioredis

    if "redis://" not in "".join(b.code for p in DOCUMENTS for b in blocks(p)):
        return
    client = aioredis.Redis.from_url(_with_db(REDIS_URL, README_REDIS_DB))
    try:
        async for key in client.scan_iter(count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang in PYTHON and not b.skip]


_URL_IN_CODE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"]*")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_python_blocks_address_only_this_machine(path: Path) -> None:
    """Every URL in a Python block (comments included) is on 127.0.0.1, embedded (no host) or an
    example.com placeholder: what a reader copies reaches no other machine."""
    for block in python_blocks(path):
        for url in _URL_IN_CODE.findall(block.code):
            host = urlsplit(url).hostname
            assert host is None or host in LOOPBACK or host.endswith("example.com"), (
                f"{block.where}: {url} is not on 127.0.0.1"
            )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
async def test_python_blocks_run_in_order(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    readme_redis: None,
) -> None:
    """Each Python block runs, in order, in one namespace: a NameError, a missing import or a wrong
    call fails here with the README's line number; so does a cache that silently degraded (a store it
    could not reach) or any perfkit WARNING."""
    from perfkit import Cache

    python = python_blocks(path)
    assert python, f"{path.name} has no Python block"
    monkeypatch.chdir(tmp_path)  # files the blocks create (sqlite:///jobs.db) land in a scratch folder
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    try:
        with caplog.at_level("WARNING", logger="perfkit"):
            for block in python:
                await run_block(block, namespace)
        for name, value in namespace.items():
            if isinstance(value, Cache):
                errors = {tier: t.errors for tier, t in value.stats().tiers.items() if t.errors}
                assert not errors, f"{path.name}: cache {name!r} failed on {errors}"
        assert not [r for r in caplog.records if r.name.startswith("perfkit")], caplog.text
    finally:
        await close_everything(namespace)
