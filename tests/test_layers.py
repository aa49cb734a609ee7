"""The layering, read from the source: no import cycles between the project's modules, the
Docker SDK imported only by ``deployer.engine``, and the dashboard's screens never reaching an
engine or a connection themselves (they post to workers that call the backend).

Only imports that run when a module loads count: those under ``if TYPE_CHECKING:`` and those
inside functions (deferred on purpose, so a command imports only what it needs) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("deployer", "tui")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def load_time_imports(path: Path) -> set[str]:
    """Every module name imported at load time (``from a import b`` counts ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names |= {alias.name for alias in inner.names}
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                names.add(inner.module)
                names |= {f"{inner.module}.{alias.name}" for alias in inner.names}
    return names


def project_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: (load_time_imports(path) & mods.keys()) - {name}
            for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_finder_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    graph = project_graph()
    assert len(graph) > 100, "the project's modules were not found"
    assert find_cycle(graph) is None


def test_only_the_engine_package_imports_the_docker_sdk() -> None:
    importers = sorted(
        name for name, path in modules().items()
        if any(n == "docker" or n.startswith("docker.") for n in load_time_imports(path))
        and not name.startswith("deployer.engine"))
    assert importers == []


def test_dashboard_screens_reach_no_engine_or_connection() -> None:
    forbidden = ("docker", "paramiko", "deployer.engine", "deployer.connectors")
    reaching = {
        name: sorted(n for n in load_time_imports(path) if n.startswith(forbidden))
        for name, path in modules().items() if name.startswith("tui.screens")}
    assert {name: found for name, found in reaching.items() if found} == {}
