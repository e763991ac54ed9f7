"""Plots of results (matplotlib, optional: each function returns False when it is not installed)."""

from __future__ import annotations

import math
from pathlib import Path

from . import DemoRow


def lineage_perplexity(rows: list[DemoRow], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ppl_rows = [r for r in rows if "test ppl" in r.metrics]
    if not ppl_rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ppl_rows) + 1.2))
    names = [f"{r.model}" for r in ppl_rows]
    values = [r.metrics["test ppl"] for r in ppl_rows]
    ax.barh(names[::-1], values[::-1], color="#4477aa")
    ax.set_xlabel("test perplexity per word (lower is better)")
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_comparison(rows: list, path) -> bool:
    """Perplexity vs training words, one line per method and order (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len({r.order for r in rows}), figsize=(12, 5), squeeze=False)
    for ax, order in zip(axes[0], sorted({r.order for r in rows})):
        for m in dict.fromkeys(r.method for r in rows):
            pts = sorted((r.train_words, r.perplexity) for r in rows if r.method == m and r.order == order)
            if pts and all(math.isfinite(p) and p < 1e5 for _, p in pts):
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
        ax.set_xscale("log")
        ax.set_xlabel("training words")
        ax.set_ylabel("test perplexity")
        ax.set_title(f"{order}-gram")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
