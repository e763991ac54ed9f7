"""Prediction pipelines over saved model folders: ``lmlab.pipeline(task, folder)`` and ``lmlab predict``.

As Hugging Face ``pipeline`` users expect: ``pipe = lmlab.pipeline("text-classification", folder)``,
then ``pipe("a text")`` or ``pipe([...texts], batch_size=64)`` returns plain dicts (JSON-ready):

| task | model folder | one input gives |
|---|---|---|
| ``text-classification`` | ``lmlab finetune``'s (family ``classifier``) | ``{"label", "score"}``; ``top_k=k``: a list of k, best first (``top_k=None``: every label) |
| ``fill-mask`` | every family with the ``fill-mask`` capability (BERT, RoBERTa, SpanBERT, ALBERT; ELECTRA: its generator) | a list of ``top_k`` ``{"score", "token", "token_str", "sequence"}``, one mask token per input |
| ``text-generation`` | every family with the ``generate`` capability (GPT) | ``{"generated_text"}``: the prompt and its continuation |
| ``text2text-generation`` | every encoder-decoder (``translate``: T5, BART, MASS, Transformer) | ``{"generated_text"}``: the output for the input |

As in HF, a single string in gives that input's result out (a dict, or a list for fill-mask and
``top_k`` > 1); a list in gives a list out, in the inputs' order. Texts are batched after sorting
them by length (less padding: each batch is padded to its own longest row), and a progress bar is
shown with ``progress=True`` (the CLI turns it on when stderr is a terminal).

:data:`PIPELINES` maps a task name to its class as a ``"module:Class"`` string; a class takes
``(model, tokenizer)`` and is called as ``pipe(inputs, batch_size=...)``. The default task of a
folder comes from its registry row's capabilities (:func:`default_task`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UsageError, closest

PIPELINES: dict[str, str] = {
    "text-classification": "lmlab.tasks.predict:TextClassificationPipeline",
    "fill-mask": "lmlab.tasks.predict:FillMaskPipeline",
    "text-generation": "lmlab.tasks.predict:TextGenerationPipeline",
    # tasks whose pipelines live beside their heads, with the same interface
    "token-classification": "lmlab.tasks.tagging:TokenClassificationPipeline",
    "question-answering": "lmlab.tasks.qa:QuestionAnsweringPipeline",
    "text-pair-classification": "lmlab.tasks.pairs:TextPairClassificationPipeline",
    "text2text-generation": "lmlab.tasks.seq2seq:Text2TextGenerationPipeline",
}

# registry capability -> the pipeline a folder of such a family runs by default (first match wins)
DEFAULT_TASKS = (("classify", "text-classification"), ("tag", "token-classification"),
                 ("fill-mask", "fill-mask"), ("generate", "text-generation"), ("translate", "text2text-generation"))


def _resolve(spec: str):
    import importlib

    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def model_folder(path: str | Path) -> Path:
    """``path``, or ``path/model`` when ``path`` is an output folder of ``lmlab finetune`` / ``lmlab train``."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        return path / "model"
    return path


def default_task(folder: str | Path) -> str:
    """The pipeline task a saved folder runs when none is named, from its family's capabilities."""
    from .. import registry
    from .classification import folder_family
    from .seq2seq import is_text_to_text_classifier

    if is_text_to_text_classifier(folder):  # an encoder-decoder that writes label words
        return "text-classification"
    family = folder_family(folder)
    capabilities = registry.get(family).capabilities
    for capability, task in DEFAULT_TASKS:
        if capability in capabilities and task in PIPELINES:
            return task
    raise UsageError(f"{folder}: a {family!r} model has no prediction pipeline; tasks: {', '.join(PIPELINES)}")


def _check_task(task: str) -> None:
    if task not in PIPELINES:
        raise UsageError(f"unknown pipeline task {task!r}{closest(task, PIPELINES)}; tasks: {', '.join(PIPELINES)}")


