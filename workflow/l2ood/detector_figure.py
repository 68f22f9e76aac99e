"""The detectors figure: every post-hoc detector's per-seed AUROC or FPR of No L2 and L2 side by side
(the detector tables' numbers, l2ood.tables; drawn in l2ood.plotting's style)."""

import numpy as np

from .layout import HEADS
from .plotting import HEAD_COLORS, _for_head, plt  # pyplot from plotting: after its Agg backend is set
from .results import load_detector_seeds

#: the detectors figure's metrics: (axis label, what a score that ignores its input gets)
DETECTOR_METRICS = {"auroc": ("AUROC (%)", 50.0), "fpr95": ("FPR95 (%, ID positive)", 95.0),
                    "fpr95_ood_positive": ("FPR@95 (%, OoD positive)", 95.0)}  # fmt: skip


def detectors(spec: dict):
    """Every post-hoc detector, No L2 and L2 side by side, grouped by family (``Detector.family``, in the
    order of ``l2ood.detectors.FAMILIES``): a column per OoD set (one x-range per column, so a set's
    panels compare), a row of panels per family and row's pair of runs, a detector per line with a dot
    per seed and a bar at the mean, a dashed line at chance (AUROC 50, FPR95 95); "*" right of a detector
    whose L2 - No L2 interval (l2ood.stats.diff_ci) excludes 0. Detectors run down the page so that two
    dozen stay readable. ``metric``: auroc (default), fpr95 or fpr95_ood_positive."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .detectors import DETECTORS, by_family
    from .evaluate_detectors import detector_label
    from .stats import diff_ci
    from .specs import ood_columns

    metric = spec.get("metric", "auroc")
    if metric not in DETECTOR_METRICS:
        raise ValueError(f"detectors figure: metric must be one of {sorted(DETECTOR_METRICS)}, got {metric!r}")
    label, chance = DETECTOR_METRICS[metric]
    logits = spec.get("logits", "raw")
    m = load_detector_seeds(spec["metrics"], logits)  # each file checked (l2ood.results)
    families = by_family(spec.get("detectors") or [d for d in DETECTORS if d in set(m.detector)])
    oods = ood_columns(spec)
    rows = spec["rows"]
    panels = [(k, pair, family, names) for k, pair in enumerate(rows) for family, names in families]
    n_lines = sum(len(names) for *_, names in panels)
    size = (1.6 + 3.2 * len(oods), 1.0 + 0.3 * n_lines + 0.35 * len(panels))  # inches: ~0.3 a detector
    heights = [len(names) + 0.6 for *_, names in panels]  # a detector's line equally tall in every family
    fig, axes = plt.subplots(len(panels), len(oods), figsize=size, squeeze=False, sharex="col", sharey="row",
                             layout="constrained", height_ratios=heights)  # fmt: skip
    rng = np.random.default_rng(0)  # the dots' vertical jitter only
    for r, (k, pair, family, names) in enumerate(panels):
        y = np.arange(len(names))
        for i, (key, ds) in enumerate(oods):
            ax = axes[r, i]
            ax.axvline(chance, color="black", lw=0.8, ls="--", alpha=0.7)
            tops = {}
            for h, dy in zip(("nol2", "l2"), (-0.18, 0.18)):
                colour = _for_head(HEAD_COLORS, h)
                for j, name in enumerate(names):
                    v = 100 * m[(m.run == pair[h]) & (m.detector == name) & (m.ood == ds)][metric].to_numpy()
                    if not len(v):
                        continue
                    ax.scatter(v, j + dy + rng.uniform(-0.05, 0.05, len(v)), s=10, color=colour, alpha=0.6, lw=0)
                    ax.vlines(v.mean(), j + dy - 0.14, j + dy + 0.14, color=colour, lw=2.5)
                    tops[j] = max(tops.get(j, -np.inf), v.max())
            for j, name in enumerate(names):
                sel = {h: m[(m.run == pair[h]) & (m.detector == name) & (m.ood == ds)][metric] for h in ("l2", "nol2")}
                if sel["l2"].empty or sel["nol2"].empty or not diff_ci(sel["l2"], sel["nol2"]).excludes_zero:
                    continue
                ax.annotate("*", (tops[j], j), xytext=(3, 0), textcoords="offset points", va="center", fontsize=11)
            ax.set_yticks(y, [detector_label(n, logits) for n in names])
            ax.set_ylim(len(names) - 0.5, -0.5)  # the first detector on top
            if i == 0:
                ax.set_ylabel(family, fontweight="bold")
            if r == 0 or panels[r - 1][0] != k:  # the first family of a pair: the set's title
                title = spec["labels"].get(ds, ds)
                ax.set_title(title if len(rows) == 1 else f"{pair['label']}: {title}")
            if r == len(panels) - 1:
                ax.set_xlabel(label)
            ax.grid(axis="x", alpha=0.3)
            ax.margins(x=0.08)
    n_seeds = m.groupby("run").seed.nunique()
    handles = [Patch(color=_for_head(HEAD_COLORS, h), label=f"{HEADS[h]} ({n_seeds.get(rows[0][h], 0)} seeds)")
               for h in ("nol2", "l2")]  # fmt: skip
    handles.append(Line2D([], [], color="black", lw=0.8, ls="--", label=f"chance ({chance:g})"))
    handles.append(Patch(color="none", label="dot: one seed, bar: mean;  *: 95% interval of L2 - No L2 excludes 0"))
    fig.legend(handles=handles, loc="outside upper center", ncols=4 if len(oods) > 2 else 2, frameon=False)
    return fig
