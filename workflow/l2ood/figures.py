"""The paper's figures as matplotlib figures, from the files a resolved figure spec names.

``render_figure(spec)`` dispatches on ``spec["kind"]``; each kind reads what
``l2ood.config.FIGURE_READS`` says (per-image outputs, collapse histories or probes).
"""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .collapse import change_by_norm_group  # noqa: E402
from .detector_figure import detectors  # noqa: E402
from .outputs import load_outputs  # noqa: E402
from .plotting import (  # noqa: E402
    DATASET_COLORS,
    HEAD_COLORS,
    _for_head,
    _integer_epochs,
    _line_styles,
    _note,
    _panels,
)
from .results import load_curves, load_seed  # noqa: E402
from .scores import head_logits, scaled_logits  # noqa: E402


def norm_distributions(spec: dict):
    """Figure 5: the feature norms of each data set, one panel per model, on one shared y-axis.

    Per data set a violin (the density: how much the sets overlap is what AUROC measures) with a
    box inside it (the quartiles, the median as a line, whiskers from the 5th to the 95th
    percentile, the mean as a white diamond); above each OoD set its AUROC against the ID set with
    the feature norm as the score (a † below 50: the set gets larger norms than the ID images).
    """
    from .metrics import auroc

    # one y-axis for the compared models (``sharey: false`` when their norms differ by orders of magnitude)
    sharey = spec.get("sharey", True)
    fig, axes = _panels(len(spec["panels"]), width=max(4.2, 1.4 * len(spec["labels"])), height=3.8, sharey=sharey)
    for ax, p in zip(axes, spec["panels"]):
        names = list(p["outputs"])
        norms = [load_outputs(p["outputs"][d])["feature_norm"].astype(np.float64) for d in names]
        color = _for_head(HEAD_COLORS, p["head"])
        pos = np.arange(1, len(names) + 1)
        vio = ax.violinplot(norms, positions=pos, widths=0.8, showextrema=False)
        for body in vio["bodies"]:
            body.set_facecolor(color)
            body.set_alpha(0.35)
        ax.boxplot(norms, positions=pos, widths=0.18, whis=(5, 95), showfliers=False, showmeans=True,
                   meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 5},
                   medianprops={"color": "black"}, patch_artist=True,
                   boxprops={"facecolor": color, "alpha": 0.9})  # fmt: skip
        ids = [i for i, d in enumerate(names) if d == p["id"]]
        if ids:  # the ID median across the panel: where each set's norms lie against it
            ax.axhline(np.median(norms[ids[0]]), color="black", lw=0.8, ls="--", alpha=0.6)
        for i, d in enumerate(names):
            if ids and i != ids[0]:
                a = 100 * auroc(norms[ids[0]], norms[i])
                text = f"AUROC {a:.1f}" + ("\u2020" if a < 50 else "")
                ax.annotate(text, (pos[i], 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize="small")  # fmt: skip
        tag = {d: "\n(ID)" if d == p["id"] and "ID" not in spec["labels"][d] else "" for d in names}
        labels = [spec["labels"][d] + tag[d] for d in names]
        ax.set_xticks(pos, labels, rotation=25, ha="right")
        ax.set_title(f"{p['title']} (seed {p['seed']})", pad=16)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes if not sharey else axes[:1]:
        ax.set_ylabel("Feature norm ||z|| (before normalization)")
    _note(fig, "Violin: density of the norms. Box: quartiles, line = median, white diamond = mean, whiskers: 5th-95th "
               "percentile; dashed: the ID median. AUROC: that set against the ID set, feature norm as the score "
               "(\u2020 below 50: OoD ranked above ID).")  # fmt: skip
    return fig


def _wilson(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a proportion k/n (stays inside [0, 1] and is not empty at k = n)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def norm_bins(norms: np.ndarray, bins: int, binning: str) -> list[np.ndarray]:
    """The image indices of each bin of feature norm, lowest norms first; empty bins are left out.

    ``equal_width``: ``bins`` intervals of equal width between the smallest and the largest norm
    (few images in the extreme bins); ``equal_count``: the images sorted by norm and split into
    ``bins`` groups of (almost) equal size.
    """
    order = np.argsort(norms, kind="stable")
    if binning == "equal_count":
        return [g for g in np.array_split(order, bins) if len(g)]
    if binning != "equal_width":
        raise ValueError(f"unknown binning {binning!r}; use 'equal_width' or 'equal_count'")
    edges = np.linspace(norms.min(), norms.max(), bins + 1)
    which = np.clip(np.searchsorted(edges, norms, side="right") - 1, 0, bins - 1)
    return [np.flatnonzero(which == b) for b in range(bins) if (which == b).any()]


#: Figure 7's reading of the paper ("125 equal sized bins" of one model's test images); the spec's
#: ``bins``, ``binning`` and ``pooled`` change it
ACCURACY_BINS = {"bins": 125, "binning": "equal_count", "pooled": False}


def accuracy_vs_norm(spec: dict):
    """Figure 7: ID test accuracy against feature norm.

    By default one model as the paper: the test images of the panel's seed (``seed``, default 0),
    sorted by norm into ``bins`` bins of equal count (``ACCURACY_BINS``); ``binning: equal_width`` for
    intervals of equal width in norm, ``pooled: true`` for the test images of every seed together.
    Per bin the accuracy with its 95% Wilson interval (top) and the number of images and of errors
    (bottom, log scale). No rank correlation: with accuracy near 1 most bins tie at 1.0 and a
    correlation over them says nothing.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    opts = {k: spec.get(k, v) for k, v in ACCURACY_BINS.items()}
    bins, binning, pooled = int(opts["bins"]), opts["binning"], bool(opts["pooled"])
    n = len(spec["panels"])
    fig, grid = plt.subplots(2, n, figsize=(4.6 * n, 4.6), squeeze=False, sharex="col", sharey="row",
                             height_ratios=[3, 1.3], layout="constrained")  # fmt: skip
    for (ax, cax), p in zip(grid.T, spec["panels"]):
        outs = [load_outputs(f) for f in (p["id_outputs"] if pooled else [p["outputs"][p["id"]]])]
        norms = np.concatenate([o["feature_norm"] for o in outs]).astype(np.float64)
        correct = np.concatenate([o["logits"].argmax(1) == o["labels"] for o in outs])
        groups = norm_bins(norms, bins, binning)
        x = np.array([norms[g].mean() for g in groups])
        count = np.array([len(g) for g in groups], dtype=np.float64)
        right = np.array([correct[g].sum() for g in groups], dtype=np.float64)
        lo, hi = _wilson(right, count)
        color = _for_head(HEAD_COLORS, p["head"])
        acc = right / count
        yerr = np.clip([acc - lo, hi - acc], 0, None)  # the interval holds acc; clip rounding at acc = 1
        ax.errorbar(x, acc, yerr=yerr, fmt="o-", ms=3, lw=1, capsize=2, color=color, ecolor=color,
                    elinewidth=0.8, alpha=0.9)  # fmt: skip
        ax.set_ylim(min(0.5, lo.min() - 0.02), 1.01)
        errors = int(len(norms) - correct.sum())
        which = f"{len(outs)} seeds pooled" if pooled else f"seed {p['seed']}"
        ax.set_title(f"{p['title']}: {which}, {len(norms):,} images, {errors} errors", fontsize="medium")
        ax.grid(alpha=0.3)
        width = np.diff(x).min() * 0.8 if len(x) > 1 else 1.0
        cax.bar(x, count, width=width, color=color, alpha=0.4, label="images")
        cax.bar(x, count - right, width=width * 0.5, color="tab:red", label="errors")  # a bin without errors: none
        cax.set_yscale("log")
        cax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 1, 10, 100 (not 10^0 ...)
        cax.yaxis.set_minor_formatter(NullFormatter())
        cax.set_title("Images and errors per bin", fontsize="small")
        cax.set_xlabel("Feature norm ||z|| (bin mean)")
        cax.grid(alpha=0.3)
    grid[0, 0].set_ylabel("Accuracy of the bin")
    grid[1, 0].set_ylabel("Per bin")
    grid[1, 0].legend(fontsize="x-small", loc="upper right")
    kind = "equal width" if binning == "equal_width" else "equal count"
    _note(fig, f"{bins} bins of {kind} in feature norm (empty bins left out). Error bars: 95% Wilson interval of "
               "each bin's accuracy. Bottom: images per bin and, in red, the misclassified (log scale).")  # fmt: skip
    return fig


def _seed_curves(paths: list[str], column: str) -> tuple[np.ndarray, np.ndarray]:
    frames = load_curves(paths, column)
    return frames[0]["epoch"].to_numpy(), np.stack([f[column].to_numpy() for f in frames])


def _mark_lr_drops(ax, panels: list[dict]) -> None:
    """A dotted vertical line at each epoch where a panel's learning rate drops (multistep schedules)."""
    drops = sorted({m for p in panels for m in p.get("lr_drops", [])})
    for i, m in enumerate(drops):
        ax.axvline(m, color="black", linestyle=":", lw=0.8, label="learning-rate drop" if i == 0 else None)


#: Figure 3 (right)'s "variability of norms": the probe norms' coefficient of variation (the default:
#: scale-free, so runs whose norms grow can be compared) or their standard deviation
VARIABILITY = {"cv": ("norm_cv", "Std / mean of feature norms (coefficient of variation)"),
               "std": (None, "Std of feature norms")}  # fmt: skip


def norm_variability(spec: dict):
    """Figure 3 (right): variability of the probe images' feature norms per epoch (``variability``:
    ``cv``, std / mean, the default; or ``std``); line: mean over seeds, band: min to max over seeds;
    dotted: the learning-rate drops."""
    which = spec.get("variability", "cv")
    if which not in VARIABILITY:
        raise ValueError(f"unknown variability {which!r}; use one of {sorted(VARIABILITY)}")
    column, ylabel = VARIABILITY[which]
    fig, axes = _panels(1, width=6.0, height=3.8)
    ax = axes[0]
    for p, style in zip(spec["panels"], _line_styles(spec["panels"])):
        epochs, cv = _seed_curves(p["collapse"], "norm_cv")
        v = cv if column else cv * _seed_curves(p["collapse"], "norm_mean")[1]
        ax.plot(epochs, v.mean(0), label=f"{p['title']} ({len(v)} seeds)", **style)
        ax.fill_between(epochs, v.min(0), v.max(0), alpha=0.2, color=style["color"], lw=0)
    _mark_lr_drops(ax, spec["panels"])
    _integer_epochs(ax)
    ax.set_xlabel("Epoch (0 = initialization)")
    ax.set_ylabel(ylabel)
    ax.set_title("Variability of feature norms through training")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    _note(fig, "Line: mean over seeds; band: minimum to maximum over seeds; dotted: learning-rate drops.")
    return fig


def collapse(spec: dict):
    """Neural-collapse measures through training (Eqs. 2-4), mean over seeds; dotted: learning-rate drops."""
    measures = [("nc1", "NC1 (Eq. 2)", True), ("equinormality", "Equinormality (Eq. 3)", False),
                ("equiangularity", "Equiangularity (Eq. 4)", False)]  # fmt: skip
    fig, axes = _panels(len(measures))
    for ax, (col, title, log) in zip(axes, measures):
        for p, style in zip(spec["panels"], _line_styles(spec["panels"])):
            epochs, v = _seed_curves(p["collapse"], col)
            ax.plot(epochs, v.mean(0), label=p["title"], **style)
        _mark_lr_drops(ax, spec["panels"])
        _integer_epochs(ax)
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Value (0 = collapsed)")
    axes[0].legend(fontsize="small")
    return fig


def feature_change(spec: dict):
    """Figures 3 (center) and 6: the probe images' mean squared feature change between consecutive
    epochs (the summand of Eq. 8), grouped by their final feature norm; ``cumulative: true`` plots
    the running sum over epochs instead, Eq. 8's "total change" up to each epoch."""
    cumulative = bool(spec.get("cumulative", False))
    fig, axes = _panels(len(spec["panels"]))
    for ax, p in zip(axes, spec["panels"]):
        with np.load(p["probes"]) as z:
            norms, change = z["norms"], z["sq_change"]
        labels, rows = change_by_norm_group(change, norms[-1], edges=p.get("edges"))
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(rows)))  # low norms dark, high norms light
        for label, row, color in zip(labels, rows, colors):
            ax.plot(np.arange(1, len(row) + 1), np.cumsum(row) if cumulative else row, label=label, color=color)
        _mark_lr_drops(ax, [p])
        ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        _integer_epochs(ax)
        ax.set_title(f"{p['title']} (seed {p['seed']})")
        ax.legend(title="final norm", fontsize="small")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Sum of mean ||z_e - z_(e-1)||^2 up to e" if cumulative else "Mean ||z_e - z_(e-1)||^2")
    return fig


