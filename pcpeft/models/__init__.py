"""Backbones (registry + builders: Point-MAE, Point-BERT, ACT, ReCon, PointGPT-S/B/L, ViT), the shared
transformer block, heads and checkpoint loading."""
from .checkpoints import CheckpointError, LoadReport, load_checkpoint
from .point_transformer import PointTransformer, PointTransformerConfig, act, point_bert, point_mae, recon
from .pointgpt import PointGPT, PointGPTConfig, pointgpt_b, pointgpt_l, pointgpt_s
from .registry import create_model, list_models, register_model
from .transformer import Attention, Block, BlockStack, CrossAttention, DropPath, Mlp, TransformerEncoder

__all__ = [
    "CheckpointError", "LoadReport", "load_checkpoint", "PointTransformer", "PointTransformerConfig",
    "point_bert", "point_mae", "act", "recon", "PointGPT", "PointGPTConfig", "pointgpt_s", "pointgpt_b",
    "pointgpt_l", "create_model", "list_models", "register_model",
    "Attention", "Block", "BlockStack", "CrossAttention", "DropPath", "Mlp", "TransformerEncoder",
]
