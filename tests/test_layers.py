"""The layer order of the README's architecture section, checked on every import in src/mimetic
(module-level and inside functions): a room may import its own layer or the layers below it, never above."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mimetic"

# bottom to top; rooms on one line form one layer
LAYERS = [
    {"errors", "progress", "features", "actors", "tabular", "devices", "distributed"},
    {"envs", "data"},
    {"policies"},
    {"rollout", "workers", "shards", "evaluate", "collect", "teleop", "videos"},
    {"algos"},
    {"analysis", "quickstart"},
    {"cli", "__main__"},
]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mimetic"


def _level(room: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"room {room!r} is not in the layer list of tests/test_layers.py (and the README)")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("mimetic.")}


def test_no_room_imports_a_layer_above_it():
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        here = _room(".".join(parts))
        if here == "mimetic":  # the package's own __init__
            continue
        for target in _imports(path):
            there = _room(target)
            if _level(there) > _level(here):
                upward.append(f"{rel} imports {target} ({here} is below {there})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from mimetic.algos.trainer import TrainConfig\n")
    (target,) = _imports(bad)
    assert _level(_room(target)) > _level("envs")
