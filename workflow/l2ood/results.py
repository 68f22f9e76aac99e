"""The checked readers of what tables and figures read: a damaged file stops the job with its path
and the fix, instead of becoming a cell from fewer seeds (a metrics.csv cut mid-row parses, with NaN
or without its last rows).

A run and seed's ``metrics.csv`` (l2ood.evaluate) and ``detectors.csv`` (l2ood.evaluate_detectors)
are checked for: the run and seed of their path, every OoD set times every score (or detector and
logits variant) once, the same sets and scores in every seed of a run, the OoD sets their job
recorded (l2ood.ondisk.params_record), no NaN in a metric. Per-epoch CSVs (history, collapse) and
the tables a comparison reads are checked to parse, to have their columns and no NaN in them.
"""

import json
import re
from pathlib import Path

import pandas as pd

from .ondisk import params_record

#: what a per-seed file's rows are keyed by, and the metrics none of its rows may lack
KEYS = {"metrics": ["ood", "score"], "detectors": ["ood", "detector", "logits"]}
METRIC_COLUMNS = ["auroc", "fpr95", "accuracy"]


class DamagedResultError(ValueError):
    """A file a table or figure reads is incomplete or not what its path says."""


def _damaged(path, what: str, fix: str) -> DamagedResultError:
    return DamagedResultError(f"{path}: {what}. It was cut short, is corrupt or was left by another config: {fix}")


def _rebuild(path) -> str:
    return f"delete it (rm {path}) and run again; it is computed again from the run's stored outputs"


def read_csv(path, columns=(), numeric=(), fix: str = "") -> pd.DataFrame:
    """``path`` as a frame that parses, has ``columns`` and no NaN in ``numeric``; otherwise an error
    naming the path and ``fix`` (default: delete it and run again)."""
    fix = fix or _rebuild(path)
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 1, 0))
            last = f.read(1)
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise _damaged(path, f"cannot be read ({err})", fix) from None
    if last != b"\n":  # pandas ends every file it writes with a newline: the last row was cut
        raise _damaged(path, "ends in the middle of a row", fix)
    missing = [c for c in [*columns, *numeric] if c not in df.columns]
    if missing:
        raise _damaged(path, f"has no column {missing}", fix)
    if df.empty:
        raise _damaged(path, "has no rows", fix)
    bad = [c for c in numeric if pd.to_numeric(df[c], errors="coerce").isna().any()]
    if bad:
        rows = sorted(df.index[df[bad].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)] + 2)
        raise _damaged(path, f"has no number in {bad} on line(s) {rows[:5]}", fix)
    return df


def _run_seed_of(path) -> tuple[str, int] | None:
    """(run, seed) of a ``results/runs/<run>/seed<n>/`` path; None for any other path."""
    m = re.search(r"results/runs/([^/]+)/seed(\d+)/", str(path))
    return (m.group(1), int(m.group(2))) if m else None


