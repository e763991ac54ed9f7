"""Issue 20: bad inputs get one line, ``lmlab: error: ...``, a non-zero exit and no traceback.

Binary files handed in as text (ZIP, gzip, PNG, PDF, ...), run files that are not TOML, broken
word-vector files, out-of-range generation options and a GPT run with an unusable tokenizer kind;
plus ``lmlab --version`` and a ``--help`` that does not import torch. Each case runs the CLI in a
subprocess, as a user would.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lmlab.data.corpus import check_text, decode_utf8, sniff_binary
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import DataError, FormatError

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 8


def _one_line_error(result, *needles: str) -> str:
    assert result.returncode != 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("lmlab: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("corpus.txt", "the cat sat on the mat\n" * 50)
    return buffer.getvalue()


# -- binary files read as text ------------------------------------------------------------------

BINARIES = {
    "archive.zip.txt": (_zip_bytes(), "this is a ZIP archive, not text"),
    "image.png": (PNG, "this is a PNG image, not text"),
    "paper.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\n", "this is a PDF document, not text"),
    "packed.txt": (gzip.compress(b"the cat sat\n" * 20), "this is a gzip file, not text"),
    "program.bin": (b"\x7fELF\x02\x01\x01" + bytes(64), "this is an ELF executable, not text"),
    "nul.txt": (b"text with a \x00 inside\n", "NUL byte at offset 12"),
}


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_binary_files_are_refused_before_decoding(cli, tmp_path, name):
    data, message = BINARIES[name]
    path = tmp_path / name
    path.write_bytes(data)
    for errors in ("strict", "replace"):  # --errors replace does not turn an image into a corpus
        result = cli("corpus", "prepare", str(path), "--out", str(tmp_path / f"out-{errors}"), "--errors", errors)
        line = _one_line_error(result, name, message)
        assert "--errors replace" not in line
        assert not (tmp_path / f"out-{errors}").exists()


@pytest.mark.parametrize("name", ["image.png", "paper.pdf", "archive.zip.txt"])
def test_ngram_build_sniffs_its_input_too(cli, tmp_path, name):
    data, message = BINARIES[name]
    (tmp_path / name).write_bytes(data)
    _one_line_error(cli("ngram", "build", str(tmp_path / name), "-o", str(tmp_path / "m.arpa")), name, message)
    assert not (tmp_path / "m.arpa").exists()


def test_ngram_build_names_a_truncated_gzip(cli, tmp_path):
    (tmp_path / "text.gz").write_bytes(gzip.compress(b"the cat sat on the mat\n" * 200)[:30])
    _one_line_error(cli("ngram", "build", str(tmp_path / "text.gz"), "-o", str(tmp_path / "m.arpa")),
                    "text.gz", "truncated or corrupt gzip")


def test_gzip_named_gz_is_still_read(cli, tmp_path):
    path = tmp_path / "text.txt.gz"
    path.write_bytes(gzip.compress("".join(f"document {i} about the cat and the mat .\n" for i in range(60)).encode()))
    result = cli("corpus", "prepare", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr


def test_a_binary_file_in_a_glob_is_named(cli, tmp_path):
    (tmp_path / "a.txt").write_text("a fine line of text\n" * 30)
    (tmp_path / "b.dat").write_bytes(PNG)
    _one_line_error(cli("corpus", "prepare", str(tmp_path / "*"), "--out", str(tmp_path / "out")),
                    "b.dat: this is a PNG image")


def test_sniffer_by_hand():
    assert sniff_binary(b"PK\x03\x04rest") == "a ZIP archive"
    assert sniff_binary(PNG) == "a PNG image"
    assert sniff_binary(b"\x1f\x8b\x08\x00") == "a gzip file"
    assert sniff_binary(b"BZh91AY&SY" + bytes(8)) == "a bzip2 file"
    assert sniff_binary(b"BZh is a word in this text\n") is None
    assert sniff_binary(b"\xff\xfeh\x00i\x00").startswith("UTF-16")
    assert sniff_binary("plain text, naïve café, 中文\n".encode()) is None
    assert sniff_binary(b"") is None
    with pytest.raises(DataError, match=r"^f\.txt: this is a ZIP archive, not text$"):
        check_text(b"PK\x05\x06" + bytes(18), "f.txt")
    with pytest.raises(DataError, match="compressed text is read from files named"):
        decode_utf8(gzip.compress(b"x"), "f.txt", errors="replace")
    assert decode_utf8(b"\xef\xbb\xbfhello", "f.txt") == "hello"


def test_eval_text_lines_are_sniffed_too(tmp_path):
    """``lmlab eval`` reads its text lines through the same decode_utf8 (and so the same sniffer)."""
    path = tmp_path / "lines.txt"
    path.write_bytes(PNG)
    with pytest.raises(DataError, match="lines.txt: this is a PNG image, not text"):
        decode_utf8(path.read_bytes(), str(path))


# -- run files ------------------------------------------------------------------------------------

def test_json_in_a_toml_run_file(cli, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(json.dumps({"family": "gpt", "train": {"max_steps": 3}}))
    _one_line_error(cli("train", str(path)), f"{path}:1:", "this is JSON")


def test_garbage_toml_names_the_line(cli, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('family = "gpt"\n\n[train\nmax_steps = 3\n')
    _one_line_error(cli("train", str(path)), f"{path}:3:", "malformed toml")


def test_binary_run_file(cli, tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes(PNG)
    _one_line_error(cli("train", str(path)), str(path), "not TOML text")


@pytest.mark.parametrize("name", ["run.txt", "run.yaml", "run"])
def test_run_file_with_another_suffix(cli, tmp_path, name):
    path = tmp_path / name
    path.write_text('family = "gpt"\n')
    _one_line_error(cli("train", str(path)), str(path), "name it *.toml")


def test_gpt_with_an_unusable_tokenizer_kind(cli):
    gpt = str(ROOT / "configs" / "gpt.toml")
    _one_line_error(cli("train", gpt, "tokenizer.kind=wordpeice"), "tokenizer.kind", "unknown tokenizer",
                    "did you mean 'wordpiece'")
    _one_line_error(cli("train", gpt, "tokenizer.kind=wordpiece"), "tokenizer.kind", "</s>")
    _one_line_error(cli("train", gpt, "tokenizer.vocab_size=0"), "tokenizer.vocab_size")


# -- word vectors ---------------------------------------------------------------------------------

TEXT_CASES = {
    "dimension": ("3 2\na 1 2\nb 1 2 3\nc 1 2\n", "v.txt:3:", "3 numbers after the word"),
    "dimension-too-big": ("2 3\na 1 2\nb 1 2\n", "v.txt:2:", "expected 3 numbers"),
    "glove-dimension": ("a 1 2\nb 1 2 3\n", "v.txt:2:", "the dimension is 2"),
    "count-too-big": ("3 2\na 1 2\nb 1 2\n", "v.txt:1:", "header says 3 words, file has 2"),
    "count-too-small": ("1 2\na 1 2\nb 1 2\n", "v.txt:3:", "more words than the header's count (1)"),
    "nan": ("2 2\na 1 2\nb nan 2\n", "v.txt:3:", "non-finite value (nan)"),
    "inf": ("a 1 2\nb 1 -inf\n", "v.txt:2:", "non-finite value (-inf)"),
    "duplicate": ("3 2\na 1 2\nb 1 2\na 3 4\n", "v.txt:4:", "duplicate word 'a' (first at line 2)"),
    "zero-dim": ("2 0\na\nb\n", "v.txt:1:", "dimension is 0"),
}


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_broken_text_vector_files(cli, tmp_path, case):
    text, where, message = TEXT_CASES[case]
    path = tmp_path / "v.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match="non-finite|duplicate|numbers|header|dimension|count") as info:
        Vectors.load(path)
    assert where in str(info.value) and message in str(info.value), str(info.value)
    _one_line_error(cli("embed", "similar", "a", "--vectors", str(path)), where, message)


def _binary(words: list[str], vectors: np.ndarray, header: str | None = None) -> bytes:
    n, dim = vectors.shape
    parts = [(header or f"{n} {dim}").encode() + b"\n"]
    for word, row in zip(words, vectors.astype("<f4")):
        parts.append(word.encode() + b" " + row.tobytes() + b"\n")
    return b"".join(parts)


def test_broken_binary_vector_files(cli, tmp_path):
    words, vecs = ["alpha", "beta", "gamma"], np.arange(12, dtype=np.float32).reshape(3, 4) + 0.5
    path = tmp_path / "v.bin"
    path.write_bytes(_binary(words, vecs))
    assert Vectors.load(path).words == words
    cases = {
        "3 2": "word 2",           # too small a dimension: the next 'word' is float bytes
        "3 6": "truncated",        # too large a dimension
        "2 4": "data after word 2",  # too small a count
        "4 4": "truncated binary vectors file at word 4 of 4",
    }
    for header, message in cases.items():
        path.write_bytes(_binary(words, vecs, header))
        with pytest.raises(FormatError, match=message):
            Vectors.load(path, "word2vec-binary")
    path.write_bytes(_binary(["alpha", "beta", "alpha"], vecs))
    _one_line_error(cli("embed", "similar", "alpha", "--vectors", str(path)), "word 3", "duplicate word 'alpha'")
    bad = vecs.copy()
    bad[1, 2] = np.nan
    path.write_bytes(_binary(words, bad))
    _one_line_error(cli("embed", "similar", "alpha", "--vectors", str(path)), "word 2", "non-finite value (nan)")


def test_good_vector_files_still_load(tmp_path):
    vec = Vectors(["a", "b", "c"], np.arange(6, dtype=np.float32).reshape(3, 2) + 0.25)
    for fmt in ("word2vec", "word2vec-binary", "glove"):
        assert Vectors.load(vec.save(tmp_path / f"v.{fmt}", fmt)).words == ["a", "b", "c"]
    spaced = tmp_path / "spaced.txt"  # a word with a space is kept in the text formats (GloVe has a few)
    spaced.write_text("3 2\na 0 1\nb 2 3\nc d 4 5\n")
    assert Vectors.load(spaced).words == ["a", "b", "c d"]


# -- generation options ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpt_folder(tmp_path_factory):
    import torch

    from lmlab.data.tokenizers import WordTokenizer
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel

    torch.manual_seed(0)
    words = [chr(97 + i) for i in range(26)]
    tokenizer = WordTokenizer(lowercase=True).train_from_tokens([words])
    config = GPTConfig(vocab_size=tokenizer.vocab_size, max_length=16, d_model=16, n_layers=1, n_heads=2,
                       dropout=0.0, attn_dropout=0.0, bos_token_id=1, eos_token_id=2)
    folder = tmp_path_factory.mktemp("gpt") / "m"
    GPTLanguageModel(config).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


BAD_OPTIONS = [
    (["-n", "-5"], "--max-new-tokens must be >= 0"),
    (["--top-p", "2"], "--top-p must be in (0, 1]"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--temperature", "-1"], "--temperature must be > 0"),
    (["--temperature", "nan"], "--temperature must be > 0"),
    (["--top-k", "-1"], "--top-k must be >= 0"),
    (["--beam", "0"], "--beam must be >= 1"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be > 0"),
    (["--beam", "2", "--top-k", "5"], "--beam is deterministic"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_generation_options_are_checked_before_any_output(cli, gpt_folder, args, message):
    result = cli("generate", str(gpt_folder), "a b c", *args)
    _one_line_error(result, message)
    assert result.stdout == ""  # not even the prompt


def test_generate_still_runs(cli, gpt_folder):
    result = cli("generate", str(gpt_folder), "a b c", "-n", "3", "--ignore-eos")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("a b c")
    too_long = cli("generate", str(gpt_folder), " ".join("abcdefghijklmnopqrstuvwxyz"))
    _one_line_error(too_long, "longer than the model's 16 positions")


def test_generation_config_validation_by_hand():
    from lmlab.errors import UsageError
    from lmlab.tasks.generation import GenerationConfig

    for bad in ({"max_new_tokens": -1}, {"temperature": float("nan")}, {"temperature": float("inf")},
                {"top_p": 0.0}, {"top_p": float("nan")}, {"repetition_penalty": 0.0},
                {"repetition_penalty": float("nan")}, {"length_penalty": float("nan")}, {"num_beams": 0}):
        with pytest.raises(UsageError):
            GenerationConfig(**bad).validate()
    GenerationConfig(max_new_tokens=0, top_p=1.0, temperature=0.5, top_k=0).validate()


# -- --version and a light --help ---------------------------------------------------------------

def test_version(cli):
    import lmlab

    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"lmlab {lmlab.__version__}"


def test_help_imports_no_torch():
    code = ("import sys; from lmlab.cli import main; main._attach(None); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["corpus", "--help"], ["train", "--help"], ["generate", "--help"],
                                  ["eval", "--help"], ["embed", "--help"], ["ngram", "--help"]])
def test_help_runs_without_torch(args):
    code = ("import sys, runpy; sys.argv = ['lmlab', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('lmlab', run_name='__main__')\n"
            "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "False"


def test_lmlab_warnings_are_one_line_and_repeats_are_counted(cli, tmp_path):
    """A 1-line corpus for a 5-gram: one 'lmlab: warning:' line and a count, not five raw Python warnings."""
    corpus = tmp_path / "one.txt"
    corpus.write_text("the cat sat\n")
    run = cli("ngram", "build", str(corpus), "-o", str(tmp_path / "m.arpa"), "--order", "5")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("lmlab: warning")]
    assert lines[0].startswith("lmlab: warning: modified Kneser-Ney: order 1")
    assert lines[1] == "lmlab: warning: (4 more like the warnings above, for other orders or items)"
    assert len(lines) == 2 and "SmoothingWarning" not in run.stderr and "pipeline.py" not in run.stderr


def test_eval_warns_on_a_normalisation_mismatch_and_build_can_normalise(cli, tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("The Capital of France is Paris.\nIt has many Museums.\nThe Capital of Spain is Madrid.\n")
    norm = tmp_path / "norm.txt"
    norm.write_text("the capital of france is paris .\nit has many museums .\n")
    model = tmp_path / "raw.arpa"
    assert cli("ngram", "build", str(raw), "-o", str(model), "--order", "2").returncode == 0
    run = cli("ngram", "eval", str(model), str(norm))
    assert run.returncode == 0
    warning = [line for line in run.stderr.splitlines() if line.startswith("lmlab: warning:")]
    assert len(warning) == 1 and "another case" in warning[0] and "untokenized" in warning[0]
    fixed = tmp_path / "norm.arpa"
    assert cli("ngram", "build", str(raw), "-o", str(fixed), "--order", "2", "--lowercase", "--tokenize").returncode == 0
    run = cli("ngram", "eval", str(fixed), str(norm))
    assert run.returncode == 0 and "lmlab: warning" not in run.stderr


# -- n-gram model files that are not what they claim -------------------------------------------------

SMALL_ARPA = ("\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.5\t</s>\n-0.6\tcat\t-0.2\n"
              "-0.9\t<unk>\n\n\\2-grams:\n-0.1\t<s> cat\n-0.2\tcat </s>\n\n\\end\\\n")


def test_a_truncated_arpa_gz_names_the_gzip_not_aborted(cli, tmp_path):
    """Issue 20: a cut .arpa.gz printed only "Aborted." (click's answer to gzip's EOFError), even with --debug."""
    whole = gzip.compress((SMALL_ARPA + "\n" * 2000).encode())
    model = tmp_path / "m.arpa.gz"
    model.write_bytes(whole[: len(whole) // 2])
    (tmp_path / "t.txt").write_text("cat\n", encoding="utf-8")
    line = _one_line_error(cli("ngram", "eval", str(model), str(tmp_path / "t.txt")), "m.arpa.gz")
    assert "truncated" in line or "header says" in line
    result = cli("ngram", "eval", str(model), str(tmp_path / "t.txt"))
    assert "Aborted" not in result.stderr and result.returncode == 2


def test_a_folder_given_as_an_ngram_model(cli, tmp_path):
    (tmp_path / "t.txt").write_text("cat\n", encoding="utf-8")
    line = _one_line_error(cli("ngram", "eval", str(tmp_path), str(tmp_path / "t.txt")), "is a folder")
    assert "Errno" not in line


@pytest.mark.parametrize(("args", "option"), [(["-n", "-3"], "--n"), (["-n", "0"], "--n"),
                                              (["--max-words", "0"], "--max-words")])
def test_ngram_sample_counts_are_checked(cli, tmp_path, args, option):
    (tmp_path / "m.arpa").write_text(SMALL_ARPA, encoding="utf-8")
    before = (tmp_path / "m.arpa").read_bytes()
    _one_line_error(cli("ngram", "sample", str(tmp_path / "m.arpa"), *args), option)
    assert (tmp_path / "m.arpa").read_bytes() == before


@pytest.mark.parametrize(("args", "option"), [(["--budget", "-5"], "--budget"),
                                              (["--vocab-size", "0"], "--vocab-size"), (["--min-count", "0"], "--min-count")])
def test_demo_options_are_checked_before_any_work(cli, tmp_path, args, option):
    """Round 3's sweep: `lmlab demo --budget -5` ran, skipped every family and exited 0."""
    _one_line_error(cli("demo", "--out", str(tmp_path / "demo"), *args), option)
    assert not (tmp_path / "demo").exists()


