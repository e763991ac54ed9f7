"""lmlab._numba: numba imported without SciPy's linalg, and SciPy still importable afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("numba")

SCRIPT = """
import sys
from lmlab._numba import njit

@njit(cache=False)
def total(a):
    s = 0.0
    for x in a:
        s += x
    return s

import numpy as np
assert total(np.arange(5.0)) == 10.0
print("linalg imported by numba:", "scipy.linalg" in sys.modules)
import scipy.linalg                     # the hiding was undone: a later import works
assert scipy.linalg.norm([3.0, 4.0]) == 5.0
"""


def test_numba_comes_without_scipy_linalg_and_scipy_still_imports():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert "linalg imported by numba: False" in out


def test_an_already_imported_scipy_linalg_is_left_alone():
    script = "import scipy.linalg, sys\nfrom lmlab._numba import _import_numba\n_import_numba()\n" \
             "assert sys.modules['scipy.linalg'] is scipy.linalg\nimport numba.np.arraymath as a\nprint(a._HAVE_BLAS)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"  # with SciPy's BLAS there, numba sees it as before