#: log(2^53): a top logit this far above the rest gives a float64 softmax of exactly 1.0
SOFTMAX_AT_1 = 53 * np.log(2.0)


def softmax_vs_norm(spec: dict):
    """Figure 4: the maximum softmax probability against feature norm, ID and one OoD set; a panel's
    ``scale`` divides the (unnormalized) features before the softmax ("tuned": the scale the
    evaluation chose for that seed on test data, as Table 2).

    The y-axis is what the scores rank, the probability's log-odds log(p / (1 - p)) (l2ood.scores),
    labelled in p on the right; a dotted line where p is exactly 1.0 in float64 (only the log-odds
    tell those images apart), and the share of ID images there in each panel.
    """
    from .detectors import msp_log_odds
    from .evaluate import softmax_at_1

    fig, axes = _panels(len(spec["panels"]), width=4.4)
    for ax, p in zip(axes, spec["panels"]):
        scale = p.get("scale")
        if scale == "tuned":
            scale = float(load_seed(p["metrics"]).query("score == 'scaled_msp'")["scale"].iloc[0])
        top, at_1 = -np.inf, None
        for d, color in zip(p["outputs"], DATASET_COLORS):
            out = load_outputs(p["outputs"][d])
            logits = scaled_logits(out, scale) if scale else head_logits(out)
            y = msp_log_odds(logits)  # the score itself
            top = max(top, y.max())
            ax.scatter(out["feature_norm"], y, s=2, alpha=0.4, color=color, label=spec["labels"][d])
            if d == p["id"]:
                at_1 = softmax_at_1(logits)
        if top > SOFTMAX_AT_1:
            ax.axhline(SOFTMAX_AT_1, color="tab:red", lw=0.8, ls=":", label="softmax = 1.0 (float64) above")
        if at_1 is not None:
            ax.text(0.98, 0.02, f"ID at softmax 1.0: {100 * at_1:.0f}%", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize="small")  # fmt: skip
        ax.set_xlabel("Feature norm ||z||")
        tuned = ", tuned" if p.get("scale") == "tuned" else ""
        shown = scale and (scale != 1 or tuned)
        ax.set_title(p["title"] + (f" (features / {scale:.3g}{tuned})" if shown else ""), fontsize="medium")
        ax.legend(markerscale=5, fontsize="small", loc="upper left")
        ax.grid(alpha=0.3)
        _probability_ticks(ax)
    axes[0].set_ylabel("log(p / (1 - p)), p = maximum softmax")
    return fig


def _probability_ticks(ax) -> None:
    """A right axis naming the probability p of the left axis's log-odds: at round probabilities,
    or, where fewer than two of them fall in a narrow range, at the left axis's ticks."""
    lo, hi = ax.get_ylim()
    ps = np.array([0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1 - 1e-6, 1 - 1e-12])
    y = np.log(ps / (1 - ps))
    keep = (y >= lo) & (y <= hi)
    if keep.sum() >= 2:
        ticks, labels = [], []
        for t, v in zip(y[keep], ps[keep]):
            if not ticks or t - ticks[-1] > 0.06 * (hi - lo):  # apart enough to be read
                ticks.append(t)
                labels.append(f"{v:.12g}")
    else:
        ticks = np.array([t for t in ax.get_yticks() if lo <= t <= hi])
        p = 1 / (1 + np.exp(-ticks))
        digits = next((d for d in range(3, 10) if len({f"{v:.{d}g}" for v in p}) == len(p)), 10)  # tell ticks apart
        labels = [f"{v:.{digits}g}" for v in p]
    right = ax.twinx()
    right.set_ylim(lo, hi)
    right.set_yticks(ticks, labels, fontsize="small")
    right.set_ylabel("p", fontsize="small")


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
