"""Spectral normalization of convolutions as DDU does it (Mukhoti et al. 2021; Gouk et al. 2018).

The bound is on the *convolution operator* for the layer's input shape, not on the reshaped
weight matrix (which is what ``torch.nn.utils.parametrizations.spectral_norm`` bounds, at 1):

    sigma ~ ||conv_W||_2 on inputs of shape (C_in, H, W),   W_used = W / max(1, sigma / coeff)

with coeff = 3 by default: a *soft* bound that leaves a layer alone while its norm is below coeff.
sigma comes from power iteration through the convolution and its adjoint (the transposed
convolution), one iteration per training-mode forward, the vectors kept as buffers between steps:

    v <- normalize(conv_transpose(u)),   u <- normalize(conv(v)),   sigma = <u, conv(v)>

In eval mode the stored vectors are reused without updating them, so eval is deterministic.
A 1x1, stride-1 convolution applies the same matrix at every pixel, so its operator norm is the
matrix norm of W (C_out x C_in); DDU (and we) iterate on that matrix there, with small vectors.
sigma is a Rayleigh quotient, never above the true norm, so with one iteration per step the
bound is approached from above as the estimate converges (tests: within 1% after ~100 steps).
DDU's conv version divides by max(1, sigma/coeff) + 1e-5; we drop the 1e-5 (the divisor is >= 1).

Written so that ``torch.compile`` can capture it whole: functional ops, buffer updates by
``.copy_()``, no in-place ``out=`` (DDU's code needs ``out=`` for DataParallel, which DDP does not).
Pass ``input_size`` when you compile; without it the vectors are sized at the first forward.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: DDU's coefficient for the soft bound (Mukhoti et al. 2021, their CIFAR-10 runs).
DEFAULT_COEFF = 3.0
_EPS = 1e-12  # the eps of F.normalize, as in DDU


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Spatial size after a convolution or pooling (the formula in the ``nn.Conv2d`` docs)."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


class SpectralNormConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is divided by max(1, sigma / coeff) at every forward.

    Same constructor as ``nn.Conv2d`` plus ``coeff`` and ``input_size`` (the (H, W) of the
    inputs this layer sees; an int means square; None: taken from the first input). Buffers:
    ``u`` and ``v`` (the power-iteration vectors) and ``sigma`` (last training-mode estimate,
    for logging). The parameter keeps its usual name ``weight``.
    """

    def __init__(
        self, *args, coeff: float = DEFAULT_COEFF, input_size=None, n_power_iterations: int = 1, **kwargs
    ):
        super().__init__(*args, **kwargs)
        if coeff <= 0:
            raise ValueError(f"spectral norm coeff must be positive, got {coeff}")
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError(
                "SpectralNormConv2d needs integer zero padding (the adjoint is conv_transpose2d)"
            )
        self.coeff = float(coeff)
        self.n_power_iterations = n_power_iterations
        # 1x1 stride-1 conv = one matrix at every pixel: its operator norm is that matrix's norm.
        self.matrix_mode = self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)
        self.register_buffer("sigma", torch.ones(()))
        self.register_buffer("u", torch.empty(0))
        self.register_buffer("v", torch.empty(0))
        self.input_shape: tuple[int, int, int] | None = None  # (C_in, H, W) in conv mode
        if self.matrix_mode:
            self._init_vectors(None)
        elif input_size is not None:
            self._init_vectors((input_size, input_size) if isinstance(input_size, int) else tuple(input_size))

    # --- shapes and initial vectors -----------------------------------------------------------
    def _shapes(self, hw):
        """(input shape, output shape) of the operator the vectors live in, batch of 1."""
        if self.matrix_mode:
            return (self.in_channels,), (self.out_channels,)
        h, w = hw
        ho, wo = (
            conv_output_size(s, k, st, p, d)
            for s, k, st, p, d in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)
        )
        return (1, self.in_channels, h, w), (1, self.out_channels, ho, wo)

    def _init_vectors(self, hw):
        in_shape, out_shape = self._shapes(hw)
        self.input_shape = None if self.matrix_mode else tuple(in_shape[1:])
        self._out_shape = out_shape
        if not self.matrix_mode:
            # conv_transpose2d needs output_padding to land exactly on the input size when stride > 1
            self._output_padding = tuple(
                size - ((o - 1) * st - 2 * p + d * (k - 1) + 1)
                for size, o, st, p, d, k in zip(
                    in_shape[2:], out_shape[2:], self.stride, self.padding, self.dilation, self.kernel_size
                )
            )
        device = self.weight.device
        self.u = F.normalize(torch.randn(out_shape, device=device).flatten(), dim=0, eps=_EPS)
        self.v = F.normalize(torch.randn(in_shape, device=device).flatten(), dim=0, eps=_EPS)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected, errors
    ):
        # A layer built without input_size has empty vectors: size them from the checkpoint.
        if not self.matrix_mode and self.v.numel() == 0 and prefix + "v" in state_dict:
            numel = state_dict[prefix + "v"].numel()
            side = round((numel / self.in_channels) ** 0.5)
            if self.in_channels * side * side != numel:
                raise ValueError(
                    f"{prefix}v: cannot infer a square input size; pass input_size= when building"
                )
            self._init_vectors((side, side))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected, errors
        )

    # --- the operator and its adjoint ----------------------------------------------------------
    def _apply_op(self, v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The layer's linear map (no bias) applied to a flat vector; returns a flat vector."""
        if self.matrix_mode:
            return torch.mv(weight.flatten(1), v)
        x = v.view(1, *self.input_shape)
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups).flatten()

    def _apply_adjoint(self, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.matrix_mode:
            return torch.mv(weight.flatten(1).t(), u)
        y = u.view(self._out_shape)
        return F.conv_transpose2d(
            y, weight, None, self.stride, self.padding, self._output_padding, self.groups, self.dilation
        ).flatten()

    def normalized_weight(self, update: bool = False) -> torch.Tensor:
        """W / max(1, sigma / coeff); with ``update`` first run the power iteration(s)."""
        weight = self.weight
        # The estimate is a long dot product: keep it in float32 even under autocast.
        with torch.autocast(weight.device.type, enabled=False):
            u, v = self.u, self.v
            if update:
                with torch.no_grad():
                    for _ in range(self.n_power_iterations):
                        v = F.normalize(self._apply_adjoint(u, weight), dim=0, eps=_EPS)
                        u = F.normalize(self._apply_op(v, weight), dim=0, eps=_EPS)
                    self.u.copy_(u)
                    self.v.copy_(v)
            # sigma = <u, W v>, differentiable in W (u, v constants), as in DDU.
            sigma = torch.dot(u, self._apply_op(v, weight))
            if update:
                self.sigma.copy_(sigma.detach())
            return weight / torch.clamp(sigma / self.coeff, min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.matrix_mode:
            if self.input_shape is None:
                self._init_vectors(tuple(x.shape[-2:]))
            elif tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"spectral-norm conv was set up for inputs {self.input_shape} (C, H, W) but got "
                    f"{tuple(x.shape[1:])}: build the model with the image_size you feed it "
                    f"(resize images to the training resolution)"
                )
        weight = self.normalized_weight(update=self.training)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        shape = "matrix" if self.matrix_mode else f"input_shape={self.input_shape}"
        return f"{super().extra_repr()}, coeff={self.coeff}, {shape}"
