"""Classifier heads: the paper's L2 head ("l2") and the baseline without it ("nol2").

Every model in the registry is an encoder followed by one of these heads. The forward pass
returns ``(logits, features)`` where ``features`` are the encoder's output *before*
normalization, so every OoD score (feature norm, logits, softmax) comes from one pass.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layout import HEADS

#: eps of the paper's Eq. 6, z / max(||z||, eps); the value F.normalize uses by default.
L2_EPS = 1e-12


def check_head(head: str) -> str:
    """``head`` itself if it is a head's code name; a ValueError naming the choices otherwise."""
    if head not in HEADS:
        choices = ", ".join(f"{code!r} ({printed})" for code, printed in HEADS.items())
        raise ValueError(f"unknown head {head!r}; choose one of {choices}")
    return head


class Classifier(nn.Module):
    """``encoder`` (B, ...) -> (B, feature_dim), then a linear layer.

    head="l2": the linear layer sees z / max(||z||_2, eps) (paper Eq. 6, Algorithm 1 with the
    per-image norm: ``z.norm(dim=1)``, not one norm for the whole batch).
    head="nol2": the linear layer sees z itself (the paper's "No L2" baseline).
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, head: str = "l2"):
        super().__init__()
        self.encoder = encoder
        self.head = check_head(head)
        self.feature_dim = feature_dim
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        zin = F.normalize(z, p=2.0, dim=1, eps=L2_EPS) if self.head == "l2" else z
        return self.fc(zin), z
