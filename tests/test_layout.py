"""The package layout the connector kit promises: connectors talk to real CRMs only, the vendor
simulators live in crm_pulse.sandbox, and connector kinds are listed only as entry points."""

from __future__ import annotations

import ast
from importlib.metadata import distribution, entry_points
from pathlib import Path

from crm_pulse.config import settings_model
from crm_pulse.config.connectors import ConnectorSettings
from crm_pulse.connectors.registry import PLUGIN_GROUP, connector_class, connector_kinds

PACKAGE = Path(__file__).resolve().parents[1] / "crm_pulse"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                found.add(".".join([*base, node.module or ""]).rstrip("."))
            else:
                found.add(node.module or "")
    return found


def test_connectors_never_import_the_simulators() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / "connectors").rglob("*.py")
        if any(m.startswith(("crm_pulse.sandbox", "trustme")) for m in _imports(path))
    ]
    assert offenders == []
    assert not list((PACKAGE / "connectors").rglob("fake.py"))


def test_every_kind_comes_from_the_entry_points_with_its_settings_model() -> None:
    registered = {ep.name for ep in entry_points(group=PLUGIN_GROUP)}
    assert {"hubspot", "salesforce", "pipedrive", "zoho", "events", "file"} <= registered
    assert connector_kinds() == sorted(registered)
    for kind in registered:
        model = settings_model(kind)
        assert issubclass(model, ConnectorSettings)
        assert connector_class(kind).settings_model is model
    for kind in ("hubspot", "salesforce", "pipedrive", "zoho", "events", "file"):
        module = connector_class(kind).__module__
        assert settings_model(kind).__module__ == f"{module}.settings"


def test_config_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "config").glob("*.py")}
    assert max(sizes.values()) <= 500, sizes


def test_every_builtin_connector_runs_the_shipped_conformance_suite() -> None:
    ours = {ep.name for ep in distribution("crm-pulse").entry_points if ep.group == PLUGIN_GROUP}
    tests = PACKAGE.parent / "tests" / "connectors"
    for kind in ours:
        module = tests / kind / "test_conformance.py"
        assert module.is_file(), f"{kind} does not run the conformance suite"
        assert "(ConformanceSuite)" in module.read_text(encoding="utf-8")


def test_builtin_connectors_use_only_the_public_kit() -> None:
    """Outside its own folder, a built-in connector imports only names crm_pulse.connectors
    exports: what a plugin has is all they have."""
    import crm_pulse.connectors as kit

    outside: list[str] = []
    for folder in (PACKAGE / "connectors").iterdir():
        if not (folder / "__init__.py").is_file():
            continue
        for path in folder.rglob("*.py"):
            where = path.relative_to(PACKAGE)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level >= 2:  # beyond its folder
                    outside += [
                        f"{where}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name not in kit.__all__
                    ]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    if (node.module or "").startswith("crm_pulse"):
                        outside.append(f"{where}: {node.module}")
                elif isinstance(node, ast.Import):
                    outside += [
                        f"{where}: {a.name}" for a in node.names if a.name.startswith("crm_pulse")
                    ]
    assert outside == []


def test_the_streams_public_api_resolves_every_name_it_lists() -> None:
    import crm_pulse.streams as streams

    for name in streams.__all__:
        assert getattr(streams, name).__name__ == name


def test_streams_reads_as_its_runtimes_and_what_they_share() -> None:
    """``crm_pulse/streams``: the embedded runtime, the Faust runtime, write-back and HTTP as
    subpackages; beside them only the tools both runtimes use."""
    streams = PACKAGE / "streams"
    packages = {p.name for p in streams.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in streams.glob("*.py")} - {"__init__"}
    assert packages == {"embedded", "faust", "writeback", "http"}
    assert modules <= {"audit", "doctor", "explain", "logs"}, modules
