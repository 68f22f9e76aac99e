"""The workflow's config, after schema validation: one name for each function the rules, scripts
and tests call (``from l2ood import config``), each written in the module of its room:

- ``config_schema``: the JSON schema's errors, each naming its key path; command-line text read
  back as the numbers and booleans the schema asks for;
- ``config_runs``: a run with its defaults (``RUN_DEFAULTS``, ``run_spec``), its recipe, seeds and
  ``resolve_run``, the dict training needs; what a run or job recorded against the config now;
- ``config_studies``: a study's runs, and the files each table and figure reads (``study_item``);
- ``config_checks``: ``check``, every reference the schema cannot check;
- ``l2ood.specs``: what a table or figure spec shows (its OoD columns, scores, runs).
"""

from .config_checks import (  # noqa: F401
    EXTRA_SCORES,
    check,
    class_count_errors,
    dataset_classes,
    TRAINING_RECORDS,
    detector_errors,
    external_errors,
    figure_errors,
    model_errors,
    score_names,
    table_errors,
)
from .config_runs import (  # noqa: F401
    NOT_PREPARE,
    NUMERIC_ENGINE_OPTIONS,
    RECIPE_PROSE,
    RUN_DEFAULTS,
    SOURCE_KEY,
    ConfigError,
    engine_numerics,
    is_external,
    params_differences,
    prepare_spec,
    recorded_differences,
    resolve_run,
    run_recipe,
    run_seeds,
    run_spec,
    seeds,
    weights_file,
)
from .config_schema import coerce_command_line, schema_errors  # noqa: F401
from .config_studies import (  # noqa: F401
    DETECTOR_KINDS,
    FIGURE_READS,
    RESOLVERS,
    dataset_label,
    detector_ood,
    detector_runs,
    detector_specs,
    figure_files,
    reads_detectors,
    resolve_detector_spec,
    resolve_figure,
    resolve_table,
    spec_digest,
    study_item,
    study_runs,
    study_spec,
    table_files,
)
from .specs import spec_datasets, spec_runs  # noqa: F401
