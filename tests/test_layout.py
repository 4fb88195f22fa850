"""The house rules (docs/architecture.md): arrows point one way, `cli -> ui -> bridge <- server -> tokenflow`.

Walks every source file of the rooms and fails on an import, an `importlib` call, a
`__import__` or a `python -m X` argument list that names a room the file's own room
may not use. Strings are read from the syntax tree, so a comment or a docstring that
mentions a module does not count; a module named in a runtime string does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# room -> the rooms it may use (itself always)
MAY_USE: dict[str, set[str]] = {
    "tokenflow": set(),
    "bridge": set(),
    "server": {"bridge", "tokenflow"},
    "ui": {"bridge"},
    "cli": {"ui", "bridge", "server", "tokenflow"},
}
ROOMS = set(MAY_USE)


def _room_of(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in ROOMS else None


def _named_modules(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, how, module) for every module this file imports or starts by name."""
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, "import", alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, "from-import", node.module))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.lineno, name, node.args[0].value))
        elif isinstance(node, (ast.List, ast.Tuple)):
            items = node.elts
            for first, second in zip(items, items[1:]):
                if isinstance(first, ast.Constant) and first.value == "-m" and isinstance(second, ast.Constant) \
                        and isinstance(second.value, str):
                    found.append((node.lineno, "-m", second.value))
        elif isinstance(node, ast.Dict):
            # module tables such as the installers' TARGET_MODULES: values that are dotted room paths
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str) \
                        and _room_of(value.value) and "." in value.value and " " not in value.value:
                    found.append((value.lineno, "module table", value.value))
    return found


def _sources() -> list[Path]:
    return sorted(p for room in ROOMS for p in (REPO / room).rglob("*.py"))


def _violations_in(room: str, source: str, label: str) -> list[str]:
    allowed = MAY_USE[room] | {room}
    out = []
    for line, how, module in _named_modules(ast.parse(source, label)):
        target = _room_of(module)
        if target is not None and target not in allowed:
            out.append(f"{label}:{line}: {how} {module} ({room} may not use {target})")
    return out


def _violations(path: Path) -> list[str]:
    relative = path.relative_to(REPO)
    return _violations_in(relative.parts[0], path.read_text(encoding="utf-8"), str(relative))


def test_every_room_exists_and_has_sources():
    assert all(list((REPO / room).rglob("*.py")) for room in ROOMS)


def test_no_arrow_points_up_or_sideways():
    problems = [v for path in _sources() for v in _violations(path)]
    assert problems == []


@pytest.mark.parametrize("source, expected", [
    ("import ui.link\n", "import ui.link"),
    ("from cli.launch import tokenflow_command\n", "from-import cli.launch"),
    ("import importlib\nimportlib.import_module('server.app')\n", "import_module server.app"),
    ("cmd = [python, '-m', 'cli', 'serve']\n", "-m cli"),
    ("TARGETS = {'x': 'server.doctor'}\n", "module table server.doctor"),
])
def test_the_walker_catches_each_kind_of_arrow(source, expected):
    # A broken walker would pass the real tree vacuously: each form must be seen from the bridge.
    found = _violations_in("bridge", source, "probe.py")
    assert len(found) == 1 and expected in found[0]
    assert _violations_in("cli", source, "probe.py") == []  # the top room may use them all


def test_the_command_line_names_itself_in_one_place():
    """Only cli/launch.py spells how the project's Python starts a subcommand."""
    spelled = [str(p.relative_to(REPO)) for p in _sources()
               if any(how == "-m" and module.split(".")[0] == "cli"
                      for _, how, module in _named_modules(ast.parse(p.read_text(encoding="utf-8"))))]
    assert spelled == ["cli/launch.py"]
