"""Model registry: every architecture is reachable by one name, e.g. ``dense121_100``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    input_size: int
    builder: Callable[..., nn.Module]
    default_dropout: tuple[float, ...]


_REGISTRY: dict[str, ModelEntry] = {}


class UnknownModelError(KeyError):
    """A model name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def register_model(name: str, family: str, input_size: int, builder, default_dropout) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, family, input_size, builder, tuple(default_dropout))


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


def create_model(
    name: str,
    num_classes: int = 7,
    in_channels: int = 1,
    dropout: list[float] | tuple[float, ...] | None = None,
) -> nn.Module:
    """Build a registered model. ``dropout=None`` takes the family's FER2013 schedule."""
    entry = get_entry(name)
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (grayscale) or 3 (RGB), not {in_channels}")
    schedule = entry.default_dropout if dropout is None else tuple(float(p) for p in dropout)
    if len(schedule) != len(entry.default_dropout):
        raise ValueError(
            f"{name} takes {len(entry.default_dropout)} dropout rates, got {len(schedule)}"
        )
    model = entry.builder(num_classes=num_classes, in_channels=in_channels, dropout=schedule)
    model.input_size = entry.input_size
    return model
