"""Independent restatements of the official DAPT, IDPT, PPT and PointGST forwards, for tests.

Written from the facts of the official repositories (checked against them: LMD0311/DAPT
``models/DAPT.py``, zyh16143998882/ICCV23-IDPT ``models/Point_MAE.py`` + ``models/dgcnn.py``, zsc000722/PPT
``models/PPT.py``, jerryfeng2003/PointGST ``models/PointTransformer.py`` + ``models/PGST.py``), sharing no code
with ``pcpeft``. Each model uses the official module names, so its ``state_dict()`` *is* an official fine-tuned
state dict. Grouping, tokenizer and attention come from :mod:`tests.references.impl` (the restated Point-MAE).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.references.impl import RefAttention, RefEncoder, RefMlp, numpy_group, randomise


def point_mae_head(in_dim: int, classes: int, act=nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 256), nn.BatchNorm1d(256), act(), nn.Dropout(0.5),
                         nn.Linear(256, 256), nn.BatchNorm1d(256), act(), nn.Dropout(0.5), nn.Linear(256, classes))


class _Stem(nn.Module):
    """cls token/pos, tokenizer, positional MLP (official names)."""

    def __init__(self, dim: int, num_group: int, group_size: int) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size
        self.encoder = RefEncoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))

    def stem(self, pts: torch.Tensor):
        neighbourhood, centre = numpy_group(pts, self.num_group, self.group_size)
        return self.encoder(neighbourhood), centre


# -- DAPT ------------------------------------------------------------------------------------------------------
def _tfts(module: nn.Module, suffix: str, dim: int) -> None:
    setattr(module, f"tfts_gamma_{suffix}", nn.Parameter(torch.ones(dim)))
    setattr(module, f"tfts_beta_{suffix}", nn.Parameter(torch.zeros(dim)))


def _apply(module: nn.Module, suffix: str, x: torch.Tensor) -> torch.Tensor:
    return x * getattr(module, f"tfts_gamma_{suffix}") + getattr(module, f"tfts_beta_{suffix}")


class DaptAttention(RefAttention):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__(d, heads, qkv_bias=False)
        _tfts(self, "1", 3 * d)
        _tfts(self, "2", d)

    def forward(self, x):
        b, n, c = x.shape
        qkv = _apply(self, "1", self.qkv(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return _apply(self, "2", self.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c)))


class DaptMlp(RefMlp):
    def __init__(self, d: int, h: int) -> None:
        super().__init__(d, h)
        _tfts(self, "1", h)
        _tfts(self, "2", d)

    def forward(self, x):
        return _apply(self, "2", self.fc2(self.act(_apply(self, "1", self.fc1(x)))))


class DaptAdapterRef(nn.Module):
    def __init__(self, d: int, rank: int) -> None:
        super().__init__()
        self.adapter_layer_norm_before = nn.LayerNorm(d)
        self.scale = nn.Linear(d, 1)
        self.down_proj = nn.Linear(d, rank)
        self.up_proj = nn.Linear(rank, d)

    def forward(self, x):
        x = self.adapter_layer_norm_before(x)
        return self.up_proj(F.gelu(self.down_proj(x))) * F.relu(self.scale(x))


class DaptBlock(nn.Module):
    def __init__(self, d: int, heads: int, rank: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = DaptAttention(d, heads)
        self.mlp = DaptMlp(d, 4 * d)
        self.Adapter_MLP = DaptAdapterRef(d, rank)
        for suffix in "123":
            _tfts(self, suffix, d)

    def forward(self, x):
        x = x + self.attn(_apply(self, "1", self.norm1(x)))
        h = _apply(self, "2", self.norm2(x))
        adapter = self.Adapter_MLP(h)
        x = x + (self.mlp(h) + adapter)
        prompt = _apply(self, "3", F.gelu(adapter).mean(dim=1, keepdim=True))
        return torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1)


class RefDAPT(_Stem):
    """Official ``PointTransformer_DAPT`` (class/prompt/patch tokens ``use``/``mean``/``max``)."""

    def __init__(self, classes, num_group, group_size, depth=12, dim=384, heads=6, rank=64) -> None:
        super().__init__(dim, num_group, group_size)
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList([DaptBlock(dim, heads, rank) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = point_mae_head(3 * dim, classes)
        _tfts(self, "1", dim)
        _tfts(self, "2", dim)

    def forward(self, pts):
        tokens, centre = self.stem(pts)
        tokens = _apply(self, "1", tokens)
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        x = x + torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre)], 1)  # once, before the blocks
        for block in self.blocks.blocks:
            x = block(x)
        x = _apply(self, "2", self.norm(x))
        g = self.num_group
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:-g].mean(1), x[:, -g:].max(1)[0]], -1))


# -- IDPT ------------------------------------------------------------------------------------------------------
def graph_feature(x: torch.Tensor, k: int) -> torch.Tensor:
    """x (B, C, N) -> (B, 2C, N, k): cat(neighbour - self, self) over the top-k of -squared distance."""
    b, c, n = x.shape
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x ** 2, dim=1, keepdim=True)
    idx = (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]
    flat = (idx + torch.arange(b).view(-1, 1, 1) * n).reshape(-1)
    pts = x.transpose(2, 1).contiguous()
    neighbours = pts.reshape(b * n, c)[flat].reshape(b, n, k, c)
    centre = pts.reshape(b, n, 1, c).repeat(1, 1, k, 1)
    return torch.cat([neighbours - centre, centre], dim=3).permute(0, 3, 1, 2)


class RefDGCNN(nn.Module):
    """Official ``DGCNNView``: every BatchNorm registered twice (``bnN`` first, then inside ``convN``)."""

    def __init__(self, d: int, k: int = 20) -> None:
        super().__init__()
        self.k = k
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(d), nn.BatchNorm2d(d), nn.BatchNorm2d(d)
        self.bn5 = nn.BatchNorm1d(d)
        self.conv1 = nn.Sequential(nn.Conv2d(2 * d, d, 1, bias=False), self.bn1, nn.LeakyReLU(0.2))
        self.conv2 = nn.Sequential(nn.Conv2d(2 * d, d, 1, bias=False), self.bn2, nn.LeakyReLU(0.2))
        self.conv3 = nn.Sequential(nn.Conv2d(2 * d, d, 1, bias=False), self.bn3, nn.LeakyReLU(0.2))
        self.conv5 = nn.Sequential(nn.Conv1d(3 * d, d, 1, bias=False), self.bn5, nn.LeakyReLU(0.2))

    def forward(self, x):
        x1 = self.conv1(graph_feature(x, self.k)).max(dim=-1)[0]
        x2 = self.conv2(graph_feature(x1, self.k)).max(dim=-1)[0]
        x3 = self.conv3(graph_feature(x2, self.k)).max(dim=-1)[0]
        x = self.conv5(torch.cat([x1, x2, x3], dim=1))
        return F.adaptive_max_pool1d(x, 1).flatten(1).unsqueeze(1)


class PlainBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = RefAttention(d, heads, qkv_bias=False)
        self.mlp = RefMlp(d, 4 * d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefIDPT(_Stem):
    """Official IDPT ``PointTransformer`` with ``prompt_module: dgcnn``, ``cls_type: all``."""

    def __init__(self, classes, num_group, group_size, depth=12, dim=384, heads=6, prompt_layer=11, k=20) -> None:
        super().__init__(dim, num_group, group_size)
        self.prompt_layer = prompt_layer
        self.prompt_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList([PlainBlock(dim, heads) for _ in range(depth)])
        self.blocks.cls = RefDGCNN(dim, k)
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = point_mae_head(3 * dim, classes)

    def forward(self, pts):
        tokens, centre = self.stem(pts)
        b, g = tokens.shape[0], self.num_group
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre)], 1)
        for i, block in enumerate(self.blocks.blocks):
            if i == self.prompt_layer:
                prompt = self.blocks.cls(x[:, -g:].permute(0, 2, 1))
                x = torch.cat([x[:, :1], prompt, x[:, -g:]], 1)
                pos = torch.cat([pos[:, :1], self.prompt_pos.expand(b, -1, -1), pos[:, -g:]], 1)
            x = block(x + pos)
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1], x[:, 2:].max(1)[0]], -1))


# -- PPT -------------------------------------------------------------------------------------------------------
def _mlp256(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 256), nn.GELU(), nn.Linear(256, d))


class PptBlock(PlainBlock):
    def forward(self, x, shared):
        x = x + self.attn(self.norm1(x))
        h = shared(x)
        return x + self.mlp(self.norm2(x)) + h


class RefPPT(_Stem):
    """Official PPT ``PointTransformer`` (``type: pos``; the second grouping has the first's settings)."""

    def __init__(self, classes, num_group, group_size, depth=12, dim=384, heads=6) -> None:
        super().__init__(dim, num_group, group_size)
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList([PptBlock(dim, heads) for _ in range(depth)])
        self.blocks.prompt_mlp, self.blocks.prompt_pos_mlp, self.blocks.prompt_all_mlp = (
            _mlp256(dim), _mlp256(dim), _mlp256(dim))
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = point_mae_head(3 * dim, classes, act=nn.GELU)

    def forward(self, pts):
        tokens, centre = self.stem(pts)
        extra_tokens, extra_centre = self.stem(pts)  # the second grouping
        b, g = tokens.shape[0], self.num_group
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens, extra_tokens], 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre), self.pos_embed(extra_centre)], 1)
        blocks = self.blocks
        for block in blocks.blocks:
            x = x + pos
            x = x.clone()
            x[:, 1:g + 1] = x[:, 1:g + 1] + blocks.prompt_mlp(x[:, 1:g + 1])
            x[:, -g:] = x[:, -g:] + blocks.prompt_pos_mlp(x[:, -g:])
            x = block(x, blocks.prompt_all_mlp)
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:1 + g].mean(1), x[:, -g:].mean(1)], -1))


