"""Manual check (not collected by pytest): SIGKILL a 2-process torchrun run, resume it, compare.

    .venv/bin/python tests/train/ddp_resume_check.py

Runs an uninterrupted 2-process (gloo) training of 16 steps, then the same run killed (the
whole process group, SIGKILL) after step 8 and resumed with --resume, and prints whether the
two loss sequences are identical; then the same with SIGINT and SIGTERM sent to the whole
process group (each rank stops at the same step boundary and saves). About 40 s of CPU; kept
out of CI for time.
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
    if not same:
        return 1
    # Ctrl-C as a terminal sends it: SIGINT to the whole process group (torchrun forwards it again)
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = base / f"stopped-{sig.name}"
        victim = torchrun(out, "--sleep", "0.05", "--checkpoint-every", "100", start_new_session=True)
        while not losses(out) or losses(out)[-1][0] < 8:
            time.sleep(0.01)
        os.killpg(victim.pid, sig)
        code = victim.wait()
        latest = (out / "checkpoints" / "latest").read_text().strip()
        ranks = sorted(p.name for p in (out / "checkpoints" / latest).glob("rank-*.json"))
        print(f"{sig.name}: torchrun exit {code}; latest checkpoint {latest} ({len(ranks)} rank files)")
        if len(ranks) != 2 or torchrun(out, "--resume").wait() != 0:
            return 1
        same = losses(base / "reference") == losses(out)
        print(f"{sig.name}: {len(losses(out))} steps; identical to the uninterrupted run: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