def test_ngram_eval_reads_a_text_file_in_pieces(cli, tmp_path, monkeypatch):
    """``ngram eval`` reads a plain or gzipped text file a piece at a time: the same numbers as from stdin
    (read whole); a gzip stream cut short, or bytes that are not UTF-8 past the first piece, are one-line errors."""
    from lmlab.ngram import read_arpa, write_arpa

    model = tmp_path / "m.arpa"
    write_arpa(read_arpa(Path(__file__).parents[1] / "fixtures" / "kenlm" / "mkn3.arpa.gz"), model)
    text = ("the cat sat on the mat .\n" * 4000).encode()
    (tmp_path / "t.txt").write_bytes(text)
    (tmp_path / "t.txt.gz").write_bytes(gzip.compress(text))
    piped = cli("ngram", "eval", str(model), "-", input=text.decode())
    for name in ("t.txt", "t.txt.gz"):
        result = cli("ngram", "eval", str(model), str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[:4] == piped.stdout.splitlines()[:4]
    (tmp_path / "cut.gz").write_bytes(gzip.compress(text)[:-40])
    _one_line_error(cli("ngram", "eval", str(model), str(tmp_path / "cut.gz")), "cut.gz", "truncated or corrupt gzip")
    (tmp_path / "bad.txt").write_bytes(text + b"caf\xe9\n")
    _one_line_error(cli("ngram", "eval", str(model), str(tmp_path / "bad.txt")), "bad.txt",
                    f"not valid UTF-8 at byte {len(text) + 3}")
