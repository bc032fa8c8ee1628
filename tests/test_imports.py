"""The package's import structure, read from the source with ast.

- Library modules import what they need from the module that defines it, not from the package
  root (fluxkern/__init__.py, which imports nearly every module). The built-in problem files
  (fluxkern/problems/poisson.py, ...) are exempt: they are written as a user's problem file is,
  with ``import fluxkern as fk``.
- ``import fluxkern`` imports no built-in problem module and builds no problem: those load when a
  problem is first asked for (fluxkern.problems.get, names are known without loading).
- The import graph of python/fluxkern has no cycle. What counts as an edge from module A to
  module B: a statement in A that imports B (``import fluxkern.b``, ``from fluxkern.b import x``,
  ``from fluxkern import b`` where b is a module, relative forms alike; the import of A's parent
  packages that Python does first is not an edge, since a parent is initialised before its
  children). Module-level imports
  (those run when A is imported, also inside ``if``/``try`` at module level, except under
  ``if TYPE_CHECKING:``) must form a graph without cycles. Imports inside functions run when the
  function is called, after every module has loaded, so a cycle through one cannot break an
  import; they are checked separately, and the only cycles through them allowed are those named
  in FUNCTION_LEVEL_CYCLES.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "python")
PKG = os.path.join(SRC, "fluxkern")
BUILTIN_PROBLEMS = (
    "poisson",
    "composite_heat",
    "convection",
    "convection_diffusion",
    "stokes",
    "cavity",
    "helmholtz",
)
# None left: solve() reaches fluxkern.distributed.run through a RunContext (it no longer calls
# back into the solver), and fluxkern.problems.resolve hands the loader its get and names.
FUNCTION_LEVEL_CYCLES: list[set[str]] = []


def _modules() -> dict[str, str]:
    """Module name -> file, for every .py file under python/fluxkern."""
    out = {}
    for folder, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, SRC)[: -len(".py")].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(name: str, path: str) -> list[tuple[ast.stmt, str, list[str], bool]]:
    """(statement, module imported from, names, inside a function) for each fluxkern import.

    For ``import a.b`` the module is "a.b" and names is []; for ``from a import x, y`` the module
    is "a" and names ["x", "y"]. Relative imports are made absolute. Statements under
    ``if TYPE_CHECKING:`` are left out (they never run).
    """
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "fluxkern" or alias.name.startswith("fluxkern."):
                        found.append((child, alias.name, [], in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package
                    for _ in range(child.level - 1):
                        base = base.rpartition(".")[0]
                    module = base + ("." + child.module if child.module else "")
                else:
                    module = child.module or ""
                if module == "fluxkern" or module.startswith("fluxkern."):
                    found.append((child, module, [a.name for a in child.names], in_function))
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, in_function or inner)

    visit(tree, False)
    return found


def _edges(function_level: bool) -> dict[str, set[str]]:
    """module -> the fluxkern modules it imports (module level only, or also in functions)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for _, module, names, in_function in _imports(name, path):
            if in_function and not function_level:
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            if len(targets) < len(names) or not names:  # names defined in `module` itself
                targets.append(module)
            graph[name].update(t for t in targets if t in MODULES and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _describe(graph: dict[str, set[str]], cycle: set[str]) -> str:
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & cycle))}" for m in sorted(cycle))


def test_library_modules_do_not_import_the_package_root():
    exempt = {"fluxkern"} | {f"fluxkern.problems.{p}" for p in BUILTIN_PROBLEMS}
    bad = []
    for name, path in sorted(MODULES.items()):
        if name in exempt:
            continue
        for stmt, module, names, _ in _imports(name, path):
            line = f"{os.path.relpath(path, ROOT)}:{stmt.lineno}: {ast.unparse(stmt)}"
            if isinstance(stmt, ast.Import):
                # `import fluxkern` or `import fluxkern.x` (binds the name fluxkern, the root)
                aliased = any(a.asname for a in stmt.names if a.name == module)
                if module == "fluxkern" or not aliased:
                    bad.append(line)
            elif module == "fluxkern" and any(f"fluxkern.{n}" not in MODULES for n in names):
                bad.append(line)  # a name that only the root's __init__ defines
    assert not bad, "modules importing the package root:\n" + "\n".join(bad)


def test_importing_fluxkern_builds_no_problem():
    code = (
        "import gc, sys\n"
        "import fluxkern\n"
        "from fluxkern.problems.base import Problem\n"
        f"builtin = {['fluxkern.problems.' + p for p in BUILTIN_PROBLEMS]!r}\n"
        "print(sorted(m for m in sys.modules if m in builtin))\n"
        "print(sum(isinstance(o, Problem) for o in gc.get_objects()))\n"
    )
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    loaded, built = out.stdout.split("\n")[:2]
    assert loaded == "[]", f"import fluxkern imported the built-in problem modules {loaded}"
    assert built == "0", f"import fluxkern built {built} problems"


def test_the_names_are_known_without_loading_and_load_on_get():
    code = (
        "import sys\n"
        "import fluxkern\n"
        "print(fluxkern.problems.names())\n"
        "print('fluxkern.problems.cavity' in sys.modules)\n"
        "p = fluxkern.problems.get('cavity')\n"
        "print('fluxkern.problems.cavity' in sys.modules, p.name)\n"
    )
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == [str(list(BUILTIN_PROBLEMS)), "False", "True cavity"]


def test_module_level_imports_have_no_cycle():
    graph = _edges(function_level=False)
    cycles = _cycles(graph)
    assert not cycles, "import cycles at module level:\n" + "\n".join(
        _describe(graph, c) for c in cycles
    )


def test_imports_in_functions_add_only_the_known_cycle():
    graph = _edges(function_level=True)
    cycles = [c for c in _cycles(graph) if c not in FUNCTION_LEVEL_CYCLES]
    assert not cycles, "import cycles (imports in functions included):\n" + "\n".join(
        _describe(graph, c) for c in cycles
    )
