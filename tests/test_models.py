"""The paper's architectures: parameter counts, shapes, spectral norm, the L2 head.

Full-size models are only built on the meta device (no memory, no init cost) to count their
parameters; everything that runs a forward pass uses small widths.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from l2ood.models import build_model
from l2ood.models.resnet import AvgPoolShortcut
from l2ood.models.spectral import SpectralNormConv2d

COEFF = 3.0


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return build_model(name, num_classes=10, head="l2", image_size=32, **kwargs)


# Hand arithmetic helpers: weights (+ bias) of one layer.
def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):  # BatchNorm / LayerNorm: weight and bias
    return 2 * c


def linear(cin, cout):
    return cin * cout + cout


FC10 = linear  # build_model adds the fc layer: every count below includes fc(feature_dim -> 10)


# --- parameter counts -----------------------------------------------------------------------------


def test_resnet18_parameter_count():
    # Source: the CIFAR ResNet18 with 1x1 projection shortcuts (kuangliu/pytorch-cifar, also DDU
    # with mod=False) has 11,173,962 parameters for 10 classes. Its three projection shortcuts
    # (1x1 conv + BN at the start of stages 2-4) are what the parameter-free shortcut removes:
    projections = (conv(64, 128, 1) + bn(128)) + (conv(128, 256, 1) + bn(256)) + (conv(256, 512, 1) + bn(512))
    assert projections == 8_448 + 33_280 + 132_096 == 173_824
    # By hand: stem, then per stage [first block (cin -> c), second block (c -> c)].
    block = lambda cin, c: conv(cin, c, 3) + conv(c, c, 3) + 2 * bn(c)
    stem = conv(3, 64, 3) + bn(64)  # 1,728 + 128
    stages = sum(block(cin, c) + block(c, c) for cin, c in [(64, 64), (64, 128), (128, 256), (256, 512)])
    by_hand = stem + stages + FC10(512, 10)
    assert by_hand == 11_000_138 == 11_173_962 - projections
    assert n_params(meta_model("resnet18")) == by_hand
    # Spectral normalization adds buffers, not parameters.
    assert n_params(meta_model("resnet18", spectral=False)) == by_hand


def test_resnet50_parameter_count():
    # Source: the CIFAR ResNet50 with projection shortcuts (kuangliu/pytorch-cifar) has
    # 23,520,842 parameters for 10 classes; its four projections (incl. stage 1: 64 -> 256) go.
    projections = sum(
        conv(cin, cout, 1) + bn(cout) for cin, cout in [(64, 256), (256, 512), (512, 1024), (1024, 2048)]
    )
    assert projections == 2_776_576

    def bottleneck(cin, p):  # 1x1 (cin -> p), 3x3 (p -> p), 1x1 (p -> 4p), three BN
        return conv(cin, p, 1) + conv(p, p, 3) + conv(p, 4 * p, 1) + bn(p) + bn(p) + bn(4 * p)

    stem = conv(3, 64, 3) + bn(64)
    stages = 0
    for cin, p, n in [(64, 64, 3), (256, 128, 4), (512, 256, 6), (1024, 512, 3)]:
        stages += bottleneck(cin, p) + (n - 1) * bottleneck(4 * p, p)
    by_hand = stem + stages + FC10(2048, 10)
    assert by_hand == 20_744_266 == 23_520_842 - projections  # "about 20.7 M"
    assert n_params(meta_model("resnet50")) == by_hand


def test_vgg16_parameter_count():
    # Source: VGG16 for CIFAR-10 (kuangliu/pytorch-cifar: 13 biased 3x3 convs + BN + Linear(512, 10))
    # has 14,728,266 parameters. DDU's (ours) drops the conv biases (BN follows each conv).
    channels = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    cins = [3] + channels[:-1]
    convs = sum(conv(cin, c, 3) for cin, c in zip(cins, channels))
    assert convs == 14_710_464
    by_hand = convs + sum(bn(c) for c in channels) + FC10(512, 10)
    assert by_hand == 14_724_042 == 14_728_266 - sum(channels)  # sum(channels) = 4,224 biases
    assert n_params(meta_model("vgg16")) == by_hand


def test_convnext_tiny_parameter_count():
    # Source: torchvision's ConvNeXt_Tiny_Weights meta, num_params = 28,589,128 (1000 classes).
    # The paper's modification: stem kernel 4 -> 3 (3 x 96 x (16 - 9) weights fewer), every
    # depthwise kernel 7 -> 3 (dim x (49 - 9) fewer per block), and a 10-class fc.
    dims, depths = [96, 192, 384, 768], [3, 3, 9, 3]
    stem_saving = 3 * 96 * (16 - 9)
    dw_saving = sum(d * n * (49 - 9) for d, n in zip(dims, depths))
    fc_saving = linear(768, 1000) - linear(768, 10)
    assert (stem_saving, dw_saving, fc_saving) == (2_016, 264_960, 761_310)
    by_hand = 28_589_128 - stem_saving - dw_saving - fc_saving
    assert by_hand == 27_560_842
    assert n_params(meta_model("convnext_tiny")) == by_hand
    # With torchvision's kernels (4/4 stem, 7x7 depthwise) it is torchvision's model exactly.
    unmodified = meta_model("convnext_tiny", stem_kernel=4, stem_stride=4, kernel_size=7)
    assert n_params(unmodified) == 28_589_128 - fc_saving


def test_cct_7_3x1_parameter_count():
    # Source: Hassani et al. 2021 (Table for CIFAR) and the SHI-Labs/Compact-Transformers README:
    # CCT-7/3x1 has 3.76 M parameters. By hand, for 32 px and 10 classes (dim 256, MLP 512):
    d, tokens = 256, 16 * 16  # 3x3 stride-1 conv keeps 32 px, the stride-2 max-pool halves it
    tokenizer = conv(3, d, 3)  # no bias
    layer = bn(d) + 3 * d * d + linear(d, d) + bn(d) + linear(d, 2 * d) + linear(2 * d, d)
    assert layer == 526_336
    by_hand = tokenizer + tokens * d + 7 * layer + bn(d) + linear(d, 1) + FC10(d, 10)
    assert by_hand == 3_760_139
    assert n_params(meta_model("cct_7_3x1")) == by_hand


def test_convnext_matches_torchvision_when_unmodified():
    """Our ConvNeXt with torchvision's kernels, given torchvision's weights, computes its features."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    settings = [
        CNBlockConfig(8, 16, 1),
        CNBlockConfig(16, 32, 1),
        CNBlockConfig(32, 64, 2),
        CNBlockConfig(64, None, 1),
    ]
    theirs = ConvNeXt(settings, stochastic_depth_prob=0.1).eval()
    theirs.classifier[2] = nn.Identity()  # our encoder ends before the fc
    ours = build_model(
        "convnext_tiny",
        10,
        "nol2",
        32,
        width=8,
        depths=(1, 1, 2, 1),
        stem_kernel=4,
        stem_stride=4,
        kernel_size=7,
    ).encoder.eval()
    # Both register parameters in the same order (block: layer scale first, then its layers).
    mine, tv = list(ours.parameters()), list(theirs.parameters())
    assert [p.shape for p in mine] == [p.shape for p in tv]
    with torch.no_grad():
        for a, b in zip(mine, tv):
            a.copy_(b)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), theirs(x))


