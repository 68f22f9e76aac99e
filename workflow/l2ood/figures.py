"""The paper's figures as matplotlib figures, from the files a resolved figure spec names.

``render_figure(spec)`` dispatches on ``spec["kind"]``; each kind reads what
``l2ood.config.FIGURE_READS`` says (per-image outputs, collapse histories or probes).
"""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .collapse import change_by_norm_group  # noqa: E402
from .layout import HEADS  # noqa: E402
from .outputs import load_outputs  # noqa: E402
from .scores import head_logits, max_softmax, scaled_logits  # noqa: E402

#: per head: the colour of a panel that shows one model, the line style of a curve among several
HEAD_COLORS = {"l2": "tab:blue", "nol2": "tab:gray"}
HEAD_LINESTYLES = {"l2": "-", "nol2": "--"}


def _for_head(styles: dict, head: str):
    if head not in styles:
        raise ValueError(f"unknown head {head!r}; the heads are {sorted(HEADS)}")
    return styles[head]


def _line_style(i: int, head: str) -> dict:
    """Distinct lines for panels drawn on one axes: a colour per panel, dashed for No L2."""
    return {"color": plt.get_cmap("tab10")(i % 10), "linestyle": _for_head(HEAD_LINESTYLES, head)}


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panels(n: int, width: float = 4.2, height: float = 3.4, sharey: bool = False):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=sharey, layout="constrained")
    return fig, list(axes[0])


def norm_distributions(spec: dict):
    """Figure 5: the feature norms of each data set, one panel per model (box: quartiles,
    whiskers: 5th-95th percentile, diamond: mean)."""
    fig, axes = _panels(len(spec["panels"]), width=max(4.2, 1.3 * len(spec["labels"])))
    for ax, p in zip(axes, spec["panels"]):
        names = list(p["outputs"])
        norms = [load_outputs(p["outputs"][d])["feature_norm"] for d in names]
        box = {"facecolor": _for_head(HEAD_COLORS, p["head"]), "alpha": 0.5}
        ax.boxplot(norms, whis=(5, 95), showfliers=False, showmeans=True,
                   meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"},
                   patch_artist=True, boxprops=box)  # fmt: skip
        ax.set_xticks(range(1, len(names) + 1), [spec["labels"][d] for d in names], rotation=25, ha="right")
        ax.set_ylabel("Feature norm ||z|| (before normalization)")
        ax.set_title(f"{p['title']} (seed {p['seed']})")
        ax.grid(axis="y", alpha=0.3)
    return fig


def accuracy_vs_norm(spec: dict):
    """Figure 7: ID test images sorted by feature norm into equal-sized bins; accuracy per bin."""
    from scipy.stats import spearmanr

    bins = int(spec.get("bins", 125))
    fig, axes = _panels(len(spec["panels"]), sharey=True)
    for ax, p in zip(axes, spec["panels"]):
        out = load_outputs(p["outputs"][p["id"]])
        order = np.argsort(out["feature_norm"], kind="stable")
        correct = (out["logits"].argmax(1) == out["labels"])[order]
        groups = np.array_split(np.arange(len(order)), bins)
        x = [out["feature_norm"][order][g].mean() for g in groups]
        y = [correct[g].mean() for g in groups]
        rho = spearmanr(x, y).statistic
        ax.plot(x, y, "o-", ms=3, color=_for_head(HEAD_COLORS, p["head"]))
        ax.set_xlabel("Mean feature norm of the bin")
        ax.set_title(f"{p['title']}: {bins} bins of {len(order) // bins}+ images, Spearman {rho:.2f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Accuracy of the bin")
    return fig


def _seed_curves(paths: list[str], column: str) -> tuple[np.ndarray, np.ndarray]:
    frames = [pd.read_csv(p) for p in paths]
    return frames[0]["epoch"].to_numpy(), np.stack([f[column].to_numpy() for f in frames])


def norm_variability(spec: dict):
    """Figure 3 (right): coefficient of variation of the probe images' feature norms per epoch;
    line: mean over seeds, band: min-max."""
    fig, axes = _panels(1, width=5.5)
    ax = axes[0]
    for i, p in enumerate(spec["panels"]):
        epochs, cv = _seed_curves(p["collapse"], "norm_cv")
        style = _line_style(i, p["head"])
        ax.plot(epochs, cv.mean(0), label=f"{p['title']} ({len(cv)} seeds)", **style)
        ax.fill_between(epochs, cv.min(0), cv.max(0), alpha=0.2, color=style["color"])
    _integer_epochs(ax)
    ax.set_xlabel("Epoch (0 = initialization)")
    ax.set_ylabel("Std / mean of feature norms")
    ax.set_title("Variability of feature norms through training")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def collapse(spec: dict):
    """Neural-collapse measures through training (Eqs. 2-4), mean over seeds."""
    measures = [("nc1", "NC1 (Eq. 2)", True), ("equinormality", "Equinormality (Eq. 3)", False),
                ("equiangularity", "Equiangularity (Eq. 4)", False)]  # fmt: skip
    fig, axes = _panels(len(measures))
    for ax, (col, title, log) in zip(axes, measures):
        for i, p in enumerate(spec["panels"]):
            epochs, v = _seed_curves(p["collapse"], col)
            ax.plot(epochs, v.mean(0), label=p["title"], **_line_style(i, p["head"]))
        _integer_epochs(ax)
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Value (0 = collapsed)")
    axes[0].legend()
    return fig


