"""Hugging Face v4 Transformer-XL folders in and out (``TransfoXLLMHeadModel``, ``model_type: transfo-xl``).

Transformers removed Transformer-XL in v5 (its tokenizer and corpus were pickles, PR
huggingface/transformers#27607); users still hold v4 checkpoints. A folder is ``config.json`` plus
``model.safetensors`` (a ``pytorch_model.bin`` must be converted to safetensors first: lmlab never
unpickles anything, a vocabulary included, and the vocabulary is not needed to load the weights).

lmlab's :class:`~lmlab.models.transfo_xl.TransfoXLLMHeadModel` uses the v4 parameter names, so the
key map (:func:`key_map`) is the identity, listed in full so both directions check every tensor:

- ``transformer.word_emb.emb_layers.{i}.weight``, ``transformer.word_emb.emb_projs.{i}``
- ``transformer.layers.{l}.dec_attn.{qkv_net,r_net,o_net}.weight``, ``.dec_attn.layer_norm.{weight,bias}``,
  ``.dec_attn.{r_w_bias,r_r_bias}``; ``transformer.layers.{l}.pos_ff.CoreNet.{0,3}.{weight,bias}``,
  ``.pos_ff.layer_norm.{weight,bias}``
- ``crit.cluster_weight``, ``crit.cluster_bias``, ``crit.out_layers.{i}.{weight,bias}``, ``crit.out_projs.{i}``

Two things differ from a plain copy: ``transformer.pos_emb.inv_freq`` (a buffer v4 saves) is
checked against the formula and dropped; tied tensors (``crit.out_layers.{i}.weight``,
``crit.out_projs.{i}`` for ``tie_projs``) may be stored under either name, or both.

Refused with a message: ``untie_r=false``, ``attn_type != 0``, ``sample_softmax > 0``, a
``tie_projs`` pattern other than all-false or ``[false, true, ...]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import io, pretrained
from ..config import from_dict
from ..errors import CheckpointError, ConfigError
from ..models.transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel, tied_pairs

MODEL_TYPE = "transfo-xl"
SAME_NAME = ("vocab_size", "cutoffs", "div_val", "d_model", "d_embed", "n_head", "d_head", "d_inner", "n_layer",
             "pre_lnorm", "mem_len", "clamp_len", "same_length", "dropout", "dropatt", "layer_norm_epsilon",
             "init_std", "proj_init_std", "eos_token_id")


def config_from_hf(hf: dict, where: str = "config.json") -> TransfoXLConfig:
    """A TransfoXLConfig from a Hugging Face v4 Transformer-XL config dict."""
    if hf.get("model_type") != MODEL_TYPE:
        raise ConfigError(f"{where}: model_type is {hf.get('model_type')!r}, expected {MODEL_TYPE!r}")
    if hf.get("untie_r", True) is not True:
        raise ConfigError(f"{where}: untie_r=false (one r_w_bias for all layers) is not supported by lmlab")
    if hf.get("attn_type", 0) != 0:
        raise ConfigError(f"{where}: attn_type={hf['attn_type']} (absolute positions) is not supported; only 0")
    if hf.get("sample_softmax", -1) > 0:
        raise ConfigError(f"{where}: sample_softmax={hf['sample_softmax']} is not supported")
    cutoffs = list(hf.get("cutoffs", []))
    tie_projs = list(hf.get("tie_projs", [False] + [True] * len(cutoffs)))
    if tie_projs not in ([False] * (len(cutoffs) + 1), [False] + [True] * len(cutoffs)):
        raise ConfigError(f"{where}: tie_projs={tie_projs} is not supported (all false, or all but the first)")
    values = {name: hf[name] for name in SAME_NAME if name in hf}
    values["tie_projs"] = any(tie_projs)
    values["tie_weights"] = bool(hf.get("tie_word_embeddings", True))
    return from_dict(TransfoXLConfig, values, where=where)


def config_to_hf(config: TransfoXLConfig) -> dict:
    values = {name: getattr(config, name) for name in SAME_NAME}
    values.update(model_type=MODEL_TYPE, architectures=["TransfoXLLMHeadModel"], adaptive=True, attn_type=0,
                  untie_r=True, sample_softmax=-1, proj_share_all_but_first=config.tie_projs,
                  tie_projs=[False] + [config.tie_projs] * len(config.cutoffs),
                  tie_word_embeddings=config.tie_weights, init="normal", init_range=0.01)
    return values


def key_map(model: TransfoXLLMHeadModel) -> list[tuple[str, str]]:
    """(lmlab key, HF key) for every tensor of the model: the same names."""
    return [(key, key) for key in model.state_dict()]


def load_hf(folder: str | Path) -> TransfoXLLMHeadModel:
    """A Hugging Face v4 Transformer-XL folder (config.json + model.safetensors) as an lmlab model."""
    folder = Path(folder)
    hf = pretrained.read_model_config(folder)
    config_path = folder / pretrained.CONFIG_NAME
    weights = folder / pretrained.WEIGHTS_NAME
    if not weights.is_file():
        if (folder / "pytorch_model.bin").is_file():
            raise CheckpointError(f"{folder}: only pytorch_model.bin (a pickle, which lmlab never loads); convert it "
                                  "to model.safetensors first (safetensors.torch.save_model in transformers 4.x)")
        raise CheckpointError(f"{folder}: no {pretrained.WEIGHTS_NAME}")
    config = config_from_hf(hf, str(config_path))
    tensors = dict(io.load_tensors(weights))
    inv_freq = tensors.pop("transformer.pos_emb.inv_freq", None)
    if inv_freq is not None:
        expected = 1.0 / (10000 ** (torch.arange(0.0, config.d_model, 2.0) / config.d_model))
        if inv_freq.shape != expected.shape or not torch.allclose(inv_freq.float(), expected, rtol=1e-5):
            raise CheckpointError(f"{weights}: transformer.pos_emb.inv_freq is not the sinusoid of d_model")
    for source, target in tied_pairs(config):
        if source not in tensors and target in tensors:
            tensors[source] = tensors[target]
        if target in tensors and source in tensors and not torch.equal(tensors[target], tensors[source]):
            raise CheckpointError(f"{weights}: {target} should equal the tied {source}")
        tensors.pop(target, None)
    return TransfoXLLMHeadModel._from_state(config, tensors, str(folder))


def save_hf(model: TransfoXLLMHeadModel, folder: str | Path) -> Path:
    """Write ``model`` as a folder ``TransfoXLLMHeadModel.from_pretrained`` (transformers 4.x) loads."""
    tensors = model._state_for_saving()
    tensors["transformer.pos_emb.inv_freq"] = model.transformer.pos_emb.inv_freq
    with io.atomic_dir(Path(folder)) as tmp:
        (tmp / pretrained.CONFIG_NAME).write_text(json.dumps(config_to_hf(model.config), indent=2) + "\n")
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / pretrained.WEIGHTS_NAME),
                  metadata={"format": "pt"})
    return Path(folder)
