"""Hugging Face folders in and out for BERT, RoBERTa, ALBERT and ELECTRA, through a key map per family.

A Hugging Face model folder is ``config.json`` (``model_type`` and sizes) + ``model.safetensors``.
Loading reads both (never a pickle: a folder with only ``pytorch_model.bin`` is refused), builds
the lmlab model from the translated config and renames every tensor through the family's key
map; saving does the reverse and writes a folder ``transformers`` opens with
``AutoModelForMaskedLM`` / ``ElectraForPreTraining`` / ``BertForPreTraining``.

| model_type | lmlab model | HF classes covered |
|---|---|---|
| bert | ``models.bert.BertForPreTraining`` | BertForPreTraining, BertForMaskedLM (no pooler/NSP: kept at init) |
| roberta | ``BertForPreTraining`` (roberta preset) | RobertaForMaskedLM |
| albert | ``models.albert.AlbertForPreTraining`` (sharing all / none) | AlbertForPreTraining, AlbertForMaskedLM |
| electra | ``models.electra.ElectraDiscriminator`` | ElectraForPreTraining (the discriminator) |
| electra, out only | the generator of ``models.electra.ElectraForPreTraining`` | ElectraForMaskedLM (``save_hf(..., part="generator")``) |

The maps are plain tables (lmlab name, HF name) with ``{i}`` for a layer; no regex guessing.
ALBERT's attention-only / FFN-only sharing has no Hugging Face equivalent and is refused.
ELECTRA's generator goes out as its own ``ElectraForMaskedLM`` folder (the shared embeddings
copied into it, as Hugging Face's released generators hold them); a generator folder is not read
back (lmlab fine-tunes the discriminator; loading one is refused with a message). SpanBERT's SBO
head has no Hugging Face class: exporting a SpanBERT model is refused, and it is kept in lmlab's
own folder format (``save_pretrained``) only.
This module needs ``safetensors`` only; ``transformers`` is used by the tests, not here.
The GPT-2 map lives in ``interop/hf.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..errors import FormatError, UsageError
from ..io import atomic_dir, load_tensors

# ----------------------------------------------------------------------------- key maps

_BERT_LAYER = [  # (lmlab suffix under layers.{i}, HF suffix under encoder.layer.{i})
    ("self_attn.qkv.q", "attention.self.query"),
    ("self_attn.qkv.k", "attention.self.key"),
    ("self_attn.qkv.v", "attention.self.value"),
    ("self_attn.out", "attention.output.dense"),
    ("self_attn_residual.norm", "attention.output.LayerNorm"),
    ("feed_forward.fc_in", "intermediate.dense"),
    ("feed_forward.fc_out", "output.dense"),
    ("feed_forward_residual.norm", "output.LayerNorm"),
]
_EMBEDDINGS = [
    ("token.weight", "word_embeddings.weight"),
    ("position.embedding.weight", "position_embeddings.weight"),
    ("segment.weight", "token_type_embeddings.weight"),
    ("norm.weight", "LayerNorm.weight"),
    ("norm.bias", "LayerNorm.bias"),
]


def _wb(pairs):
    """Expand module pairs to .weight and .bias pairs."""
    return [(f"{a}.{p}", f"{b}.{p}") for a, b in pairs for p in ("weight", "bias")]


def bert_key_map(n_layers: int, model_type: str, sentence_head: bool) -> list[tuple[str, str]]:
    """(lmlab key, HF key) for BERT (``model_type='bert'``) or RoBERTa."""
    base = "bert" if model_type == "bert" else "roberta"
    pairs = [(f"bert.embeddings.{a}", f"{base}.embeddings.{b}") for a, b in _EMBEDDINGS]
    for i in range(n_layers):
        pairs += [(f"bert.layers.{i}.{a}", f"{base}.encoder.layer.{i}.{b}") for a, b in _wb(_BERT_LAYER)]
    pairs += _wb([("bert.pooler", f"{base}.pooler.dense")])
    if model_type == "bert":
        pairs += _wb([("mlm.transform", "cls.predictions.transform.dense"),
                      ("mlm.norm", "cls.predictions.transform.LayerNorm")])
        pairs += [("mlm.bias", "cls.predictions.bias")]
        if sentence_head:
            pairs += _wb([("sentence", "cls.seq_relationship")])
    else:
        pairs += _wb([("mlm.transform", "lm_head.dense"), ("mlm.norm", "lm_head.layer_norm")])
        pairs += [("mlm.bias", "lm_head.bias")]
    return pairs


def albert_key_map(n_groups: int, sentence_head: bool) -> list[tuple[str, str]]:
    pairs = [(f"albert.embeddings.{a}", f"albert.embeddings.{b}") for a, b in _EMBEDDINGS]
    pairs += _wb([("albert.project", "albert.encoder.embedding_hidden_mapping_in")])
    for g in range(n_groups):
        hf = f"albert.encoder.albert_layer_groups.{g}.albert_layers.0"
        pairs += _wb([
            (f"albert.attention_blocks.{g}.attn.qkv.q", f"{hf}.attention.query"),
            (f"albert.attention_blocks.{g}.attn.qkv.k", f"{hf}.attention.key"),
            (f"albert.attention_blocks.{g}.attn.qkv.v", f"{hf}.attention.value"),
            (f"albert.attention_blocks.{g}.attn.out", f"{hf}.attention.dense"),
            (f"albert.attention_blocks.{g}.residual.norm", f"{hf}.attention.LayerNorm"),
            (f"albert.ffn_blocks.{g}.ffn.fc_in", f"{hf}.ffn"),
            (f"albert.ffn_blocks.{g}.ffn.fc_out", f"{hf}.ffn_output"),
            (f"albert.ffn_blocks.{g}.residual.norm", f"{hf}.full_layer_layer_norm"),
        ])
    pairs += _wb([("albert.pooler", "albert.pooler"), ("mlm.transform", "predictions.dense"),
                  ("mlm.norm", "predictions.LayerNorm")])
    pairs += [("mlm.bias", "predictions.bias")]
    if sentence_head:
        pairs += _wb([("sentence", "sop_classifier.classifier")])
    return pairs


def electra_key_map(n_layers: int, projected: bool) -> list[tuple[str, str]]:
    pairs = [(f"embeddings.{a}", f"electra.embeddings.{b}") for a, b in _EMBEDDINGS]
    if projected:
        pairs += _wb([("encoder.project", "electra.embeddings_project")])
    for i in range(n_layers):
        pairs += [(f"encoder.layers.{i}.{a}", f"electra.encoder.layer.{i}.{b}") for a, b in _wb(_BERT_LAYER)]
    pairs += _wb([("head_dense", "discriminator_predictions.dense"),
                  ("head_out", "discriminator_predictions.dense_prediction")])
    return pairs


def electra_generator_key_map(n_layers: int, projected: bool) -> list[tuple[str, str]]:
    """(key in ``ElectraForPreTraining``, key in HF ``ElectraForMaskedLM``) for the generator."""
    pairs = [(f"discriminator.embeddings.{a}", f"electra.embeddings.{b}") for a, b in _EMBEDDINGS]
    if projected:
        pairs += _wb([("generator.encoder.project", "electra.embeddings_project")])
    for i in range(n_layers):
        pairs += [(f"generator.encoder.layers.{i}.{a}", f"electra.encoder.layer.{i}.{b}")
                  for a, b in _wb(_BERT_LAYER)]
    pairs += _wb([("generator.transform", "generator_predictions.dense"),
                  ("generator.norm", "generator_predictions.LayerNorm")])
    pairs += [("generator.bias", "generator_lm_head.bias")]
    return pairs


# ----------------------------------------------------------------------------- configs


def _read_hf_folder(folder: str | Path) -> tuple[dict, dict]:
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FormatError(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        hf = json.loads(config_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{config_path}: not valid JSON ({err})") from None
    weights = folder / "model.safetensors"
    if not weights.is_file():
        if (folder / "pytorch_model.bin").is_file():
            raise FormatError(f"{folder}: only pytorch_model.bin (a pickle); lmlab reads safetensors only — "
                              "re-save it with save_pretrained(safe_serialization=True)")
        raise FormatError(f"{folder}: no model.safetensors")
    return hf, load_tensors(weights)


def _activation(hf: dict, default: str) -> str:
    name = hf.get("hidden_act", default)
    table = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
    if name not in table:
        raise FormatError(f"config.json: hidden_act {name!r} is not supported (gelu, gelu_new, relu)")
    return table[name]


def _bert_config(hf: dict, tensors: dict):
    from ..models.bert import BertConfig

    roberta = hf["model_type"] == "roberta"
    pad = int(hf.get("pad_token_id", 1 if roberta else 0) or 0)
    return BertConfig(
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"], max_length=hf["max_position_embeddings"],
        position_offset=pad + 1 if roberta else 0, type_vocab_size=hf.get("type_vocab_size", 2),
        activation=_activation(hf, "gelu"), dropout=hf.get("hidden_dropout_prob", 0.1),
        attn_dropout=hf.get("attention_probs_dropout_prob", 0.1), layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        init_std=hf.get("initializer_range", 0.02), pad_token_id=pad,
        sentence_head=any(k.startswith("cls.seq_relationship") for k in tensors))


def _albert_config(hf: dict, tensors: dict):
    from ..models.albert import AlbertConfig

    L, groups = hf["num_hidden_layers"], hf.get("num_hidden_groups", 1)
    if hf.get("inner_group_num", 1) != 1 or groups not in (1, L):
        raise FormatError(f"ALBERT with num_hidden_groups={groups}, inner_group_num={hf.get('inner_group_num')} "
                          "has no lmlab sharing mode (supported: 1 group = 'all', one per layer = 'none')")
    return AlbertConfig(
        vocab_size=hf["vocab_size"], d_embedding=hf["embedding_size"], d_model=hf["hidden_size"], n_layers=L,
        n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"], max_length=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), sharing="all" if groups == 1 else "none",
        activation=_activation(hf, "gelu_new"), dropout=hf.get("hidden_dropout_prob", 0.0),
        attn_dropout=hf.get("attention_probs_dropout_prob", 0.0), layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        init_std=hf.get("initializer_range", 0.02), pad_token_id=int(hf.get("pad_token_id", 0) or 0),
        sentence_head=any(k.startswith("sop_classifier") for k in tensors))


def _electra_config(hf: dict):
    from ..models.electra import ElectraConfig

    return ElectraConfig(
        vocab_size=hf["vocab_size"], d_embedding=hf.get("embedding_size", hf["hidden_size"]),
        d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"], max_length=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), activation=_activation(hf, "gelu"),
        dropout=hf.get("hidden_dropout_prob", 0.1), attn_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), init_std=hf.get("initializer_range", 0.02),
        pad_token_id=int(hf.get("pad_token_id", 0) or 0))


# ----------------------------------------------------------------------------- in


def _fill(model: nn.Module, pairs: list[tuple[str, str]], tensors: dict, where: str,
          optional_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Copy HF tensors into ``model`` by the map; returns the lmlab keys left at their initial values."""
    state = model.state_dict()
    missing, left = [], []
    for ours, theirs in pairs:
        if theirs not in tensors:
            (left if ours.startswith(optional_prefixes) else missing).append(theirs)
            continue
        value = tensors[theirs]
        if tuple(value.shape) != tuple(state[ours].shape):
            raise FormatError(f"{where}: {theirs} has shape {tuple(value.shape)}, expected {tuple(state[ours].shape)}")
        state[ours] = value.to(state[ours].dtype)
    if missing:
        raise FormatError(f"{where}: missing weights {missing[:3]}{'...' if len(missing) > 3 else ''}")
    model.load_state_dict(state, strict=True)
    return left


