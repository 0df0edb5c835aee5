"""No import cycles, not even through imports inside functions or under TYPE_CHECKING: the module graph
of the package, read from the source with ast, has no strongly connected component."""

from __future__ import annotations

import ast
from pathlib import Path

from appliance.backends.registry import Backends
from appliance.config import BACKEND_NAMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"appliance": ROOT, "appliance_tools": ROOT / "tools"}  # package -> the directory it is in
KNOWN: list[set[str]] = []  # cycles left for their owners (none)


def modules() -> dict[str, Path]:
    found = {}
    for package, parent in PACKAGES.items():
        for path in (parent / package).rglob("*.py"):
            name = ".".join(path.relative_to(parent).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            edges[name].update(t for t in targets if t in mods and t != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start, first in edges.items():
        if start in index:
            continue
        work = [(start, iter(sorted(first)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycles() -> None:
    found = [c for c in cycles(graph()) if c not in KNOWN]
    assert found == []


def test_the_runtime_never_imports_the_tools() -> None:
    """The device installs the runtime wheel only: nothing in appliance/ may need appliance_tools."""
    edges = graph()
    found = {
        (name, e)
        for name, targets in edges.items()
        if not name.startswith("appliance_tools")
        for e in targets
        if e.startswith("appliance_tools")
    }
    assert found == set()


BUILDERS = {"appliance.api.app", "appliance.api.context"}  # build the app and hand out the views


def test_handlers_on_narrow_views_do_not_reach_the_container() -> None:
    """Every handler module takes a narrow view (appliance/control.py), never the whole Services:
    only create_app and the module that attaches the views know the container."""
    edges = graph()
    handlers = [name for name in edges if name.startswith("appliance.api.") and name not in BUILDERS]
    assert len(handlers) > 40
    reaching = [name for name in handlers if "appliance.services" in edges[name]]
    assert reaching == []
    assert [n for n in handlers if "app.state.services" in modules()[n].read_text(encoding="utf-8")] == []


def test_lower_layers_never_see_the_views_or_the_container() -> None:
    edges = graph()
    lower = (
        "appliance.pipeline",
        "appliance.plc",
        "appliance.sources",
        "appliance.store",
        "appliance.inspection",
    )
    found = {
        (name, e)
        for name, targets in edges.items()
        if name.startswith(lower)
        for e in targets
        if e in ("appliance.services", "appliance.control") or e.startswith("appliance.api")
    }
    assert found == set()


def test_the_cycles_this_design_removed_stay_removed() -> None:
    edges = graph()
    assert "appliance.services" not in edges["appliance.plc.outputs"]
    assert not {e for e in edges["appliance.config"] if e.startswith("appliance.backends")}


def test_config_knows_every_backend() -> None:
    assert Backends.default().names() == BACKEND_NAMES