def _recorded_ood(path) -> list[str] | None:
    """The OoD sets the job that wrote ``path`` recorded it was given (its params record), if any."""
    try:
        return list(json.loads(params_record(path).read_text())["meta"]["ood"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_seed(path) -> pd.DataFrame:
    """One run and seed's ``metrics.csv`` or ``detectors.csv`` (rows keyed by detector and logits
    variant), checked; a file of another name may hold several runs and seeds, each checked alike."""
    df = read_csv(path, ["run", "seed", "ood"], METRIC_COLUMNS)
    keys = KEYS["detectors" if "detector" in df.columns else "metrics"]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise _damaged(path, f"has no column {missing}", _rebuild(path))
    expected = _run_seed_of(path)
    found = sorted(set(zip(df["run"].astype(str), df["seed"])))
    if expected is not None and found != [expected]:
        held = ", ".join(f"run {r} seed {s}" for r, s in found)
        raise _damaged(path, f"holds {held}, not run {expected[0]} seed {expected[1]}", _rebuild(path))
    if df.duplicated(["run", "seed", *keys]).any():
        raise _damaged(path, f"repeats rows of {keys}", _rebuild(path))
    sizes = df.groupby(["run", "seed", "ood"]).size()
    for (run, seed), grid in sizes.groupby(level=[0, 1]):
        if grid.nunique() != 1:
            short = sorted(grid[grid < grid.max()].index.get_level_values("ood"))
            raise _damaged(
                path, f"lacks rows for OoD set(s) {short} (each set has {grid.max()} elsewhere)", _rebuild(path)
            )
    recorded = _recorded_ood(path)
    if recorded is not None and sorted(recorded) != sorted(set(df["ood"])):
        raise _damaged(
            path, f"has OoD sets {sorted(set(df['ood']))}; its job was given {sorted(recorded)}", _rebuild(path)
        )
    return df


def load_seeds(files: dict[str, list[str]]) -> pd.DataFrame:
    """Every seed's ``metrics.csv`` or ``detectors.csv`` of every run (``{run: [path per seed]}``),
    checked one by one and across the seeds of a run (each has the same OoD sets and scores), as one frame."""
    frames, first = [], {}  # run -> (path, its rows) of the run's first seed
    for paths in files.values():
        for path in paths:
            df = load_seed(path)
            keys = KEYS["detectors" if "detector" in df.columns else "metrics"]
            for (run, _), rows in df.groupby(["run", "seed"]):
                rows = set(map(tuple, rows[keys].astype(str).to_numpy()))
                if run not in first:
                    first[run] = (path, rows)
                elif rows != first[run][1]:
                    short, full = (path, first[run][0]) if len(rows) < len(first[run][1]) else (first[run][0], path)
                    raise _damaged(short, f"has fewer rows than {full} of the same run", _rebuild(short))
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def load_detector_seeds(files: dict[str, list[str]], logits: str = "raw") -> pd.DataFrame:
    """``load_seeds`` of ``detectors.csv`` files, the rows of one logits variant (``raw``: W z + b,
    ``normalized``: W z/||z|| + b; l2ood.evaluate_detectors): what the detector tables and figure read."""
    m = load_seeds(files)
    found = sorted(set(m["logits"])) if "logits" in m else []
    if logits not in found:
        raise ValueError(f"no detector metrics with logits {logits!r} in {sorted(files)}; they have {found}")
    return m[m["logits"] == logits]


def load_seed_files(paths: list[str]) -> pd.DataFrame:
    """``load_seeds`` of a flat list of ``results/runs/<run>/seed<n>/...`` paths (a study's metrics)."""
    files: dict[str, list[str]] = {}
    for path in paths:
        m = re.search(r"results/runs/([^/]+)/seed\d+/", str(path))
        files.setdefault(m.group(1) if m else str(path), []).append(str(path))
    return load_seeds(files)


def load_study_tables(paths: list[str]) -> pd.DataFrame:
    """The tidy CSVs of a study's tables (l2ood.tables), each checked, with ``table`` its file name."""
    columns = ["row", "column", "metric", "value", "std", "n_seeds"]
    fix = "delete the table's files (rm {}.*) and run again".format
    frames = [read_csv(p, columns, fix=fix(str(p)[:-4])).assign(table=Path(p).stem) for p in paths]
    return pd.concat(frames, ignore_index=True)


def load_curves(paths: list[str], column: str) -> list[pd.DataFrame]:
    """Per-epoch CSVs of a run's seeds (``collapse.csv``, ``history.csv``: written by training), each
    with ``epoch`` and ``column`` and no NaN in them; the same epochs in each."""
    fix = "move its run folder away (mv {0} {0}.old) and run again to train it again".format
    frames = [read_csv(p, ["epoch"], ["epoch", column], fix(Path(p).parent)) for p in paths]
    for p, f in zip(paths[1:], frames[1:]):
        if list(f["epoch"]) != list(frames[0]["epoch"]):
            raise _damaged(p, f"has epochs {len(f)}, {paths[0]} has {len(frames[0])}", fix(Path(p).parent))
    return frames
