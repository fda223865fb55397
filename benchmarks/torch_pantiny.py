"""Plain PyTorch (eager) PanTiny, written for `bench_vs_torch.py`.

This mirrors the paper's reference code (a Restormer-style network): channels-first
tensors, `torch.nn.Conv2d` without bias, a per-pixel LayerNorm over channels
(weight and bias, eps 1e-5) computed on a `(B, H*W, C)` view, "transposed"
channel attention with a learnable temperature per head, and a gated FFN with the
exact (erf) GELU. Default size: dim 28, 2 heads, 3 + 3 blocks, FFN hidden 56,
81,744 parameters for 4 bands (REFERENCE.md §7).

Input contract (channels-first, the PyTorch convention):
`forward(lms, pan)` with `lms` (B, C, 4h, 4w) the upsampled MS and `pan`
(B, 1, 4h, 4w), both float32 in [0, 1]; returns (B, C, 4h, 4w). The Keras model
takes the same tensors channels-last; the benchmark transposes inputs/outputs.

Only `torch` is needed (optional `bench` extra: `pip install keras-pansharp[bench]`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over channels per pixel, as in the reference (`to_3d` + LN)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x3 = x.flatten(2).transpose(1, 2)  # (B, HW, C), as `to_3d`
        mu = x3.mean(-1, keepdim=True)
        sigma = x3.var(-1, keepdim=True, unbiased=False)
        y = (x3 - mu) / torch.sqrt(sigma + self.eps) * self.weight + self.bias
        return y.transpose(1, 2).reshape(b, c, h, w)


class ChannelAttention(nn.Module):
    """Multi-head "transposed" attention over channels (MDTA)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False
        )
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = qkv.chunk(3, dim=1)
        heads = self.num_heads
        q = q.reshape(b, heads, c // heads, h * w)
        k = k.reshape(b, heads, c // heads, h * w)
        v = v.reshape(b, heads, c // heads, h * w)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        out = (attn @ v).reshape(b, c, h, w)
        return self.project_out(out)


class GatedFFN(nn.Module):
    """Gated depthwise feed-forward network (GDFN) with exact GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False
        )
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, hidden: int):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = ChannelAttention(dim, num_heads)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFFN(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TorchPanTiny(nn.Module):
    """PyTorch PanTiny (see module docstring for the input contract).

    Args:
        num_bands: number of MS bands C.
        dim: feature width (28).
        num_heads: attention heads (2).
        num_encoder_blocks: transformer blocks before the PAN fusion (3).
        num_body_blocks: transformer blocks after the fusion (3).
        ffn_expansion: FFN hidden width = dim * ffn_expansion (2 -> 56).
        pan_first: concatenate `[pan, features]` instead of `[features, pan]` in
            the fusion step (only the order of the fusion conv's input channels).
    """

    def __init__(
        self,
        num_bands: int = 4,
        dim: int = 28,
        num_heads: int = 2,
        num_encoder_blocks: int = 3,
        num_body_blocks: int = 3,
        ffn_expansion: int = 2,
        pan_first: bool = False,
    ):
        super().__init__()
        hidden = dim * ffn_expansion
        self.pan_first = pan_first
        self.embed = nn.Conv2d(num_bands, dim, 3, padding=1, bias=False)
        self.encoder = nn.Sequential(
            *[
                TransformerBlock(dim, num_heads, hidden)
                for _ in range(num_encoder_blocks)
            ]
        )
        self.fuse1 = nn.Conv2d(dim + 1, dim, 3, padding=1, bias=False)
        self.fuse2 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.body = nn.Sequential(
            *[TransformerBlock(dim, num_heads, hidden) for _ in range(num_body_blocks)]
        )
        self.refine = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.output = nn.Conv2d(dim, num_bands, 3, padding=1, bias=False)

    def forward(self, lms: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.embed(lms))
        x = torch.cat([pan, x] if self.pan_first else [x, pan], dim=1)
        x = self.fuse2(F.relu(self.fuse1(x)))
        x = self.refine(self.body(x))
        return self.output(x) + lms


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    m = TorchPanTiny()
    print("TorchPanTiny parameters:", count_parameters(m))
