"""``lmlab generate MODEL_DIR "prompt"``: continue a prompt with a saved model, streaming tokens as they come.

MODEL_DIR is an lmlab model folder of a family with the ``generate`` capability in
:mod:`lmlab.registry` (today: ``gpt``) or a Hugging Face GPT-2 folder (``model_type: gpt2``; loaded through :mod:`lmlab.interop.hf`). The tokenizer is read
from the same folder (lmlab tokenizer files, a ``tokenizer.json``, or GPT-2's ``vocab.json`` +
``merges.txt``); ``--ids`` takes the prompt as token ids instead and prints ids.

Greedy by default; ``--sample`` (implied by ``--temperature``, ``--top-k`` or ``--top-p``) samples;
``--beam K`` runs beam search (printed at the end, not streamed). The streaming itself is
:func:`lmlab.tasks.generation.stream_text`. Generation stops at the model's
end-of-text id (unless ``--ignore-eos``), at any ``--stop-id``, or after ``--max-new-tokens``;
``--min-new-tokens`` holds the end-of-text back, ``--no-repeat-ngram N`` bans repeated n-grams.

Encoder-decoders (families with the ``translate`` capability: ``transformer``, ``t5``, or a Hugging
Face T5 folder) read the text as their *source* and print the output sequence
(:func:`lmlab.tasks.generation.translate`, every option above; text <-> ids by
:class:`lmlab.recipes.seq2seq.TextCodec`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import CheckpointError, UsageError


def load_model(folder: Path):
    """A model of any family with the generate or translate capability (registry), or a Hugging Face
    GPT-2 or T5 folder."""
    from .. import registry
    from ..interop.hf import is_hf_gpt2_folder, load_gpt2
    from ..interop.hf_t5 import is_hf_t5_folder, load_t5
    from ..pretrained import CONFIG_NAME, load, read_model_config, split_config

    if is_hf_gpt2_folder(folder):
        return load_gpt2(folder)
    if is_hf_t5_folder(folder):
        return load_t5(folder)
    family, _, _ = split_config(read_model_config(folder), f"{folder}/{CONFIG_NAME}")
    if family is None:
        raise CheckpointError(f"{folder}/{CONFIG_NAME}: no \"family\" key (not an lmlab model folder)")
    row = registry.get(family)
    if not row.capabilities & {"generate", "translate"}:
        able = ", ".join(n for n, f in registry.FAMILIES.items() if f.capabilities & {"generate", "translate"})
        raise UsageError(f"lmlab generate: a {family!r} model neither continues a prompt nor maps a source to a "
                         f"target; families that can: {able}")
    return load(folder)


def load_tokenizer_for(folder: Path):
    """The tokenizer saved with a model, or None when the folder has none."""
    from ..data.tokenizers import load_tokenizer

    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        from ..data.tokenizers.subword import SubwordTokenizer

        return SubwordTokenizer.from_gpt2_files(folder)
    return None


def check_options(*, max_new_tokens: int, temperature: float, top_k: int, top_p: float,
                  repetition_penalty: float, beam: int, length_penalty: float, do_sample: bool,
                  threads: int = 0) -> None:
    """The generation options, checked by their flag names before the model is loaded or anything
    is printed (comparisons written so that NaN fails)."""
    import math

    if max_new_tokens < 0:
        raise UsageError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"--temperature must be > 0, got {temperature}")
    if top_k < 0:
        raise UsageError(f"--top-k must be >= 0 (0: off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise UsageError(f"--top-p must be in (0, 1] (1.0: off), got {top_p}")
    if not (repetition_penalty > 0 and math.isfinite(repetition_penalty)):
        raise UsageError(f"--repetition-penalty must be > 0 (1.0: off), got {repetition_penalty}")
    if beam < 1:
        raise UsageError(f"--beam must be >= 1 (1: off), got {beam}")
    if not math.isfinite(length_penalty):
        raise UsageError(f"--length-penalty must be a finite number, got {length_penalty}")
    if beam > 1 and do_sample:
        raise UsageError("--beam is deterministic: drop --sample, --temperature, --top-k and --top-p, or use --beam 1")
    if threads < 0:
        raise UsageError(f"--threads must be >= 0 (0: torch's default), got {threads}")


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_command(
        model_dir: Annotated[Path, typer.Argument(help="A saved lmlab model folder (a family with the generate capability) or a Hugging Face GPT-2 folder.")],
        prompt: Annotated[str, typer.Argument(help="Text to continue (token ids with --ids).")],
        max_new_tokens: int = typer.Option(50, "--max-new-tokens", "-n", help="Tokens to generate at most."),
        sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
        temperature: float = typer.Option(1.0, "--temperature", "-t", help="Softmax temperature (implies --sample)."),
        top_k: int = typer.Option(0, "--top-k", help="Sample from the k most likely tokens (0: off; implies --sample)."),
        top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (1.0: off; implies --sample)."),
        repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="CTRL penalty for seen tokens (1.0: off)."),
        beam: int = typer.Option(1, "--beam", help="Beam search with this many beams (1: off)."),
        length_penalty: float = typer.Option(1.0, "--length-penalty", help="Beam score = log p / length^alpha."),
        stop_id: Annotated[Optional[list[int]],  # noqa: UP045 - typer needs Optional on Python 3.10
                           typer.Option("--stop-id", help="Extra token id that ends generation (repeatable).")] = None,
        ignore_eos: bool = typer.Option(False, "--ignore-eos", help="Do not stop at the model's end-of-text id."),
        min_new_tokens: int = typer.Option(0, "--min-new-tokens", help="Hold the end-of-text back until this many tokens."),
        no_repeat_ngram: int = typer.Option(0, "--no-repeat-ngram", help="Never repeat an n-gram of this size (0: off)."),
        ids: bool = typer.Option(False, "--ids", help="The prompt is space-separated token ids; print ids."),
        add_bos: bool = typer.Option(None, "--add-bos/--no-add-bos",
                                     help="Prefix the model's BOS id (default: yes for word-level tokenizers)."),
        seed: int = typer.Option(0, "--seed", help="Sampling seed."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Recompute the whole prefix each step (slow; a check)."),
        threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)."),
    ) -> None:
        """Continue PROMPT with a model of any family that can generate, printing tokens as they are generated."""
        do_sample = sample or temperature != 1.0 or top_k > 0 or top_p < 1.0
        check_options(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                      repetition_penalty=repetition_penalty, beam=beam, length_penalty=length_penalty,
                      do_sample=do_sample, threads=threads)
        import torch

        from ..tasks.generation import GenerationConfig, stream_text

        if threads:
            torch.set_num_threads(threads)
        if min_new_tokens < 0 or no_repeat_ngram < 0:
            raise UsageError("--min-new-tokens and --no-repeat-ngram must be >= 0")
        model = load_model(model_dir).eval()
        if hasattr(model, "generation_steps"):  # an encoder-decoder: the text is its source
            settings = GenerationConfig(
                max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                top_p=top_p, repetition_penalty=repetition_penalty, num_beams=beam, length_penalty=length_penalty,
                stop_token_ids=list(stop_id or []), use_cache=not no_cache, seed=seed,
                no_repeat_ngram_size=no_repeat_ngram, min_new_tokens=min_new_tokens)
            print(_translate_text(model, model_dir, prompt, settings, ids, ignore_eos))
            return
        tokenizer = None if ids else load_tokenizer_for(model_dir)
        if tokenizer is None and not ids:
            raise UsageError(f"{model_dir}: no tokenizer files; pass the prompt as token ids with --ids")
        if ids:
            try:
                prompt_ids = [int(piece) for piece in prompt.split()]
            except ValueError:
                raise UsageError(f"--ids: prompt must be space-separated integers, got {prompt!r}") from None
        else:
            prompt_ids = tokenizer.encode(prompt)
        config = model.config
        if add_bos is None:
            add_bos = getattr(tokenizer, "kind", None) in ("word", "char", "zh-word")
        if add_bos:
            if config.bos_token_id is None:
                raise UsageError("--add-bos: the model has no bos_token_id")
            prompt_ids = [config.bos_token_id, *prompt_ids]
        if not prompt_ids:
            raise UsageError("the prompt is empty (nothing to continue); use --add-bos to start from BOS")
        bad = [i for i in prompt_ids if not 0 <= i < config.vocab_size]
        if bad:
            raise UsageError(f"token id {bad[0]} outside the model's vocabulary of {config.vocab_size}")
        stops = list(stop_id or [])
        if config.eos_token_id is not None and not ignore_eos:
            stops.append(config.eos_token_id)
        pad = config.pad_token_id if config.pad_token_id is not None else (config.eos_token_id or 0)
        settings = GenerationConfig(
            max_new_tokens=min(max_new_tokens, config.max_length - len(prompt_ids)),
            do_sample=do_sample, temperature=temperature,
            top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, num_beams=beam,
            length_penalty=length_penalty, stop_token_ids=stops, pad_token_id=pad, use_cache=not no_cache,
            seed=seed, no_repeat_ngram_size=no_repeat_ngram, min_new_tokens=min_new_tokens)
        if settings.max_new_tokens < 0:
            raise UsageError(f"the prompt ({len(prompt_ids)} tokens) is longer than the model's "
                             f"{config.max_length} positions")
        settings.validate()  # before anything is printed
        out = sys.stdout

        def write(piece: str) -> None:
            out.write(piece)
            out.flush()

        write(" ".join(map(str, prompt_ids)) if ids else prompt)
        stream_text(model, None if ids else tokenizer, prompt_ids, settings, write)
        out.write("\n")
        out.flush()


def _translate_text(model, folder: Path, text: str, settings, ids: bool, ignore_eos: bool) -> str:
    """An encoder-decoder's output for one source: text in, text out (or ids with --ids)."""
    import dataclasses

    import torch

    from ..recipes.seq2seq import TextCodec
    from ..tasks.generation import translate

    if ignore_eos:
        raise UsageError("--ignore-eos: an encoder-decoder's output ends at its end-of-sequence id")
    codec = None if ids else TextCodec.for_folder(folder, model)
    if ids:
        try:
            source = [int(piece) for piece in text.split()]
        except ValueError:
            raise UsageError(f"--ids: the input must be space-separated integers, got {text!r}") from None
    else:
        source = codec.encode(text)
    vocab = getattr(model.config, "src_vocab_size", None) or model.config.vocab_size
    if not source:
        raise UsageError("the input is empty (nothing to encode)")
    bad = [i for i in source if not 0 <= i < vocab]
    if bad:
        raise UsageError(f"token id {bad[0]} outside the model's source vocabulary of {vocab}")
    limit = model.config.max_length - 1  # the decoder's start token takes one position
    settings = dataclasses.replace(settings, max_new_tokens=min(settings.max_new_tokens, limit))
    settings.validate()
    out = translate(model, torch.tensor([source], dtype=torch.long), config=settings)[0].tolist()
    return " ".join(map(str, out)) if ids else codec.decode(out)
