"""Export MobileSAM from PyTorch to ONNX (build step; needs the ``export`` extra).

This is the only module that imports torch, and only :mod:`xrseg.sam.build` imports it, lazily.

Two graphs, following Segment Anything's own split:

- ``encoder``: ``image`` 1x3x1024x1024 float32 (normalised, zero-padded: see :mod:`xrseg.sam.transforms`)
  -> ``image_embeddings`` 1x256x64x64 float32.
- ``decoder``: ``image_embeddings`` 1x256x64x64, ``point_coords`` 1xNx2 float32 (model-frame pixels),
  ``point_labels`` 1xN float32 (1 fg, 0 bg, 2/3 box corners, -1 padding), ``mask_input`` 1x1x256x256 float32,
  ``has_mask_input`` 1 float32 -> ``low_res_masks`` 1x4x256x256 float32 logits, ``iou_predictions`` 1x4.
  Mask 0 is the single-mask output, masks 1-3 the multimask outputs.

The decoder returns low-resolution logits only: upsampling to image size happens outside the graph, for the
masks that are asked for (ONNX Runtime runs a whole graph whatever outputs are requested). Its output
upscaling (two stride-2 2x2 transposed convolutions with a channel LayerNorm and GELUs) is rewritten as two
per-token matrix products and a pixel shuffle: the same arithmetic, but as large GEMMs and a fused
LayerNormalization instead of strided convolutions and a hand-rolled channel norm.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPSET = 17


def load_mobile_sam(checkpoint: Path) -> Any:
    """The official MobileSAM model (``mobile_sam`` package) with ``checkpoint`` loaded, in eval mode."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry

        model = sam_model_registry["vit_t"](checkpoint=None)
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


def _decoder_module(sam: Any) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prompt_encoder = sam.prompt_encoder
            self.mask_decoder = sam.mask_decoder
            self.register_buffer("image_pe", sam.prompt_encoder.get_dense_pe().detach().clone())
            up = sam.mask_decoder.output_upscaling
            conv1, norm1, conv2 = up[0], up[1], up[3]
            # ConvTranspose2d weight is (in, out, ky, kx); as a per-token GEMM: (in, ky * kx * out).
            self.w1 = nn.Parameter(conv1.weight.detach().permute(0, 2, 3, 1).reshape(conv1.in_channels, -1))
            self.b1 = nn.Parameter(conv1.bias.detach().repeat(4))
            self.n1_weight = nn.Parameter(norm1.weight.detach().clone())
            self.n1_bias = nn.Parameter(norm1.bias.detach().clone())
            self.n1_eps = norm1.eps
            self.w2 = nn.Parameter(conv2.weight.detach().permute(0, 2, 3, 1).reshape(conv2.in_channels, -1))
            self.b2 = nn.Parameter(conv2.bias.detach().repeat(4))
            self.c1 = conv1.out_channels
            self.c2 = conv2.out_channels

        def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            pe = self.prompt_encoder
            coords = (coords + 0.5) / 1024.0
            embedding = pe.pe_layer._pe_encoding(coords)
            labels = labels.unsqueeze(-1).expand_as(embedding)
            embedding = embedding * (labels != -1)
            embedding = embedding + pe.not_a_point_embed.weight * (labels == -1)
            for i in range(pe.num_point_embeddings):
                embedding = embedding + pe.point_embeddings[i].weight * (labels == i)
            return embedding

        def forward(
            self,
            image_embeddings: torch.Tensor,
            point_coords: torch.Tensor,
            point_labels: torch.Tensor,
            mask_input: torch.Tensor,
            has_mask_input: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            md = self.mask_decoder
            sparse = self._embed_points(point_coords, point_labels)
            dense = has_mask_input * self.prompt_encoder.mask_downscaling(mask_input) + (
                1 - has_mask_input
            ) * self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
            output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0).unsqueeze(0)
            tokens = torch.cat((output_tokens, sparse), dim=1)
            hs, keys = md.transformer(image_embeddings + dense, self.image_pe, tokens)  # keys: 1 x 4096 x 256
            iou_token_out = hs[:, 0, :]
            mask_tokens_out = hs[:, 1 : 1 + md.num_mask_tokens, :]

            x = keys[0] @ self.w1 + self.b1  # 4096 x (2*2*64): (ky1, kx1, c1)
            x = x.reshape(4096 * 4, self.c1)
            x = F.gelu(F.layer_norm(x, (self.c1,), self.n1_weight, self.n1_bias, self.n1_eps))
            x = F.gelu(x @ self.w2 + self.b2)  # 16384 x (2*2*32): (ky2, kx2, c2)
            x = x.reshape(4096 * 16, self.c2)
            hyper_in = torch.stack(
                [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], dim=1
            )[0]  # 4 x 32
            masks = x @ hyper_in.transpose(0, 1)  # (h, w, ky1, kx1, ky2, kx2) x 4
            masks = masks.reshape(64, 64, 2, 2, 2, 2, md.num_mask_tokens)
            masks = masks.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, md.num_mask_tokens, 256, 256)
            iou_pred = md.iou_prediction_head(iou_token_out)
            return masks, iou_pred

    return Decoder().eval()


def export_encoder(sam: Any, path: Path) -> None:
    """Write the image encoder as ONNX (static 1x3x1024x1024 input)."""
    import torch

    dummy = torch.zeros(1, 3, 1024, 1024, dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            sam.image_encoder,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["image_embeddings"],
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def export_decoder(sam: Any, path: Path) -> None:
    """Write the prompt encoder + mask decoder as ONNX (dynamic number of points)."""
    import torch

    module = _decoder_module(sam)
    inputs = (
        torch.randn(1, 256, 64, 64, dtype=torch.float32),
        torch.randint(0, 1024, (1, 5, 2), dtype=torch.float32),
        torch.randint(0, 4, (1, 5), dtype=torch.float32),
        torch.zeros(1, 1, 256, 256, dtype=torch.float32),
        torch.zeros(1, dtype=torch.float32),
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            str(path),
            input_names=["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"],
            output_names=["low_res_masks", "iou_predictions"],
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