# -- PointGST --------------------------------------------------------------------------------------------------
def spectral_basis(c: torch.Tensor) -> torch.Tensor:
    dist = torch.cdist(c, c)
    n = dist.shape[-1]
    adjacency = 1 / (dist / torch.min(dist[dist > 0]) + torch.eye(n).unsqueeze(0))
    d = torch.diag_embed(torch.rsqrt(adjacency.sum(-1) + 1e-6))
    return torch.linalg.eigh(torch.eye(n) - d @ adjacency @ d)[1]


def morton_key(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, depth: int = 16) -> torch.Tensor:
    """Interleave the low ``depth`` bits of a (highest), b, c (two's complement int64)."""
    a, b, c = a.long(), b.long(), c.long()
    key = torch.zeros_like(a)
    for i in range(depth):
        mask = 1 << i
        key = key | ((a & mask) << (2 * i + 2)) | ((b & mask) << (2 * i + 1)) | ((c & mask) << (2 * i))
    return key


class GstAdapterRef(nn.Module):
    def __init__(self, d: int, rank: int) -> None:
        super().__init__()
        self.norm_ly1, self.norm_ly2 = nn.LayerNorm(rank), nn.LayerNorm(rank)
        self.down, self.up = nn.Linear(d, rank), nn.Linear(rank, d)
        self.adapt1 = nn.Linear(rank, rank)

    def forward(self, inp, u, sub_u, idx0, idx1):
        h = self.down(inp)
        b, groups, size, _ = sub_u.shape
        n = groups * size
        x = h[:, -n:, :]
        h = F.silu(h)
        r = x.shape[-1]
        xf = u @ x
        xg = u.transpose(-2, -1) @ (xf + F.silu(self.adapt1(self.norm_ly1(xf))))
        sub = torch.gather(x, 1, idx0.unsqueeze(-1).expand(-1, -1, r)).reshape(b, groups, size, r)
        sf = sub_u @ sub
        sub = (sub_u.transpose(-2, -1) @ (sf + F.silu(self.adapt1(self.norm_ly2(sf))))).reshape(b, n, r)
        sub = torch.gather(sub, 1, idx1.unsqueeze(-1).expand(-1, -1, r))
        h = h.clone()
        h[:, -n:, :] = (xg + sub) + h[:, -n:, :]
        return self.up(h)


