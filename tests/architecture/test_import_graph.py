"""The service's packages depend on each other in one direction only.

    app -> graph -> licensing -> (db, the plugin API)

and inside ``licensing``:

    licensing.orchestration -> licensing.storage -> licensing.domain
    (each may also use licensing's shared modules: settings, problems, metrics)

The plugin API is ``manage1to1_plugins`` and the ``plugins`` modules behind it; the built-in
plugins (``plugins.builtin``) import only ``manage1to1_plugins``, exactly as a third-party plugin
does; ``db`` imports nothing of ours but ``db``. Every import is read from the source (including
imports inside functions), so a new edge the wrong way fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "graph", "licensing", "db", "plugins", "manage1to1_plugins")
BUILTIN = "plugins.builtin"
DOMAIN, STORAGE, ORCHESTRATION = "licensing.domain", "licensing.storage", "licensing.orchestration"
LICENSING_LAYERS = (DOMAIN, STORAGE, ORCHESTRATION)
EVERY_LICENSING_LAYER = {"licensing", *LICENSING_LAYERS}
PLUGIN_API = {"plugins", "manage1to1_plugins"}

# Which layer may import which (each may always import itself).
ALLOWED = {
    "app": {"graph", *EVERY_LICENSING_LAYER, "db", *PLUGIN_API},
    "graph": {*EVERY_LICENSING_LAYER, "db", *PLUGIN_API},
    ORCHESTRATION: {STORAGE, DOMAIN, "licensing", "db", *PLUGIN_API},
    STORAGE: {DOMAIN, "licensing", "db", *PLUGIN_API},
    # The rules: pure functions over plain data, so nothing that stores, sends or schedules.
    DOMAIN: set(),
    "licensing": {DOMAIN, "db", *PLUGIN_API},  # settings, problems, metrics
    "db": set(),
    "plugins": set(),  # the plugin API's own modules: the host's modules never
    "manage1to1_plugins": {"plugins"},
    BUILTIN: {"manage1to1_plugins"},
}

# Edges that go the wrong way today and are to be removed; a new one fails the test.
# (importing module, imported module)
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def layer(module: str) -> str | None:
    for sublayer in (BUILTIN, *LICENSING_LAYERS):
        if module == sublayer or module.startswith(sublayer + "."):
            return sublayer
    top = module.split(".", 1)[0]
    return top if top in PACKAGES else None


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPOSITORY / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # each migration is frozen history, run by alembic alone
            parts = list(path.relative_to(REPOSITORY).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imports_of(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # `from package import module` imports the module too.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def edges() -> set[tuple[str, str]]:
    found = set()
    known = {name for name, _path in modules()}
    for module, path in modules():
        for target in imports_of(module, path):
            if layer(target) is None:
                continue
            # Keep the longest name that is a module of ours (drop imported functions).
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target != module:
                found.add((module, target))
    return found


def test_every_import_goes_the_allowed_way():
    wrong = sorted(
        (source, target)
        for source, target in edges()
        if layer(target) != layer(source)
        and layer(target) not in ALLOWED[layer(source) or ""]
        and (source, target) not in KNOWN_EXCEPTIONS
    )
    assert not wrong, "imports against the layers:\n" + "\n".join(f"  {a} -> {b}" for a, b in wrong)


def test_the_known_exceptions_still_exist():
    # A fixed exception is removed from the list, so it cannot come back unnoticed.
    assert not (KNOWN_EXCEPTIONS - edges())


def test_the_domain_imports_no_storage_network_or_framework():
    # Third-party imports count here too: a rule that needs the ORM or an HTTP client is not pure.
    allowed_outside = {
        "__future__",
        "dataclasses",
        "datetime",
        "enum",
        "math",
        "collections",
        "typing",
        "zoneinfo",
        "statistics",
        "functools",
        "itertools",
        "decimal",
        "fractions",
        "base64",
    }
    impure = sorted(
        (module, target)
        for module, path in modules()
        if layer(module) == DOMAIN
        for target in imports_of(module, path)
        if layer(target) not in {DOMAIN, None}
        or (layer(target) is None and target.split(".")[0] not in allowed_outside)
    )
    assert not impure, "the domain imports:\n" + "\n".join(f"  {a} -> {b}" for a, b in impure)


def test_no_import_cycles_between_layers():
    graph: dict[str, set[str]] = {}
    for source, target in edges():
        a, b = layer(source), layer(target)
        if a and b and a != b:
            graph.setdefault(a, set()).add(b)
    cycles = [(a, b) for a, targets in graph.items() for b in targets if a in _reachable(graph, b)]
    assert not cycles, f"layers that import each other: {sorted(cycles)}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for following in graph.get(stack.pop(), ()):
            if following not in seen:
                seen.add(following)
                stack.append(following)
    return seen


def test_no_module_imports_itself_through_others():
    # A cycle between two modules (even one import under TYPE_CHECKING, or inside a function)
    # means neither can be understood, tested or moved without the other.
    graph: dict[str, set[str]] = {}
    for source, target in edges():
        graph.setdefault(source, set()).add(target)
    cycles = sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if source in _reachable(graph, target)
    )
    assert not cycles, "modules that import each other:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in cycles
    )