def test_cct_attention_is_the_textbook_formula():
    from l2ood.models.cct import Attention

    torch.manual_seed(0)
    attn = Attention(dim=8, num_heads=2, attention_dropout=0.1).eval()
    x = torch.randn(3, 5, 8)
    q, k, v = attn.qkv(x).split(8, dim=-1)
    heads = lambda t: t.view(3, 5, 2, 4).transpose(1, 2)  # (B, heads, tokens, 4)
    weights = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 4**0.5, dim=-1)
    expected = attn.proj((weights @ heads(v)).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(attn(x), expected)


# --- shapes, heads, determinism -------------------------------------------------------------------

SMALL = {
    "resnet18": {"width": 4},
    "resnet50": {"width": 4},
    "vgg16": {"width": 4},
    "convnext_tiny": {"width": 8, "depths": (1, 1, 2, 1)},
    "cct_7_3x1": {"embedding_dim": 16, "num_layers": 2},
}
FEATURES = {"resnet18": 32, "resnet50": 128, "vgg16": 32, "convnext_tiny": 64, "cct_7_3x1": 16}


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("head", ["l2", "nol2"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shapes_and_eval_determinism(name, head, image_size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, head=head, image_size=image_size, **SMALL[name])
    x = torch.randn(2, 3, image_size, image_size)
    model.train()
    logits, features = model(x)  # one training step's forward (updates the spectral-norm vectors)
    assert logits.shape == (2, 7) and features.shape == (2, FEATURES[name])
    model.eval()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        a, b = model(x), model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # no dropout, drop-path or SN update in eval
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), f"eval forward changed {k}"
    assert torch.isfinite(a[0]).all() and torch.isfinite(a[1]).all()


class Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, z):
        return self.c * z


@pytest.mark.parametrize("name", ["resnet18", "cct_7_3x1"])
def test_l2_head_ignores_feature_scale(name):
    x = torch.randn(3, 3, 32, 32)
    per_image = torch.tensor([[1.0], [9.0], [0.1]])
    for head in ("l2", "nol2"):
        torch.manual_seed(0)
        model = build_model(name, 5, head, 32, **SMALL[name]).eval()
        encoder = model.encoder
        with torch.no_grad():
            logits, z = model(x)
            model.encoder = nn.Sequential(encoder, Scale(7.5))
            logits_scaled, z_scaled = model(x)
            # per image: Algorithm 1's bug (one norm for the whole batch) would fail this
            model.encoder = nn.Sequential(encoder, Scale(per_image))
            logits_per_image, _ = model(x)
        torch.testing.assert_close(z_scaled, 7.5 * z)
        if head == "l2":  # the classifier sees z / ||z||
            torch.testing.assert_close(logits_scaled, logits)
            torch.testing.assert_close(logits_per_image, logits)
        else:
            assert not torch.allclose(logits_scaled, logits)


@pytest.mark.parametrize("head", ["linear", "L2", "No L2", ""])
def test_unknown_head_is_refused_with_the_choices(head):
    with pytest.raises(ValueError, match=r"unknown head .*'l2' \(L2\), 'nol2' \(No L2\)"):
        build_model("smallcnn", 3, head, 8, width=4)


def test_shared_layers_are_the_ones_every_model_uses():
    """One global average pool and one drop_path (models/layers.py), not a copy per architecture."""
    from l2ood.models import cct, convnext, layers, resnet, small_cnn, vgg

    assert cct.drop_path is convnext.drop_path is layers.drop_path
    assert resnet.global_avg_pool is convnext.global_avg_pool is layers.global_avg_pool
    assert small_cnn.GlobalAvgPool is vgg.GlobalAvgPool is layers.GlobalAvgPool
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(layers.GlobalAvgPool()(x), F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_drop_path_zeroes_whole_samples_and_keeps_the_mean():
    from l2ood.models.layers import drop_path

    x = torch.ones(4000, 3, 2)
    assert drop_path(x, 0.3, training=False) is x and drop_path(x, 0.0, training=True) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.3, training=True)
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] > 0
    assert torch.equal(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.7))  # survivors scaled up
    assert torch.equal(per_sample[~kept], torch.zeros_like(per_sample[~kept]))  # the rest zero, all of it
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.03)


