"""numba's ``njit``, imported without numba's detour through SciPy's linear algebra.

At its first compile (or cache load), numba checks once whether SciPy's BLAS is there (``numba.np.arraymath._HAVE_BLAS``),
and that check imports all of ``scipy.linalg``: about 0.2 s, a fifth of the start-up of an
``lmlab ngram eval`` on a binary model. The flag only chooses the inner product that compiled
``np.correlate`` / ``np.convolve`` use; ``np.dot`` and ``np.linalg`` in a kernel look for the BLAS
themselves when they are compiled, and lmlab's kernels use none of them. So when SciPy's
``linalg`` is not imported yet, numba is imported with it hidden (an ``ImportError`` for the
check), and the hiding is undone at once: a later ``import scipy.linalg`` works as usual.

``njit()`` raises ImportError when numba is not installed, as ``from numba import njit`` would.
"""

from __future__ import annotations

import sys


def _import_numba():
    if "numba" in sys.modules:
        return sys.modules["numba"]
    hide = "scipy.linalg" not in sys.modules
    if hide:
        sys.modules["scipy.linalg"] = None  # `import scipy.linalg...` raises ImportError while hidden
    try:
        import numba
        import numba.np.arraymath  # noqa: F401 - where the check is (numba imports it at its first compile)
    finally:
        if hide and "scipy.linalg" in sys.modules and sys.modules["scipy.linalg"] is None:
            del sys.modules["scipy.linalg"]
    return numba


def njit(*args, **kwargs):
    """``numba.njit``, numba imported as above."""
    return _import_numba().njit(*args, **kwargs)
