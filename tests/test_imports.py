"""The import graph of p2pchat/, read from the source with ast (nothing is imported): no
cycles, and the faces import nothing below the interfaces they use.

Three kinds of import: *top-level* (run when the module is imported, ``try`` and ``if``
blocks included), *lazy* (inside a function: run when it is called, e.g. service.py's
``make_face`` imports the console only when the console runs), and *type-only* (under ``if
TYPE_CHECKING:``, never run).  A cycle is a cycle whether its imports are top-level or lazy
(it only waits for the call that closes it), so both count; type-only imports do not.

The faces (face.py, lines.py, console/, irc) talk to the chat through interfaces.IChat and
take their values from events, commands, interfaces and wire: they import nothing from the
node, the store, the mesh, discovery or the assembly (any kind of import counts: a type-only
one is still a dependency).  ``FACE_IMPORTS_TO_FIX`` is what they still import today; the set
is exact, so a new bad import fails, and so does one that is gone but still listed: the lead
empties it as the reshaping (issue 16) is merged.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

PACKAGE = "p2pchat"

#: The faces: modules (or packages: everything under them) that may use only the interfaces.
FACES = ("p2pchat.face", "p2pchat.lines", "p2pchat.console", "p2pchat.irc")
#: What no face may import: the node and what it is made of, the edges, the assembly.
BELOW_THE_FACES = ("p2pchat.node", "p2pchat.store", "p2pchat.mesh", "p2pchat.service",
                   "p2pchat.discovery", "p2pchat.session", "p2pchat.outbox",
                   "p2pchat.linkwatch", "p2pchat.history", "p2pchat.handshake",
                   "p2pchat.chat", "p2pchat.syncing", "p2pchat.presence", "p2pchat.sending",
                   "p2pchat.hearing", "p2pchat.keys", "p2pchat.clocks",
                   "p2pchat.retention", "p2pchat.options", "p2pchat.reach",
                   "p2pchat.front", "p2pchat.activity", "p2pchat.keeper", "p2pchat.onion",
                   "p2pchat.contacts", "p2pchat.files.transfers",
                   "p2pchat.files.ours", "p2pchat.files.kept", "p2pchat.files.receive",
                   "p2pchat.files.stream", "p2pchat.files.port", "p2pchat.files.hashing",
                   "p2pchat.files.later")

#: Plain values in, plain values out: these import nothing but each other.
PURE_CORE = ("p2pchat.wire", "p2pchat.commands", "p2pchat.events", "p2pchat.interfaces",
             "p2pchat.flow", "p2pchat.peers", "p2pchat.rooms", "p2pchat.seen",
             "p2pchat.identity", "p2pchat.trust", "p2pchat.relay", "p2pchat.absent",
             "p2pchat.catchup", "p2pchat.room", "p2pchat.outbox", "p2pchat.addresses",
             "p2pchat.sealed", "p2pchat.carrier", "p2pchat.invite",
             "p2pchat.files.offers", "p2pchat.gossip", "p2pchat.keyfile", "p2pchat.runsig",
             "p2pchat.latesodium", "p2pchat.files.terms", "p2pchat.sealterms")

#: Imports inside functions, each with its reason: a new one fails the test until it is
#: listed (a lazy import is often a cycle hidden, or a start-up cost moved).
LAZY_IMPORTS = {
    ("p2pchat.service", "p2pchat.console"): "urwid is loaded only when the console runs",
    ("p2pchat.service", "p2pchat.lines"): "the line face only when it runs",
    ("p2pchat.service", "p2pchat.irc"): "twisted.words only with --irc",
    ("p2pchat.files.later", "p2pchat.files.transfers"): "file transfers at their first use",
    ("p2pchat.files.later", "p2pchat.files.port"): "the file port with the transfers",
    ("p2pchat.firstuse", "p2pchat.sealing"): "sealed lines at the first link",
    ("p2pchat.firstuse", "p2pchat.syncing"): "the catch-up at the first link",
    ("p2pchat.keeper", "p2pchat.invite"): "invites with /connect INVITE and /invite only",
    ("p2pchat.keeper", "p2pchat.onion"): "the onion service only with --tor or --tor-control",
    ("p2pchat.options", "p2pchat.onion"): "its options read only with --tor or --tor-control",
    ("p2pchat.mesh", "p2pchat.handshake"): "the handshake's machine with the first connection",
    ("p2pchat.keeper", "p2pchat.handshake"): "an onion join's invite secret, once one comes",
}

#: (face module, module below it) imported today: only ever shrinks.
FACE_IMPORTS_TO_FIX = frozenset({
})


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the p2pchat module imported
    kind: str  # "top", "lazy" or "typing"
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a p2pchat module in ``path``, with its kind.  ``from pkg import x``
    names the submodule ``pkg.x`` if there is one, else ``pkg``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = _resolve(node, name, is_package)
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names]

    def walk(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in targets(child):
                    if target == PACKAGE or target.startswith(PACKAGE + "."):
                        while target not in modules and "." in target:
                            target = target.rsplit(".", 1)[0]  # p2pchat.x.Name -> p2pchat.x
                        if target not in (name, PACKAGE):  # p2pchat/__init__: the version
                            found.append(Import(name, target, kind, child.lineno))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                walk(child, "typing" if kind == "typing" else "lazy")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    walk(ast.Module(body=[stmt], type_ignores=[]), kind)
            else:
                walk(child, kind)

    walk(tree, "top")
    return found


def import_graph() -> list[Import]:
    modules = all_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself), each as a sorted list: every one is a cycle."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is a few dozen modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


# --- the checks -----------------------------------------------------------------------------


def test_the_graph_is_read() -> None:
    """The reader sees what is there (else the checks below would pass on nothing)."""
    edges = import_graph()
    assert len(all_modules()) >= 25
    kinds = {(e.source, e.target): e.kind for e in edges}
    assert kinds[("p2pchat.service", "p2pchat.node")] == "top"
    assert kinds[("p2pchat.service", "p2pchat.console")] == "lazy"  # make_face
    assert kinds[("p2pchat.interfaces", "p2pchat.events")] == "typing"
    assert kinds[("p2pchat.lines", "p2pchat.face")] == "top"


def test_no_import_cycle() -> None:
    runtime = [e for e in import_graph() if e.kind != "typing"]
    cycles = find_cycles(runtime)
    detail = [f"{e.source} -> {e.target} ({e.kind}, line {e.line})" for e in runtime
              if any(e.source in c and e.target in c for c in cycles)]
    assert not cycles, f"import cycles {cycles}:\n" + "\n".join(detail)


def test_lazy_imports_are_the_listed_ones() -> None:
    lazy = {(e.source, e.target) for e in import_graph() if e.kind == "lazy"}
    assert lazy == set(LAZY_IMPORTS)


def test_a_cycle_is_found() -> None:
    """The cycle finder itself: the old service.py <-> lines.py loop is one."""
    edges = [Import("p2pchat.service", "p2pchat.lines", "lazy", 1),
             Import("p2pchat.lines", "p2pchat.service", "top", 1),
             Import("p2pchat.lines", "p2pchat.wire", "top", 2)]
    assert find_cycles(edges) == [["p2pchat.lines", "p2pchat.service"]]
    assert find_cycles(edges[1:]) == []


def test_faces_import_nothing_below_the_interfaces() -> None:
    bad = {(e.source, e.target) for e in import_graph()
           if _within(e.source, FACES) and _within(e.target, BELOW_THE_FACES)}
    new = sorted(bad - FACE_IMPORTS_TO_FIX)
    assert not new, f"new imports below the faces: {new}"
    assert not FACE_IMPORTS_TO_FIX - bad, (
        f"gone (take them off FACE_IMPORTS_TO_FIX): {sorted(FACE_IMPORTS_TO_FIX - bad)}")


def test_faces_reach_nothing_below_the_interfaces_even_through_others() -> None:
    """Not even by way of another module: what a face imports at load time, followed to its
    end, holds nothing of the node, the store, the edges or the assembly."""
    top: dict[str, set[str]] = {}
    for e in import_graph():
        if e.kind == "top":
            top.setdefault(e.source, set()).add(e.target)
    faces = [m for m in all_modules() if _within(m, FACES)]
    assert len(faces) > 10, faces
    reached: dict[str, list[str]] = {}
    for face in faces:
        seen, todo = set(), [face]
        while todo:
            for target in top.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        bad = sorted(t for t in seen if _within(t, BELOW_THE_FACES))
        if bad:
            reached[face] = bad
    assert reached == {}


def test_the_pure_core_imports_only_itself() -> None:
    out = sorted(f"{e.source} -> {e.target} ({e.kind}, line {e.line})" for e in import_graph()
                 if _within(e.source, PURE_CORE) and not _within(e.target, PURE_CORE))
    assert out == []
    assert {e.source for e in import_graph()} >= {"p2pchat.trust", "p2pchat.relay"}


def test_nothing_imports_the_assembly() -> None:
    """service.py is the top: only the twistd plugin names it (by string)."""
    users = sorted({e.source for e in import_graph() if e.target == "p2pchat.service"})
    assert users == []
