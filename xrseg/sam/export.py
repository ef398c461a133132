"""Export MobileSAM from PyTorch to ONNX (build step; needs the ``export`` extra).

This is the only module that imports torch, and only :mod:`xrseg.sam.build` imports it, lazily.

Two graphs, following Segment Anything's own split:

- ``encoder``: ``image`` 1x3x1024x1024 float32 (normalised, zero-padded: see :mod:`xrseg.sam.transforms`)
  -> ``image_embeddings`` 1x256x64x64 float32.
- ``decoder``: ``image_embeddings`` 1x256x64x64, ``point_coords`` 1xNx2 float32 (model-frame pixels),
  ``point_labels`` 1xN float32 (1 fg, 0 bg, 2/3 box corners, -1 padding), ``mask_input`` 1x1x256x256 float32,
  ``has_mask_input`` 1 float32 -> ``low_res_masks`` 1x4x65536 float32 logits in token-major order (each of the
  64x64 image tokens' 4x4 block of the 256x256 mask, see :func:`xrseg.sam.transforms.unshuffle_low_res`),
  ``iou_predictions`` 1x4. Mask 0 is the single-mask output, masks 1-3 the multimask outputs. ``mask_input``
  has free height and width: with ``has_mask_input`` 0 its branch is weighted 0 and a 4x4 input does (the
  dense prompt is then the no-mask embedding, broadcast), which spares three convolutions on 256x256.

The decoder returns low-resolution logits only: upsampling to image size happens outside the graph, for the
masks that are asked for (ONNX Runtime runs a whole graph whatever outputs are requested). Its output
upscaling (two stride-2 2x2 transposed convolutions with a channel LayerNorm and GELUs) is rewritten as two
per-token matrix products (the pixel shuffle of the result is left to the caller, which needs it for at most
three masks and does it in a fraction of the time a 7-D Transpose takes in the graph), and the attention layers
between the prompt tokens and the 4096 image tokens are re-associated so no image token is ever projected (see
:func:`_token_to_image` and :func:`_image_to_token`): the same function to float rounding, in about 60% of the
decoder's FLOPs and without the large head-split transposes.
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


def _token_to_image(attn: Any, q_tokens: Any, k_image: Any, v_image: Any) -> Any:
    """SAM's ``Attention(q=tokens, k=image, v=image)`` without projecting the 4096 image tokens.

    Scores ``q_h . (W_k,h x_j + b_k,h)`` equal ``(W_k,h^T q_h) . x_j`` plus a per-row constant that softmax
    cancels, and ``sum_j a_hj (W_v,h x_j + b_v,h)`` equals ``W_v,h (sum_j a_hj x_j) + b_v,h`` because each row of
    ``a`` sums to 1. So the queries are mapped back into the 256-d input space instead of mapping every image
    token forward: two (8T x 256) x (256 x 4096) products instead of two (4096 x 256) x (256 x 128) ones.
    Shapes: q_tokens T x C, k_image and v_image N x C; returns T x C.
    """
    import math

    import torch

    heads = attn.num_heads
    head_dim = attn.internal_dim // heads
    channels = attn.embedding_dim
    tokens = q_tokens.shape[0]
    q = attn.q_proj(q_tokens).reshape(tokens, heads, head_dim).transpose(0, 1)  # H x T x d
    w_k = attn.k_proj.weight.reshape(heads, head_dim, channels)
    q_in = (q @ w_k).reshape(heads * tokens, channels) * (1.0 / math.sqrt(head_dim))
    weights = torch.softmax(q_in @ k_image.transpose(0, 1), dim=-1)  # HT x N
    pooled = (weights @ v_image).reshape(heads, tokens, channels)  # H x T x C
    w_v = attn.v_proj.weight.reshape(heads, head_dim, channels)
    out = pooled @ w_v.transpose(1, 2) + attn.v_proj.bias.reshape(heads, 1, head_dim)  # H x T x d
    return attn.out_proj(out.transpose(0, 1).reshape(tokens, heads * head_dim))


def _image_to_token(attn: Any, q_image: Any, k_tokens: Any, v_tokens: Any) -> Any:
    """SAM's ``Attention(q=image, k=tokens, v=tokens)`` without projecting the 4096 image tokens.

    ``(W_q,h x_j + b_q,h) . k_t,h`` equals ``x_j . (W_q,h^T k_t,h) + b_q,h . k_t,h``, and the output projection
    distributes over the attention sum: ``W_o [sum_t a_jht v_t,h]_h = sum_h sum_t a_jht (W_o,h v_t,h)``. So
    both big products become (4096 x 256) x (256 x 8T) and (4096 x 8T) x (8T x 256).
    Shapes: q_image N x C, k_tokens and v_tokens T x C; returns N x C.
    """
    import math

    import torch

    heads = attn.num_heads
    head_dim = attn.internal_dim // heads
    channels = attn.embedding_dim
    tokens = k_tokens.shape[0]
    scale = 1.0 / math.sqrt(head_dim)
    k = attn.k_proj(k_tokens).reshape(tokens, heads, head_dim).transpose(0, 1)  # H x T x d
    w_q = attn.q_proj.weight.reshape(heads, head_dim, channels)
    k_in = (w_q.transpose(1, 2) @ k.transpose(1, 2)).permute(1, 0, 2).reshape(channels, heads * tokens)
    bias = (attn.q_proj.bias.reshape(heads, 1, head_dim) @ k.transpose(1, 2)).reshape(1, heads * tokens)
    scores = (q_image @ (k_in * scale) + bias * scale).reshape(-1, heads, tokens)
    weights = torch.softmax(scores, dim=-1).reshape(-1, heads * tokens)  # N x HT
    v = attn.v_proj(v_tokens).reshape(tokens, heads, head_dim).transpose(0, 1)  # H x T x d
    w_o = attn.out_proj.weight.reshape(channels, heads, head_dim).permute(1, 2, 0)  # H x d x C
    values_out = (v @ w_o).reshape(heads * tokens, channels)  # HT x C
    return weights @ values_out + attn.out_proj.bias


def _two_way_transformer(transformer: Any, keys: Any, key_pe: Any, point_embedding: Any) -> Any:
    """SAM's TwoWayTransformer on unbatched tensors (keys, key_pe N x C; point_embedding T x C)."""
    queries = point_embedding
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries[None], k=queries[None], v=queries[None])[0]
        else:
            q = queries + point_embedding
            queries = queries + layer.self_attn(q=q[None], k=q[None], v=queries[None])[0]
        queries = layer.norm1(queries)
        q = queries + point_embedding
        k = keys + key_pe
        queries = layer.norm2(queries + _token_to_image(layer.cross_attn_token_to_image, q, k, keys))
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + point_embedding
        k = keys + key_pe
        keys = layer.norm4(keys + _image_to_token(layer.cross_attn_image_to_token, k, q, queries))
    q = queries + point_embedding
    k = keys + key_pe
    queries = transformer.norm_final_attn(
        queries + _token_to_image(transformer.final_attn_token_to_image, q, k, keys)
    )
    return queries, keys


