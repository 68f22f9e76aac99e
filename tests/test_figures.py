"""The figures on constructed inputs: what each mark shows is the number it should show."""

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from l2ood import figures as F
from l2ood.metrics import auroc
from l2ood.outputs import save_outputs


def write_outputs(path, norms, correct, classes=3):
    """An outputs file whose argmax is right exactly where ``correct`` is True."""
    labels = np.arange(len(norms)) % classes
    pred = np.where(correct, labels, (labels + 1) % classes)
    logits = np.eye(classes, dtype=np.float32)[pred]
    save_outputs(path, {"feature_norm": np.asarray(norms, np.float32), "logits": logits, "labels": labels,
                        "fc_bias": np.zeros(classes, np.float32), "head": np.array("l2")})  # fmt: skip
    return str(path)


def test_line_styles_give_each_head_its_colour_and_each_run_of_a_head_a_line_style():
    styles = F._line_styles([{"head": "nol2"}, {"head": "l2"}, {"head": "l2"}, {"head": "nol2"}])
    assert [s["color"] for s in styles] == ["tab:gray", "tab:blue", "tab:blue", "tab:gray"]
    assert [s["linestyle"] for s in styles] == ["-", "-", "--", "--"]


def test_norm_bins_equal_width_and_equal_count():
    norms = np.array([0.0, 0.1, 0.2, 9.0, 10.0])
    # width 5: [0, 5) holds three images, [5, 10] two (the maximum belongs to the last bin)
    assert [g.tolist() for g in F.norm_bins(norms, 2, "equal_width")] == [[0, 1, 2], [3, 4]]
    # ten bins of width 1: the empty ones are left out
    spread = np.array([0.0, 0.1, 0.2, 5.5, 10.0])
    assert [g.tolist() for g in F.norm_bins(spread, 10, "equal_width")] == [[0, 1, 2], [3], [4]]
    assert [g.tolist() for g in F.norm_bins(norms, 2, "equal_count")] == [[0, 1, 2], [3, 4]]
    assert [len(g) for g in F.norm_bins(np.arange(10.0), 3, "equal_count")] == [4, 3, 3]
    with pytest.raises(ValueError, match="unknown binning 'even'"):
        F.norm_bins(norms, 2, "even")


def test_wilson_interval_by_hand():
    lo, hi = F._wilson(np.array([10.0, 5.0]), np.array([10.0, 10.0]))
    z2 = 1.96**2
    assert lo[0] == pytest.approx(10 / (10 + z2)) and hi[0] == pytest.approx(1.0)  # 10 of 10: [n/(n+z^2), 1]
    assert lo[1] == pytest.approx(0.2366, abs=1e-4) and hi[1] == pytest.approx(0.7634, abs=1e-4)  # 5 of 10


def test_accuracy_vs_norm_pools_seeds_and_counts_errors(tmp_path):
    rng = np.random.default_rng(0)
    files = [write_outputs(tmp_path / f"s{s}.npz", rng.uniform(1, 5, 50), np.arange(50) % 10 != s) for s in (0, 1)]
    spec = {"kind": "accuracy_vs_norm", "bins": 4, "binning": "equal_count", "pooled": True,
            "panels": [{"title": "L2", "head": "l2", "id_outputs": files}]}  # fmt: skip
    fig = F.render_figure(spec)
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_title() == "L2: 2 seeds pooled, 100 images, 10 errors"  # 5 wrong per seed, no correlation
    assert "Spearman" not in top.get_title() and top.get_ylim()[0] <= 0.5 and top.get_ylim()[1] <= 1.02
    # bottom: 4 image bars of 25 and 4 error bars summing to the 10 errors
    heights = [b.get_height() for b in bottom.patches]
    assert heights[:4] == [25, 25, 25, 25] and sum(heights[4:]) == 10


