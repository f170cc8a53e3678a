"""Backbones (registry + builders), the shared transformer block, heads and checkpoint loading."""
from .checkpoints import CheckpointError, LoadReport, load_checkpoint
from .point_transformer import PointTransformer, PointTransformerConfig, point_bert, point_mae
from .registry import create_model, list_models, register_model
from .transformer import Attention, Block, BlockStack, DropPath, Mlp, TransformerEncoder

__all__ = [
    "CheckpointError", "LoadReport", "load_checkpoint", "PointTransformer", "PointTransformerConfig",
    "point_bert", "point_mae", "create_model", "list_models", "register_model",
    "Attention", "Block", "BlockStack", "DropPath", "Mlp", "TransformerEncoder",
]
