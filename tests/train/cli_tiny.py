"""``lmlab`` (the real entry point) in a fresh process, with the tests' ``tiny`` family registered.

    python tests/train/cli_tiny.py train RUN.toml [key=value ...] [--out DIR] [--resume]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)

from lmlab import registry  # noqa: E402
from lmlab.cli import main as cli_main  # noqa: E402

registry.FAMILIES["tiny"] = registry.Family("tiny", "_trainkit:TinyLM", recipe="_trainkit:build_tiny")

if __name__ == "__main__":
    cli_main.main()
