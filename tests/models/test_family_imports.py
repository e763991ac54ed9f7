"""DESIGN.md, "House rules": families never import each other; what two families share is in nn/.

Parsed with ``ast`` (nothing is imported), function-level imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "src" / "lmlab" / "models"


def _model_imports(path: Path) -> set[str]:
    """The lmlab.models.* modules ``path`` imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                found.update([f"lmlab.models.{node.module}"] if node.module else
                             [f"lmlab.models.{alias.name}" for alias in node.names])
            elif node.level == 0 and (node.module or "").startswith("lmlab.models"):
                module = node.module
                found.update([module] if module != "lmlab.models" else
                             [f"lmlab.models.{alias.name}" for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lmlab.models."))
    return found


def test_no_model_file_imports_another_model_file():
    files = sorted(p for p in MODELS.glob("*.py") if p.name != "__init__.py")
    assert {"bert.py", "albert.py", "electra.py"} <= {p.name for p in files}
    bad = {p.name: sorted(_model_imports(p)) for p in files if _model_imports(p)}
    assert bad == {}, f"model files importing other model files: {bad}"
