"""Compile the n-gram query kernels ahead of time: ``python -m lmlab.aot`` (``make setup`` runs it).

Scoring text against a mapped binary model (``lmlab ngram eval model.lmbin text``), or reading an
ARPA file, runs a few numba kernels. Compiled just in time, they cost numba's import, its typing
registries and a cache load per kernel before the first word is scored: about 0.7-0.9 s of a 2.3 s
run over 3M words, where KenLM's ``query`` takes 1.0 s in all. Here numba compiles the same Python
functions, for the argument types listed below, into one extension module (``numba.pycc``), which
lmlab loads without importing numba (see :class:`lmlab._numba.Kernel`: a call whose arguments fit
no listed variant is compiled just in time as before). The module and its manifest are written
beside ``lmlab/_numba.py``; they are build outputs, not in git. Compiling takes about 30 s.

The variants: the text encoder's kernels (and the counting pass's word numbering, and the merge-join
of big on-disk builds), the exact-sum partials, the ARPA line tokenizer, number parser and line
writer, the hash-table scorer, and the trie scorer and trie step of binary models and the probing
scorer, for orders 2-6 with float64 or float32 (``-q 32``) values (8-bit quantised trie columns use
the same variants with their code arrays; other code widths, and higher orders, use the JIT).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

U1, I4, I8, U4, F4, F8, B1 = (["uint8", 1], ["int32", 1], ["int64", 1], ["uint32", 1], ["float32", 1],
                              ["float64", 1], ["bool", 1])
SOURCES = ["_numba.py", "ngram/textenc.py", "ngram/model.py", "ngram/binary.py", "ngram/arpa.py", "ngram/ondisk.py"]
ORDERS = range(2, 7)


def _tuple(n: int, spec):
    return ["tuple", n, spec]


def _trie_variants() -> list[tuple[str, list]]:
    out = []
    for order in ORDERS:
        for name, values in (("f8", F8), ("f4", F4)):
            t = order - 1
            out.append((f"trie_{order}_{name}", [I8, I8, "int", "int", _tuple(t, I8), _tuple(t, U4), F8, F8,
                                                _tuple(t, values), _tuple(t, values), _tuple(t, U1),
                                                _tuple(t, U1), "bool", "bool", ["int32", 2], F8, I8, B1, I8]))
    return out


def _probing_variants() -> list[tuple[str, list]]:
    out = []
    for order in ORDERS:
        for name, values in (("f8", ["float64", 2]), ("f4", ["float32", 2])):
            t = order - 1
            out.append((f"probing_{order}_{name}", [I8, I8, "int", "int", _tuple(t, ["uint32", 2]), _tuple(t, values),
                                                   "int", "int", F8, F8, "bool", "bool", ["uint64", 2], F8,
                                                   ["float64", 2], F8, I8, B1, I8]))
    return out


def variants() -> list[tuple[object, str, list]]:
    """(kernel, exported symbol, argument specs) for everything the module holds."""
    from .ngram import arpa, binary, model, ondisk, textenc

    build_table, count_tokens, fill, lookup_spans, intern = textenc.KERNELS
    table = [
        (build_table, "build_table", [U1, I8, I8, "int"]),
        (count_tokens, "count_tokens", [U1]),
        (fill, "fill", [U1, I4, "int", U1, I8, I8, I8, I8]),
        (lookup_spans, "lookup_spans", [U1, I8, I8, I4, "int", U1, I8, I8, I8]),
        (intern, "intern", [U1, I8, I4, "int", U1, I8, I8, I8, I8]),
        (model.PARTIALS, "partials", [F8, F8]),
        (arpa.DECIMALS, "decimal_floats", [U1, I8, I8, F8, B1]),
        (arpa.FORMAT_LINES, "format_lines", [["int64", 2], F8, F8, U1, I8, I8, U1]),
        (arpa.LINE_TOKENS, "line_tokens", [U1, "int", "bool", ["int64", 2], ["int64", 2]]),
        (ondisk.MERGE_JOIN, "merge_join", [["uint8", 2], ["uint8", 2], I8]),
        (model.SCORER, "score_table", [I8, I8, "int", "int", ["int64", 2], I8, I8, I8, ["float64", 2], "bool",
                                       I8, "bool", F8, I8, B1, I8]),
        (binary.STEP, "child_rows_u4", [I8, U4, "int", I8, I8, I8]),
        (binary.STEP, "child_rows_i8", [I8, I8, "int", I8, I8, I8]),
    ]
    table += [(binary.TRIE, symbol, specs) for symbol, specs in _trie_variants()]
    table += [(binary.PROBING, symbol, specs) for symbol, specs in _probing_variants()]
    return table


def numba_type(spec):
    """The numba type of an argument spec (see :func:`lmlab._numba._fits`)."""
    import numpy as np
    from numba import types
    from numba.np.numpy_support import from_dtype

    if spec == "int":
        return types.int64
    if spec == "bool":
        return types.boolean
    if spec == "float":
        return types.float64
    if spec[0] == "tuple":
        return types.UniTuple(numba_type(spec[2]), spec[1])
    dtype, ndim = spec
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


def build(folder: Path | None = None, only: set[str] | None = None, quiet: bool = False) -> Path:
    """Compile the variants (those named in ``only``, by symbol, or all) into ``folder`` (default:
    beside ``lmlab/_numba.py``); returns the manifest's path. The manifest is written last, so an
    interrupted build leaves no module that claims to be usable."""
    import warnings

    from numba.core import compiler

    from . import _numba

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc's pending-deprecation notice
        from numba.pycc import CC
        from numba.pycc import compiler as pycc_compiler

    import os

    folder = Path(folder or os.environ.get("LMLAB_AOT_DIR") or Path(_numba.__file__).parent)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in variants() if only is None or v[1] in only]

    class Flags(compiler.Flags):  # pycc's wrappers keep the GIL unless told otherwise; the JIT kernels are nogil
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    manifest_path = folder / f"{_numba.AOT_MODULE}.json"
    manifest_path.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = CC(_numba.AOT_MODULE)
        cc.output_dir = str(folder)
        cc.verbose = False
        kernels: dict[str, list] = {}
        for kernel, symbol, specs in chosen:
            argtypes = tuple(numba_type(s) for s in specs)
            jitted = kernel.jitted  # (prepares the helpers it calls) -> the return type
            jitted.compile(argtypes)
            retty = jitted.overloads[argtypes].signature.return_type
            cc.export(symbol, retty(*argtypes))(kernel.fn)
            kernels.setdefault(kernel.name, []).append({"symbol": symbol, "args": specs})
        start = time.perf_counter()
        original = pycc_compiler.Flags
        pycc_compiler.Flags = Flags
        try:
            cc.compile()  # (for a generic x86-64 CPU, pycc's default: the module runs on any machine)
        finally:
            pycc_compiler.Flags = original
    manifest = {"key": _numba.aot_key(SOURCES), "sources": SOURCES, "kernels": kernels}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    if not quiet:
        print(f"compiled {len(chosen)} kernel variants in {time.perf_counter() - start:.0f} s -> "
              f"{folder / _numba.AOT_MODULE}.*", file=sys.stderr)
    return manifest_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="folder to write the module and manifest into (default: the package)")
    args = parser.parse_args(argv)
    build(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