def pipeline(task: str | None, model, tokenizer=None, progress: bool = False):
    """The pipeline of ``task`` (None: the folder's default) on ``model``: a folder, or a loaded
    model with its ``tokenizer``. A ``text2text-generation`` pipeline of a fine-tuned folder decodes with
    the fine-tuning's recorded beams, length penalty and lengths unless a call names its own."""
    folder = None
    if isinstance(model, str | Path):
        from .. import registry
        from ..data.tokenizers import load_tokenizer
        from ..pretrained import load
        from .classification import folder_family

        folder = model_folder(model)
        task = task or default_task(folder)
        _check_task(task)
        from .seq2seq import TextToTextClassificationPipeline, is_text_to_text_classifier

        if task == "text-classification" and is_text_to_text_classifier(folder):
            pipe = TextToTextClassificationPipeline.for_folder(folder)
            pipe.progress = progress
            return pipe
        needs = {name: capability for capability, name in DEFAULT_TASKS}.get(task)
        if needs:  # a one-line refusal before the weights are read
            registry.get(folder_family(folder)).require(needs, f"pipeline {task!r}")
        model = load(folder)
        if task == "text2text-generation" and tokenizer is None:  # a tokenizer or the translation vocabularies
            from .seq2seq import Seq2SeqCodec

            tokenizer = Seq2SeqCodec.for_folder(folder, model)
        tokenizer = tokenizer or load_tokenizer(folder)
    elif task is None or tokenizer is None:
        raise UsageError("pipeline(task, model, tokenizer): a loaded model needs its task and tokenizer")
    _check_task(task)
    pipe = _resolve(PIPELINES[task])(model, tokenizer)
    pipe.progress = progress
    if folder is not None and task == "text2text-generation":
        pipe.use_saved(folder)
    return pipe


# --------------------------------------------------------------------------- shared machinery


class _Pipeline(ABC):
    """Batches sorted by length, padded per batch, a progress bar, HF's single-input convention."""

    progress: bool = False

    def __init__(self, model, tokenizer) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer

    def _batches(self, lengths: list[int], batch_size: int, what: str):
        """Index lists of at most ``batch_size`` inputs, longest first (similar lengths share a batch)."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if not self.progress or not batches:
            yield from batches
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True) as bar:
            job = bar.add_task(what, total=len(lengths))
            for batch in batches:
                yield batch
                bar.advance(job, len(batch))

    @staticmethod
    def _padded(rows: list[list[int]], pad: int, left: bool = False) -> tuple[Tensor, Tensor]:
        """(ids (B, T), mask (B, T)) padded to the longest row, on the right (or the left)."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
        return ids, mask

    def __call__(self, inputs, batch_size: int = 32, **options):
        single = isinstance(inputs, str | dict)
        items = [inputs] if single else list(inputs)
        for i, item in enumerate(items):
            if not isinstance(item, str | dict):
                raise UsageError(f"input {i}: expected a string, got {type(item).__name__}")
        results = self._run(items, batch_size, **options) if items else []
        return results[0] if single else results

    @abstractmethod
    def _run(self, items: list, batch_size: int, **options) -> list:
        """Each task's pipeline: the results of ``items`` (texts or dicts), in order."""


# --------------------------------------------------------------------------- the pipelines


