"""eval's OOV diagnosis names a case or tokenization mismatch between model and test text (issue 20)."""

from __future__ import annotations

from lmlab.eval.oov import diagnose_oov

RAW_VOCAB = {"<s>", "</s>", "<unk>", "The", "capital", "of", "France", "is", "Paris.", "Europe.", "It", "has",
             "many", "museums.", "the"}


def test_ordinary_oov_rate_says_nothing():
    assert diagnose_oov(RAW_VOCAB, "The capital of France is".split() * 5 + ["big"]) is None  # 1 in 26


def test_a_lowercased_test_stream_against_a_cased_model_names_case():
    tokens = "the capital of france is paris . it has many museums .".split()
    message = diagnose_oov(RAW_VOCAB, tokens)
    assert message is not None and "with another case" in message and "keeps case" in message
    assert "(e.g. 'Europe.')" in message
    assert "punctuation" in message  # 'Paris.' and 'Europe.' in the vocabulary: untokenized training text
    assert "--lowercase / --tokenize" in message and "\n" not in message


def test_raw_test_text_against_a_normalised_model_names_punctuation_and_case():
    vocab = {"<unk>", "the", "capital", "of", "france", "is", "paris", ".", "europe"}
    message = diagnose_oov(vocab, "The capital of France is Paris. Europe.".split())
    assert message is not None and "is lower-cased" in message


def test_an_unrelated_domain_gets_the_generic_hint():
    message = diagnose_oov({"a", "b"}, "x y z w".split())
    assert message is not None and "different domain" in message
