"""MoST - Monarch sparse tuning (Han et al., CVPR 2025), equal to the official code (xhanxu/MoST,
``models/PointGPT_MoST.py`` + ``models/GPT_MoST.py`` + ``models/structured/modules``; layers in :mod:`.monarch`).

**What it is.** Once per forward, a kNN graph of the patch centres (k = 5 with the centre itself dropped: 4
neighbours, Euclidean distances), read from ``backbone.group_divider``'s output (PointGPT: the centres in token
order). In **every block** - PointGPT's 24 extractor blocks *and* its 4 generator blocks - the attention output
``a`` (of the normalised input ``x``) becomes ``a + PointMonarch(x, a)``: a smoother ``K_in``, a Monarch linear map
(blocks of ``dim / monarch_blocks``, exact interleaving permutation, bias) and a smoother ``K_out``, each smoother
adding the parameter-free adaptive bias ``c`` (batch mean + patch mean of ``a``) to the patch tokens. Tokens
before the patches (sos, cls, prompts) bypass the smoothers. The head input is
``concat(cls, max of the patches + fuse)`` with ``fuse = cls_token_norm(Σ_i 2^i (max + mean of the patches of the
raw output of fused layer i))`` over the fused layers in ascending order (PointGPT-L: 7, 15, 23 with weights 1, 2,
4); the head itself is the backbone's.

**Trained** as the official ``runner_peft`` ('cls' or 'monarch' in the name): cls token and pos, ``cls_norm``,
``cls_token_norm``, the head and every PointMonarch tensor (the unused ``ln`` included): 8,142,095 of 368,000,463
on PointGPT-L with 15 classes. Frozen BatchNorms keep updating their statistics in train mode, as official.

**Defaults = official**, including its initialisation: ``blkdiag1 = blkdiag2 = 0``, Monarch bias 0, ``knorm`` 0.
Under the official recipe the zero-initialised factors never train: ``∂L/∂blkdiag1`` is a product with
``blkdiag2 = 0`` and ``∂L/∂blkdiag2`` one with ``blkdiag1·s = 0``, so both gradients are exactly zero; ``K_out``
then smooths a constant (the bias), whose neighbour differences are 0, so ``knorm`` of ``K_out`` gets no gradient
either, and ``K_in``'s reaches the loss only through the zero Monarch product. AdamW leaves all of them at 0: the
trained adapter is a per-block bias plus the parameter-free ``c``. The full Monarch / IDW / RMS path still runs,
so loaded non-zero factors act exactly as in the official code.

**Options that deviate from the official code** (off by default):

* ``per_sample_bias=True``: the batch-mean term of ``c`` is taken per cloud (as at batch 1), so a cloud's logits no
  longer depend on the other clouds of its batch. Official logits do (test batches of 32).
* ``factor_init="kaiming_zero"``: ``blkdiag1`` starts kaiming-uniform (per block, bound 1/sqrt(fan_in)),
  ``blkdiag2`` at 0: the model starts from the same function, but the factors (and then both ``knorm`` gains) get
  gradients, so the Monarch map itself is tuned (the method as named; the official recipe never moves it).

**Other backbones.** The official code runs PointGPT-L only. Elsewhere: the fused layers are
``range(depth - 1, 0, -(depth // fusion_layers))``, keeping the deepest ``fusion_layers`` (PointGPT-L: 23, 15, 7;
depth 12: 11, 7, 3), so ``norm`` always reads the last block (the official formula is hard-coded for depth 24);
the smoothers act on the last G tokens (G = the number of centres, 128 officially). PointGPT-S/B, Point-MAE,
ACT and Point-BERT are accepted (on the Point-MAE family DropPath acts on ``a + PointMonarch`` as a whole). Refused:
ReCon (its global tokens bypass the self-attention this adapter wraps; the other methods' official "on ReCon" runs
are the Point-MAE architecture from ReCon's file), backbones without point centres (the ViT) and models without a
classification head to fuse into (part segmentation, pre-training).

**Merge: none.** ``c`` is added to every patch token in both smoothers whatever the weights; it is parameter-free
but input- and batch-dependent, and so are the kNN graph and the RMS normalisation, so no backbone weights
reproduce the branch. Even with zero factors the Monarch bias cannot move into ``attn.proj.bias``: ``c`` is
computed from the attention output, so shifting it by δ shifts the patches by 3δ but the sos/cls slots by δ.

**ONNX**: the exporter refuses PointGPT (its chained grouper has no graph form); on the Point-MAE family MoST
exports, its centre kNN traced as graph operations (same arithmetic and order), batch term included.

Official key names: on PointGPT the whole model maps onto the official fine-tune layout (648 entries:
``blocks.layers.{i}.point_monarch.*``, ``generator_blocks.layers.{i}.point_monarch.*``,
``blocks.cls_token_norm.*``; :mod:`pcpeft.models.layouts` for the rest).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from ..models.layouts import official_pointgpt_key
from .base import PeftConfig, PeftError, backbone_blocks, register_method, replace_submodule, routes_global_tokens
from .monarch import FACTOR_INITS, CentreGraph, PointMonarch, centre_graph
from .official import OFFICIAL_CLS, TokenPooling, _backbone_name, _wrapper_prefixes, set_pooling


def fused_layers(depth: int, count: int) -> tuple[int, ...]:
    """Blocks whose raw outputs are fused, ascending: ``range(depth - 1, 0, -(depth // count))``, the deepest
    ``count`` of them (depth 24, count 3: 7, 15, 23)."""
    step = max(1, depth // max(1, count))
    layers = sorted(range(depth - 1, 0, -step))[-count:]
    if not layers or count < 1:
        raise PeftError(f"most fuses block outputs after block 0: it needs depth >= 2 and fusion_layers >= 1, got "
                        f"depth {depth} and fusion_layers {count}")
    return tuple(layers)


class SmoothingGraph(nn.Module):
    """Forward hook on the grouper: the centre graph of the current forward (shared by every block)."""

    def __init__(self, neighbours: int) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.current: CentreGraph | None = None

    def record(self, module: nn.Module, inputs, output) -> None:
        """Grouper output = (neighbourhoods, centres (B, G, 3))."""
        self.current = centre_graph(output[1], self.neighbours)

    def get(self) -> CentreGraph:
        if self.current is None:
            raise PeftError("most: no centre graph in this forward (the backbone's group_divider did not run)")
        return self.current

    def extra_repr(self) -> str:
        return f"neighbours={self.neighbours}"


class MonarchAttention(nn.Module):
    """Wraps a block's ``attn``: ``a = attn(x)`` -> ``a + PointMonarch(x, a)`` (= ``o + a``). (B, L, C) -> (B, L, C).
    The PointMonarch is registered in the block (``point_monarch``, the official place)."""

    is_peft_layer = True

    def __init__(self, base: nn.Module, monarch: PointMonarch, graph: SmoothingGraph, per_sample: bool) -> None:
        super().__init__()
        self.base = base
        object.__setattr__(self, "monarch", monarch)
        object.__setattr__(self, "graph", graph)
        self.per_sample = per_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.monarch(x, self.base(x), self.graph.get(), self.per_sample)


class LayerFusion(nn.Module):
    """Sequence hook collecting the fused layers' patch tokens, and the head pooling that adds them.

    ``fused`` (B, C) = ``cls_token_norm(Σ_i 2^i (max + mean over the patches of block layers[i]'s output))``.
    """

    def __init__(self, dim: int, layers: tuple[int, ...], graph: SmoothingGraph) -> None:
        super().__init__()
        self.layers = layers
        self.graph = graph
        self.cls_token_norm = nn.LayerNorm(dim)
        self._sum: torch.Tensor | None = None
        self.fused: torch.Tensor | None = None

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index == 0:
            self._sum, self.fused = None, None
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index in self.layers:
            patches = x[:, -self.graph.get().index.shape[1]:]
            pooled = (2 ** self.layers.index(index)) * (patches.max(dim=1).values + patches.mean(dim=1))
            self._sum = pooled if self._sum is None else self._sum + pooled
            if index == self.layers[-1]:
                self.fused, self._sum = self.cls_token_norm(self._sum), None
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return 0

    def pool(self, tokens: torch.Tensor, prefix: int) -> torch.Tensor:
        """tokens (B, T, C) (cls first, patches after ``prefix``) -> concat(cls, max of patches + fused) (B, 2C)."""
        if self.fused is None:
            raise PeftError("most: the fused layers did not run in this forward")
        return torch.cat([tokens[:, 0], tokens[:, prefix:].max(dim=1).values + self.fused], dim=-1)

    def extra_repr(self) -> str:
        return f"layers={self.layers}"


def _block_stacks(backbone: nn.Module) -> list:
    """The extractor's blocks, then the PointGPT generator's (official: a PointMonarch in each)."""
    stacks = [backbone_blocks(backbone)]
    generator = getattr(backbone, "generator", None)
    if generator is not None and hasattr(generator, "blocks"):
        stacks.append(generator.blocks)
    return stacks


@register_method
@dataclasses.dataclass
class MoSTConfig(PeftConfig):
    """MoST with the official defaults (8 Monarch blocks, 4 smoothing neighbours, IDW eps 0.05, 3 fused layers).

    ``per_sample_bias`` and ``factor_init="kaiming_zero"`` deviate from the official code (module docstring)."""

    method: ClassVar[str] = "most"
    claims: ClassVar[frozenset[str]] = frozenset({"attn of every block (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("blocks.cls_token_norm.",)

    monarch_blocks: int = 8
    neighbours: int = 4
    eps: float = 0.05
    fusion_layers: int = 3
    per_sample_bias: bool = False
    factor_init: str = "zero"
    update_frozen_bn_stats: bool = True

    def _check(self, backbone: nn.Module) -> None:
        if self.factor_init not in FACTOR_INITS:
            raise PeftError(f"most factor_init must be one of {FACTOR_INITS}, got {self.factor_init!r}")
        if self.monarch_blocks < 1 or self.neighbours < 1 or self.eps <= 0:
            raise PeftError(f"most needs monarch_blocks >= 1, neighbours >= 1 and eps > 0, got "
                            f"{self.monarch_blocks}, {self.neighbours}, {self.eps}")
        if getattr(backbone, "group_divider", None) is None:
            raise PeftError(f"most smooths over a kNN graph of the patch centres, and {type(backbone).__name__} "
                            f"has no `group_divider` producing point centres")
        if not (hasattr(backbone, "set_head_pooling") and hasattr(backbone, "num_features")):
            raise PeftError(f"most adds its fused layers to a classification head's input (cls, max of patches), "
                            f"and {type(backbone).__name__} has no such head (`set_head_pooling`)")
        if routes_global_tokens(backbone):
            raise PeftError("most wraps every token's self-attention, but this backbone's global tokens (ReCon) "
                            "bypass it through a separate branch; the official recipes run such pre-training files "
                            "on the Point-MAE architecture: use point_mae")

    def inject(self, backbone: nn.Module, host) -> list[str]:
        self._check(backbone)
        dim = backbone.embed_dim
        graph = SmoothingGraph(self.neighbours)
        fusion = LayerFusion(dim, fused_layers(len(backbone_blocks(backbone)), self.fusion_layers), graph)
        host.peft_modules["most"] = fusion
        backbone.group_divider.register_forward_hook(graph.record)
        for stack in _block_stacks(backbone):
            for block in stack:
                monarch = PointMonarch(dim, self.monarch_blocks, self.eps, self.factor_init)
                block.point_monarch = monarch  # the official name, in the block
                replace_submodule(block, "attn", MonarchAttention(block.attn, monarch, graph, self.per_sample_bias))
        backbone.block_stack.add_sequence_hook(fusion)
        set_pooling(backbone, "most", TokenPooling("cls, max of patches + fused layers", fusion.pool),
                    backbone.num_features)
        return [OFFICIAL_CLS]

    def official_keys(self, host) -> dict[str, str]:
        """The fused-layer norm sits under ``blocks.cls_token_norm``; on PointGPT every tensor takes its official
        fine-tune name."""
        own = {f"peft_modules.most.{key}": f"blocks.{key}" for key in host.peft_modules["most"].state_dict()}
        if getattr(getattr(host.base_model, "config", None), "checkpoint_layout", None) != "pointgpt":
            return own
        wrappers = _wrapper_prefixes(host)
        names = {key: official_pointgpt_key(_backbone_name(key, wrappers)) for key in host.state_dict()}
        return {**names, **own}
