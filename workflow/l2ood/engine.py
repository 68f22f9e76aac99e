"""The training engine's defaults and version, without torch.

The workflow reads this module at parse time on every node (``l2ood.config``, the rules'
params), where importing torch would cost seconds per job; the engine (``l2ood.train``,
``l2ood.inference``) reads it too. Each default is set here once: config.yaml's ``engine:``
changes the engine's, a recipe in config.yaml states its own values over ``RECIPE_DEFAULTS``.
"""

# The version of what training computes. Bump it with any change to this engine, the models,
# the losses or the augmentations that changes the numbers a run produces: it is part of every
# run's params, so the bump retrains every model (and a mere refactor, which does not bump it,
# retrains none). tests/test_rerun.py fails when those files change and this stays the same;
# tests/training_code.sha256 says how to record a change that leaves the numbers alone.
# 2: the collapse measures (collapse.csv) use the sample std for equinormality (ddof=1, as Papyan et
# al.), and inference runs under the engine's TF32 and determinism flags (GPU outputs change).
TRAINING_CODE_VERSION = 2

# The engine's options and their defaults: how training and inference run. Those that change the
# numbers (NUMERIC_ENGINE_OPTIONS) are part of the train rule's params; the rest rerun nothing.
# This block is the one place the defaults are set: config.yaml's `engine:` changes them.
ENGINE_DEFAULTS = {
    "device": "auto",  # "auto": cuda if available, else cpu
    # bf16 autocast: off, so the paper study trains in float32 as DDU and LogitNorm do (the CCT
    # authors trained with amp). No GPU has measured yet what bf16 does to these runs' losses and
    # feature norms: benchmarks/gpu_check.py compares the losses; turn it on once that shows no
    # difference that matters. (On a CPU without native bf16 it is also 17x slower.)
    "amp": False,
    # TF32 matmuls and convolutions (10-bit mantissa products, float32 accumulation); "auto" = on
    # CUDA. Most of bf16's speed on an H100 at float32's range; cuDNN convolutions use it by default.
    "tf32": "auto",
    "compile": False,  # torch.compile the training step; costs 50-80 s on CPU for no gain, so opt-in
    # torch.compile's mode: default | reduce-overhead (CUDA graphs) | max-autotune (+ kernel search)
    # | max-autotune-no-cudagraphs. The graph is compiled for full batches only (dynamic=False);
    # an epoch's last, shorter batch runs uncompiled, so it forces no second graph and no image is
    # dropped (the same training as without compile).
    "compile_mode": "default",
    # TORCHINDUCTOR_CACHE_DIR (unless set): one compile cache for every job of a run, relative to
    # the working directory (the workflow's, shared by the nodes of a cluster), so 210 jobs do not
    # each compile the same graphs again.
    "compile_cache_dir": "results/.cache/torchinductor",
    "channels_last": "auto",  # NHWC memory format; "auto" = on CUDA (tensor-core friendly)
    "log_every": 50,  # read the loss (a host sync) every N steps only
    # minutes between resume checkpoints, written at the end of an epoch (0 = after every epoch);
    # a SIGTERM (preemption, time limit) writes one at once. A ResNet50 checkpoint is ~170 MiB:
    # one per ~1 s epoch would cost 15-30 % of the run and ~5 TB of writes for the paper.
    "checkpoint_minutes": 10,
    "deterministic": False,  # torch.use_deterministic_algorithms; CPU runs are deterministic anyway
    "infer_batch_size": 1024,  # images per forward pass in inference and in the per-epoch probes
    # GPU jobs sharing one GPU on a workstation (l2ood.gpus; `--resources gpu=` then counts
    # GPUs x jobs_per_gpu). LogitNorm+ and CCT at batch 128 leave an H100 mostly idle.
    "jobs_per_gpu": 1,
}

#: engine options that change the numbers training computes: part of the train rule's params
NUMERIC_ENGINE_OPTIONS = ("device", "amp", "tf32", "compile", "compile_mode", "channels_last", "deterministic")

#: values of engine.compile_mode (torch.compile's modes)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: The value training uses for a recipe key the recipe leaves out (``recipe_value``). The
#: optimizer's values (``l2ood.optim.OPTIMIZER_KEYS``), ``epochs``, ``batch_size`` and the schedule's
#: are never defaulted: every recipe in config.yaml states them.
RECIPE_DEFAULTS = {
    # cosine schedule (timm's CosineLRScheduler): no warm-up, no cool-down, down to 0
    "warmup_epochs": 0,
    "warmup_lr": 0.0,
    "min_lr": 0.0,
    "cooldown_epochs": 0,
    "weight_decay_exempt": "none",  # every parameter decays (DDU; torch.optim's default)
    "loss": {"name": "ce"},  # cross-entropy
    "drop_last": False,  # the last, shorter batch of an epoch is trained on
    "crop_padding": 0,  # no random crop (the paper's recipe pads by 4)
    "flip": False,  # no horizontal flip
    "randaugment": None,  # no RandAugment
    "random_resized_crop": None,  # no random-resized crop (crop_padding's crop instead)
    "mixup_off_epoch": None,  # mixup / cutmix (if the recipe has them) through the last epoch
}
#: a ``random_resized_crop`` that leaves out its area fraction or aspect ratio range: timm's (and
#: torchvision's) defaults
RANDOM_RESIZED_CROP_DEFAULTS = {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)}


def recipe_value(recipe: dict, key: str):
    """The recipe's ``key``, or ``RECIPE_DEFAULTS[key]`` if the recipe leaves it out."""
    return recipe.get(key, RECIPE_DEFAULTS[key])
