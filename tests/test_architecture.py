"""The package's shape, read from the source (AST, no imports): fast rules a refactor must keep.

* ``modules`` is installed (``pip install -e .``); nothing edits ``sys.path`` to find it, or anything else.
* ``modules/`` files import each other without cycles at import time (module-level imports only: an import
  inside a function runs later and may point anywhere).
* ``modules/`` is the product: it never imports ``benchmarks``, ``streamlit_app``, ``notebooks`` or ``tests``.
* The CLI prints ``error: …`` for ``UserError`` only, so a bug (a ``ValueError`` or ``KeyError`` from our own
  code) shows its traceback; every exception class a user can cause derives from ``UserError``.
* Every exception class of the product is defined in ``modules/errors.py``, the one file of that name.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "modules"
SKIP_DIRS = {".venv", ".git", "data", "models", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
OUTSIDE_THE_PRODUCT = {"benchmarks", "streamlit_app", "notebooks", "tests"}
# exception classes in modules/ that are not the user's doing, with the reason
NOT_USER_ERRORS = {
    "NotFittedError": "a recommender used before fit/load: a bug in the calling code, as in scikit-learn",
    "SpotifyUnavailable": "the Spotify client's signal to answer offline; caught inside modules.spotify",
    "SpotifyForbidden": "the Spotify client's signal that an endpoint is closed; caught inside modules.spotify",
}
ERRORS_FILE = PACKAGE / "errors.py"
# code that may define exception classes outside modules/errors.py, with the reason (tests may define their own)
OWN_EXCEPTIONS_ALLOWED: dict[str, str] = {}


def repo_files(suffix: str) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]  # never walk into the venv or generated data
        out += [Path(folder, f) for f in files if f.endswith(suffix)]
    return sorted(out)


@cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def notebook_trees(path: Path) -> list[ast.Module]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    trees = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # IPython magics and shell lines are not Python
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        trees.append(ast.parse(source, filename=str(path)))
    return trees


def is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def sys_path_edits(tree: ast.Module) -> list[int]:
    """Lines that change ``sys.path`` (a method call on it, an assignment to it or to an item) or add a site dir."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if is_sys_path(node.func.value) or node.func.attr == "addsitedir":
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if is_sys_path(target) or (isinstance(target, ast.Subscript) and is_sys_path(target.value)):
                    lines.append(node.lineno)
    return lines


def test_nothing_edits_sys_path():
    found = []
    for path in repo_files(".py"):
        found += [f"{path.relative_to(ROOT)}:{line}" for line in sys_path_edits(tree_of(path))]
    for path in repo_files(".ipynb"):
        for i, tree in enumerate(notebook_trees(path)):
            found += [f"{path.relative_to(ROOT)} (code cell {i + 1}, line {line})" for line in sys_path_edits(tree)]
    assert not found, ("sys.path edits (modules is installed with `pip install -e .`; run benchmarks as "
                       f"`python -m benchmarks.NAME` from the repository root): {found}")


# -- imports inside modules/ --------------------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def absolute(name: str, level: int, importer: str, is_package: bool) -> str:
    """``from ..x import y`` in ``importer`` → the absolute module name of ``..x``."""
    if level == 0:
        return name
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def import_statements(tree: ast.Module, *, top_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """``top_level``: only statements run at import time (module body, ``if``/``try``/``with`` blocks there), not
    those in functions or ``if TYPE_CHECKING:`` blocks."""
    def walk(nodes):
        for node in nodes:
            if top_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if top_level and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.orelse)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            yield from walk(ast.iter_child_nodes(node))

    return list(walk(tree.body))


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_edges(path: Path, importer: str) -> set[str]:
    """The modules/ files that importing ``importer`` runs first (its module-level imports).

    ``from pkg import sub`` (a submodule) runs ``pkg.sub``; ``from pkg import name`` runs ``pkg/__init__.py``, even
    from inside ``pkg`` (a name taken from a package that is still initializing). A package's own ancestors are
    already initializing when it runs, so passing through them (``from pkg.other import x`` inside ``pkg``) is
    no edge.
    """
    mods = package_modules()
    is_package = path.name == "__init__.py"
    running = {importer, *ancestors(importer)}
    edges = set()
    for node in import_statements(tree_of(path), top_level=True):
        if isinstance(node, ast.Import):
            targets = [(alias.name, False) for alias in node.names]
        else:
            base = absolute(node.module or "", node.level, importer, is_package)
            targets = [(f"{base}.{a.name}", False) if f"{base}.{a.name}" in mods else (base, True) for a in node.names]
        for target, takes_a_name in targets:
            if target not in mods:
                continue
            if target not in running or takes_a_name:
                edges.add(target)
            edges.update(a for a in ancestors(target) if a in mods and a not in running)
    edges.discard(importer)
    return edges


