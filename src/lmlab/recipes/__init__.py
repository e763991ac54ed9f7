"""Recipes: everything that orchestrates a family (DESIGN.md, "Layout").

One file per family group. A recipe turns a run file (:mod:`lmlab.recipes.run`) into what the
Trainer runs (``build(run) -> lmlab.train.TrainingJob``), produces the family's rows of
``lmlab demo`` (``run_demo(DemoData) -> list[DemoRow]``) and holds its fine-tuning flows. The
registry (:mod:`lmlab.registry`) names each family's recipe; family folders (``models/``,
``ngram/``, ``embeddings/``) hold only model code and maths.
"""
