"""The lock files are complete and consistent, so installing them with --no-deps resolves nothing.

`make` installs `requirements/dev.txt` without resolving (a fresh install must not depend on
what the registry published since the lock was written). That is only sound if every
requirement of every locked distribution, with its extras and environment markers, is itself
locked at a version that satisfies it. `uv pip check` in `make test` checks the installed
venv; these tests check the lock files themselves, and show on doctored copies that the check
catches a missing transitive package, an unsatisfied pin and a line that is not a pin.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")

# Reads the Requires-Dist lines of one locked distribution.
Metadata = Callable[[NormalizedName, Version], list[str]]


def read_lock(text: str) -> dict[NormalizedName, Version]:
    """The pins of a `uv pip compile` lock; anything but pins, hashes and comments is refused."""
    pins: dict[NormalizedName, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "--hash=")):
            continue
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"line {number}: not a pinned requirement: {line!r}")
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def installed_metadata(name: NormalizedName, version: Version) -> list[str]:
    """Requires-Dist of the installed distribution, which must be the locked version."""
    dist = importlib.metadata.distribution(name)
    if Version(dist.version) != version:
        raise LookupError(f"the venv has {name} {dist.version}, the lock {version}: rerun make")
    return dist.requires or []


def lock_problems(
    pins: dict[NormalizedName, Version], roots: Iterable[str], metadata: Metadata
) -> list[str]:
    """Every requirement reachable from ``roots`` that the lock misses or does not satisfy.

    Walks the graph with extras: `prefect` needs `httpx[http2]`, so `httpx`'s requirements
    under the `http2` extra (`h2`) must be locked too. Markers are evaluated for this
    interpreter, which is the one the lock was compiled for (`--python-version 3.11`).
    """
    problems: list[str] = []
    seen: set[tuple[NormalizedName, str]] = set()
    queue = [("pyproject.toml", Requirement(root)) for root in roots]
    while queue:
        parent, requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        pinned = pins.get(name)
        if pinned is None:
            problems.append(f"{parent} requires {requirement}, which the lock does not pin")
            continue
        if not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{parent} requires {requirement}, but the lock pins {name}=={pinned}")
        extras = {""} | set(requirement.extras)
        todo = [extra for extra in sorted(extras) if (name, extra) not in seen]
        if not todo:
            continue
        seen.update((name, extra) for extra in todo)
        label = f"{name}[{','.join(sorted(requirement.extras))}]" if requirement.extras else name
        try:
            requires = metadata(name, pinned)
        except LookupError as error:
            problems.append(str(error))
            continue
        for line in requires:
            child = Requirement(line)
            wanted = child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in todo
            )
            if wanted:
                queue.append((label, child))
    return problems


def project_roots(extras: Iterable[str] = ()) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = list(project["dependencies"])
    for extra in extras:
        roots += project["optional-dependencies"][extra]
    return roots


def uv_roots() -> list[str]:
    return [
        line
        for line in (REQUIREMENTS / "uv.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def extra_roots(extra: str) -> list[str]:
    """The requirements of one extra alone (its lock is installed beside dev.txt)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][extra])


LOCKS = {
    "main.txt": project_roots(),
    "dev.txt": project_roots(["dev"]),
    "spark.txt": extra_roots("spark"),
    "uv.txt": uv_roots(),
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_is_complete_and_consistent(lock: str) -> None:
    pins = read_lock((REQUIREMENTS / lock).read_text())
    assert lock_problems(pins, LOCKS[lock], installed_metadata) == []


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_holds_only_pins_hashes_and_comments(lock: str) -> None:
    """No option line, no direct reference: a lock names no index, host or file to fetch."""
    assert read_lock((REQUIREMENTS / lock).read_text())


def test_runtime_lock_is_the_dev_lock_without_dev_tools() -> None:
    main = read_lock((REQUIREMENTS / "main.txt").read_text())
    dev = read_lock((REQUIREMENTS / "dev.txt").read_text())
    assert {name: dev.get(name) for name in main} == main


def test_spark_lock_pins_nothing_the_main_lock_pins_otherwise() -> None:
    """spark.txt is installed after dev.txt, so it must not move any version dev.txt set."""
    dev = read_lock((REQUIREMENTS / "dev.txt").read_text())
    spark = read_lock((REQUIREMENTS / "spark.txt").read_text())
    assert "pyspark" in spark
    assert {name: dev[name] for name in spark if name in dev} == {
        name: pin for name, pin in spark.items() if name in dev
    }


def without_pin(text: str, name: str) -> str:
    """The lock text with one distribution's entry (pin, hashes, comments) removed."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if pin := PIN.match(line):
            skipping = canonicalize_name(pin[1]) == name
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def test_check_catches_a_missing_transitive_package(tmp_path: Path) -> None:
    # h2 is reached only through prefect's `httpx[http2]`: the extra must be followed.
    doctored = tmp_path / "dev.txt"
    doctored.write_text(without_pin((REQUIREMENTS / "dev.txt").read_text(), "h2"))
    pins = read_lock(doctored.read_text())
    assert "h2" not in pins
    problems = lock_problems(pins, LOCKS["dev.txt"], installed_metadata)
    assert problems
    assert all("h2" in problem and "the lock does not pin" in problem for problem in problems)
    assert any(problem.startswith("httpx[http2] requires h2") for problem in problems)


def test_check_catches_a_pin_that_does_not_satisfy_its_dependents(tmp_path: Path) -> None:
    text = (REQUIREMENTS / "dev.txt").read_text()
    doctored = re.sub(r"^anyio==\S+", "anyio==3.7.1", text, count=1, flags=re.M)
    assert doctored != text
    problems = lock_problems(read_lock(doctored), LOCKS["dev.txt"], installed_metadata)
    assert any("requires anyio" in p and "the lock pins anyio==3.7.1" in p for p in problems)
    assert any("the venv has anyio" in problem for problem in problems)


def test_check_refuses_a_line_that_is_not_a_pin() -> None:
    text = (REQUIREMENTS / "dev.txt").read_text()
    # Any option or location line is refused as "not a pin": the check never lists them.
    doctored = "wheels/extra-1.0-py3-none-any.whl\n" + text
    with pytest.raises(ValueError, match="line 1: not a pinned requirement"):
        read_lock(doctored)


def test_makefile_installs_every_lock_without_resolving() -> None:
    installs = [
        line.strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if re.search(r"\binstall\b", line) and ("pip" in line or "$(UV)" in line)
    ]
    assert len(installs) == 4  # uv, dev.txt, spark.txt, Proof itself
    assert all("--no-deps" in line for line in installs), installs
    assert sum("--require-hashes" in line for line in installs) == 3
