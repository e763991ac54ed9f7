"""Manual check (not collected by pytest): SIGKILL a 2-process torchrun run, resume it, compare.

    .venv/bin/python tests/train/ddp_resume_check.py

Runs an uninterrupted 2-process (gloo) training of 16 steps, then the same run killed (the
whole process group, SIGKILL) after step 8 and resumed with --resume, and prints whether the
two loss sequences are identical. About 20 s of CPU; kept out of CI for time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "run_tiny.py"
sys.path.insert(0, str(ROOT / "src"))

from lmlab.train.log import read_metrics  # noqa: E402


def torchrun(out: Path, *extra: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(RUNNER), str(out), "--steps", "16", "--batch", "3", "--checkpoint-every", "3",
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **popen)


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl")]


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="ddp-resume-"))
    reference = torchrun(base / "reference")
    if reference.wait() != 0:
        return 1
    victim = torchrun(base / "killed", "--sleep", "0.05", start_new_session=True)
    while not losses(base / "killed") or losses(base / "killed")[-1][0] < 8:
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    latest = (base / "killed" / "checkpoints" / "latest").read_text().strip()
    print(f"killed after step {losses(base / 'killed')[-1][0]}; latest checkpoint {latest}")
    if torchrun(base / "killed", "--resume").wait() != 0:
        return 1
    same = losses(base / "reference") == losses(base / "killed")
    print(f"{len(losses(base / 'killed'))} steps; identical to the uninterrupted run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
