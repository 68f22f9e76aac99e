"""Model registry: one function builds any model from its name.

    >>> model = build_model("smallcnn", num_classes=5, head="l2", image_size=8)
    >>> logits, features = model(images)        # features: pre-normalization, (B, d)

An architecture registers an *encoder builder* ``f(image_size=..., **kwargs) -> (encoder,
feature_dim)``; the head (``l2`` or ``nol2``, see ``l2ood.layout.HEADS``) is added here, the same
for every architecture. No class hierarchy: a dict of functions.
"""

from typing import Callable

from torch import nn

from .heads import Classifier

REGISTRY: dict[str, Callable[..., tuple[nn.Module, int]]] = {}


def register(name: str):
    """Decorator: add an encoder builder to the registry under ``name``."""

    def deco(fn):
        if name in REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return deco


def build_model(name: str, num_classes: int, head: str = "l2", image_size: int = 32, **kwargs) -> Classifier:
    """Build ``name`` with the given head for ``image_size`` x ``image_size`` RGB input."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(REGISTRY)}")
    encoder, feature_dim = REGISTRY[name](image_size=image_size, **kwargs)
    return Classifier(encoder, feature_dim, num_classes, head)


def _import_architectures() -> None:
    """Import every module of this package, so that an architecture registers itself by being a file
    here: a new ``models/<name>.py`` with an ``@register`` builder needs no second edit."""
    import importlib
    import pkgutil

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")


_import_architectures()
