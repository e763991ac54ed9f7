"""lmlab: the whole lineage of language models, trained, measured and used on the same data.

See README.md for the tour and DESIGN.md (shared) for the map.
"""

__version__ = "0.1.0"


def load(path):
    """Any saved model: an lmlab model folder, an ARPA file, an adapted n-gram model's JSON file or a
    Hugging Face folder of a family lmlab reads (see :func:`lmlab.pretrained.load`)."""
    from .pretrained import load as load_saved

    return load_saved(path)


def pipeline(task, model, tokenizer=None, progress=False):
    """A prediction pipeline on a saved folder (or a loaded model and its tokenizer), as Hugging Face's
    ``pipeline``: "text-classification", "fill-mask", "text-generation", ... (see :mod:`lmlab.tasks.predict`)."""
    from .tasks.predict import pipeline as make_pipeline

    return make_pipeline(task, model, tokenizer, progress=progress)