def _with_prefix(tensors: dict, prefix: str) -> dict:
    """Checkpoints of a bare base model (``BertModel``) have no ``bert.`` prefix; add it."""
    if any(k.startswith(prefix + ".") for k in tensors):
        return tensors
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def load_hf(folder: str | Path):
    """A Hugging Face BERT / RoBERTa / ALBERT / ELECTRA folder as an lmlab model (in eval mode)."""
    hf, tensors = _read_hf_folder(folder)
    kind = hf.get("model_type")
    where = str(folder)
    if kind in ("bert", "roberta"):
        from ..models.bert import BertForPreTraining

        tensors = _with_prefix(tensors, kind)
        config = _bert_config(hf, tensors)
        model = BertForPreTraining(config)
        _fill(model, bert_key_map(config.n_layers, kind, config.sentence_head), tensors, where,
              optional_prefixes=("bert.pooler", "mlm."))
    elif kind == "albert":
        from ..models.albert import AlbertForPreTraining

        tensors = _with_prefix(tensors, "albert")
        config = _albert_config(hf, tensors)
        model = AlbertForPreTraining(config)
        groups = 1 if config.sharing == "all" else config.n_layers
        _fill(model, albert_key_map(groups, config.sentence_head), tensors, where,
              optional_prefixes=("albert.pooler", "mlm."))
    elif kind == "electra":
        from ..models.electra import ElectraDiscriminator

        if "generator_predictions.dense.weight" in tensors:
            raise FormatError(f"{folder}: an ELECTRA generator (ElectraForMaskedLM); lmlab reads ELECTRA "
                              "discriminators (ElectraForPreTraining / ElectraModel) only")
        tensors = _with_prefix(tensors, "electra")
        config = _electra_config(hf)
        model = ElectraDiscriminator(config)
        _fill(model, electra_key_map(config.n_layers, config.d_embedding != config.d_model), tensors, where,
              optional_prefixes=("head_",))
    else:
        raise FormatError(f"{folder}: model_type {kind!r} is not BERT, RoBERTa, ALBERT or ELECTRA "
                          "(GPT-2: lmlab.interop.hf)")
    return model.eval()


