"""ferml: train and score the thesis' facial expression CNNs. Pure PyTorch, no Django."""
from .models import UnknownModelError, create_model, list_models

__version__ = "0.1.0"

__all__ = ["UnknownModelError", "create_model", "list_models", "__version__"]
