"""``lmlab predict MODEL INPUT``: run a saved model's prediction pipeline on a text, a file or stdin.

    lmlab predict runs/ft/model "a moving, beautifully acted film"     # one text -> one JSON line
    lmlab predict runs/ft/model reviews.txt --out preds.jsonl          # one text per line (or .jsonl: --text-field)
    cat reviews.txt | lmlab predict runs/ft -                           # stdin; runs/ft is lmlab finetune's --out
    lmlab predict runs/bert/model "the [MASK] sat on the mat"           # fill-mask (an MLM family's folder)
    lmlab predict runs/gpt/model "The history of" --max-new-tokens 20   # text-generation
    lmlab predict runs/ft-g2p/model "language"                          # text2text-generation (an encoder-decoder)

The task defaults to the folder's (a fine-tuned classifier: ``text-classification``; an MLM:
``fill-mask``; a causal LM: ``text-generation``), or is named with ``--task``. Each input gives one
JSON object: ``{"text": ..., **the pipeline's output}`` (:mod:`lmlab.tasks.predict`). INPUT is
read as a file when a file of that name exists, ``-`` is stdin, anything else is the text itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import DataError, UsageError
from .common import decoding_option


def read_inputs(source: str, text_field: str) -> list[str]:
    """The texts of INPUT: stdin (``-``), a file (one per line; ``.jsonl``: the ``text_field`` of each object), or the text."""
    from ..data.corpus import decode_utf8

    if source == "-":
        lines = sys.stdin.read().splitlines()
        where = "stdin"
    elif Path(source).is_file():
        path = Path(source)
        lines = decode_utf8(path.read_bytes(), str(path)).splitlines()
        where = str(path)
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            texts = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}: line {number}: not valid JSON ({err.msg})") from None
                if not isinstance(item, dict) or not isinstance(item.get(text_field), str):
                    raise DataError(f"{path}: line {number}: no string field {text_field!r}")
                texts.append(item[text_field])
            if not texts:
                raise DataError(f"{path}: no texts")
            return texts
    else:
        return [source]
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise DataError(f"{where}: no texts (empty input)")
    return texts


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        model_dir: Path = typer.Argument(..., help="a saved model folder (or lmlab finetune's --out folder)"),
        source: str = typer.Argument(..., help="a text, a file of texts (one per line, or .jsonl), or - for stdin"),
        task: str = typer.Option("", help="pipeline task (default: the folder's): text-classification | fill-mask | "
                                          "text-generation | ..."),
        out: Path = typer.Option(None, "--out", help="write JSON lines here instead of stdout"),
        force: bool = typer.Option(False, "--force", help="replace an existing --out"),
        batch_size: int = typer.Option(32, help="inputs per batch (sorted by length)"),
        top_k: int = typer.Option(0, help="labels (or mask fillers) per input (0: the task's default: 1 label, 5 tokens)"),
        text_field: str = typer.Option("text", help="the text field of a .jsonl INPUT"),
        max_new_tokens: int = typer.Option(None, help="text-generation: tokens to add at most (default 30); "
                                                      "text2text-generation: output tokens at most (default: a "
                                                      "fine-tuned folder's --max-target-length, else 30)"),
        num_beams: int = decoding_option("num_beams", "predict"),
        length_penalty: float = decoding_option("length_penalty", "predict"),
        max_source_length: int = decoding_option("max_source_len", "predict"),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)"),
    ) -> None:
        """Label, fill or continue texts with a saved model; one JSON object per input."""
        from .common import check_output, console

        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
        if top_k < 0:
            raise UsageError(f"--top-k must be >= 0 (0: the task's default), got {top_k}")
        if max_new_tokens is not None and max_new_tokens < 0:
            raise UsageError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
        if out is not None:
            check_output(out, inputs=[source, model_dir], force=force)
        from ..tasks.predict import default_task, model_folder, pipeline

        folder = model_folder(model_dir)
        task = task or default_task(folder)
        decoding = {"num_beams": num_beams, "length_penalty": length_penalty, "max_source_len": max_source_length}
        if task != "text2text-generation" and any(v is not None for v in decoding.values()):
            raise UsageError("--num-beams, --length-penalty and --max-source-length are for text2text-generation "
                             f"(an encoder-decoder's folder), not {task}")
        if task == "text2text-generation":
            from ..tasks.seq2seq import check_decoding_options, folder_max_length

            decoding = check_decoding_options(decoding, folder_max_length(folder))
        texts = read_inputs(source, text_field)
        import torch

        if threads:
            torch.set_num_threads(threads)
        pipe = pipeline(task, folder, progress=sys.stderr.isatty() and len(texts) > batch_size)
        options = {}
        if task == "text-classification":
            options["top_k"] = top_k or 1
        elif task == "fill-mask":
            options["top_k"] = top_k or 5
        elif task == "text-generation":
            options["max_new_tokens"] = 30 if max_new_tokens is None else max_new_tokens
        elif task == "text2text-generation":  # unless given, the fine-tuning's settings (pipe.defaults)
            options.update(decoding)
            if max_new_tokens is not None:
                options["max_new_tokens"] = max_new_tokens
            elif not pipe.use_saved(folder):
                options["max_new_tokens"] = 30
        results = pipe(texts, batch_size=batch_size, **options)
        lines = []
        for text, result in zip(texts, results):
            if isinstance(result, list):
                result = {"labels" if task == "text-classification" else "predictions": result}
            lines.append(json.dumps({"text": text, **result}, ensure_ascii=False))
        if out is None:
            for line in lines:
                print(line)
            return
        from ..io import atomic_write_text

        atomic_write_text(out, "\n".join(lines) + "\n")
        console.print(f"{len(lines)} predictions ({task}) -> {out}")
