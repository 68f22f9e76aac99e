"""The recipe's optimizer and learning-rate schedule, as ``l2ood.train.fit`` builds and steps them."""

import math

import torch

from .engine import recipe_value

#: what each optimizer reads from the recipe; config.yaml's recipes state every one of them.
OPTIMIZER_KEYS = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adamw": ("lr", "betas", "weight_decay"),
}


class MissingRecipeKeyError(KeyError):
    """A recipe does not state a value that training reads and ``RECIPE_DEFAULTS`` holds none for."""

    def __str__(self) -> str:  # KeyError's own would print the message in quotes
        return str(self.args[0])


def learning_rate(recipe: dict, epoch: int) -> float:
    """The recipe's learning rate in ``epoch`` (0-based); a pure function, so resuming needs no scheduler state.

    multistep: lr * gamma ** (milestones passed), changing at epoch boundaries (MultiStepLR).
    cosine: per epoch, with the semantics of timm's CosineLRScheduler that the CCT recipe uses:
    linear warm-up from ``warmup_lr`` over ``warmup_epochs`` (overlapping the first cosine
    epochs), cosine from ``lr`` to ``min_lr`` over ``epochs - cooldown_epochs``, then ``min_lr``.
    A cosine recipe without warm-up, cool-down or ``min_lr`` has none of them (0).
    """
    base = float(recipe["lr"])
    if recipe["schedule"] == "multistep":
        return base * recipe["gamma"] ** sum(epoch >= m for m in recipe["milestones"])
    if recipe["schedule"] == "cosine":
        warmup, lo = int(recipe_value(recipe, "warmup_epochs")), float(recipe_value(recipe, "min_lr"))
        if epoch < warmup:
            start = float(recipe_value(recipe, "warmup_lr"))
            return start + epoch * (base - start) / warmup
        span = recipe["epochs"] - int(recipe_value(recipe, "cooldown_epochs"))
        if epoch >= span:
            return lo
        return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * epoch / span))
    raise ValueError(f"unknown schedule {recipe['schedule']!r}; choose multistep or cosine")


def build_optimizer(model: torch.nn.Module, recipe: dict, recipe_name: str | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer with the values the recipe states (``OPTIMIZER_KEYS``; none defaulted).

    ``recipe_name`` only names the recipe in the error for a value it leaves out.
    """
    name = recipe["optimizer"]
    if name not in OPTIMIZER_KEYS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZER_KEYS)}")
    missing = [k for k in OPTIMIZER_KEYS[name] if k not in recipe]
    if missing:
        which = "the recipe" if recipe_name is None else f"recipe {recipe_name!r}"
        raise MissingRecipeKeyError(
            f"{which} does not state {', '.join(missing)}, which optimizer {name!r} needs: add "
            f"{' and '.join(missing)} to it in config.yaml (the training code defaults none of them)"
        )
    params = param_groups(model, recipe_value(recipe, "weight_decay_exempt"))
    kernels = optimizer_kernels(next(model.parameters()).device.type)
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe["lr"],
            momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"],
            nesterov=recipe["nesterov"],
            **kernels,
        )
    return torch.optim.AdamW(
        params, lr=recipe["lr"], betas=tuple(recipe["betas"]), weight_decay=recipe["weight_decay"], **kernels
    )


#: recipe ``weight_decay_exempt`` values: "none" decays every parameter (DDU, torch.optim's
#: default); "1d_and_bias" is timm's rule (``param_groups_weight_decay``, the default of the
#: ``create_optimizer_v2`` the CCT authors train with) and official ConvNeXt's (``optim_factory``):
#: no decay for 1-d parameters (norm weights and biases) and any ``.bias``.
WEIGHT_DECAY_EXEMPT = ("none", "1d_and_bias")


#: parameters exempt by name under "1d_and_bias": ConvNeXt's layer scale, the official code's 1-d
#: ``gamma`` (dim,), which the torchvision layout used here stores as (dim, 1, 1).
NO_DECAY_NAMES = ("layer_scale",)


def param_groups(model: torch.nn.Module, exempt: str) -> list[dict]:
    """The optimizer's parameter groups: one, or decayed and exempt (weight decay 0) by ``exempt``."""
    if exempt not in WEIGHT_DECAY_EXEMPT:
        raise ValueError(f"unknown weight_decay_exempt {exempt!r}; choose one of {WEIGHT_DECAY_EXEMPT}")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if exempt == "none":
        return [{"params": [p for _, p in params]}]
    free = {n for n, p in params if p.ndim <= 1 or n.endswith(".bias") or n.rsplit(".", 1)[-1] in NO_DECAY_NAMES}
    return [
        {"params": [p for n, p in params if n not in free]},
        {"params": [p for n, p in params if n in free], "weight_decay": 0.0},
    ]


def optimizer_kernels(device_type: str) -> dict:
    """The optimizer's kernel choice for parameters on ``device_type``: one fused kernel per step
    on CUDA (the default there, foreach, still launches a few kernels per parameter group and
    reads AdamW's CPU step counters with a host sync per tensor); PyTorch's default elsewhere."""
    return {"fused": True} if device_type == "cuda" else {}

