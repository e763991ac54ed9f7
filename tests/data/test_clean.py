from lmlab.data.clean import clean_text, split_sentences
from lmlab.data.tokenizers.word import word_tokenize


def test_clean_text():
    assert clean_text("  a\u00a0 b\t c\u200b\n\n\n d ") == "a b c\n\nd"
    assert clean_text("cafe\u0301") == "caf\u00e9"  # NFC


def test_split_sentences_rules():
    text = ("2001: A Space Odyssey was written by Arthur C. Clarke. It was filmed in 1968! "
            "Was it good? Mr. Smith said \"yes.\" The U.S. Army agreed, e.g. in 1970. 3 people left.")
    assert split_sentences(text) == [
        "2001: A Space Odyssey was written by Arthur C. Clarke.",
        "It was filmed in 1968!",
        "Was it good?",
        "Mr. Smith said \"yes.\"",
        "The U.S. Army agreed, e.g. in 1970.",
        "3 people left.",
    ]
    assert split_sentences("第一句。第二句！第三句？") == ["第一句。", "第二句！", "第三句？"]


def test_word_tokenize():
    assert word_tokenize("The 20th-century co-wrote don't, 1,000.5 km (Café).", lowercase=True) == [
        "the", "20th-century", "co-wrote", "don't", ",", "1,000.5", "km", "(", "café", ")", "."]
