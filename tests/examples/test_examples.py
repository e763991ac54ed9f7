"""Each script in examples/ runs end to end on a small slice (``--small``), as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lmlab.embeddings._kernels import HAVE_NUMBA

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHECKS = {  # script -> a line its output must contain
    "ngram_build_and_score.py": "test perplexity",
    "word2vec_analogy.py": "nearest to",
    "gpt_train_and_generate.py": "trained 30 steps",
    "bert_finetune_and_predict.py": "predicted",
    "sentiment_project.py": "ELECTRA fine-tuned: test accuracy",
}


def test_every_example_is_smoke_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CHECKS)


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_example_runs(script, tmp_path):
    if script == "word2vec_analogy.py" and not HAVE_NUMBA:  # ~8 min on 2 cores: near the 600 s limit
        pytest.skip("needs the fast extra (numba): the pure-Python word2vec kernels are too slow for this example")
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--small"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert CHECKS[script] in done.stdout, done.stdout[-2000:]
