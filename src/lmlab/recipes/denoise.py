"""Denoising pretraining of the BART encoder-decoder: the ``lmlab train`` builder for ``family = "bart"``
(BART's noisings, Lewis et al., 2020) and ``family = "mass"`` (MASS, Song et al., 2019).

Why MASS is its own row and not an ``[objective]`` of the plain Transformer: MASS's decoder reads only
the fragment at its original position ids and must not attend to the encoder's ``<mask>`` states;
the plain Transformer's decoder numbers positions from 0 and has no position ids to pass. BART's
network does (``decode(..., positions=)``), and it is the XLM-style network MASS was trained on
(learned positions, an embedding LayerNorm, post-LN, GELU). So ``mass`` is the BART network with the
MASS objective; its folders are saved as ``"bart"`` and load as :class:`~lmlab.models.bart.BartForConditionalGeneration`.

A run file has the usual tables:

- ``[data]`` (:class:`DataSpec`): ``corpus`` (default ``wiki-vital``), ``max_documents``, ``seq_len``
  (rows of whole sentences ``<s> .. </s>`` of one document, fairseq's ``complete_doc``), ``batch_size``,
  ``eval_documents`` (of the valid split), ``seed``;
- ``[tokenizer]``: ``kind`` (default ``bytebpe``, whose specials are BART's ``<s>=0 <pad>=1 </s>=2``,
  ``<unk>=3``, ``<mask>=4``) and ``vocab_size``;
- ``[model]``: ``preset`` (:data:`lmlab.models.bart.PRESETS`, default ``tiny``) and any
  :class:`~lmlab.models.bart.BartConfig` field;
- ``[objective]``: for ``bart``, ``scheme`` (a name of :data:`lmlab.objectives.denoise.SCHEMES`,
  default ``"bart"`` = text infilling + sentence permutation) and any ``NoiseConfig`` field
  overriding it; for ``mass``, the ``MassConfig`` fields (``word_mass`` = 0.5, ...).

The exported folder is config.json + model.safetensors + the tokenizer's files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import config as cfg
from ..errors import ConfigError, UsageError, closest

SENTENCE_END_TOKENS = (".", "!", "?")


@dataclass
class DataSpec:
    corpus: str = "wiki-vital"
    max_documents: int = 2000         # 0: every training document
    seq_len: int = 128
    batch_size: int = 16
    eval_documents: int = 64
    seed: int = 0

    def validate(self) -> None:
        if self.seq_len < 8:
            raise ConfigError(f"data.seq_len must be >= 8, got {self.seq_len}")
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_documents", "eval_documents"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class TokenizerSpec:
    kind: str = "bytebpe"
    vocab_size: int = 4096


@dataclass
class Prepared:
    model: torch.nn.Module
    objective: object
    train_source: object
    eval_source: object
    tokenizer: object
    describe: str


def specials_of(tokenizer) -> dict[str, int]:
    """pad, bos, eos, mask ids of a tokenizer (BART's roles), or a one-line error naming the missing one."""
    ids = tokenizer.special_ids()
    roles = {"pad": ids.get("pad"), "bos": ids.get("bos", ids.get("cls")), "eos": ids.get("eos", ids.get("sep")),
             "mask": ids.get("mask")}
    missing = [role for role, value in roles.items() if value is None]
    if missing:
        raise ConfigError(f"the {tokenizer.kind} tokenizer has no {', '.join(missing)} token; BART needs "
                          "<s>, </s>, <pad> and <mask> (tokenizer.kind = \"bytebpe\")")
    return roles


def noise_config(table: dict):
    """The NoiseConfig of ``[objective]``: a named ``scheme`` plus field overrides (unknown keys refused)."""
    from ..objectives.denoise import SCHEMES, NoiseConfig

    table = dict(table)
    scheme = table.pop("scheme", "bart")
    if scheme not in SCHEMES:
        raise ConfigError(f"objective.scheme: unknown noising {scheme!r}{closest(scheme, SCHEMES)}; "
                          f"known: {', '.join(SCHEMES)}")
    config = cfg.from_dict(NoiseConfig, {**asdict(SCHEMES[scheme]), **table}, where="objective")
    config.validate()
    return scheme, config


def make_objective(family: str, table: dict, tokenizer, specials: dict):
    """The objective of ``family`` from its ``[objective]`` table, and a short description."""
    from ..objectives import masking
    from ..objectives.denoise import DenoisingObjective, MassConfig, MassObjective, Noiser

    random_low = max(tokenizer.special_ids().values()) + 1
    if family == "mass":
        values = dict(table)
        if "keep_rand" in values:
            values["keep_rand"] = tuple(values["keep_rand"])
        config = cfg.from_dict(MassConfig, values, where="objective")
        return (MassObjective(config, tokenizer.vocab_size, specials["mask"], specials["pad"], random_low),
                f"MASS fragment {config.word_mass:g}")
    scheme, config = noise_config(table)
    ends = tuple(i for i in (tokenizer.token_to_id(t) for t in SENTENCE_END_TOKENS) if i is not None)
    try:
        starts, _ = masking.word_boundary_tables(tokenizer)
    except UsageError:  # a tokenizer without word marks: every token starts a word
        starts = None
    noiser = Noiser(config, tokenizer.vocab_size, specials["mask"], sentence_end_ids=ends, word_start_table=starts,
                    random_low=random_low)
    return DenoisingObjective(noiser, specials["pad"], specials["eos"]), f"noising {scheme}"


def make_model(family: str, vocab_size: int, specials: dict, seq_len: int, table: dict):
    """A fresh BART network at ``[model]``'s preset and overrides, sized to the data."""
    from ..models.bart import PRESETS, BartConfig, BartForConditionalGeneration
    from .run import pop_preset

    table = dict(table)
    preset_name, preset = pop_preset(table, PRESETS, "tiny", family)
    values = {**preset, "vocab_size": vocab_size, "pad_token_id": specials["pad"], "bos_token_id": specials["bos"],
              "eos_token_id": specials["eos"], "decoder_start_token_id": specials["eos"],
              "mask_token_id": specials["mask"]}
    values["max_length"] = max(values.get("max_length", 0), 2 * seq_len)  # noised sources may grow (insertions)
    values.update(table)
    config = cfg.from_dict(BartConfig, values, where="model")
    config.validate()
    if config.max_length < seq_len:
        raise ConfigError(f"model.max_length={config.max_length} is shorter than data.seq_len={seq_len}")
    return BartForConditionalGeneration(config), preset_name


def prepare(family: str, data: DataSpec, tokenizer_spec: TokenizerSpec, model_table: dict, objective_table: dict,
            documents=None, eval_docs=None) -> Prepared:
    from ..data import sources
    from ..data.stream import Rows
    from ..data.tokenizers import train_tokenizer
    from ..objectives.sentence import encode_documents, packed_rows

    if family not in ("bart", "mass"):
        raise ConfigError(f"the denoising recipe builds bart and mass, not {family!r}")
    data.validate()
    if documents is None:
        splits = sources.load(data.corpus).split()
        documents = splits.train
        if data.eval_documents:
            eval_docs = splits.valid[: data.eval_documents]
    if data.max_documents:
        documents = documents[: data.max_documents]
    texts = [d.text for d in documents]
    tokenizer = train_tokenizer(tokenizer_spec.kind, texts, vocab_size=tokenizer_spec.vocab_size)
    specials = specials_of(tokenizer)

    def rows_of(docs):
        return packed_rows(encode_documents([d.text for d in docs], tokenizer), data.seq_len, specials["bos"],
                           specials["eos"], specials["pad"], cross_documents=False)

    rows = rows_of(documents)
    torch.manual_seed(data.seed)
    model, preset_name = make_model(family, tokenizer.vocab_size, specials, data.seq_len, model_table)
    objective, what = make_objective(family, objective_table, tokenizer, specials)
    eval_source = None
    if eval_docs:
        eval_rows = rows_of(eval_docs)
        eval_source = Rows(eval_rows, min(data.batch_size, eval_rows.shape[0]))
    c = model.config
    describe = (f"{family} ({preset_name}: {c.n_encoder_layers}+{c.n_decoder_layers} layers x d={c.d_model}, "
                f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params) on {data.corpus}: "
                f"{rows.shape[0]} rows x {data.seq_len}, {tokenizer.kind} vocab {tokenizer.vocab_size}, {what}")
    return Prepared(model, objective, Rows(rows, min(data.batch_size, rows.shape[0]), seed=data.seed), eval_source,
                    tokenizer, describe)


def build(run):
    """``lmlab train`` builder: a RunFile (family bart | mass, [data], [tokenizer], [model], [objective]) -> TrainingJob."""
    from ..train.trainer import TrainingJob

    data = cfg.from_dict(DataSpec, dict(run.data), where="data")
    tokenizer_spec = cfg.from_dict(TokenizerSpec, dict(run.tokenizer), where="tokenizer")
    prepared = prepare(run.family, data, tokenizer_spec, dict(run.model), dict(run.objective))
    metadata = {"data": {"corpus": data.corpus, "seq_len": data.seq_len}, "pretraining": run.family}

    def export(folder: Path) -> None:
        prepared.model.save_pretrained(folder, extra_files=prepared.tokenizer.files(), metadata=metadata)

    return TrainingJob(prepared.model, prepared.objective, prepared.train_source, prepared.eval_source, export,
                       prepared.describe)
