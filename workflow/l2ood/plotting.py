"""The figures' shared style: each head's colour and line styles, a row of panels, the note under them
(l2ood.figures draws every kind with these, so L2 is blue and No L2 grey in every figure)."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .layout import HEADS  # noqa: E402

#: per head, in every figure: the colour of its boxes, points and curves
HEAD_COLORS = {"l2": "tab:blue", "nol2": "tab:gray"}
#: curves of several runs of one head on one axes (e.g. 60 and 350 epochs): one line style each, in panel order
LINESTYLES = ("-", "--", ":", "-.")
#: the data sets of a scatter (ID first, then OoD): colours no head uses
DATASET_COLORS = ("black", "tab:orange")


def _for_head(styles: dict, head: str):
    if head not in styles:
        raise ValueError(f"unknown head {head!r}; the heads are {sorted(HEADS)}")
    return styles[head]


def _line_styles(panels: list[dict]) -> list[dict]:
    """A line style per panel drawn on one axes: the head's colour, and the k-th panel of a head
    the k-th of ``LINESTYLES``, so that L2 is blue and No L2 grey in every figure."""
    seen: dict[str, int] = {}
    out = []
    for p in panels:
        k = seen[p["head"]] = seen.get(p["head"], -1) + 1
        out.append({"color": _for_head(HEAD_COLORS, p["head"]), "linestyle": LINESTYLES[k % len(LINESTYLES)]})
    return out


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panels(n: int, width: float = 4.2, height: float = 3.4, sharey: bool = False):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=sharey, layout="constrained")
    return fig, list(axes[0])


def _note(fig, text: str) -> None:
    """A line under the panels saying what the marks mean."""
    fig.text(0.5, -0.01, text, ha="center", va="top", fontsize="small", wrap=True)
