"""The import graph of the project's packages, read from the source (ast, nothing is imported): no cycle between
modules, a core that imports neither Django nor Celery nor anything outside the cores, and no service, view or
model that imports a worker module or the Celery app (work is sent by name through lts_web/queueing.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lts_web", "searches", "models_zoo", "notifications", "workers")
# Management commands that, with --local, are the worker themselves (CLI entry points, not services): they run a
# task's body in-process. The only imports of worker code outside workers/.
WORKER_CODE_ALLOWED = {
    ("models_zoo.management.commands.lts_train", "workers.training"),
    ("models_zoo.proxy_checks.management.commands.lts_proxy_check", "workers.training"),
    ("searches.management.commands.lts_profile", "workers.devices"),
}
# The Celery app is imported by the package that defines it (Django's celery.py convention) and the sending module.
CELERY_APP_ALLOWED = {"lts_web", "lts_web.queueing"}
FRAMEWORKS = ("django", "celery", "kombu", "rest_framework")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            if "migrations" not in path.parts}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules, top-level names of other packages) that ``name`` imports anywhere in its file (in functions
    too: a lazy import is still a dependency)."""
    project: set[str] = set()
    external: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def add(target: str) -> None:
        while target and target not in modules:  # a name imported from a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            project.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    add(alias.name)
                else:
                    external.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] not in PACKAGES:
                external.add(source.split(".")[0])
                continue
            for alias in node.names:
                add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    return project, external


@pytest.fixture(scope="module")
def graph() -> dict[str, tuple[set[str], set[str]]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _is_core(name: str) -> bool:
    return "core" in name.split(".")


def test_the_graph_is_read(graph):
    """The reader finds what is there: a guard against a test that passes because it sees nothing."""
    assert len(graph) > 80
    assert "searches.services.measurements" in graph["searches.services.jobs"][0]
    assert "models_zoo.core.paths" in graph["models_zoo.core.tokenizers"][0]  # a relative import
    assert "workers.training" in graph["models_zoo.management.commands.lts_train"][0]  # inside a function
    assert "django" in graph["searches.models"][1] and "torch" in graph["models_zoo.core.trainer"][1]


def test_no_import_cycle_between_modules(graph):
    assert _cycles({name: project for name, (project, _) in graph.items()}) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_core_module_imports_no_framework_and_nothing_but_cores(graph):
    wrong = {name: sorted({p for p in project if not _is_core(p)} | {e for e in external if e in FRAMEWORKS})
             for name, (project, external) in graph.items() if _is_core(name)}
    assert {name: found for name, found in wrong.items() if found} == {}


def test_only_workers_and_cli_entry_points_import_worker_code(graph):
    wrong = sorted((name, p) for name, (project, _) in graph.items() for p in project
                   if p.split(".")[0] == "workers" and name.split(".")[0] != "workers"
                   and (name, p) not in WORKER_CODE_ALLOWED)
    assert wrong == []


def test_only_the_sending_module_imports_the_celery_app(graph):
    wrong = sorted(name for name, (project, _) in graph.items()
                   if "lts_web.celery" in project and name not in CELERY_APP_ALLOWED)
    assert wrong == []
    # Celery itself is the workers' and the app's business: no service, view or model imports it.
    assert sorted(name for name, (_, external) in graph.items() if "celery" in external
                  and name.split(".")[0] != "workers" and name != "lts_web.celery") == []
