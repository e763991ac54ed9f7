"""Orchestration for ELMo's biLM: the ``lmlab train configs/elmo.toml`` job and its perplexities.

- :func:`build`: a :class:`lmlab.train.TrainingJob` from the run file's ``[data]``, ``[tokenizer]``
  (the closed output vocabulary, exactly that of the word LMs: :mod:`lmlab.recipes.word_lm`) and
  ``[model]`` (a ``preset`` of :data:`lmlab.models.elmo.PRESETS` plus overrides) tables. The
  training data is the word LMs' stream twice, read in lockstep: forward (``<s> w_1 .. w_n </s>``
  per sentence, documents in order) and backward (the whole stream reversed, ``</s> w_n .. w_1
  <s>``), each cut into lanes whose state the Trainer carries from block to block.
- :func:`perplexities`: forward, backward and mean per-word perplexity on word sentences, with
  the counting rule of every word LM (``n + 1`` events per sentence, OOV words as ``<unk>``).

The model is in :mod:`lmlab.models.elmo`, the objective in :mod:`lmlab.objectives.bilm`.
"""

from __future__ import annotations

import torch

from .. import config as config_io
from ..data.stream import BPTTStream, StackedStreams, bptt_documents, reversed_documents
from ..errors import ConfigError
from ..eval.perplexity import PerplexityResult, encode_sentences, from_log_probs
from ..models import elmo
from ..objectives.bilm import BiLMObjective
from ..train.trainer import TrainingJob
from .run import pop_preset
from .word_lm import WordDataConfig, WordTokenizerSpec, load_word_data


def _streams(documents, bos: int, eos: int, V: int, batch_size: int, bptt: int) -> StackedStreams:
    fwd_ids, fwd_starts = bptt_documents(documents, bos)
    bwd_ids, bwd_starts = bptt_documents(reversed_documents(documents, bos), eos)
    return StackedStreams([BPTTStream(fwd_ids, fwd_starts, V, batch_size, bptt),
                           BPTTStream(bwd_ids, bwd_starts, V, batch_size, bptt)])


def build(run) -> TrainingJob:
    """``lmlab train`` builder for ``family = "elmo"``."""
    for name in run:
        if name not in ("family", "data", "tokenizer", "model", "train"):
            raise ConfigError(f"run file: unknown table {name!r}; known: data, model, tokenizer, train")
    data_cfg = config_io.from_dict(WordDataConfig, dict(run.data), where="data")
    spec = config_io.from_dict(WordTokenizerSpec, dict(run.tokenizer), where="tokenizer")
    model_table = dict(run.model)
    preset_name, preset = pop_preset(model_table, elmo.PRESETS, "elmo-tiny", "ELMo")
    model_cfg = config_io.from_dict(elmo.ElmoConfig, {**preset, **model_table}, where="model")
    data = load_word_data(data_cfg, spec)
    torch.manual_seed(int(run.train.get("seed", 0)))
    model = elmo.build(model_cfg, data.vocab, data.counts)
    V, bos, eos = len(data.vocab), model_cfg.bos_id, model_cfg.eos_id
    train = _streams(data.train, bos, eos, V, data_cfg.batch_size, data_cfg.bptt)
    valid = _streams(data.valid, bos, eos, V, data_cfg.eval_batch_size, data_cfg.bptt) if data.valid else None
    description = {**data.description, "preset": preset_name}
    return TrainingJob(
        model=model, objective=BiLMObjective(V, bos, eos), train_source=train, eval_source=valid,
        export=lambda folder: elmo.save(model, folder, data.vocab, description),
        describe=f"ELMo biLM ({preset_name}) {model_cfg.n_layers}x{model_cfg.cell_dim}->{model_cfg.projection_dim} "
                 f"softmax={model_cfg.softmax.kind} |V|={V} on {data_cfg.stream or data_cfg.corpus}: "
                 f"{len(train.streams[0].ids):,} training tokens per direction")


