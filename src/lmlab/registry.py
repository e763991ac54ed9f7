"""THE table of model families: one row per family, and every command and task looks a family up here.

A row says, as ``"module:attribute"`` strings loaded only when asked for (so ``import lmlab``
stays light and the table itself imports nothing):

- ``model``: the class a saved folder of this family loads as (``from_pretrained``, or
  ``loader`` when the family saves another way), and ``config`` / ``presets``: its Config
  dataclass and its table of named sizes;
- ``base_preset`` + ``tiny``: the sizes a recipe starts from and the registry test builds
  (``config_from`` merges preset, tiny sizes and the caller's values, unknown keys refused);
- ``recipe``: ``build(run) -> lmlab.train.TrainingJob``, what ``lmlab train`` runs for
  ``family = "<name>"``; ``demo`` + ``demo_name``: ``run_demo(DemoData) -> list[DemoRow]``,
  a group of rows of ``lmlab demo`` (``--only <demo_name>``), in the order of this table;
- ``hf``: the Hugging Face checkpoint reader of the family (``lmlab.interop``);
- ``capabilities``: what a loaded model can do, from :data:`CAPABILITIES`; the CLI refuses
  a family without the capability a command needs, naming the families that have it.

A row whose module or attribute is misspelt fails ``tests/test_registry.py``, which runs
every row: it resolves, its tiny model round-trips save/load with equal outputs, its recipe
builds a job on a 20-document slice, and each declared capability works.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .errors import ConfigError, UsageError, closest

CAPABILITIES = {
    "score": "log-probabilities of word sentences (lmlab eval ppl)",
    "generate": "continues a prompt token by token (lmlab generate)",
    "translate": "maps a source sequence to a target sequence (encoder-decoder)",
    "encode": "encode(ids, mask) -> (hidden, pooled | None), for fine-tuning",
    "fill-mask": "predicts masked tokens",
    "vectors": "static word vectors (lmlab embed)",
    "classify": "labels texts",
    "tag": "labels every token (BIO tagging)",
}


def _resolve(spec: str):
    module_name, _, attr = spec.partition(":")
    value = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True, eq=False)
class Family:
    name: str
    model: str
    config: str | None = None
    presets: str | None = None
    base_preset: str | None = None
    tiny: dict = field(default_factory=dict)
    recipe: str | None = None
    demo: str | None = None
    demo_name: str | None = None
    hf: str | None = None
    hf_types: tuple[str, ...] = ()
    loader: str | None = None
    capabilities: frozenset[str] = frozenset()
    summary: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if unknown:
            raise ConfigError(f"registry row {self.name!r}: unknown capability {sorted(unknown)[0]!r}")

    def config_class(self):
        return _resolve(self.config) if self.config else None

    def model_class(self):
        return _resolve(self.model)

    def preset_table(self) -> dict:
        return _resolve(self.presets) if self.presets else {}

    def recipe_function(self):
        if not self.recipe:
            trainable = ", ".join(sorted(n for n, f in FAMILIES.items() if f.recipe))
            raise ConfigError(f"family {self.name!r} has no training recipe; trainable: {trainable}")
        return _resolve(self.recipe)

    def demo_function(self):
        return _resolve(self.demo) if self.demo else None

    def config_from(self, *layers: dict, where: str = "model"):
        """The Config of ``base_preset`` + ``tiny`` + each of ``layers`` in turn (unknown keys refused)."""
        from .config import from_dict

        values = dict(self.preset_table()[self.base_preset]) if self.base_preset else {}
        values.update(self.tiny)
        for layer in layers:
            values.update(layer)
        config = from_dict(self.config_class(), values, where=where)
        if hasattr(config, "validate"):
            config.validate()
        return config

    def load(self, folder):
        """The saved model in ``folder`` (its config.json names this family)."""
        return _resolve(self.loader)(folder) if self.loader else self.model_class().from_pretrained(folder)

    def load_hf(self, folder):
        """A Hugging Face checkpoint folder of this family, through ``hf``."""
        if not self.hf:
            raise UsageError(f"family {self.name!r} has no Hugging Face reader")
        return _resolve(self.hf)(folder)

    def require(self, capability: str, command: str) -> None:
        """Refuse a command this family cannot run, naming the families that can."""
        if capability not in self.capabilities:
            able = ", ".join(n for n, f in FAMILIES.items() if capability in f.capabilities)
            what = CAPABILITIES[capability].split(" (")[0]
            raise UsageError(f"{command}: a {self.name!r} model cannot do {capability!r} ({what}); "
                             f"families that can: {able}")


_BERT_TINY = {"d_model": 128, "n_layers": 2, "n_heads": 2, "d_ff": 512, "max_length": 512}
_BART_TINY = {"vocab_size": 60, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_length": 32}

# One row per family, in lineage order (the order of `lmlab demo`'s groups). See DESIGN.md, "Layout",
# and CONTRIBUTING.md for what a new family adds besides its row.
FAMILIES: dict[str, Family] = {
    row.name: row for row in [
        Family("ngram", "lmlab.ngram.model:NgramModel", loader="lmlab.ngram:load_model",
               demo="lmlab.recipes.ngram:run_demo", demo_name="ngram", capabilities=frozenset({"score"}),
               summary="n-gram LMs with classic smoothing; saved as ARPA"),
        Family("adaptive", "lmlab.ngram.adaptive:CacheLM", loader="lmlab.ngram.maxent:load_adapted",
               demo="lmlab.recipes.adaptive:run_demo", demo_name="adaptive",
               summary="cache, topic-mixture and maximum-entropy adaptation of an n-gram LM"),
        Family("nnlm", "lmlab.models.nnlm:NNLM", "lmlab.models.nnlm:NNLMConfig",
               recipe="lmlab.recipes.word_lm:nnlm_job", demo="lmlab.recipes.word_lm:run_demo", demo_name="neural",
               tiny={"vocab_size": 50, "order": 3, "embed_dim": 16, "hidden_dim": 32},
               capabilities=frozenset({"score"}), summary="Bengio et al. (2003) feed-forward LM"),
        Family("rnnlm", "lmlab.models.rnnlm:RNNLM", "lmlab.models.rnnlm:RNNLMConfig",
               recipe="lmlab.recipes.word_lm:rnnlm_job",
               tiny={"vocab_size": 50, "embed_dim": 16, "hidden_dim": 32, "layers": 1},
               capabilities=frozenset({"score"}), summary="Mikolov / Zaremba / AWD-style LSTM LM"),
        Family("elmo", "lmlab.models.elmo:ElmoLM", "lmlab.models.elmo:ElmoConfig", "lmlab.models.elmo:PRESETS",
               base_preset="elmo-tiny", tiny={"vocab_size": 50, "char_embed_dim": 4, "filters": [[1, 4], [2, 8]],
                                              "n_highway": 1, "projection_dim": 8, "cell_dim": 16},
               recipe="lmlab.recipes.elmo:build", demo="lmlab.recipes.demos:elmo_demo", demo_name="elmo",
               capabilities=frozenset({"score", "encode"}),
               summary="ELMo: char-CNN + biLSTM LMs, scalar mix of layers (Peters et al. 2018)"),
        Family("word2vec", "lmlab.embeddings.word2vec:Word2Vec", "lmlab.embeddings.word2vec:Word2VecConfig",
               loader="lmlab.embeddings.word2vec:Word2Vec.load", demo="lmlab.recipes.embeddings:run_demo",
               demo_name="embeddings", capabilities=frozenset({"vectors"}), summary="skip-gram / CBOW"),
        Family("fasttext", "lmlab.embeddings.fasttext:FastText", "lmlab.embeddings.fasttext:FastTextConfig",
               loader="lmlab.embeddings.fasttext:FastText.load", capabilities=frozenset({"vectors"}),
               summary="subword skip-gram / CBOW"),
        Family("fasttext-classifier", "lmlab.embeddings.fasttext:FastTextClassifier",
               "lmlab.embeddings.fasttext:ClassifierConfig",
               loader="lmlab.embeddings.fasttext:FastTextClassifier.load", capabilities=frozenset({"classify"}),
               summary="fastText's linear text classifier"),
        Family("transformer", "lmlab.models.transformer:Transformer", "lmlab.models.transformer:TransformerConfig",
               "lmlab.models.transformer:PRESETS", base_preset="tiny",
               tiny={"src_vocab_size": 50, "tgt_vocab_size": 50, "d_model": 32, "d_ff": 64},
               recipe="lmlab.recipes.seq2seq:build", capabilities=frozenset({"translate"}), summary="Vaswani et al. (2017) encoder-decoder"),
        Family("gpt", "lmlab.models.gpt:GPTLanguageModel", "lmlab.models.gpt:GPTConfig", "lmlab.models.gpt:PRESETS",
               base_preset="gpt-tiny", tiny={"vocab_size": 60, "max_length": 32, "d_model": 32, "n_layers": 2,
                                             "n_heads": 2, "bos_token_id": 1, "eos_token_id": 2},
               recipe="lmlab.recipes.gpt:build", demo="lmlab.recipes.gpt:run_demo", demo_name="gpt",
               hf="lmlab.interop.hf:load_gpt2", hf_types=("gpt2",), capabilities=frozenset({"score", "generate", "encode"}),
               summary="GPT-1 / GPT-2 causal Transformer LM"),
        Family("gpt-classifier", "lmlab.models.gpt:GPTClassifier", "lmlab.models.gpt:GPTClassifierConfig",
               tiny={"gpt": {"vocab_size": 60, "max_length": 32, "d_model": 32, "n_layers": 1, "n_heads": 2}},
               capabilities=frozenset({"classify"}), summary="GPT-1's fine-tuning head"),
        Family("bert", "lmlab.models.bert:BertForPreTraining", "lmlab.models.bert:BertConfig",
               "lmlab.models.bert:PRESETS", base_preset="bert-base", tiny=_BERT_TINY,
               recipe="lmlab.recipes.bert_family:build", demo="lmlab.recipes.bert_family:run_demo", demo_name="bert",
               hf="lmlab.interop.hf_bert:load_hf", hf_types=("bert",), capabilities=frozenset({"encode", "fill-mask"}),
               summary="BERT: MLM + NSP"),
        Family("roberta", "lmlab.models.bert:BertForPreTraining", "lmlab.models.bert:BertConfig",
               "lmlab.models.bert:PRESETS", base_preset="roberta-base",
               tiny={k: v for k, v in _BERT_TINY.items() if k != "max_length"},
               recipe="lmlab.recipes.bert_family:build", hf="lmlab.interop.hf_bert:load_hf", hf_types=("roberta",),
               capabilities=frozenset({"encode", "fill-mask"}),
               summary="RoBERTa: BERT without NSP, dynamic masking, byte-level BPE (saved as 'bert')"),
        Family("spanbert", "lmlab.models.bert:SpanBertForPreTraining", "lmlab.models.bert:BertConfig",
               "lmlab.models.bert:PRESETS", base_preset="spanbert-base", tiny=_BERT_TINY,
               recipe="lmlab.recipes.bert_family:build", capabilities=frozenset({"encode", "fill-mask"}),
               summary="SpanBERT: span masking + span boundary objective"),
        Family("albert", "lmlab.models.albert:AlbertForPreTraining", "lmlab.models.albert:AlbertConfig",
               "lmlab.models.albert:PRESETS", base_preset="albert-base",
               tiny={"d_embedding": 64, "d_model": 128, "n_layers": 2, "n_heads": 2, "d_ff": 512},
               recipe="lmlab.recipes.bert_family:build", hf="lmlab.interop.hf_bert:load_hf", hf_types=("albert",),
               capabilities=frozenset({"encode", "fill-mask"}),
               summary="ALBERT: factorised embeddings, shared layers, SOP"),
        Family("electra", "lmlab.models.electra:ElectraForPreTraining", "lmlab.models.electra:ElectraConfig",
               "lmlab.models.electra:PRESETS", base_preset="electra-small",
               tiny={"d_embedding": 128, "d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 512},
               recipe="lmlab.recipes.bert_family:build", hf="lmlab.interop.hf_bert:load_hf", hf_types=("electra",),
               capabilities=frozenset({"encode", "fill-mask"}), summary="ELECTRA: replaced-token detection"),
        Family("classifier", "lmlab.tasks.classification:SequenceClassifier",
               "lmlab.tasks.classification:ClassifierConfig",
               tiny={"encoder_family": "bert", "encoder": {**_BERT_TINY, "vocab_size": 60, "max_length": 32},
                     "labels": ["negative", "positive"]},
               capabilities=frozenset({"classify"}),
               summary="a fine-tuned sequence classifier on any encoder family (lmlab finetune)"),
        Family("tagger", "lmlab.tasks.tagging:TokenClassifier", "lmlab.tasks.tagging:TaggerConfig",
               tiny={"encoder_family": "electra", "encoder": {"vocab_size": 60, "d_embedding": 16, "d_model": 32,
                                                              "n_layers": 1, "n_heads": 2, "d_ff": 64, "max_length": 32},
                     "labels": ["O", "B-PER", "I-PER"], "crf": True},
               capabilities=frozenset({"tag"}),
               summary="a fine-tuned token classifier (BIO/BIOES NER tagging, optional CRF)"),
        Family("transfo-xl", "lmlab.models.transfo_xl:TransfoXLLMHeadModel", "lmlab.models.transfo_xl:TransfoXLConfig",
               "lmlab.models.transfo_xl:PRESETS", base_preset="xl-tiny",
               tiny={"vocab_size": 50, "cutoffs": [20], "d_model": 16, "d_embed": 16, "n_head": 2, "d_head": 8,
                     "d_inner": 32, "n_layer": 2, "mem_len": 8, "bos_token_id": 1, "eos_token_id": 2},
               recipe="lmlab.recipes.transfo_xl:build", demo="lmlab.recipes.demos:transfo_xl_demo",
               demo_name="transfo-xl", hf="lmlab.interop.hf_transfo_xl:load_hf",
               hf_types=("transfo-xl",), capabilities=frozenset({"score", "generate"}),
               summary="Transformer-XL: segment recurrence, relative positions, adaptive softmax"),
        Family("xlnet", "lmlab.models.xlnet:XLNetLMHeadModel", "lmlab.models.xlnet:XLNetConfig",
               "lmlab.models.xlnet:PRESETS", base_preset="xlnet-tiny",
               tiny={"vocab_size": 60, "d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64},
               recipe="lmlab.recipes.xlnet:build", hf="lmlab.interop.hf_xlnet:load_hf", hf_types=("xlnet",),
               demo="lmlab.recipes.demos:xlnet_demo", demo_name="xlnet", capabilities=frozenset({"encode"}),
               summary="XLNet: permutation LM, two-stream relative attention, partial prediction"),
        Family("t5", "lmlab.models.t5:T5ForConditionalGeneration", "lmlab.models.t5:T5Config", "lmlab.models.t5:PRESETS",
               base_preset="t5-tiny", tiny={"vocab_size": 60, "d_model": 32, "d_kv": 8, "d_ff": 64, "n_heads": 4},
               recipe="lmlab.recipes.seq2seq:build", hf="lmlab.interop.hf_t5:load_t5", hf_types=("t5",),
               demo="lmlab.recipes.demos:seq2seq_demo", demo_name="seq2seq",  # with Transformer, BART, MASS
               capabilities=frozenset({"translate", "encode"}),
               summary="T5: text-to-text encoder-decoder, span corruption, relative position bias"),
        Family("bart", "lmlab.models.bart:BartForConditionalGeneration", "lmlab.models.bart:BartConfig",
               "lmlab.models.bart:PRESETS", base_preset="tiny", tiny=_BART_TINY, recipe="lmlab.recipes.denoise:build",
               hf="lmlab.interop.hf_bart:load_hf", hf_types=("bart",), capabilities=frozenset({"translate"}),
               summary="BART: denoising encoder-decoder (text infilling, sentence permutation, ...)"),
        Family("mass", "lmlab.models.bart:BartForConditionalGeneration", "lmlab.models.bart:BartConfig",
               "lmlab.models.bart:PRESETS", base_preset="tiny", tiny=_BART_TINY, recipe="lmlab.recipes.denoise:build",
               capabilities=frozenset({"translate"}),
               summary="MASS: masked sequence-to-sequence pretraining on the BART network (saved as 'bart')"),
        Family("static-vectors", "lmlab.tasks.features:StaticVectors", "lmlab.tasks.features:StaticVectorsConfig",
               tiny={"vocab_size": 60, "d_model": 8}, capabilities=frozenset({"encode"}),
               summary="word2vec / fastText / GloVe vectors as a fixed encoder (feature-based classifiers)"),
        Family("elmo-features", "lmlab.tasks.features:ElmoFeatures", "lmlab.tasks.features:ElmoFeaturesConfig",
               tiny={"vocab_size": 60, "elmo": {"char_embed_dim": 4, "filters": [[1, 4], [2, 8]], "n_highway": 1,
                                                "projection_dim": 8, "cell_dim": 16}},
               capabilities=frozenset({"encode"}),
               summary="a frozen ELMo biLM + trained scalar mix as a task encoder (feature-based transfer)"),
        Family("qa", "lmlab.tasks.qa:QuestionAnswerer", "lmlab.tasks.qa:QAConfig",
               tiny={"encoder_family": "bert", "encoder": {**_BERT_TINY, "vocab_size": 60, "max_length": 64},
                     "max_len": 64, "doc_stride": 16, "max_question_len": 16},
               summary="a fine-tuned extractive QA model (start/end spans, SQuAD 2.0 no-answer threshold)"),
        Family("pair-classifier", "lmlab.tasks.pairs:PairClassifier", "lmlab.tasks.pairs:PairConfig",
               tiny={"encoder_family": "bert", "encoder": {**_BERT_TINY, "vocab_size": 60, "max_length": 64}},
               summary="a fine-tuned sentence-pair classifier and ranker (paraphrase detection)"),
    ]
}


def register(family: Family) -> None:
    """Add a row at run time (a plug-in family outside this package)."""
    FAMILIES[family.name] = family


def get(name: str) -> Family:
    if name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES)) or "none yet"
        raise ConfigError(f"unknown model family {name!r}{closest(name, FAMILIES)}; known: {known}")
    return FAMILIES[name]


def for_hf_model_type(model_type) -> Family | None:
    """The row that reads Hugging Face folders of ``model_type`` (config.json's key), if any."""
    return next((row for row in FAMILIES.values() if model_type in row.hf_types), None)


def trainable() -> list[str]:
    return [name for name, row in FAMILIES.items() if row.recipe]


def demo_groups() -> dict[str, Family]:
    """``lmlab demo``'s groups in lineage order: demo name -> the row that runs it."""
    return {row.demo_name: row for row in FAMILIES.values() if row.demo}
