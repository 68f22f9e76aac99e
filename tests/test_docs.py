"""What docs/architecture.md says of the tests is true: a test file per library module."""

import re

from conftest import ROOT

#: library modules whose tests live in a file of another name (the file imports the module)
TESTED_IN = {
    "augment": "test_augment_sync.py",
    "mix": "test_randaugment_mix.py",
    "randaugment": "test_randaugment_mix.py",
    "evaluate_detectors": "test_detectors_workflow.py",
    "results": "test_ondisk.py",
    "layout": "test_checkpoint.py",  # names only: every test that finds a file uses them
    "inference": "test_train.py",
    "optim": "test_train.py",
    "epochlog": "test_train_progress.py",
    "invocation": "test_ondisk.py",
    "config_checks": "test_config.py",  # through l2ood.config, which names each (a test pins that)
    "config_runs": "test_config.py",
    "config_schema": "test_config.py",
    "config_studies": "test_config.py",
    "plotting": "test_figures.py",
    "detector_figure": "test_detector_families.py",
    "table_cells": "test_tables.py",
    "table_render": "test_tables.py",
}


def test_every_library_module_has_its_test_file():
    assert "a test file per library module" in (ROOT / "docs/architecture.md").read_text()
    missing = []
    for path in sorted((ROOT / "workflow/l2ood").glob("*.py")):
        name = path.stem
        if name == "__init__":
            continue
        test = ROOT / "tests" / TESTED_IN.get(name, f"test_{name}.py")
        imports = rf"from l2ood(\.{name} import| import (\w+, )*{name}\b)|import l2ood\.{name}\b"
        if not test.is_file() or not re.search(imports, test.read_text()):
            missing.append(f"{name}: {test.relative_to(ROOT)}")
    assert not missing, f"library modules without a test file that imports them: {missing}"
