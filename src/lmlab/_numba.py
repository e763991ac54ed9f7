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


# --------------------------------------------------------------------------- kernels compiled ahead of time
#
# A command that scores text against a mapped binary model spends more time loading numba (its import,
# its typing registries, each kernel's cache entry: ~0.7-0.9 s) than scoring 3M words. So the kernels of
# that path are also compiled ahead of time, by numba itself (``numba.pycc``), into one extension module
# that loads in a millisecond without importing numba: ``python -m lmlab.aot`` (run by ``make setup``)
# writes ``_aot_kernels*.so`` and its manifest ``_aot_kernels.json`` beside this file (or into
# ``$LMLAB_AOT_DIR``, which is then where they are looked for). The manifest says,
# for each kernel, the argument types of each compiled variant, and a key made of the kernel sources'
# hash and the Python and NumPy versions: a stale module (a kernel edited since, another NumPy) is not
# used. A call whose arguments fit no variant (another dtype, an order not compiled) goes to numba's
# JIT as before, so results never depend on which path ran (tests/test_aot.py holds them equal).

AOT_MODULE = "_aot_kernels"


def aot_key(sources: list[str]) -> str:
    """What an ahead-of-time module must have been built from: the kernel files' bytes, Python, NumPy."""
    import hashlib
    from pathlib import Path

    import numpy

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{sys.version}|numpy {numpy.__version__}".encode())
    root = Path(__file__).parent
    for rel in sources:
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return h.hexdigest()


def _fits(spec, value) -> bool:
    """Does a Python value unbox as this argument spec ("int", "bool", "float", [dtype, ndim], ["tuple", n, spec])?"""
    import numpy as np

    if spec == "int":
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if spec == "bool":
        return isinstance(value, (bool, np.bool_))
    if spec == "float":
        return isinstance(value, (float, np.floating))
    if spec[0] == "tuple":
        return isinstance(value, tuple) and len(value) == spec[1] and all(_fits(spec[2], v) for v in value)
    dtype, ndim = spec
    return (isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype == np.dtype(dtype)
            and value.flags.c_contiguous and value.flags.aligned)


_AOT: dict = {}  # kernel name -> [(argument specs, compiled function)], read once from the manifest


def _aot_variants(name: str, folder=None) -> list:
    """The ahead-of-time variants of one kernel (none when the module is missing or stale)."""
    key = str(folder)
    if key not in _AOT:
        _AOT[key] = _load_aot(folder)
    return _AOT[key].get(name, [])


def _load_aot(folder=None) -> dict:
    import importlib.util
    import json
    import os
    from pathlib import Path

    folder = Path(folder or os.environ.get("LMLAB_AOT_DIR") or Path(__file__).parent)
    try:
        manifest = json.loads((folder / f"{AOT_MODULE}.json").read_text())
        if manifest.get("key") != aot_key(manifest["sources"]):
            return {}
        found = sorted(folder.glob(f"{AOT_MODULE}.*.so")) + sorted(folder.glob(f"{AOT_MODULE}.*.pyd"))
        if not found:
            return {}
        spec = importlib.util.spec_from_file_location(f"lmlab.{AOT_MODULE}", found[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return {name: [(tuple(v["args"]), getattr(module, v["symbol"])) for v in variants]
                for name, variants in manifest["kernels"].items()}
    except (OSError, ValueError, KeyError, TypeError, ImportError, AttributeError):
        return {}  # no usable module: every call is compiled by numba's JIT


class Kernel:
    """A numba kernel: its ahead-of-time variant that fits the arguments, else ``njit`` of ``fn``.

    ``prepare`` (called once before the first JIT compile, and before an ahead-of-time build) jits
    the helpers the kernel calls by global name. ``options`` go to ``njit`` (``cache=True`` and
    ``nogil=True`` are the defaults; the ahead-of-time variants release the GIL too).
    """

    def __init__(self, fn, prepare=None, **options) -> None:
        self.fn, self.prepare = fn, prepare
        self.options = {"cache": True, "nogil": True, **options}
        self.name = f"{fn.__module__}.{fn.__name__}"
        self.aot_folder = None  # (the tests point a kernel at a module they built)
        self._jit = None

    def __call__(self, *args):
        for specs, compiled in _aot_variants(self.name, self.aot_folder):
            if len(specs) == len(args) and all(_fits(s, a) for s, a in zip(specs, args)):
                return compiled(*args)
        return self.jitted(*args)

    def loaded(self) -> bool:
        """Would a call cost no numba import (numba already imported, or a variant compiled ahead of time)?"""
        return "numba" in sys.modules or bool(_aot_variants(self.name, self.aot_folder))

    @property
    def jitted(self):
        """The JIT-compiled dispatcher (numba imported on first use)."""
        if self._jit is None:
            if self.prepare is not None:
                self.prepare()
            self._jit = njit(**self.options)(self.fn)
        return self._jit


def have_kernels() -> bool:
    """Can kernels run compiled (numba installed)? Answered without importing numba."""
    import importlib.util

    return "numba" in sys.modules or importlib.util.find_spec("numba") is not None