class GstBlock(PlainBlock):
    def __init__(self, d: int, heads: int, rank: int) -> None:
        super().__init__(d, heads)
        self.gft_adapter = GstAdapterRef(d, rank)

    def forward(self, x, *basis):
        x = x + self.attn(self.norm1(x))
        t = self.gft_adapter(x, *basis)
        x = x + self.mlp(self.norm2(x))
        return x + t


class RefPointGST(_Stem):
    """Official ``PointTransformer_PGST`` (rank 36, local 32)."""

    def __init__(self, classes, num_group, group_size, depth=12, dim=384, heads=6, rank=36, local=32) -> None:
        super().__init__(dim, num_group, group_size)
        self.local = local
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList([GstBlock(dim, heads, rank) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = point_mae_head(2 * dim, classes)

    def forward(self, pts):
        tokens, centre = self.stem(pts)
        b, g, _ = centre.shape
        u = spectral_basis(centre)
        c = centre * 100
        idx0 = torch.sort(morton_key(c[:, :, 1], c[:, :, 0], c[:, :, 2]))[1]
        idx1 = torch.sort(idx0)[1]
        sub_centre = torch.gather(centre, 1, idx0.unsqueeze(-1).expand(-1, -1, 3))
        groups = g // self.local
        sub_u = spectral_basis(sub_centre.reshape(b * groups, self.local, 3)).reshape(b, groups, self.local,
                                                                                       self.local)
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre)], 1)
        for block in self.blocks.blocks:
            x = block(x + pos, u, sub_u, idx0, idx1)
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:].max(1)[0]], -1))


def randomise_official(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere (zero-initialised adapters hide wrong wiring); scale/shift near 1/0."""
    randomise(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "tfts_gamma" in name:
                tensor.copy_(1 + 0.1 * torch.randn(tensor.shape, generator=gen))
            elif "tfts_beta" in name:
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif "prompt" in name and name.endswith("weight"):  # PPT's shared MLPs: keep the stream bounded
                tensor.mul_(0.3)
    return model