def test_accuracy_vs_norm_defaults_to_the_papers_one_model_in_125_equal_count_bins(tmp_path):
    """Issue 20: the paper's Figure 7 is one model's test images in "125 equal sized bins"; the figure
    pooled every seed in bins of equal width."""
    rng = np.random.default_rng(0)
    files = [write_outputs(tmp_path / f"s{s}.npz", rng.uniform(1, 5, 500), np.arange(500) % 10 != s) for s in (0, 1)]
    panel = {"title": "No L2", "head": "nol2", "seed": 1, "id": "digits", "id_outputs": files,
             "outputs": {"digits": files[1], "ood": files[0]}}  # fmt: skip
    fig = F.render_figure({"kind": "accuracy_vs_norm", "panels": [panel]})
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_title() == "No L2: seed 1, 500 images, 50 errors"  # the panel's seed only
    heights = [b.get_height() for b in bottom.patches]
    assert heights[:125] == [4] * 125  # 125 bins of 4 images each
    assert "125 bins of equal count" in fig.texts[0].get_text()
    wide = F.render_figure({"kind": "accuracy_vs_norm", "panels": [panel], "binning": "equal_width", "bins": 3})
    assert len(wide.axes[1].patches) == 2 * 3 and "3 bins of equal width" in wide.texts[0].get_text()


def test_norm_distributions_share_the_axis_and_print_each_sets_auroc(tmp_path):
    rng = np.random.default_rng(1)
    ids, near = rng.normal(5, 1, 200), rng.normal(4, 1, 200)
    panels = []
    for head in ("nol2", "l2"):
        outputs = {"id": write_outputs(tmp_path / f"{head}-id.npz", ids, np.ones(200, bool)),
                   "near": write_outputs(tmp_path / f"{head}-near.npz", near, np.ones(200, bool))}  # fmt: skip
        panels.append({"title": head, "head": head, "seed": 0, "id": "id", "outputs": outputs})
    fig = F.render_figure({"kind": "norm_distributions", "panels": panels, "labels": {"id": "ID set", "near": "Near"}})
    a, b = fig.axes[:2]
    assert a.get_shared_y_axes().joined(a, b)
    expected = f"AUROC {100 * auroc(ids.astype(np.float32).astype(np.float64), near.astype(np.float32)):.1f}"
    assert [t.get_text() for t in a.texts] == [expected]
    violin = next(c for c in b.collections if len(c.get_paths()))  # the L2 panel's first violin
    assert mcolors.same_color(violin.get_facecolor()[0][:3], mcolors.to_rgb("tab:blue"))
    assert "median" in fig.texts[0].get_text() and "whiskers" in fig.texts[0].get_text()


def test_norm_variability_marks_lr_drops_and_plots_cv_or_std(tmp_path):
    paths = []
    for s, scale in enumerate((1.0, 2.0)):
        path = tmp_path / f"c{s}.csv"
        pd.DataFrame({"epoch": [0, 1, 2, 3], "norm_cv": [0.1, 0.2, 0.3, 0.4], "norm_mean": [scale] * 4}).to_csv(path)
        paths.append(str(path))
    panel = {"title": "L2", "head": "l2", "collapse": paths, "lr_drops": [2]}
    for which, expected in (("cv", [0.1, 0.2, 0.3, 0.4]), ("std", [0.15, 0.3, 0.45, 0.6])):
        fig = F.render_figure({"kind": "norm_variability", "panels": [panel], "variability": which})
        ax = fig.axes[0]
        mean_line, drop = ax.lines[0], ax.lines[1]
        assert np.allclose(mean_line.get_ydata(), expected)  # mean over seeds of cv, or of cv * mean
        assert list(drop.get_xdata()) == [2, 2] and drop.get_linestyle() == ":"
        assert "band: minimum to maximum over seeds" in fig.texts[0].get_text()


def test_feature_change_cumulative_is_the_running_sum(tmp_path):
    norms = np.array([[1.0, 1.0], [1.0, 20.0], [1.0, 25.0]])  # (epochs + 1, P): image 0 low norm, image 1 high
    sq = np.array([[4.0, 9.0], [1.0, 3.0]])
    np.savez(tmp_path / "p.npz", norms=norms, sq_change=sq)
    panel = {"title": "L2", "seed": 0, "probes": str(tmp_path / "p.npz"), "edges": [0, 10, np.inf]}
    for cumulative, low, high in ((False, [4, 1], [9, 3]), (True, [4, 5], [9, 12])):
        ax = F.render_figure({"kind": "feature_change", "panels": [panel], "cumulative": cumulative}).axes[0]
        assert [list(line.get_ydata()) for line in ax.lines] == [low, high]


