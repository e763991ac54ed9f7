"""A user's own labelled examples: CSV, TSV or JSONL files read into train / valid / test splits.

    lmlab finetune MODEL reviews.csv --text-field review --label-field sentiment

What a file may look like:

| suffix | format |
|---|---|
| ``.csv`` | comma-separated, a header row naming the fields (RFC 4180 quoting, as Python's ``csv``) |
| ``.tsv`` / ``.tab`` | tab-separated, a header row |
| ``.jsonl`` / ``.ndjson`` / ``.json`` | one JSON object per line (a ``.json`` file of one list of objects too) |

Fields: ``text_field`` (the text), ``label_field`` (the class; any string or number, kept as its
string), optionally ``text_pair_field`` (a second text: sentence-pair classification) and
``split_field`` (each row's split: ``train``; ``valid`` / ``validation`` / ``dev``; ``test``).
Without a split field the rows are split at random but reproducibly: each row's place is a hash
of (``seed``, its line number, its text), ``valid_fraction`` and ``test_fraction`` of the rows go to
valid and test. Label names are the distinct labels, sorted (numbers numerically), so the same file
always gives the same class ids.

Every problem is a one-line :class:`~lmlab.errors.DataError` naming the file and the line: a
missing field (with the fields the file has), an empty file, an empty text, fewer than two labels,
an empty training split, a test label never seen in training.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.corpus import decode_utf8, split_fraction
from ..errors import DataError, UsageError

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "dev": "valid",
               "val": "valid", "test": "test", "testing": "test"}


@dataclass
class Example:
    text: str
    label: str
    pair: str | None = None
    line: int = 0  # 1-based line of the file (the header is line 1 in CSV / TSV)


@dataclass
class LabelledData:
    """Examples of one task in three splits, and the label names in class-id order."""

    labels: list[str]
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    source: dict = field(default_factory=dict)  # how to read the same splits again (recorded in the model folder)

    def ids(self, examples: list[Example]) -> list[int]:
        index = {name: i for i, name in enumerate(self.labels)}
        return [index[e.label] for e in examples]


@dataclass
class DataSpec:
    """How to read a user's file (see the module docstring)."""

    path: str = ""
    text_field: str = "text"
    label_field: str = "label"
    text_pair_field: str = ""
    split_field: str = ""
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise UsageError(f"{name} must be in [0, 1), got {value}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise UsageError(f"valid_fraction + test_fraction must be < 1, got "
                             f"{self.valid_fraction} + {self.test_fraction}")


def is_data_file(name: str) -> bool:
    """True when ``name`` looks like a labelled file (by suffix), not a built-in task name."""
    return Path(name).suffix.lower() in SUFFIXES


def _records(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """((line, record) for every row, the field names seen) of a CSV / TSV / JSONL file."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown labelled-data format {path.suffix!r}; use "
                        f"{', '.join(sorted(SUFFIXES))}")
    if not path.is_file():
        raise DataError(f"labelled data file not found: {path}")
    text = decode_utf8(path.read_bytes(), str(path))
    if text.startswith("\ufeff"):  # a byte-order mark (spreadsheet exports)
        text = text[1:]
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if kind == "jsonl":
        return _json_records(path, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t")
    try:
        rows = list(reader)
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: {err}") from None
    header = [name.strip() for name in rows[0]]
    records = []
    line = 1
    for row in rows[1:]:
        line += 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {line}: {len(row)} fields, the header has {len(header)}")
        records.append((line, dict(zip(header, row))))
    return records, header


def _json_records(path: Path, text: str) -> tuple[list[tuple[int, dict]], list[str]]:
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        numbered = list(enumerate(items, 1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}: not valid JSON ({err.msg})") from None
    names: list[str] = []
    for number, item in numbered:
        if not isinstance(item, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(item).__name__}")
        names += [k for k in item if k not in names]
    return numbered, names


def _cell(path: Path, line: int, record: dict, name: str, fields: list[str]) -> str:
    if name not in record:
        raise DataError(f"{path}: line {line}: no field {name!r} (fields: {', '.join(map(str, fields)) or 'none'})")
    value = record[name]
    if value is None or isinstance(value, dict | list):
        raise DataError(f"{path}: line {line}: field {name!r} must be a string or a number, got {value!r}")
    return str(value)


def _label_order(labels) -> list[str]:
    """Distinct labels sorted: numerically when every one is a number, else as strings."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def read_labelled(spec: DataSpec) -> LabelledData:
    """The file's examples in three splits (see the module docstring)."""
    spec.validate()
    path = Path(spec.path)
    records, fields = _records(path)
    if not records:
        raise DataError(f"{path}: no rows (only a header)")
    for name in (spec.text_field, spec.label_field, spec.text_pair_field, spec.split_field):
        if name and name not in fields:
            raise DataError(f"{path}: no field {name!r} (fields: {', '.join(map(str, fields))})")
    splits: dict[str, list[Example]] = {"train": [], "valid": [], "test": []}
    for line, record in records:
        text = _cell(path, line, record, spec.text_field, fields)
        if not text.strip():
            raise DataError(f"{path}: line {line}: empty text in field {spec.text_field!r}")
        label = _cell(path, line, record, spec.label_field, fields).strip()
        if not label:
            raise DataError(f"{path}: line {line}: empty label in field {spec.label_field!r}")
        pair = _cell(path, line, record, spec.text_pair_field, fields) if spec.text_pair_field else None
        example = Example(text, label, pair, line)
        if spec.split_field:
            value = _cell(path, line, record, spec.split_field, fields).strip().lower()
            if value not in SPLIT_NAMES:
                raise DataError(f"{path}: line {line}: split {value!r} in field {spec.split_field!r} is not one of "
                                f"train, valid (validation, dev), test")
            splits[SPLIT_NAMES[value]].append(example)
        else:
            u = split_fraction(f"{line}\x00{text}", seed=spec.seed)
            name = "test" if u < spec.test_fraction else "valid" if u < spec.test_fraction + spec.valid_fraction \
                else "train"
            splits[name].append(example)
    labels = _label_order(e.label for e in splits["train"] + splits["valid"] + splits["test"])
    if len(labels) < 2:
        raise DataError(f"{path}: field {spec.label_field!r} has only one label ({labels[0]!r}); a classifier "
                        f"needs at least two")
    if not splits["train"]:
        raise DataError(f"{path}: the training split is empty")
    seen = {e.label for e in splits["train"]}
    for name in ("valid", "test"):
        unseen = [e for e in splits[name] if e.label not in seen]
        if unseen:
            raise DataError(f"{path}: line {unseen[0].line}: {name} label {unseen[0].label!r} never occurs in the "
                            f"training split")
    source = {"kind": "file", **{k: getattr(spec, k) for k in ("path", "text_field", "label_field",
                                                                "text_pair_field", "split_field", "valid_fraction",
                                                                "test_fraction", "seed")}}
    source["path"] = str(path.resolve())
    return LabelledData(labels, splits["train"], splits["valid"], splits["test"], source)


def carve_valid(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, valid): ``fraction`` of ``examples`` moved to valid, by a seeded hash of each text."""
    train, valid = [], []
    for i, e in enumerate(examples):
        (valid if split_fraction(f"{i}\x00{e.text}", seed=seed + 7919) < fraction else train).append(e)
    return train, valid
