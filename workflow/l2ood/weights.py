"""External checkpoints: a state_dict trained elsewhere, loaded into a registered model and head.

A run with ``weights:`` in ``config.yaml`` is not trained: each seed's file is read here with
``torch.load(..., weights_only=True)`` (a pickle that would run code is refused), matched to the
run's ``model`` and ``head`` and written as the run's ``model.pt`` in the format training writes, so
inference, features, detectors, tables and figures treat it as a trained run.

What is read: a plain ``{name: tensor}`` state_dict, or a dict holding one under ``state_dict``
(l2ood's own ``model.pt``), ``model``, ``net`` or ``model_state_dict``; a ``module.`` prefix
(DataParallel) is dropped. Two key layouts are matched, by the names and shapes of every tensor:

* ``l2ood``: the keys of ``l2ood.models.build_model``'s ``Classifier``, ``encoder.*`` and ``fc.*``;
* ``backbone+fc``: the encoder's own keys at the top level and the classifier as ``fc.*``, the
  layout of OpenOOD's and torchvision's ResNets (``models/openood.py``'s ``ResNet18_32x32``).

A file that fits neither names the missing and unexpected keys and the registered architectures
that it would fit.
"""

import hashlib
from pathlib import Path

import torch

from .fileio import reading
from .models import REGISTRY, build_model

#: the keys under which a checkpoint dict may hold its state_dict, tried in this order
CONTAINERS = ("state_dict", "model", "net", "model_state_dict")
#: the classifier's keys in both layouts
HEAD_PREFIX = "fc."


class WeightsMismatchError(ValueError):
    """A checkpoint whose tensors do not fit the run's model; the message lists what differs."""


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` of the checkpoint at ``path`` (module docstring), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; `weights:` names one file per seed ({{seed}} in the path)")
    with reading(path, "Check that it is a PyTorch checkpoint (torch.save of a state_dict) and not cut short"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in CONTAINERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsMismatchError(
            f"{path}: holds no state_dict (a dict of tensors, at the top or under one of {list(CONTAINERS)}); "
            f"save one with torch.save(model.state_dict(), path)"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def layouts(state: dict) -> dict[str, dict]:
    """The checkpoint's keys renamed to the ``Classifier``'s under each layout (module docstring)."""
    backbone = {k if k.startswith(HEAD_PREFIX) else f"encoder.{k}": v for k, v in state.items()}
    return {"l2ood": state, "backbone+fc": backbone}


def _shapes(state: dict) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _match(model_shapes: dict, state: dict) -> str | None:
    for name, renamed in layouts(state).items():
        if _shapes(renamed) == model_shapes:
            return name
    return None


def fitting_architectures(state: dict, num_classes: int, image_size: int) -> list[str]:
    """The registered models (default arguments) whose tensors' names and shapes the checkpoint has."""
    fits = []
    for name in sorted(REGISTRY):
        try:
            model = build_model(name, num_classes, "nol2", image_size)
        except Exception:  # an architecture that cannot be built at this size fits nothing
            continue
        if _match(_shapes(model.state_dict()), state):
            fits.append(name)
    return fits


def load_into(model: torch.nn.Module, state: dict, where, num_classes: int, image_size: int) -> str:
    """Load ``state`` into ``model`` (a ``Classifier``) under the layout that fits it; returns the layout's
    name. No fit: a ``WeightsMismatchError`` naming the missing and unexpected keys and what would fit."""
    want = _shapes(model.state_dict())
    layout = _match(want, state)
    if layout is None:
        closest = min(layouts(state).values(), key=lambda s: len(set(s) ^ set(want)))
        missing = sorted(set(want) - set(closest))
        unexpected = sorted(set(closest) - set(want))
        wrong = sorted(k for k in set(want) & set(closest) if want[k] != tuple(closest[k].shape))

        def some(keys):
            return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "") if keys else "none"

        fits = fitting_architectures(state, num_classes, image_size)
        raise WeightsMismatchError(
            f"{where}: does not fit the run's model. Missing keys: {some(missing)}. Unexpected keys: {some(unexpected)}. "
            f"Wrong shapes: {some([f'{k} {tuple(closest[k].shape)} (model {want[k]})' for k in wrong])}. "
            + (
                f"Registered architectures it fits (models/, with {num_classes} classes): {', '.join(fits)}: "
                f"set the run's `model` to one of them."
                if fits
                else "No registered architecture fits it: add one under workflow/l2ood/models/ (README, Extending)."
            )
        )
    model.load_state_dict(layouts(state)[layout])
    return layout


def import_weights(src, cfg: dict, seed: int, out) -> dict:
    """Write the run's ``model.pt`` (``out``) from the external checkpoint ``src``, as training would:
    ``{"state_dict", "config", "seed"}``. Returns what the run's config.yaml records about the source."""
    from .checkpoint import save_model

    state = read_state_dict(src)
    model = build_model(cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg["model_kwargs"])
    layout = load_into(model, state, src, cfg["num_classes"], cfg["image_size"])
    save_model(model, cfg, seed, out)
    return {"path": str(src), "sha256": sha256(src), "layout": layout}
