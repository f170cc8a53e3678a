"""pcpeft: parameter-efficient fine-tuning of point cloud transformers (Point-MAE, Point-BERT) and ViTs."""
from .engine.runs.loading import load_run
from .models import CheckpointError, LoadReport, create_model, list_models, load_checkpoint
from .peft import PeftConfig, PeftModel, get_peft_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "LoadReport", "PeftConfig", "PeftModel", "create_model", "get_peft_model", "list_models",
    "load_checkpoint", "load_run", "__version__",
]
