"""l2ood.engine: the engine's defaults and version in a module without torch, and each recipe
default set once (``RECIPE_DEFAULTS``), read by the training code through ``recipe_value``."""

import re
import subprocess
import sys

import torch
from conftest import ROOT

from l2ood import augment as A
from l2ood import engine as ENG
from l2ood import optim as OPT

LIBRARY = ROOT / "workflow" / "l2ood"


def test_the_parse_time_modules_import_no_torch():
    """The workflow imports these at parse time on every node: torch would cost seconds per job."""
    code = (
        "import sys; sys.path.insert(0, 'workflow')\n"
        "import l2ood.engine, l2ood.config, l2ood.code, l2ood.plan\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(l2ood.config.engine_numerics({'engine': {}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str({k: ENG.ENGINE_DEFAULTS[k] for k in ENG.NUMERIC_ENGINE_OPTIONS})


def test_numeric_options_and_compile_modes_are_engine_options():
    assert set(ENG.NUMERIC_ENGINE_OPTIONS) <= set(ENG.ENGINE_DEFAULTS)
    assert ENG.ENGINE_DEFAULTS["compile_mode"] in ENG.COMPILE_MODES


def test_no_training_module_defaults_a_recipe_value_of_its_own():
    """A recipe default written beside the code that reads it (``recipe.get("flip", False)``) is a
    second place for it: the training code reads absent keys through ``recipe_value``."""
    import training_code

    found = [
        f"{p.relative_to(LIBRARY)}:{i}: {line.strip()}"
        for p in training_code.covered_files()
        if p.name != "engine.py"  # recipe_value itself
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\b(recipe|rrc)\.get\(", line)
    ]
    assert found == []


def test_a_recipe_without_optional_keys_trains_as_one_stating_the_defaults():
    """Leaving a key out and stating ``RECIPE_DEFAULTS``' value give the same augmentation and schedule."""
    cosine = {"lr": 0.1, "schedule": "cosine", "epochs": 10}
    explicit = {
        **cosine,
        **{k: ENG.RECIPE_DEFAULTS[k] for k in ("warmup_epochs", "warmup_lr", "min_lr", "cooldown_epochs")},
    }
    assert [OPT.learning_rate(cosine, e) for e in range(10)] == [OPT.learning_rate(explicit, e) for e in range(10)]
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    bare = A.augment(x, {}, torch.Generator().manual_seed(1))
    stated = A.augment(x, dict(ENG.RECIPE_DEFAULTS), torch.Generator().manual_seed(1))
    assert torch.equal(bare, stated) and torch.equal(bare, x)  # the defaults: no crop, no flip, nothing
    rrc = {"random_resized_crop": {"scale": [0.5, 1.0]}}
    full = {"random_resized_crop": {"scale": [0.5, 1.0], **{"ratio": ENG.RANDOM_RESIZED_CROP_DEFAULTS["ratio"]}}}
    a = A.augment(x, rrc, torch.Generator().manual_seed(2))
    assert torch.equal(a, A.augment(x, full, torch.Generator().manual_seed(2)))


def test_recipe_value_falls_back_to_the_default_only_when_absent():
    assert ENG.recipe_value({"drop_last": True}, "drop_last") is True
    assert ENG.recipe_value({}, "drop_last") is ENG.RECIPE_DEFAULTS["drop_last"]
    assert ENG.recipe_value({}, "mixup_off_epoch") is None  # mixing (if any) never stops