def test_softmax_vs_norm_plots_the_score_and_the_share_at_1(tmp_path):
    """Issue 20: Figure 4's panels plot what was scored (the log-odds of the softmax at the panel's
    scale), mark where float64 rounds the softmax to exactly 1.0, and say how many ID images are there."""
    from l2ood.detectors import msp_log_odds

    def write(path, gaps, norms):
        logits = np.stack([np.asarray(gaps, np.float32), np.zeros(len(gaps), np.float32)], axis=1)
        save_outputs(path, {"feature_norm": np.asarray(norms, np.float32), "logits": logits,
                            "labels": np.zeros(len(gaps), np.int64), "fc_bias": np.zeros(2, np.float32),
                            "head": np.array("nol2")})  # fmt: skip
        return str(path)

    ids = write(tmp_path / "id.npz", np.linspace(30, 60, 10), np.linspace(5, 10, 10))  # 7 of 10 above 53 ln 2
    ood = write(tmp_path / "ood.npz", np.linspace(1, 5, 10), np.linspace(1, 3, 10))
    metrics = {"run": "r", "seed": 0, "ood": "b", "auroc": 0.9, "fpr95": 0.1, "accuracy": 0.99}  # as evaluate writes
    rows = [{**metrics, "score": "msp", "scale": np.nan}, {**metrics, "score": "scaled_msp", "scale": 10.0}]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    panel = {"head": "nol2", "id": "a", "outputs": {"a": ids, "b": ood}, "metrics": str(tmp_path / "m.csv")}
    panels = [{**panel, "title": "unscaled", "scale": 1}, {**panel, "title": "scaled", "scale": "tuned"}]
    spec = {"kind": "softmax_vs_norm", "labels": {"a": "ID", "b": "OoD"}, "panels": panels}
    fig = F.render_figure(spec)
    left, right = [ax for ax in fig.axes if ax.has_data()]
    y = left.collections[0].get_offsets()[:, 1]
    np.testing.assert_allclose(y, msp_log_odds(np.stack([np.linspace(30, 60, 10), np.zeros(10)], 1)), rtol=1e-6)
    np.testing.assert_allclose(right.collections[0].get_offsets()[:, 1], y / 10, rtol=1e-5)  # scale 10: gap / 10
    assert [t.get_text() for t in left.texts] == ["ID at softmax 1.0: 70%"]
    assert [t.get_text() for t in right.texts] == ["ID at softmax 1.0: 0%"]
    assert any(np.allclose(ln.get_ydata(), 53 * np.log(2)) for ln in left.lines)  # float64's p = 1.0
    assert not right.lines and right.get_title() == "scaled (features / 10, tuned)"


def test_equal_count_bins_are_noisiest_where_accuracy_is_lowest():
    """The README's reason for Figure 7's bins: the paper's "noisy, particularly with smaller norms" holds
    for equal-count bins too, since a bin's binomial spread sqrt(p (1 - p) / n) grows as its accuracy p
    falls (seeded simulation: accuracy rising with norm from 0.8 to 0.999, 125 bins of 80 images)."""
    rng = np.random.default_rng(0)
    norms = np.sort(rng.uniform(1, 10, 10_000))
    p = 0.8 + 0.199 * (norms - 1) / 9
    groups = F.norm_bins(norms, 125, "equal_count")
    acc = np.array([[(rng.random(len(p)) < p)[g].mean() for g in groups] for _ in range(200)])
    spread = acc.std(axis=0)
    assert {len(g) for g in groups} == {80} and spread[:10].mean() > 3 * spread[-10:].mean()


def test_every_head_has_one_colour_in_every_figure_module():
    """l2ood.plotting holds the heads' colours: the figures and the detectors figure use those objects."""
    from l2ood import detector_figure, plotting

    assert set(plotting.HEAD_COLORS) == {"l2", "nol2"} and len(set(plotting.HEAD_COLORS.values())) == 2
    assert F.HEAD_COLORS is plotting.HEAD_COLORS and detector_figure.HEAD_COLORS is plotting.HEAD_COLORS
    with pytest.raises(ValueError, match="unknown head 'l3'"):
        plotting._for_head(plotting.HEAD_COLORS, "l3")
