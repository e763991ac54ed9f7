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


def test_a_model_that_saw_many_unknown_words_in_training_is_judged_against_that_rate():
    vocab = {"<unk>", "a", "b", "c"}
    tokens = list("aaaaaaaabx")  # 10 % OOV
    assert diagnose_oov(vocab, tokens) is not None
    assert diagnose_oov(vocab, tokens, trained=0.06) is None  # at most 2x what it met in training
    message = diagnose_oov(vocab, tokens, trained=0.02)
    assert message is not None and "(2.0% in training)" in message


CASED_TRAIN = ("The capital of France is Paris.\nParis has many museums.\nThe Louvre is in Paris.\n"
               "France is in Europe.\nThe Seine flows through Paris.\n") * 4
LOWER_TEST = "the capital of france is paris .\nparis is in europe .\n"


def test_eval_ppl_warns_once_when_an_arpa_built_from_a_raw_file_meets_normalised_text(cli, tmp_path):
    """Issue 20: `lmlab eval ppl` names the case / tokenization mismatch, in one line, and still prints the numbers."""
    (tmp_path / "train.txt").write_text(CASED_TRAIN, encoding="utf-8")
    (tmp_path / "test.txt").write_text(LOWER_TEST, encoding="utf-8")
    built = cli("ngram", "build", str(tmp_path / "train.txt"), "-o", str(tmp_path / "m.arpa"), "--order", "2")
    assert built.returncode == 0, built.stderr
    proc = cli("eval", "ppl", str(tmp_path / "m.arpa"), str(tmp_path / "test.txt"), "--json")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("lmlab: warning:")]
    assert len(warnings) == 1 and "with another case" in warnings[0] and "--lowercase / --tokenize" in warnings[0]
    assert "Traceback" not in proc.stderr and '"ppl"' in proc.stdout
    # built the same way as the test text: no warning
    rebuilt = cli("ngram", "build", str(tmp_path / "train.txt"), "-o", str(tmp_path / "n.arpa"), "--order", "2",
                  "--lowercase", "--tokenize")
    assert rebuilt.returncode == 0, rebuilt.stderr
    quiet = cli("eval", "ppl", str(tmp_path / "n.arpa"), str(tmp_path / "test.txt"), "--json")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr


def test_word_lm_folders_record_their_training_oov_rate():
    import numpy as np

    from lmlab.recipes.word_lm import SPECIALS, train_oov_rate

    vocab = [*SPECIALS, "a"]
    counts = np.array([3, 0, 5, 0, 7])  # 3 <unk>, 5 </s>, 7 'a': 3 of 10 words unknown
    assert train_oov_rate(counts, vocab) == 0.3
