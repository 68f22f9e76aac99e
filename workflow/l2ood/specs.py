"""The one reader of a table's or figure's spec (``studies.<study>.tables|figures.<name>`` in the
config): what it shows, as config.py's checks and resolvers, tables.py and figures.py all read it.

Each key has one type: ``ood``, ``near`` and ``far`` map a column key (the paper's name, e.g.
``tinyimagenet``) to the data set evaluated (``tinyimagenet-r32``); ``scores`` lists scores, one row
each; ``columns`` maps a column key to the score it shows (a ``seed_range`` table's). The schema
rejects the other forms; these functions raise ``SpecError`` on them (a spec built in code).
The standard library only.
"""

#: the score of a table that names none (``scores``), and of a ``table1`` row without ``score``
DEFAULT_SCORE = "feature_norm"


class SpecError(ValueError):
    """A table or figure spec holds a key in a form it does not take."""


def _mapping(spec: dict, key: str) -> dict:
    value = spec.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(
            f"{key}: {value!r} is a {type(value).__name__}; it takes a {{column key: ...}} mapping, "
            f"e.g. {{{', '.join(f'{v}: {v}' for v in value)}}}" if isinstance(value, list) else
            f"{key}: {value!r} is not a {{column key: ...}} mapping"
        )  # fmt: skip
    return value


def ood_columns(spec: dict, key: str = "ood") -> list[tuple[str, str]]:
    """(column key, data set) pairs of ``spec[key]`` (``ood``, or the OpenOOD view's ``near``/``far``), in order."""
    return list(_mapping(spec, key).items())


def spec_datasets(spec: dict) -> list[str]:
    """Every OoD set the spec shows in a column: its ``ood``, ``near`` and ``far`` values, in order."""
    return list(dict.fromkeys(d for key in ("ood", "near", "far") for _, d in ood_columns(spec, key)))


def scores(spec: dict) -> list[str]:
    """The scores an ``l2_vs_nol2`` table shows, one row each (default ``[DEFAULT_SCORE]``)."""
    value = spec.get("scores", [DEFAULT_SCORE])
    if not isinstance(value, list):
        raise SpecError(f"scores: {value!r} is not a list of score names (a seed_range table maps columns to scores)")
    return value


def score_columns(spec: dict) -> list[tuple[str, str]]:
    """(column key, score) pairs of a ``seed_range`` table's ``columns``, in order."""
    return list(_mapping(spec, "columns").items())


def row_score(row: dict) -> str:
    """The score a ``table1`` row is scored by."""
    return row.get("score", DEFAULT_SCORE)


def named_scores(spec: dict) -> list[str]:
    """Every score name a table spec uses (``scores``, ``columns``, rows' ``score``), in order."""
    named = scores(spec) if "scores" in spec else []
    named += [s for _, s in score_columns(spec)]
    named += [r["score"] for r in spec.get("rows", []) if "score" in r]
    return list(dict.fromkeys(named))


def spec_runs(spec: dict) -> list[str]:
    """Every run a table or figure spec names (``run``, rows' nol2/l2/run, panels' run), in order."""
    runs = [spec["run"]] if "run" in spec else []
    for row in spec.get("rows", []):
        runs += [row[k] for k in ("nol2", "l2", "run") if k in row]
    runs += [p["run"] for p in spec.get("panels", [])]
    return list(dict.fromkeys(runs))
