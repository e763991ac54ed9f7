"""Chinese word tokenizer: gold segmentation where the corpus has it, jieba otherwise.

``peoples-daily`` documents carry their gold words (``doc.meta["words"]``), so
:meth:`ChineseWordTokenizer.words_of` returns those; raw text is segmented with
jieba (the optional ``zh`` extra), and without jieba falls back to characters
with a clear error only if ``require_jieba`` is set. The vocabulary and files are
those of the word tokenizer (closed vocabulary, ``<unk>``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ...errors import UsageError
from .word import WordTokenizer


def segment(text: str, require_jieba: bool = False) -> list[str]:
    """Chinese words of raw text via jieba (precise mode), or characters if jieba is absent."""
    try:
        import jieba
    except ImportError:
        if require_jieba:
            raise UsageError("Chinese word segmentation needs jieba: pip install 'lmlab[zh]'") from None
        return [ch for ch in text if not ch.isspace()]
    jieba.setLogLevel(60)
    return [w for w in jieba.lcut(text) if w.strip()]


class ChineseWordTokenizer(WordTokenizer):
    """Word tokenizer whose words come from :func:`segment`; decoding joins them with no space.

    Whitespace is dropped and words outside the vocabulary become ``<unk>``, so
    ``decode(encode(text))`` is ``text`` only for unspaced text of known words.
    """

    kind = "zh-word"
    lowercase_by_default = False

    def tokenize(self, text: str) -> list[str]:
        return segment(text)

    @staticmethod
    def words_of(document) -> list[str]:
        """Gold words when the document has them, else jieba's segmentation."""
        words = document.meta.get("words") if hasattr(document, "meta") else None
        return list(words) if words else segment(document.text)

    def train_documents(self, documents: Iterable, min_count: int = 1,
                        max_size: int | None = None) -> ChineseWordTokenizer:
        return self.train_from_tokens((self.words_of(d) for d in documents), min_count, max_size)

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        return "".join(self.decode_tokens(ids, skip_specials))