# ----------------------------------------------------------------------------- out


_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def _common_config(c, d_model: int, n_heads: int, d_ff: int) -> dict:
    return {"vocab_size": c.vocab_size, "hidden_size": d_model, "num_hidden_layers": c.n_layers,
            "num_attention_heads": n_heads, "intermediate_size": d_ff,
            "max_position_embeddings": c.max_length, "type_vocab_size": c.type_vocab_size,
            "hidden_act": _ACT[c.activation], "hidden_dropout_prob": c.dropout,
            "attention_probs_dropout_prob": c.attn_dropout, "layer_norm_eps": c.layer_norm_eps,
            "initializer_range": c.init_std, "pad_token_id": c.pad_token_id}


def _generator_hf_config(model) -> tuple[dict, list[tuple[str, str]], dict]:
    """The generator of an ``ElectraForPreTraining`` as an HF ``ElectraForMaskedLM``."""
    c = model.config
    if c.activation != "gelu":
        raise UsageError(f"Hugging Face's ELECTRA generator head is fixed to GELU; this model uses {c.activation!r}")
    d_model, n_heads, d_ff = c.generator_sizes()
    config = {**_common_config(c, d_model, n_heads, d_ff), "model_type": "electra",
              "architectures": ["ElectraForMaskedLM"], "embedding_size": c.d_embedding,
              "tie_word_embeddings": True}
    extra = {"generator_lm_head.weight": model.discriminator.embeddings.token.weight}
    return config, electra_generator_key_map(c.n_layers, c.d_embedding != d_model), extra


