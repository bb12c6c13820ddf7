"""Pictures for a comparison: metric bar charts with error bars and a qualitative grid."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless; matplotlib ships its own fonts, nothing is downloaded
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fusion_perception.comparison.tables import Cell  # noqa: E402
from fusion_perception.data.image_io import read_image  # noqa: E402
from fusion_perception.files import atomic_write_bytes  # noqa: E402


def _save(fig: "plt.Figure", path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def bar_chart(table: dict[str, dict[str, Cell]], column: str, path: str | Path, title: str) -> Path:
    """One bar per method (in %), error bars = std over seeds (when more than one), best bar highlighted."""
    labels = [m for m, row in table.items() if row[column].defined]
    means = np.array([table[m][column].mean * 100 for m in labels])
    stds = np.array([table[m][column].std * 100 if table[m][column].n > 1 else 0.0 for m in labels])
    seeds = max((table[m][column].n for m in labels), default=0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels) + 1.5), 3.6))
    colours = ["#c44e52" if len(means) and v == means.max() else "#4c72b0" for v in means]
    ax.bar(labels, means, yerr=stds if seeds > 1 else None, capsize=4, color=colours)
    for x, (m, s) in enumerate(zip(means, stds)):
        ax.text(x, m + s + 0.5, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"{column} (%)")
    ax.set_title(f"{title}, mean ± std over {seeds} seeds" if seeds > 1 else f"{title}, one seed")
    ax.set_ylim(0, max(100.0, float((means + stds).max()) + 8) if len(means) else 100)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def qualitative_grid(
    rows: Sequence[str],
    ir_paths: Sequence[Path],
    vi_paths: Sequence[Path],
    fused_paths: dict[str, Sequence[Path]],
    path: str | Path,
) -> Path:
    """A grid, one row per sample: IR | VI | each method's fused image, titled by column."""
    columns = ["IR", "VI", *fused_paths]
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(2.2 * len(columns), 1.9 * len(rows)), squeeze=False
    )
    for i, name in enumerate(rows):
        images = [ir_paths[i], vi_paths[i], *(fused_paths[m][i] for m in fused_paths)]
        for j, (col, p) in enumerate(zip(columns, images)):
            ax = axes[i][j]
            img = read_image(p)
            if img.dtype != np.uint8:
                img = (img / max(1, img.max()) * 255).astype(np.uint8)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
