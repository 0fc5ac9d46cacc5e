"""ferml: train and score the thesis' facial expression CNNs. Pure PyTorch, no Django.

The model zoo, and PyTorch with it, loads on first use of ``create_model`` and the
other names below, so the label sets, data readers and video helpers can be imported
(by the Django apps, say) without loading PyTorch.
"""

__version__ = "0.1.0"

__all__ = ["UnknownModelError", "create_model", "list_models", "__version__"]


def __getattr__(name: str):
    if name in ("UnknownModelError", "create_model", "list_models"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
