"""benchmarks/finetune_table.py --task: each task's variants, skipped rows, spec fields and trivial baselines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lmlab.data.qa_wiki import QAExample
from lmlab.tasks import classification, pairs, qa, tagging

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_table.py"
SPECS = {"FinetuneSpec": classification.FinetuneSpec, "PairSpec": pairs.PairSpec, "TaggingSpec": tagging.TaggingSpec,
         "QASpec": qa.QASpec}


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("finetune_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", ["rotten-tomatoes", "bible-paraphrase", "wnut16", "msra-ner", "wiki-qa"])
def test_every_variant_builds_its_tasks_spec(table, task):
    plan = table.TASKS[task]
    extra_fields = {} if task == "rotten-tomatoes" else {"max_train": 8, "max_test": 4}
    for _, _, extra in plan["variants"]:
        spec = SPECS[plan["spec"]](**plan["base"], **extra_fields, steps=3, threads=1, seed=0, **extra)
        spec.validate()


def test_frozen_and_lm_loss_rows_are_skipped_with_a_reason_outside_classification(table):
    assert table.skipped("rotten-tomatoes") == []
    for task in ("bible-paraphrase", "wnut16", "msra-ner", "wiki-qa"):
        rows = dict(table.skipped(task))
        assert len(rows) == 2 and all(table.TASKS[task]["spec"] in why for why in rows.values())
        kept = {label for label, _, _ in table.TASKS[task]["variants"]}
        assert not kept & set(rows)
        assert {family for _, family, _ in table.TASKS[task]["variants"]} == {None, "bert", "xlnet", "electra", "gpt",
                                                                                "roberta", "albert", "spanbert"}


def test_trivial_baselines(table):
    both = [pairs.Pair("a", "b", 1, "g1"), pairs.Pair("a", "c", 0, "g1"), pairs.Pair("d", "e", 0, "g2")]
    scores = table.baselines("bible-paraphrase", pairs.PairData(both, both, both, {}), pairs.PairSpec())
    assert scores["majority_f1"] == 0.0 and scores["all_paraphrase_f1"] == pytest.approx(0.5)

    sentences = [(["Paris", "is", "big"], ["B-geo-loc", "O", "O"]), (["hi"], ["O"])]
    data = tagging.TaggingData(["geo-loc"], sentences, sentences, sentences)
    scores = table.baselines("wnut16", data, tagging.TaggingSpec())
    assert scores == {"all_o_f1": 0.0, "all_o_token_accuracy": 0.75}

    examples = [QAExample("1", "q?", "the cat", [("cat", 4)]), QAExample("2", "q?", "no", []),
                QAExample("3", "q?", "x", []), QAExample("4", "q?", "y z", [("z", 2)])]
    scores = table.baselines("wiki-qa", qa.QAData(examples, examples, examples), qa.QASpec())
    assert scores == {"no_answer_exact": 50.0}