def _embed_points(prompt_encoder: Any, coords: Any, labels: Any) -> Any:
    """SAM's sparse prompt embedding: coords 1xNx2 model-frame pixels, labels 1xN -> 1xNxC."""
    pe = prompt_encoder
    coords = (coords + 0.5) / 1024.0
    embedding = pe.pe_layer._pe_encoding(coords)
    labels = labels.unsqueeze(-1).expand_as(embedding)
    embedding = embedding * (labels != -1)
    embedding = embedding + pe.not_a_point_embed.weight * (labels == -1)
    for i in range(pe.num_point_embeddings):
        embedding = embedding + pe.point_embeddings[i].weight * (labels == i)
    return embedding


def _upscaled_masks(decoder: Any, keys: Any, mask_tokens_out: Any) -> Any:
    """The output upscaling as two per-token GEMMs and the hypernetwork product (``decoder`` the module built by
    :func:`_decoder_module`, ``keys`` 4096xC image tokens, ``mask_tokens_out`` 1xMxC) -> 1xMx65536 logits."""
    import torch
    from torch.nn import functional as F  # noqa: N812 - PyTorch's own convention

    md = decoder.mask_decoder
    x = keys @ decoder.w1 + decoder.b1  # 4096 x (2*2*64): (ky1, kx1, c1)
    x = x.reshape(4096 * 4, decoder.c1)
    x = F.gelu(F.layer_norm(x, (decoder.c1,), decoder.n1_weight, decoder.n1_bias, decoder.n1_eps))
    x = F.gelu(x @ decoder.w2 + decoder.b2)  # 16384 x (2*2*32): (ky2, kx2, c2)
    x = x.reshape(4096 * 16, decoder.c2)
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], dim=1
    )[0]  # 4 x 32
    # 4 x 65536 logits in token-major order (h, w, ky1, kx1, ky2, kx2); the pixel shuffle to 256x256
    # happens outside, for the masks that are returned (see xrseg.sam.transforms.unshuffle_low_res).
    masks = (hyper_in @ x.transpose(0, 1)).reshape(1, md.num_mask_tokens, 64 * 64 * 16)
    return masks


def _decoder_module(sam: Any) -> Any:
    import torch
    from torch import nn

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prompt_encoder = sam.prompt_encoder
            self.mask_decoder = sam.mask_decoder
            dense_pe = sam.prompt_encoder.get_dense_pe().detach()  # 1 x C x 64 x 64
            self.register_buffer("image_pe", dense_pe.flatten(2)[0].transpose(0, 1).contiguous())  # 4096 x C
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

        def forward(
            self,
            image_embeddings: torch.Tensor,
            point_coords: torch.Tensor,
            point_labels: torch.Tensor,
            mask_input: torch.Tensor,
            has_mask_input: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            md = self.mask_decoder
            sparse = _embed_points(self.prompt_encoder, point_coords, point_labels)
            dense = has_mask_input * self.prompt_encoder.mask_downscaling(mask_input) + (
                1 - has_mask_input
            ) * self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
            output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0).unsqueeze(0)
            tokens = torch.cat((output_tokens, sparse), dim=1)
            channels = image_embeddings.shape[1]
            src = (image_embeddings + dense).reshape(channels, -1).transpose(0, 1)  # 4096 x C
            hs, keys = _two_way_transformer(md.transformer, src, self.image_pe, tokens[0])
            iou_token_out = hs[0:1, :]
            mask_tokens_out = hs[None, 1 : 1 + md.num_mask_tokens, :]

            masks = _upscaled_masks(self, keys, mask_tokens_out)
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
            dynamic_axes={
                "point_coords": {1: "num_points"},
                "point_labels": {1: "num_points"},
                "mask_input": {2: "mask_height", 3: "mask_width"},
            },
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