def test_l2_gradient_is_orthogonal_to_features():
    """Paper Eq. 7: with the L2 head, dL/dz is orthogonal to z (per image)."""
    torch.manual_seed(0)
    model = build_model("resnet18", 10, "l2", 32, **SMALL["resnet18"])
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, z = model(x)
    z.retain_grad()
    F.cross_entropy(logits, y).backward()
    cos = F.cosine_similarity(z.grad, z, dim=1)
    assert z.grad.abs().max() > 0
    assert cos.abs().max() < 1e-5, cos


# --- spectral normalization -----------------------------------------------------------------------


def exact_operator_norm(layer: SpectralNormConv2d, weight: torch.Tensor) -> float:
    """Largest singular value of x -> conv2d(x, weight) on the layer's inputs, exactly (in float64).

    Independent of spectral.py's power iteration: the operator's full matrix is built by applying
    the convolution to every basis image, then its top singular value comes from an eigensolver.
    A 1x1 stride-1 conv applies the same (C_out x C_in) matrix at every pixel: its operator norm
    is that matrix's norm for any input size.
    """
    w = weight.detach().double()
    if layer.matrix_mode:
        return torch.linalg.matrix_norm(w.flatten(1), 2).item()
    c, h, wd = layer.input_shape
    n = c * h * wd
    matrix = F.conv2d(
        torch.eye(n, dtype=torch.float64).view(n, c, h, wd), w, None, layer.stride, layer.padding
    )
    matrix = matrix.flatten(1)  # (inputs, outputs): row i is the image of basis vector i
    gram = matrix.T @ matrix if matrix.shape[1] < matrix.shape[0] else matrix @ matrix.T
    return torch.linalg.eigvalsh(gram)[-1].sqrt().item()


