"""The detectors grouped by family (``Detector.family``) in the detectors figure and tables, on a fake
registry of 24 detectors (the size issue 23 brings) and constructed metrics."""

import numpy as np
import pandas as pd
import pytest
from l2ood import detectors as D
from l2ood import tables
from matplotlib.colors import to_rgb

#: family -> how many fake detectors: 24 in all, in an order that is not the families' order
SIZES = {"distance": 7, "norm": 2, "logits": 8, "network": 3, "shaping": 4}


@pytest.fixture
def registry(monkeypatch):
    """24 fake detectors, registered in an order that interleaves the families."""
    fake = {}
    for i in range(max(SIZES.values())):
        for family, n in SIZES.items():
            if i < n:
                fake[f"{family}{i}"] = type(
                    f"Fake{family}{i}",
                    (D.Detector,),
                    {"family": family, "label": f"{family.upper()}-{i}", "uses_head": False},
                )
    assert len(fake) == 24
    monkeypatch.setattr(D, "DETECTORS", fake)
    monkeypatch.setattr(D, "LABELS", {name: cls.label for name, cls in fake.items()})
    return fake


def metrics(tmp_path, names, oods=("near", "far")) -> dict:
    """Per-seed metrics: detector number k has AUROC 0.5 + k/100 (No L2) and 0.6 + k/100 (L2) on every seed."""
    files = {}
    for run, head, up in (("a", "nol2", 0.0), ("b", "l2", 0.1)):
        files[run] = []
        for seed in range(3):
            rows = [{"run": run, "seed": seed, "head": head, "ood": ood, "detector": name, "logits": "raw",
                     "auroc": 0.5 + up + k / 100 + seed / 1000, "fpr95": 0.5, "fpr95_ood_positive": 0.5,
                     "accuracy": 0.9} for ood in oods for k, name in enumerate(names)]  # fmt: skip
            path = tmp_path / f"{run}{seed}.csv"
            pd.DataFrame(rows).to_csv(path, index=False)
            files[run].append(str(path))
    return files


def spec(tmp_path, kind, names, **extra) -> dict:
    return {"kind": kind, "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}],
            "metrics": metrics(tmp_path, names), "labels": {"near": "Near set"}, **extra}  # fmt: skip


def test_detectors_figure_groups_24_detectors_by_family(tmp_path, registry):
    from l2ood.figures import HEAD_COLORS, render_figure

    names = list(registry)
    fig = render_figure(spec(tmp_path, "detectors", names, ood={"near": "near", "far": "far"}))
    grid = np.array(fig.axes).reshape(len(SIZES), 2)  # a row per family, a column per OoD set
    families = [f for f in D.FAMILIES if f in SIZES]
    assert [ax.get_ylabel() for ax in grid[:, 0]] == families  # in FAMILIES' order, named
    assert [ax.get_title() for ax in grid[0]] == ["Near set", "far"] and not any(ax.get_title() for ax in grid[1:].flat)
    for row, family in zip(grid, families):
        expected = [f"{family.upper()}-{i}" for i in range(SIZES[family])]  # the registry's order within a family
        assert [t.get_text() for t in row[0].get_yticklabels()] == expected  # named once, left
        for ax in row:
            assert list(ax.get_yticks()) == list(range(SIZES[family]))
            assert ax.get_ylim() == (SIZES[family] - 0.5, -0.5)  # the first on top, no empty line
    # one x-range per OoD set across the families, the metric named once at the bottom
    assert all(ax.get_xlim() == grid[0, i].get_xlim() for i in range(2) for ax in grid[:, i])
    assert grid[-1, 0].get_xlabel() == "AUROC (%)" and grid[0, 0].get_xlabel() == ""
    # the mean bars: each head in its colour, at the detector's mean; "distance3" is detector number 3
    ax = grid[families.index("distance"), 0]
    k = names.index("distance3")

    def bars(head):  # (x, y) of one end of each mean bar drawn in the head's colour
        return [seg[0] for c in ax.collections if hasattr(c, "get_segments") and tuple(c.get_colors()[0][:3])
                == to_rgb(HEAD_COLORS[head]) for seg in c.get_segments()]  # fmt: skip

    blue, gray = bars("l2"), bars("nol2")
    assert any(np.isclose(x, 100 * (0.6 + k / 100 + 0.001)) and abs(y - 3) < 0.5 for x, y in blue)
    assert any(np.isclose(x, 100 * (0.5 + k / 100 + 0.001)) and abs(y - 3) < 0.5 for x, y in gray)
    assert len(blue) == len(gray) == SIZES["distance"]
    # a readable size: about 0.3 inch a detector, not 0.45 inch of width per detector and OoD set
    width, height = fig.get_size_inches()
    assert width < 10 and 7 < height < 12


def test_detector_tables_order_rows_by_family_and_name_it(tmp_path, registry):
    names = list(registry)
    s = spec(tmp_path, "detectors", names, ood={"near": "near"})
    lines = [line for line in tables.render_table(s).markdown.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Detector | Family | Near set No L2 |")
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1 : 1 + 24]]
    families = [f for f in D.FAMILIES if f in SIZES]
    assert [row[:2] for row in body] == [[f"{f.upper()}-{i}", f] for f in families for i in range(SIZES[f])]
    # the numbers follow their detector: "distance3" (number k) has L2 mean 60 + k
    row = next(r for r in body if r[0] == "DISTANCE-3")
    assert row[3] == f"{100 * (0.6 + names.index('distance3') / 100 + 0.001):.1f}"
    # OpenOOD's layout: two lines a detector, the family on both
    o = spec(tmp_path, "openood", names, near={"near": "near"}, far={"far": "far"})
    lines = [line for line in tables.render_table(o).markdown.splitlines() if line.startswith("| ")]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1 : 1 + 48]]
    assert [row[1] for row in body[::2]] == [f for f in families for _ in range(SIZES[f])]
    assert [row[0] for row in body[:2]] == ["LOGITS-0 (No L2)", "LOGITS-0 (L2)"]


def test_the_detectors_figure_kind_is_detector_figures():
    from l2ood import detector_figure, figures

    assert figures.FIGURE_KINDS["detectors"] is detector_figure.detectors
