# The terminal of a run (not of a dry run, whose plan stays in full): one line saying what will be
# trained and roughly how long (l2ood.plan), then each training job's progress lines (run, seed,
# epoch k/n, elapsed, ETA), the step count at every tenth of the jobs (so that the evaluations,
# tables and figures after the last training line show progress too), warnings and errors (a
# failed job's block names its log file), and at the end where the tables and figures are and
# the report command. The per-job blocks and every step count go only to the complete log,
# .snakemake/log/*.snakemake.log, named at the end; `snakemake --verbose` prints them too.

from snakemake_interface_logger_plugins.common import LogEvent

#: what the terminal leaves out: two to ten lines per job that would bury the training lines
QUIET_EVENTS = {LogEvent.JOB_INFO, LogEvent.GROUP_INFO, LogEvent.JOB_STARTED, LogEvent.JOB_FINISHED}


def tenth_reached(done: int, total: int) -> bool:
    """Whether ``done`` of ``total`` steps crosses a tenth of them (or is the last): about ten count lines."""
    return done >= total or 10 * done // max(total, 1) > 10 * (done - 1) // max(total, 1)


def terminal_line(record):
    event = getattr(record, "event", None)
    if event == LogEvent.PROGRESS:
        return tenth_reached(record.done, record.total)
    return not (event in QUIET_EVENTS or record.getMessage() == "Select jobs to execute...")


onstart:
    from snakemake.logging import logger
    from l2ood.plan import start_line

    jobs = [j for j in workflow.dag.needrun_jobs() if j.rule.name == "train"]
    logger.info(start_line(config, [(j.wildcards.run, j.wildcards.seed) for j in jobs]))
    if not workflow.output_settings.verbose:
        for handler in logger.handlers:
            if handler.name == "DefaultStreamHandler":
                handler.addFilter(terminal_line)


onsuccess:
    from pathlib import Path
    from snakemake.logging import logger

    # the studies whose tables or figures this invocation's DAG contains (results/<study>/tables/...)
    built = {}
    for job in workflow.dag.jobs:
        for f in job.output:
            parts = Path(f).parts
            if len(parts) > 3 and parts[0] == "results" and parts[2] in ("tables", "figures"):
                built.setdefault(parts[1], set()).add(parts[2])
    for study in sorted(built):
        target = "" if study == config["default_study"] else f"{study} "
        logger.info(
            f"Results of {study}: tables in {study_file(study, 'tables/')}, figures in {study_file(study, 'figures/')}; "
            f"all of them on one page: snakemake {target}--report {study_file(study, 'report.html')}"
        )
