# The terminal of a run (not of a dry run, whose plan stays in full): one line saying what will be
# trained and roughly how long (l2ood.plan), then each training job's progress lines (run, seed,
# epoch k/n, elapsed, ETA), warnings and errors (a failed job's block names its log file). The
# per-job blocks and the step counts go only to the complete log, .snakemake/log/*.snakemake.log,
# named at the end; `snakemake --verbose` prints them on the terminal too.

from snakemake_interface_logger_plugins.common import LogEvent

#: what the terminal leaves out: two to ten lines per job that would bury the training lines
QUIET_EVENTS = {LogEvent.JOB_INFO, LogEvent.GROUP_INFO, LogEvent.JOB_STARTED, LogEvent.JOB_FINISHED, LogEvent.PROGRESS}


def terminal_line(record):
    return not (getattr(record, "event", None) in QUIET_EVENTS or record.getMessage() == "Select jobs to execute...")


onstart:
    from snakemake.logging import logger
    from l2ood.plan import start_line

    jobs = [j for j in workflow.dag.needrun_jobs() if j.rule.name == "train"]
    logger.info(start_line(config, [(j.wildcards.run, j.wildcards.seed) for j in jobs]))
    if not workflow.output_settings.verbose:
        for handler in logger.handlers:
            if handler.name == "DefaultStreamHandler":
                handler.addFilter(terminal_line)
