"""Registry of contrastive losses.

A loss is registered once with all its forms (over H in torch, over G in numpy with its
gradient, over G in CVXPY, and at the group level for the symmetry-reduced programs) and
whether it is convex in G; every solver, the certificate and the CLI look it up by name.
"""

from __future__ import annotations

from ufm.errors import UFMInputError
from ufm.losses.base import Loss
from ufm.losses.supcon import SupCon

_REGISTRY: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    """Add ``loss`` to the registry under ``loss.name``; returns it."""
    if loss.name in _REGISTRY:
        raise ValueError(f"loss {loss.name!r} is already registered")
    _REGISTRY[loss.name] = loss
    return loss


def get_loss(name: str) -> Loss:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UFMInputError("--loss", f"unknown loss {name!r} (known: {known})") from None


def available_losses() -> list[str]:
    return sorted(_REGISTRY)


register(SupCon())

__all__ = ["Loss", "SupCon", "register", "get_loss", "available_losses"]
