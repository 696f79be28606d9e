"""Dependency floors stay at or above each package's latest security release (T40).

pip-audit cannot reach its vulnerability databases from the build machines, so
the floors are held here instead, with where each figure comes from; operators
who can reach them run `make audit`.
"""

import tomllib
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO_ROOT

# package -> (latest release with a security fix, where that is recorded)
SECURITY_RELEASES = {
    "pypdf": ("7.1.1", "pypdf CHANGELOG.md: 'Security (SEC)' in 7.1.1, 2026-11-18"),
    "django": (
        "5.2.19",
        "newest 5.2 LTS patch; Django ships security fixes as patches",
    ),
    "celery": ("5.7.0", "newest release at pinning time"),
    "psycopg": ("3.3.9", "newest release at pinning time"),
    "uvicorn": ("0.54.0", "newest release at pinning time"),
}


def _requirements(group: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = (
        project["dependencies"]
        if group is None
        else (project["optional-dependencies"][group])
    )
    return [Requirement(spec) for spec in specs]


def _floor(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return max(floors) if floors else None


@pytest.mark.parametrize("group", [None, "test"])
def test_every_dependency_has_a_floor_and_a_ceiling(group):
    for requirement in _requirements(group):
        operators = {s.operator for s in requirement.specifier}
        assert ">=" in operators, f"{requirement} has no lower bound"
        assert "<" in operators, f"{requirement} has no upper bound"


@pytest.mark.parametrize("package", sorted(SECURITY_RELEASES))
def test_floor_is_at_or_above_the_latest_security_release(package):
    wanted, source = SECURITY_RELEASES[package]
    requirement = next(
        r for r in _requirements() if r.name.lower().replace("_", "-") == package
    )
    assert _floor(requirement) >= Version(wanted), f"{package}: {source}"
    assert Version(version(package)) >= Version(wanted)