def perplexities(model: elmo.ElmoLM, sentences: list[list[str]], vocab: list[str]) -> dict[str, PerplexityResult]:
    """Forward, backward and mean (the geometric mean of the two, bilm-tf's number) perplexity."""
    ids, oov = encode_sentences(sentences, vocab)
    fwd, bwd = model.score_both(ids)
    words = sum(len(s) for s in ids)
    return {"forward": from_log_probs(fwd, words=words, oov=oov),
            "backward": from_log_probs(bwd, words=words, oov=oov),
            "mean": from_log_probs([(f + b) / 2 for f, b in zip(fwd, bwd)], words=words, oov=oov)}


# ----------------------------------------------------------------------------- contextual vectors


def load_any(path) -> tuple[elmo.ElmoLM, bool]:
    """(model, lowercase) from an lmlab ELMo folder (trained on lowercased words) or a folder with
    bilm-tf's ``options.json`` + ``weights.hdf5`` / ``lm_weights.hdf5`` (cased, as released)."""
    from pathlib import Path

    from ..errors import CheckpointError

    path = Path(path)
    if (path / "options.json").is_file():
        from ..interop.allennlp import has_softmax, load_allennlp

        weights = next((path / n for n in ("weights.hdf5", "lm_weights.hdf5") if (path / n).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{path}: options.json but no weights.hdf5 beside it")
        vocab = next((path / n for n in ("vocab.txt", "vocabulary.txt") if (path / n).is_file()), None)
        if vocab is not None and not has_softmax(weights):  # a vocabulary without a softmax: an encoder
            vocab = None
        return load_allennlp(path / "options.json", weights, vocab), False
    return elmo.ElmoLM.from_pretrained(path), True


def bilm_tf_perplexities(path, sentences: list[list[str]]) -> dict[str, PerplexityResult]:
    """``lmlab eval ppl BILM_TF_FOLDER``: forward, backward and mean perplexity of a folder with
    bilm-tf's ``options.json`` + ``weights.hdf5`` (with ``softmax/W``, ``softmax/b``) + ``vocab.txt``;
    a one-line :class:`CheckpointError` when the softmax or the vocabulary is missing."""
    from pathlib import Path

    from ..errors import CheckpointError
    from ..interop.allennlp import BILM_TF_SPECIALS, has_softmax, read_vocabulary

    path = Path(path)
    model, _ = load_any(path)  # errors for a missing weights file
    weights = next(path / n for n in ("weights.hdf5", "lm_weights.hdf5") if (path / n).is_file())
    vocab = next((path / n for n in ("vocab.txt", "vocabulary.txt") if (path / n).is_file()), None)
    if not has_softmax(weights):
        raise CheckpointError(f"{weights}: no softmax (softmax/W, softmax/b) to score with: these ELMo weights "
                              "are an encoder only (released ELMo weights have none)")
    if vocab is None:
        raise CheckpointError(f"{path}: the weights have a softmax but there is no vocab.txt beside them "
                              "(bilm-tf's vocabulary file, one word a line in softmax order)")
    words = [BILM_TF_SPECIALS.get(w, w) for w in read_vocabulary(vocab)]
    return perplexities(model, sentences, words)


def contextual_vectors(model: elmo.ElmoLM, sentences: list[list[str]], layer: str = "mix",
                       batch_size: int = 32) -> list[torch.Tensor]:
    """Per sentence a (n_tokens, 2P) tensor: ``layer`` "mix" (the model's scalar mix), "top", or
    "0" .. "L" (0 = the token layer); each sentence wrapped in ``<S> .. </S>`` and from a zero state."""
    n_layers = model.config.n_layers
    if layer not in ("mix", "top", *map(str, range(n_layers + 1))):
        raise ConfigError(f"--layer must be mix, top or 0..{n_layers}, got {layer!r}")
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start:start + batch_size]
            chars, mask = model.chars.batch(chunk)
            layers, mask, _ = model.bilm(chars, mask)
            if layer == "mix":
                picked = [layers[j] for j in model.config.mix_layers] if model.config.mix_layers else layers
                h = model.mix(picked, mask)
            else:
                h = layers[-1] if layer == "top" else layers[int(layer)]
            out.extend(h[row, 1:len(s) + 1] for row, s in enumerate(chunk))  # boundaries removed
    return out


def nearest_in_context(vectors: list[torch.Tensor], sentences: list[list[str]], query: tuple[int, int], k: int = 5
                       ) -> list[tuple[float, int, int]]:
    """The ``k`` tokens (cosine, sentence index, token index) nearest to token ``query`` = (sentence,
    token) among every other token of ``sentences``."""
    flat = torch.cat(vectors)  # (N, 2P)
    where = [(i, t) for i, s in enumerate(sentences) for t in range(len(s))]
    q = vectors[query[0]][query[1]]
    sims = torch.nn.functional.cosine_similarity(flat, q[None], dim=-1)
    sims[where.index(query)] = -2.0
    top = torch.topk(sims, min(k, len(where) - 1))
    return [(float(v), *where[int(i)]) for v, i in zip(top.values, top.indices)]


# ----------------------------------------------------------------------------- feature-based transfer


def is_elmo_folder(path) -> bool:
    """An lmlab ELMo folder (config.json of family ``elmo``) or a bilm-tf one (``options.json``)."""
    import json
    from pathlib import Path

    path = Path(path)
    if (path / "options.json").is_file():
        return True
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("family") == elmo.FAMILY
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def _features(path, texts: list[str], layers: str, lstm_hidden: int, boundaries: bool):
    from pathlib import Path

    from ..pretrained import read_word_vocabulary
    from ..tasks.features import elmo_features

    model, lowercase = load_any(path)
    lmlab_folder = not (Path(path) / "options.json").is_file()
    vocab = read_word_vocabulary(path, model.config.vocab_size) if model.config.vocab_size and lmlab_folder else None
    return elmo_features(model, texts, lowercase, vocab, layers=layers, lstm_hidden=lstm_hidden,
                         boundaries=boundaries, source=str(path))


def finetune_classifier(path, spec, out_dir, layers: str = "", resume: bool = False) -> dict:
    """``lmlab finetune ELMO_DIR rotten-tomatoes``: the frozen ELMo's scalar mix (of ``layers``) under
    the classifier's head (``spec.head``: linear on the mean, or a BiLSTM); saves ``out_dir/model``."""
    from pathlib import Path

    from ..tasks.classification import finetune_model, save_classifier, task_data

    data = task_data(spec)
    texts = [e.text for part in (data.train, data.valid, data.test) for e in part]
    texts += [e.pair for part in (data.train, data.valid, data.test) for e in part if e.pair]
    model, tokenizer = _features(path, texts, layers, 0, boundaries=True)
    out_dir = Path(out_dir)
    scores = finetune_model(model, tokenizer, None, spec, out_dir / "train", data=data, resume=resume)
    head = scores.pop("head")
    save_classifier(head, tokenizer, out_dir / "model", f"elmo features: {path}", scores)
    return scores


def finetune_tagger(path, task: str, spec, out_dir, layers: str = "", lstm_hidden: int = 0) -> dict:
    """``lmlab finetune ELMO_DIR wnut16`` (or msra-ner, peoples-daily-ner): a tagger on the frozen
    ELMo's scalar mix, optionally through a trainable BiLSTM (``lstm_hidden``), linear (or CRF) on top."""
    from pathlib import Path

    from ..tasks import tagging

    data = tagging.builtin_data(task) if isinstance(task, str) else task
    texts = [w for part in (data.train, data.valid, data.test) for words, _ in part for w in words]
    model, tokenizer = _features(path, texts, layers, lstm_hidden, boundaries=False)
    out_dir = Path(out_dir)
    tagger, scores = tagging.finetune_tagger(model, tokenizer, data, spec, out_dir / "train")
    tagging.save_head(tagger, tokenizer, path, scores, out_dir / "model")
    return scores