@pytest.mark.parametrize(
    "kernel,stride,size",
    [(3, 1, 8), (3, 2, 8), (3, 2, 7), (1, 1, 8), (1, 2, 8)],
    ids=["3x3", "3x3-stride2", "3x3-stride2-odd", "1x1-matrix", "1x1-stride2"],
)
def test_spectral_conv_bounds_the_operator_norm(kernel, stride, size):
    torch.manual_seed(0)
    layer = SpectralNormConv2d(4, 6, kernel, stride, kernel // 2, bias=False, coeff=COEFF, input_size=size)
    with torch.no_grad():
        layer.weight.mul_(10)  # so the bound is active
    assert exact_operator_norm(layer, layer.weight) > 2 * COEFF
    x = torch.randn(2, 4, size, size)
    layer.train()
    for _ in range(50):
        out = layer(x)
    assert out.shape == F.conv2d(x, layer.weight, None, stride, kernel // 2).shape
    norm = exact_operator_norm(layer, layer.normalized_weight())
    # sigma is a Rayleigh quotient, never above the true norm: the bound is reached from above.
    assert COEFF * (1 - 1e-6) <= norm <= COEFF * (1 + 5e-3)
    # Below the coefficient the weight is left alone (soft bound).
    with torch.no_grad():
        layer.weight.mul_(0.2 * COEFF / exact_operator_norm(layer, layer.weight))
    for _ in range(3):
        layer(x)
    torch.testing.assert_close(layer.normalized_weight(), layer.weight)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16"])
def test_spectral_norm_in_models_after_training(name):
    """After SGD steps and further training-mode forwards, every conv's operator norm is <= coeff."""
    torch.manual_seed(0)
    size = 32 if name == "vgg16" else 16
    model = build_model(name, 10, "l2", size, width=4 if name != "vgg16" else 2)
    layers = [m for m in model.modules() if isinstance(m, SpectralNormConv2d)]
    assert len(layers) == {"resnet18": 17, "resnet50": 49, "vgg16": 13}[name]  # every conv
    assert not any(type(m) is nn.Conv2d for m in model.modules())
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(5)  # push every conv over the coefficient
    assert min(exact_operator_norm(m, m.weight) for m in layers) > COEFF
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(8, 3, size, size), torch.randint(0, 10, (8,))
    model.train()
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(model(x)[0], y).backward()
        opt.step()
    with torch.no_grad():  # one power iteration per forward: let the estimates catch up
        for _ in range(100):
            model(x[:1])
    norms = [exact_operator_norm(m, m.normalized_weight()) for m in layers]
    assert max(norms) <= COEFF * 1.01, norms
    assert min(norms) >= COEFF * (1 - 1e-6), norms


def test_spectral_false_builds_plain_convs():
    model = build_model("resnet18", 10, "l2", 32, width=4, spectral=False)
    assert not any(isinstance(m, SpectralNormConv2d) for m in model.modules())
    assert sum(type(m) is nn.Conv2d for m in model.modules()) == 17


def test_spectral_state_dict_round_trip_and_wrong_size():
    torch.manual_seed(0)
    model = build_model("resnet18", 10, "l2", 32, width=4)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    for _ in range(3):
        model(x)
    fresh = build_model("resnet18", 10, "l2", 32, width=4)
    fresh.load_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
        with pytest.raises(ValueError, match="image_size"):
            model(torch.randn(1, 3, 64, 64))


def test_spectral_conv_sized_at_first_forward():
    torch.manual_seed(0)
    lazy = SpectralNormConv2d(3, 5, 3, 1, 1, bias=False)
    lazy(torch.randn(1, 3, 6, 6))
    assert lazy.input_shape == (3, 6, 6) and lazy.v.numel() == 3 * 36
    other = SpectralNormConv2d(3, 5, 3, 1, 1, bias=False)  # unsized: sized by the checkpoint
    other.load_state_dict(lazy.state_dict())
    assert other.input_shape == (3, 6, 6)
    torch.testing.assert_close(other.eval().normalized_weight(), lazy.eval().normalized_weight())


def test_spectral_model_captures_in_one_graph():
    """The SN update is compile-friendly: dynamo captures a training step without graph breaks,
    and AOT autograd (functionalized buffer updates) gives the eager results. No C compiler needed."""
    torch.manual_seed(0)
    model = build_model("resnet18", 10, "l2", 32, width=4)
    reference = copy.deepcopy(model)
    x = torch.randn(2, 3, 32, 32)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    logits, _ = compiled(x)
    logits.sum().backward()
    ref_logits, _ = reference(x)
    ref_logits.sum().backward()
    torch.testing.assert_close(logits, ref_logits)
    for (k, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"buffer/parameter {k} differs")
    grads = [(p.grad, q.grad) for p, q in zip(model.parameters(), reference.parameters())]
    for a, b in grads:
        torch.testing.assert_close(a, b)


def test_avgpool_shortcut_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = AvgPoolShortcut(stride=2, cin=1, cout=3)(x)
    assert out.shape == (1, 3, 2, 2)
    # 2x2 means of [[0,1],[4,5]] = 2.5 etc.; the two new channels are zeros.
    torch.testing.assert_close(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert torch.equal(out[0, 1:], torch.zeros(2, 2, 2))
    odd = AvgPoolShortcut(stride=2, cin=1, cout=1)(torch.arange(9.0).view(1, 1, 3, 3))
    torch.testing.assert_close(odd[0, 0], torch.tensor([[0.0, 2.0], [6.0, 8.0]]))  # subsampled
    assert list(AvgPoolShortcut(2, 1, 3).parameters()) == []


def test_a_new_model_file_registers_itself_without_a_second_edit(tmp_path):
    import shutil
    import subprocess
    import sys

    from conftest import ROOT

    pkg = tmp_path / "l2ood"
    shutil.copytree(ROOT / "workflow/l2ood", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "models/tinynet.py").write_text(
        "from torch import nn\n\nfrom . import register\n\n\n"
        "@register('tinynet')\ndef tinynet(image_size=32):\n    return nn.Sequential(nn.Flatten(), nn.LazyLinear(4)), 4\n"
    )
    code = "from l2ood.models import REGISTRY, build_model; build_model('tinynet', 3); print(sorted(REGISTRY))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "'tinynet'" in proc.stdout and "'resnet18'" in proc.stdout