def import_graph() -> dict[str, set[str]]:
    """modules.x → the modules.* files it imports at import time."""
    return {name: import_edges(path, name) for name, path in package_modules().items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_in_modules():
    graph = import_graph()
    assert "modules.cli" in graph and graph["modules.__main__"] == {"modules.cli"}  # the graph sees imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle at import time: {' -> '.join(cycle)} (move one import into a function)"


def test_modules_never_imports_the_code_around_it():
    found = []
    for name, path in package_modules().items():
        is_package = path.name == "__init__.py"
        for node in import_statements(tree_of(path), top_level=False):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [absolute(node.module or "", node.level, name, is_package)])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in OUTSIDE_THE_PRODUCT]
    assert not found, f"modules/ imports code outside the product: {sorted(set(found))}"


# -- errors --------------------------------------------------------------------------------------------------------

def handler_types(handler: ast.ExceptHandler) -> list[str]:
    if handler.type is None:
        return ["<bare except>"]
    nodes = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [ast.unparse(n) for n in nodes]


def test_cli_prints_only_user_errors_as_one_line():
    """``main`` turns ``UserError`` into ``error: …`` and nothing else: a ValueError from our code is a bug."""
    tree = tree_of(PACKAGE / "cli" / "__init__.py")
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    caught = [t for node in ast.walk(main) if isinstance(node, ast.ExceptHandler) for t in handler_types(node)]
    assert sorted(caught) == ["KeyboardInterrupt", "UserError"], caught
    broad = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.ExceptHandler):
                broad += [f"{path.name}:{node.lineno} {t}" for t in handler_types(node)
                          if t in ("<bare except>", "Exception", "BaseException")]
    assert not broad, f"the CLI catches everything here, hiding bugs: {broad}"


def exception_classes() -> dict[str, list[str]]:
    """Every class in modules/ named *Error or *Exception (private ones aside) → its base class names."""
    classes = {}
    for path in package_modules().values():
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                classes[node.name] = bases
    return {name: bases for name, bases in classes.items()
            if not name.startswith("_") and (name.endswith(("Error", "Exception")) or
                                             any(b.endswith(("Error", "Exception")) for b in bases))}


def derives_from_user_error(name: str, classes: dict[str, list[str]], seen=()) -> bool:
    if name == "UserError":
        return True
    return any(derives_from_user_error(b, classes, (*seen, name)) for b in classes.get(name, ()) if b not in seen)


def test_every_error_a_user_can_cause_is_a_user_error():
    classes = exception_classes()
    assert "UserError" in classes and "BundleError" in classes  # the scan sees modules/errors.py
    stray = sorted(n for n in classes if n not in NOT_USER_ERRORS and not derives_from_user_error(n, classes))
    assert not stray, (f"exception classes outside the UserError family: {stray}; derive them from "
                       "modules.errors.UserError (or an InputError etc.), or list them in NOT_USER_ERRORS with why")


def test_one_errors_file():
    found = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("errors.py") if "__pycache__" not in p.parts)
    assert found == ["modules/errors.py"], f"exception classes live in modules/errors.py only, not in {found}"


def exception_class_defs(paths: list[Path]) -> list[str]:
    """``file:line Name`` of every class in ``paths`` that derives from an exception: a built-in one, one of
    ``modules/errors.py``, anything named *Error/*Exception/*Warning, or another class found so (to a fixpoint)."""
    known = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
             and issubclass(getattr(builtins, n), BaseException)}
    known |= {n.name for n in ast.walk(tree_of(ERRORS_FILE)) if isinstance(n, ast.ClassDef)}
    classes = [(path, node) for path in paths for node in ast.walk(tree_of(path)) if isinstance(node, ast.ClassDef)]
    found: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for path, node in classes:
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            key = f"{where}:{node.lineno} {node.name}"
            bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
            if key not in found and any(b in known or b.endswith(("Error", "Exception", "Warning")) for b in bases):
                found[key] = node.name
                known.add(node.name)
                grew = True
    return sorted(found)


def test_exception_scan_finds_subclasses(tmp_path):
    names = {d.rsplit(" ", 1)[1] for d in exception_class_defs([ERRORS_FILE])}
    assert {"UserError", "BundleError", "NotFittedError", "SpotifyUnavailable"} <= names and len(names) >= 19
    code = tmp_path / "code.py"  # a subclass of a subclass, named like neither, is found too
    code.write_text("class Boom(KeyError): ...\nclass Bang(Boom): ...\nclass Table: ...\n")
    assert [d.rsplit(" ", 1)[1] for d in exception_class_defs([code])] == ["Boom", "Bang"]


def test_exception_classes_live_in_errors_py():
    paths = [p for p in repo_files(".py") if p != ERRORS_FILE
             and p.relative_to(ROOT).parts[0] in {"modules", "benchmarks", "streamlit_app", "notebooks"}]
    assert any(p.relative_to(ROOT).parts[0] == "benchmarks" for p in paths)  # the walk sees the code around
    stray = [d for d in exception_class_defs(paths) if d.split(":")[0] not in OWN_EXCEPTIONS_ALLOWED]
    assert not stray, (f"exception classes outside modules/errors.py: {stray}; define them there (a user error "
                       "derives from InputError, MissingInputError, OutputError or BundleError) and import them")