def feature_change(spec: dict):
    """Figures 3 (center) and 6: mean squared feature change between consecutive epochs (Eq. 8),
    probe images grouped by their final feature norm."""
    fig, axes = _panels(len(spec["panels"]))
    for ax, p in zip(axes, spec["panels"]):
        with np.load(p["probes"]) as z:
            norms, change = z["norms"], z["sq_change"]
        labels, rows = change_by_norm_group(change, norms[-1], edges=p.get("edges"))
        for label, row in zip(labels, rows):
            ax.plot(np.arange(1, len(row) + 1), row, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        _integer_epochs(ax)
        ax.set_title(f"{p['title']} (seed {p['seed']})")
        ax.legend(title="final norm", fontsize="small")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Mean ||z_e - z_(e-1)||^2")
    return fig


def softmax_vs_norm(spec: dict):
    """Figure 4: maximum softmax probability against feature norm, ID and one OoD set; a panel's
    ``scale`` divides the (unnormalized) features before the softmax ("tuned": the scale the
    evaluation chose on test data, as Table 2)."""
    fig, axes = _panels(len(spec["panels"]), sharey=True)
    for ax, p in zip(axes, spec["panels"]):
        scale = p.get("scale")
        if scale == "tuned":
            scale = float(pd.read_csv(p["metrics"]).query("score == 'scaled_msp'")["scale"].iloc[0])
        for d, color in zip(p["outputs"], ("tab:blue", "tab:orange")):
            out = load_outputs(p["outputs"][d])
            y = max_softmax(scaled_logits(out, scale) if scale else head_logits(out))  # the probability itself
            ax.scatter(out["feature_norm"], y, s=2, alpha=0.4, color=color, label=spec["labels"][d])
        ax.set_xlabel("Feature norm ||z||")
        ax.set_title(p["title"] + (f" (features / {scale:.3g})" if scale and scale != 1 else ""))
        ax.legend(markerscale=5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Maximum softmax probability")
    return fig


def detectors(spec: dict):
    """Every post-hoc detector, No L2 and L2 side by side: one panel per OoD set (and per row's pair of
    runs), a dot per seed, a bar at the mean; "*" above a detector whose L2 - No L2 bootstrap interval
    (l2ood.stats.diff_ci) excludes 0. ``metric``: auroc (default), fpr95 or fpr95_ood_positive."""
    from matplotlib.patches import Patch

    from .detectors import DETECTORS, LABELS
    from .stats import diff_ci
    from .tables import ood_columns

    metric = spec.get("metric", "auroc")
    names_of = {"auroc": "AUROC (%)", "fpr95": "FPR95 (%, ID positive)",
                "fpr95_ood_positive": "FPR@95 (%, OoD positive)"}  # fmt: skip
    if metric not in names_of:
        raise ValueError(f"detectors figure: metric must be one of {sorted(names_of)}, got {metric!r}")
    m = pd.concat([pd.read_csv(f) for fs in spec["metrics"].values() for f in fs], ignore_index=True)
    m = m[m.logits == spec.get("logits", "raw")]
    names = spec.get("detectors") or [d for d in DETECTORS if d in set(m.detector)]
    oods = ood_columns(spec)
    rows = spec["rows"]
    ncols = min(len(oods), 2)
    per_pair = -(-len(oods) // ncols)  # grid rows per pair of runs: each pair starts a new row
    nrows = len(rows) * per_pair
    width = max(6.0, 0.55 * len(names) + 1.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.6 * nrows), squeeze=False, layout="constrained")
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only
    x = np.arange(len(names))
    flat = list(axes.ravel())
    for r, pair in enumerate(rows):
        for i, (key, ds) in enumerate(oods):
            ax = flat[r * per_pair * ncols + i]
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
            ax.set_xticks(x, [LABELS[n] for n in names], rotation=40, ha="right")
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylabel(names_of[metric])
            title = spec["labels"].get(ds, ds)
            ax.set_title(title if len(rows) == 1 else f"{pair['label']}: {title}")
            ax.grid(axis="y", alpha=0.3)
            ax.margins(y=0.12)
    for r in range(len(rows)):
        for ax in flat[r * per_pair * ncols + len(oods) : (r + 1) * per_pair * ncols]:
            ax.set_visible(False)
    n_seeds = m.groupby("run").seed.nunique()
    handles = [Patch(color=_for_head(HEAD_COLORS, h), label=f"{HEADS[h]} ({n_seeds.get(rows[0][h], 0)} seeds)")
               for h in ("nol2", "l2")]  # fmt: skip
    handles.append(Patch(color="none", label="dot: one seed, bar: mean;  *: 95% interval of L2 - No L2 excludes 0"))
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False)
    return fig


FIGURE_KINDS = {
    "norm_distributions": norm_distributions,
    "accuracy_vs_norm": accuracy_vs_norm,
    "norm_variability": norm_variability,
    "collapse": collapse,
    "feature_change": feature_change,
    "softmax_vs_norm": softmax_vs_norm,
    "detectors": detectors,
}


def render_figure(spec: dict):
    if spec["kind"] not in FIGURE_KINDS:
        raise ValueError(f"unknown figure kind {spec['kind']!r}; known: {sorted(FIGURE_KINDS)}")
    return FIGURE_KINDS[spec["kind"]](spec)
