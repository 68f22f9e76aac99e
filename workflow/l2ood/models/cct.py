"""CCT-7/3x1, the Compact Convolutional Transformer (Hassani et al. 2021), as its authors define it.

Following SHI-Labs/Compact-Transformers ``cct_7_3x1_32`` (read, not copied):
- tokenizer: one 3x3 stride-1 conv (3 -> 256, no bias), ReLU, 3x3 stride-2 max-pool (padding 1):
  a 32x32 image becomes 16 x 16 = 256 tokens of 256 dimensions;
- a learnable positional embedding (truncated normal, std 0.2);
- 7 encoder layers, 4 heads, MLP ratio 2 (256 -> 512 -> 256, GELU); attention dropout 0.1,
  no other dropout; stochastic depth rising linearly from 0 to 0.1 over the layers. The layer is
  the authors' (not the textbook pre-norm one): x += attn(LN(x)); x = LN(x); x += mlp(x);
- a final LayerNorm, then sequence pooling: softmax over tokens of a learned score, the
  attention-weighted mean token is the 256-d feature. The head from ``build_model`` replaces fc.
Linear weights: truncated normal, std 0.02, zero bias; conv: Kaiming normal.
With 10 classes this is 3,760,139 parameters (the paper's 3.76 M).
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .layers import drop_path


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, attention_dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.attention_dropout = num_heads, attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # Fused kernel, same math as softmax(q k^T / sqrt(d_head)) with dropout on the weights, times v.
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, attention_dropout: float, drop_prob: float):
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attention_dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.pre_norm(x)), self.drop_prob, self.training)
        x = self.norm1(x)
        return x + drop_path(self.linear2(F.gelu(self.linear1(x))), self.drop_prob, self.training)


class CCTEncoder(nn.Module):
    def __init__(
        self, image_size, dim, num_layers, num_heads, mlp_ratio, attention_dropout, stochastic_depth
    ):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 3, stride=1, padding=1, bias=False)
        side = (image_size + 2 * 1 - 3) // 2 + 1  # after the 3x3 stride-2 max-pool, padding 1
        self.positional_emb = nn.Parameter(torch.zeros(1, side * side, dim))
        # stochastic depth per layer: linspace(0, stochastic_depth, num_layers)
        rates = [stochastic_depth * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.layers = nn.ModuleList(
            EncoderLayer(dim, num_heads, int(dim * mlp_ratio), attention_dropout, r) for r in rates
        )
        self.norm = nn.LayerNorm(dim)
        self.attention_pool = nn.Linear(dim, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.conv.weight)
        nn.init.trunc_normal_(self.positional_emb, std=0.2)

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, tokens, dim)."""
        x = F.max_pool2d(F.relu(self.conv(x)), 3, stride=2, padding=1)
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokenize(x)
        if x.shape[1] != self.positional_emb.shape[1]:
            raise ValueError(
                f"CCT built for {self.positional_emb.shape[1]} tokens got {x.shape[1]}: "
                "build it with the image_size you feed it"
            )
        x = x + self.positional_emb
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        weights = F.softmax(self.attention_pool(x), dim=1)  # (B, tokens, 1): sequence pooling
        return (weights.transpose(1, 2) @ x).squeeze(1)


@register("cct_7_3x1")
def cct_7_3x1(
    image_size: int = 32,
    embedding_dim: int = 256,
    num_layers: int = 7,
    num_heads: int = 4,
    mlp_ratio: float = 2.0,
    attention_dropout: float = 0.1,
    stochastic_depth: float = 0.1,
):
    """CCT-7/3x1; features: embedding_dim (256)."""
    encoder = CCTEncoder(
        image_size, embedding_dim, num_layers, num_heads, mlp_ratio, attention_dropout, stochastic_depth
    )
    return encoder, embedding_dim
