"""The demo U-Net's layers in plain torch (no Lightning): used by the example LightningModule
(:class:`lightning_dicom.demo.segmentation_models.UNet3D`) and by ``benchmarks/inference.py``, which
compares sliding-window inference with MONAI without Lightning in the process.

Per level: two 3x3x3 convolutions, GroupNorm (fine with batch 1 and a 1-voxel bottleneck), LeakyReLU
0.01; ``depth`` max-poolings; transposed-convolution upsampling with skip connections; a 1x1x1 head.
Inputs of any spatial size work: D, H, W are padded up to a multiple of ``2**depth`` (edge replication)
and the logits cropped back.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet3DNet", "build_unet", "unet_forward"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    def norm(c: int) -> nn.GroupNorm:
        return nn.GroupNorm(min(4, c), c)

    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
        norm(c_out),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
        norm(c_out),
        nn.LeakyReLU(0.01, inplace=True),
    )


def build_unet(module: nn.Module, in_channels: int, num_classes: int, width: int, depth: int) -> None:
    """Set ``module.down``, ``module.up``, ``module.dec`` and ``module.head`` (channels ``width * 2**k``)."""
    widths = [width * 2**k for k in range(depth + 1)]
    module.down = nn.ModuleList()
    c = in_channels
    for w in widths:
        module.down.append(_block(c, w))
        c = w
    module.up = nn.ModuleList()
    module.dec = nn.ModuleList()
    for w in reversed(widths[:-1]):
        module.up.append(nn.ConvTranspose3d(c, w, 2, stride=2))
        module.dec.append(_block(2 * w, w))
        c = w
    module.head = nn.Conv3d(c, num_classes, 1)


def unet_forward(module: nn.Module, x: torch.Tensor, depth: int) -> torch.Tensor:
    """Logits ``[B, K, D, H, W]`` of ``x`` ``[B, C, D, H, W]`` through the layers of :func:`build_unet`."""
    size = x.shape[2:]
    m = 2**depth
    pad = [(-s) % m for s in size]
    if any(pad):
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
    down, up_convs, decoders = (cast(nn.ModuleList, getattr(module, n)) for n in ("down", "up", "dec"))
    skips = []
    for k, block in enumerate(down):
        x = block(x)
        if k < len(down) - 1:
            skips.append(x)
            x = F.max_pool3d(x, 2)
    for up, dec, skip in zip(up_convs, decoders, reversed(skips), strict=True):
        x = dec(torch.cat([up(x), skip], dim=1))
    return cast(nn.Module, module.head)(x)[:, :, : size[0], : size[1], : size[2]]


class UNet3DNet(nn.Module):
    """The demo U-Net as a plain ``nn.Module`` (same layers and parameter names as the LightningModule)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 8, depth: int = 3) -> None:
        super().__init__()
        self.depth = depth
        build_unet(self, in_channels, num_classes, width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unet_forward(self, x, self.depth)
