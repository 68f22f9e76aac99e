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
    """Every post-hoc detector, No L2 and L2 side by side: a row of panels per row's pair of runs, a
    column per OoD set (one y-range per column, so a set's panels compare), a dot per seed, a bar at
    the mean, a dashed line at chance (AUROC 50, FPR95 95); "*" above a detector whose L2 - No L2
    interval (l2ood.stats.diff_ci) excludes 0. ``metric``: auroc (default), fpr95 or fpr95_ood_positive."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .detectors import DETECTORS
    from .evaluate_detectors import detector_label
    from .stats import diff_ci
    from .tables import ood_columns

    metric = spec.get("metric", "auroc")
    if metric not in DETECTOR_METRICS:
        raise ValueError(f"detectors figure: metric must be one of {sorted(DETECTOR_METRICS)}, got {metric!r}")
    ylabel, chance = DETECTOR_METRICS[metric]
    logits = spec.get("logits", "raw")
    m = load_detector_seeds(spec["metrics"], logits)  # each file checked (l2ood.results)
    names = spec.get("detectors") or [d for d in DETECTORS if d in set(m.detector)]
    oods = ood_columns(spec)
    rows = spec["rows"]
    width = max(4.5, 0.45 * len(names) + 1.2)
    fig, axes = plt.subplots(len(rows), len(oods), figsize=(width * len(oods), 3.6 * len(rows)), squeeze=False,
                             sharey="col", layout="constrained")  # fmt: skip
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only
    x = np.arange(len(names))
    for r, pair in enumerate(rows):
        for i, (key, ds) in enumerate(oods):
            ax = axes[r, i]
            ax.axhline(chance, color="black", lw=0.8, ls="--", alpha=0.7)
            tops = []
            for h, dx in zip(("nol2", "l2"), (-0.2, 0.2)):
                colour = _for_head(HEAD_COLORS, h)
                for j, name in enumerate(names):
                    v = 100 * m[(m.run == pair[h]) & (m.detector == name) & (m.ood == ds)][metric].to_numpy()
                    if not len(v):
                        continue
                    ax.scatter(j + dx + rng.uniform(-0.06, 0.06, len(v)), v, s=10, color=colour, alpha=0.6, lw=0)
                    ax.hlines(v.mean(), j + dx - 0.15, j + dx + 0.15, color=colour, lw=2.5)
                    tops.append((j, v.max()))
            for j, name in enumerate(names):
                sel = {h: m[(m.run == pair[h]) & (m.detector == name) & (m.ood == ds)][metric] for h in ("l2", "nol2")}
                if sel["l2"].empty or sel["nol2"].empty or not diff_ci(sel["l2"], sel["nol2"]).excludes_zero:
                    continue
                top = max(v for k, v in tops if k == j)
                ax.annotate("*", (j, top), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=12)
            ax.set_xticks(x, [detector_label(n, logits) for n in names], rotation=40, ha="right")
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylabel(ylabel)
            title = spec["labels"].get(ds, ds)
            ax.set_title(title if len(rows) == 1 else f"{pair['label']}: {title}")
            ax.grid(axis="y", alpha=0.3)
            ax.margins(y=0.12)
    n_seeds = m.groupby("run").seed.nunique()
    handles = [Patch(color=_for_head(HEAD_COLORS, h), label=f"{HEADS[h]} ({n_seeds.get(rows[0][h], 0)} seeds)")
               for h in ("nol2", "l2")]  # fmt: skip
    handles.append(Line2D([], [], color="black", lw=0.8, ls="--", label=f"chance ({chance:g})"))
    handles.append(Patch(color="none", label="dot: one seed, bar: mean;  *: 95% interval of L2 - No L2 excludes 0"))
    fig.legend(handles=handles, loc="outside upper center", ncols=4, frameon=False)
    return fig