def _bert_export(model) -> tuple[dict, list[tuple[str, str]], dict]:
    """BERT (or RoBERTa: learned positions after the padding id) as HF's BertFor* / RobertaForMaskedLM."""
    c = model.config
    roberta = c.position_offset > 0
    if roberta and c.position_offset != c.pad_token_id + 1:
        raise UsageError("RoBERTa export needs position_offset = pad_token_id + 1 (Hugging Face's rule)")
    kind = "roberta" if roberta else "bert"
    arch = "RobertaForMaskedLM" if roberta else ("BertForPreTraining" if c.sentence_head else "BertForMaskedLM")
    pairs = bert_key_map(c.n_layers, kind, c.sentence_head and not roberta)
    head = "lm_head" if roberta else "cls.predictions"
    extra = {f"{head}.decoder.weight": model.bert.embeddings.token.weight, f"{head}.decoder.bias": model.mlm.bias}
    common = _common_config(c, c.d_model, c.n_heads, c.d_ff)
    return {**common, "model_type": kind, "architectures": [arch]}, pairs, extra


def _albert_export(model) -> tuple[dict, list[tuple[str, str]], dict]:
    """ALBERT (all layers shared, or none) as HF's AlbertForPreTraining / AlbertForMaskedLM."""
    c = model.config
    if c.sharing not in ("all", "none"):
        raise UsageError(f"ALBERT sharing {c.sharing!r} has no Hugging Face equivalent (only 'all' and 'none')")
    groups = 1 if c.sharing == "all" else c.n_layers
    arch = "AlbertForPreTraining" if c.sentence_head else "AlbertForMaskedLM"
    extra = {"predictions.decoder.weight": model.albert.embeddings.token.weight,
             "predictions.decoder.bias": model.mlm.bias}
    return ({**_common_config(c, c.d_model, c.n_heads, c.d_ff), "model_type": "albert", "architectures": [arch],
             "embedding_size": c.d_embedding, "num_hidden_groups": groups, "inner_group_num": 1,
             "classifier_dropout_prob": 0.1},
            albert_key_map(groups, c.sentence_head), extra)


