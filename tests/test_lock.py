"""requirements.lock and pyproject.toml agree.

The Makefile installs the lock with ``--no-deps`` (a resolving install once let a new upstream
release break a hash-locked install), so nothing but this test and ``pip check`` would notice a
dependency that pyproject gained and the lock lacks, or a lock entry that nothing needs any more.
The closure of pyproject's requirements (and sam2's, which the Makefile installs after the lock),
walked through the installed packages' metadata with markers evaluated on this machine, must be
exactly the lock's package set.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# In the lock on purpose although no runtime requirement names it: the lock's sdists (iopath,
# antlr4) and sam2 are built without isolation, against this setuptools.
BUILD_ONLY = {"setuptools"}
# Installed by the Makefile after the lock (an sdist pinned by hash), not in the lock.
OUTSIDE_LOCK = {"sam2"}


def lock_pins(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of a pip-compile lock."""
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def pyproject_requirements(extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def _applies(req: Requirement, extra: str) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": extra})


def closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of ``roots`` and everything they need on this machine (installed metadata)."""
    seen: dict[str, set[str]] = {}
    stack = [r for r in roots if _applies(r, "")]
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        if name in seen and extras <= seen[name]:
            continue
        new_extras = extras - seen.get(name, set())
        first_visit = name not in seen
        seen.setdefault(name, set()).update(extras)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed: the lock lacks it (run `make lock`)")
        for spec in map(Requirement, requires):
            wanted = ([""] if first_visit else []) + sorted(new_extras)
            if any(_applies(spec, e) for e in wanted):
                stack.append(spec)
    return set(seen)


def test_lock_parser_reads_names_and_versions() -> None:
    text = "Foo_Bar==1.2 \\\n    --hash=sha256:ab\n    # via x\nbaz==3.0 ; python_version < '4'\n"
    assert lock_pins(text) == {"foo-bar": "1.2", "baz": "3.0"}


def test_closure_follows_extras_and_markers() -> None:
    # prefect needs httpx with its http2 extra, which brings h2: the case a resolving install of
    # an older lock broke on. A closure that ignored extras would miss h2.
    names = closure([Requirement("prefect")])
    assert {"httpx", "h2"} <= names
    assert "pytest" not in names


def test_every_pyproject_requirement_is_locked() -> None:
    pins = lock_pins(LOCK.read_text())
    missing = sorted(
        canonicalize_name(r.name) for r in pyproject_requirements()
        if canonicalize_name(r.name) not in pins | dict.fromkeys(OUTSIDE_LOCK)
    )
    assert not missing, f"pyproject.toml requires {missing}, which requirements.lock lacks: run `make lock`"


def test_locked_versions_satisfy_pyproject() -> None:
    pins = lock_pins(LOCK.read_text())
    wrong = [
        f"{r.name}: lock has {pins[canonicalize_name(r.name)]}, pyproject wants {r.specifier}"
        for r in pyproject_requirements()
        if canonicalize_name(r.name) in pins
        and not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not wrong, wrong


def test_lock_is_exactly_the_closure() -> None:
    pins = lock_pins(LOCK.read_text())
    needed = closure(pyproject_requirements()) - OUTSIDE_LOCK - {"usam-video"}
    unneeded = sorted(set(pins) - needed - BUILD_ONLY)
    missing = sorted(needed - set(pins))
    assert not missing, f"needed but not in requirements.lock: {missing} (run `make lock`)"
    assert not unneeded, f"in requirements.lock but needed by nothing: {unneeded} (run `make lock`)"


def test_installed_versions_are_the_locked_ones() -> None:
    pins = lock_pins(LOCK.read_text())
    drift = {
        name: (version, metadata.version(name))
        for name, version in pins.items()
        if metadata.version(name) != version
    }
    assert not drift, f"installed versions differ from the lock (locked, installed): {drift}"
