"""What the command line asks Snakemake to do, read from ``sys.argv`` at parse time: the steps in
``rules/ondisk.smk`` run before Snakemake has parsed its own options (``workflow.dryrun`` and
``workflow.touch`` are still False while the Snakefile is read). Standard library only."""

import re

#: invocations that build nothing: what is on disk is not checked for them (an --unlock must work)
MAINTENANCE = {"--unlock", "--cleanup-metadata", "--cm", "--lint", "--delete-all-output", "--delete-temp-output"}


def _flag(argv: list[str], long: tuple[str, ...], short: str) -> bool:
    """``long`` given, or the one-letter ``short`` alone or among other one-letter flags (``-nt``)."""
    return any(a in long or re.fullmatch(rf"-[A-Za-z]*{short}[A-Za-z]*", a) for a in argv)


def touching(argv: list[str]) -> bool:
    """``--touch`` (``-t``): outputs are marked current without running anything, so Snakemake's
    records cannot stand in for a check."""
    return _flag(argv, ("--touch",), "t")


def dry_running(argv: list[str]) -> bool:
    """``--dry-run`` (``-n``): Snakemake writes nothing, and neither may the steps before its plan."""
    return _flag(argv, ("--dry-run", "--dryrun"), "n")