class TextClassificationPipeline(_Pipeline):
    """Labels and probabilities of a fine-tuned classifier (``lmlab finetune``'s folder).

    An input is a text, or ``{"text": ..., "text_pair": ...}`` for a classifier fine-tuned on pairs.
    """

    def _run(self, items: list, batch_size: int, top_k: int | None = 1) -> list:
        from .classification import encode_texts, text_format

        config = self.model.config
        if top_k is not None and top_k < 1:
            raise UsageError(f"top_k must be >= 1 (or None: every label), got {top_k}")
        texts = [item if isinstance(item, str) else str(item.get("text", "")) for item in items]
        pairs = [None if isinstance(item, str) else item.get("text_pair") for item in items]
        fmt = text_format(self.tokenizer, config.text_format)
        ids = encode_texts(self.tokenizer, fmt, texts, pairs, config.max_len)
        probs = [None] * len(items)
        with torch.inference_mode():
            for batch in self._batches([len(r) for r in ids], batch_size, "classifying"):
                input_ids, mask = self._padded([ids[i] for i in batch], fmt.pad)
                p = torch.softmax(self.model(input_ids, mask).float(), dim=-1)       # (B, C)
                for row, i in enumerate(batch):
                    probs[i] = p[row]
        from .classification import ranked_labels

        return ranked_labels(probs, config.labels, top_k)


def check_masked_lm(model) -> None:
    """A one-line refusal of a model with no masked-LM head (an ELECTRA discriminator: no generator)."""
    if hasattr(model, "masked_lm_logits") or (hasattr(model, "mlm_logits") and hasattr(model, "encode")):
        return
    name = type(model).__name__
    hint = " (an ELECTRA discriminator alone: fill-mask runs the generator of a pretraining folder)" \
        if getattr(model, "family", None) == "electra" else ""
    raise UsageError(f"fill-mask needs a masked LM head; a {name} has none{hint}")


def masked_lm_logits(model, input_ids: Tensor, attention_mask: Tensor | None = None,
                     selected: Tensor | None = None) -> Tensor:
    """An MLM family's logits (N, V) at the ``selected`` (B, T) positions (None: (B, T, V)): the
    model's own ``masked_lm_logits`` where it has one (ELECTRA: the generator, not the encoder it
    fine-tunes), else ``mlm_logits`` on ``encode``'s hidden states (BERT, RoBERTa, SpanBERT, ALBERT)."""
    check_masked_lm(model)
    if hasattr(model, "masked_lm_logits"):
        return model.masked_lm_logits(input_ids, attention_mask, selected)
    hidden, _ = model.encode(input_ids, attention_mask)
    return model.mlm_logits(hidden, selected)


class FillMaskPipeline(_Pipeline):
    """The ``top_k`` most likely tokens at each mask token of each text (a folder of an MLM family:
    BERT, RoBERTa, SpanBERT, ALBERT, or ELECTRA's pretraining folder, through its generator). As Hugging Face's ``fill-mask`` pipeline: a text with one mask
    gives a list of ``{"score", "token", "token_str", "sequence"}``; a text with several gives one
    such list per mask, in order (each mask is predicted from the text with every mask in place —
    the masks are filled independently, not jointly); ``sequence`` is the text with that one mask
    replaced (the other masks kept)."""

    def _run(self, items: list, batch_size: int, top_k: int = 5) -> list:
        from .classification import encode_texts, text_format

        check_masked_lm(self.model)
        if top_k < 1:
            raise UsageError(f"top_k must be >= 1, got {top_k}")
        mask_id = self.tokenizer.special_ids().get("mask")
        if mask_id is None:
            raise UsageError("fill-mask: the tokenizer has no mask token")
        mask_token = self.tokenizer.id_to_token(mask_id)
        texts = [item if isinstance(item, str) else str(item.get("text", "")) for item in items]
        fmt = text_format(self.tokenizer, "cls-sep")
        max_len = getattr(self.model.config, "max_length", 512)
        ids = encode_texts(self.tokenizer, fmt, texts, None, max_len)
        for n, (text, row) in enumerate(zip(texts, ids)):
            if mask_id not in row:
                raise UsageError(f"fill-mask: input {n} has no {mask_token} (within the model's {max_len} "
                                 f"tokens): {text[:60]!r}")
        out = [None] * len(items)
        with torch.inference_mode():
            for batch in self._batches([len(r) for r in ids], batch_size, "filling masks"):
                input_ids, mask = self._padded([ids[i] for i in batch], fmt.pad)
                selected = input_ids == mask_id                                       # (B, T)
                p = torch.softmax(masked_lm_logits(self.model, input_ids, mask, selected).float(),
                                  dim=-1)                                             # (N, V), row-major
                scores, tokens = p.topk(min(top_k, p.shape[-1]))
                first = 0
                for i in batch:
                    body = ids[i][len(fmt.start): len(ids[i]) - len(fmt.end)]
                    wheres = [t for t, token in enumerate(body) if token == mask_id]
                    lists = [[{"score": float(s), "token": int(t), "token_str": self.tokenizer.id_to_token(int(t)),
                               "sequence": self._filled(body, where, int(t), len(wheres) == 1)}
                              for s, t in zip(scores[first + k], tokens[first + k])]
                             for k, where in enumerate(wheres)]
                    first += len(wheres)
                    out[i] = lists[0] if len(lists) == 1 else lists
        return out

    def _filled(self, body: list[int], where: int, token: int, alone: bool) -> str:
        """The text with the mask at ``where`` replaced by ``token`` (other masks kept as the mask token)."""
        filled = [*body[:where], token, *body[where + 1:]]
        if alone:
            return self.tokenizer.decode(filled, skip_specials=True)
        mask_id = self.tokenizer.special_ids()["mask"]
        pieces, run = [], []
        for t in filled + [mask_id]:
            if t != mask_id:
                run.append(t)
                continue
            if run:
                pieces.append(self.tokenizer.decode(run, skip_specials=True))
            pieces.append(self.tokenizer.id_to_token(mask_id))
            run = []
        return " ".join(pieces[:-1])


