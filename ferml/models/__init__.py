"""The thesis' model zoo, registered by name (see ``list_models()``)."""
from . import bk, densenet, resnet
from .registry import (
    UnknownModelError,
    create_model,
    get_entry,
    list_models,
    register_model,
)

BK_DROPOUT = (0.05, 0.2, 0.4)
DEEP_DROPOUT = (0.05, 0.2, 0.2, 0.3)


def _register_all() -> None:
    for name in bk.SPECS:
        size = 100 if name == "andreas100" else 42
        register_model(name, "bk", size, bk.build(name, size), BK_DROPOUT)
        if name != "andreas100":
            register_model(f"{name}_100", "bk", 100, bk.build(name, 100), BK_DROPOUT)
    deep = [(n, "resnet", resnet.build) for n in resnet.SPECS]
    deep += [(n, "densenet", densenet.build) for n in densenet.SPECS]
    deep += [(f"{n}_red", "densenet", densenet.build) for n in densenet.SPECS]
    for name, family, build in deep:
        register_model(name, family, 42, build(name, 42), DEEP_DROPOUT)
        register_model(f"{name}_100", family, 100, build(name, 100), DEEP_DROPOUT)


_register_all()

__all__ = [
    "UnknownModelError",
    "create_model",
    "get_entry",
    "list_models",
    "register_model",
]
