"""No import cycles inside rmcore, counting imports inside functions too: a lazy import that
closes a cycle still ties the modules together (one cannot be read or tested alone)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rmcore"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """rmcore module -> the rmcore modules it imports anywhere (TYPE_CHECKING blocks included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from rmcore import store_files` imports the submodule; `from rmcore.data
                # import Example`, the package itself.
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_rmcore_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every rmcore module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


TRAINERS = ("rmcore.trainer", "rmcore.rm_trainer", "rmcore.online_step", "rmcore.offline_step",
            "rmcore.policy_step", "rmcore.algorithms")
STORE_SIDE = {"rmcore.store", "rmcore.store_queries", "rmcore.store_open", "rmcore.store_files", "rmcore.runner",
              "rmcore.run_worker", "rmcore.store_steps", "rmcore.run_refs", "rmcore.resume", "rmcore.export"}


def test_trainers_never_reach_the_store_or_the_runner():
    graph = import_graph()
    algorithms = [m for m in graph if m.startswith("rmcore.algorithms.")]  # found at run time, not imported by name
    assert len(algorithms) >= 9
    for trainer in (*TRAINERS, *algorithms):
        assert not reaches(graph, trainer) & STORE_SIDE, (trainer, sorted(reaches(graph, trainer) & STORE_SIDE))


def test_reaches_follows_imports_through_other_modules():
    assert reaches({"a": {"b"}, "b": {"c"}, "c": set()}, "a") == {"b", "c"}


def test_rmcore_never_imports_streamlit():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert not found, found