class TextGenerationPipeline(_Pipeline):
    """Continuations of prompts by a causal LM (greedy unless ``do_sample``; stops at end-of-text)."""

    def _run(self, items: list, batch_size: int, max_new_tokens: int = 30, do_sample: bool = False,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> list:
        from .generation import GenerationConfig, generate

        config = self.model.config
        prompts = [item if isinstance(item, str) else str(item.get("text", "")) for item in items]
        ids = [self.tokenizer.encode(p) for p in prompts]
        for prompt, row in zip(prompts, ids):
            if not row:
                raise UsageError(f"text-generation: the prompt {prompt!r} has no tokens")
        eos = getattr(config, "eos_token_id", None)
        pad = getattr(config, "pad_token_id", None)
        pad = pad if pad is not None else (eos if eos is not None else 0)
        positions = getattr(self.model, "max_positions", None) or getattr(config, "max_length", 1024)
        out = [None] * len(items)
        with torch.inference_mode():
            for batch in self._batches([len(r) for r in ids], batch_size, "generating"):
                rows = [ids[i][-(positions - 1):] for i in batch]
                input_ids, mask = self._padded(rows, pad, left=True)
                room = max(0, min(max_new_tokens, positions - input_ids.shape[1]))
                settings = GenerationConfig(max_new_tokens=room, do_sample=do_sample, temperature=temperature,
                                            top_k=top_k, top_p=top_p, pad_token_id=pad, seed=seed,
                                            stop_token_ids=[eos] if eos is not None else [])
                settings.validate()
                generated = generate(self.model, input_ids, mask if bool((mask == 0).any()) else None,
                                     config=settings)[:, input_ids.shape[1]:]           # (B, n)
                for row, i in enumerate(batch):
                    new = generated[row].tolist()
                    if eos is not None and eos in new:
                        new = new[:new.index(eos)]
                    out[i] = {"generated_text": prompts[i] + self._continuation(ids[i], new)}
        return out

    def _continuation(self, prompt_ids: list[int], new: list[int]) -> str:
        """The text the new ids add to the prompt (decoded together, so a word split across them reads right)."""
        whole = self.tokenizer.decode([*prompt_ids, *new], skip_specials=True)
        head = self.tokenizer.decode(prompt_ids, skip_specials=True)
        return whole[len(head):] if whole.startswith(head) else self.tokenizer.decode(new, skip_specials=True)