def _electra_export(model) -> tuple[dict, list[tuple[str, str]], dict]:
    """ELECTRA's discriminator (of an ElectraForPreTraining, or on its own) as HF's ElectraForPreTraining."""
    c = model.config
    return ({**_common_config(c, c.d_model, c.n_heads, c.d_ff), "model_type": "electra",
             "architectures": ["ElectraForPreTraining"], "embedding_size": c.d_embedding},
            electra_key_map(c.n_layers, c.d_embedding != c.d_model), {})


def _refuse_spanbert(model):
    raise UsageError("SpanBERT's SBO head has no Hugging Face class; save it with save_pretrained")


# the key map of each registry family with a Hugging Face class (lmlab.registry's ``hf`` rows)
EXPORTS = {"bert": _bert_export, "albert": _albert_export, "electra": _electra_export, "spanbert": _refuse_spanbert}


def _hf_config(model: nn.Module) -> tuple[dict, list[tuple[str, str]], dict]:
    """(HF config.json, key map, extra HF tensors such as tied decoders) for an lmlab model, by its family."""
    family = getattr(model, "family", None)
    if family not in EXPORTS:
        raise UsageError(f"cannot export {type(model).__name__} to Hugging Face (families: "
                         f"{', '.join(k for k in EXPORTS if k != 'spanbert')})")
    return EXPORTS[family](model)


def save_hf(model: nn.Module, folder: str | Path, tokenizer_files: dict[str, bytes] | None = None,
            part: str = "model") -> Path:
    """Write ``model`` as a Hugging Face folder (config.json + model.safetensors), atomically.

    ``part``: ``"model"`` (the default: BERT / RoBERTa / ALBERT, or ELECTRA's discriminator as
    ``ElectraForPreTraining``) or ``"generator"`` (an lmlab ``ElectraForPreTraining``'s generator
    as ``ElectraForMaskedLM``).
    """
    from safetensors.torch import save_file

    from ..models.electra import ElectraForPreTraining

    if part not in ("model", "generator"):
        raise UsageError(f"part must be 'model' or 'generator', got {part!r}")
    if part == "generator":
        if not isinstance(model, ElectraForPreTraining):
            raise UsageError(f"part='generator' needs an ELECTRA pretraining model, got {type(model).__name__}")
        hf_config, pairs, extra = _generator_hf_config(model)
        source = model
    else:
        source = getattr(model, "discriminator", model)  # ELECTRA exports its discriminator
        hf_config, pairs, extra = _hf_config(source)
    state = source.state_dict()
    tensors = {theirs: state[ours] for ours, theirs in pairs}
    tensors.update(extra)
    tensors = {k: v.detach().clone().contiguous().cpu() for k, v in tensors.items()}
    hf_config["torch_dtype"] = "float32"
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name, data in (tokenizer_files or {}).items():
            (tmp / name).write_bytes(data)
    return folder


__all__ = ["albert_key_map", "bert_key_map", "electra_generator_key_map", "electra_key_map", "load_hf", "save_hf"]
