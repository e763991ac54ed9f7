"""Shared by the stateful families' resume tests: a run resumed mid-way ends where the uninterrupted one did."""

from __future__ import annotations

import shutil
from pathlib import Path


def rewind_to_step_3(reference_dir: Path, resumed_dir: Path) -> None:
    """A copy of a 6-step run folder whose latest checkpoint is step 3 again."""
    shutil.copytree(reference_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / "step-00000006")
    (resumed_dir / "checkpoints" / "latest").write_text("step-00000003\n")


def assert_same_end(reference, resumed) -> None:
    """Bit-identical weights and carried state (lane 0's micro-batch) after both runs."""
    assert resumed.step == reference.step
    for (name, a), (_, b) in zip(reference.model.state_dict().items(), resumed.model.state_dict().items()):
        assert a.equal(b), name
    for a, b in zip(reference.carried[0], resumed.carried[0]):
        assert a.equal(b)
