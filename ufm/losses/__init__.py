"""The contrastive loss family (DESIGN section 3), each a class holding its parameters.

``get_loss("supcon", tau=0.1)`` builds one by its ``--loss`` name; :data:`LOSSES` lists the
classes. Adding a loss is one file here (a subclass of :class:`Loss`, or of
:class:`~ufm.losses.masked_lse.MaskedLSE` for a masked log-sum-exp) plus its entry below and its
tests; its parameters reach the command line from its declaration.
"""

from __future__ import annotations

from ufm.errors import UFMInputError
from ufm.losses.alpha_cl import AlphaCL
from ufm.losses.base import Loss, as_samples
from ufm.losses.dhel import DHEL
from ufm.losses.infonce import DCL, InfoNCE
from ufm.losses.kcl import KCL
from ufm.losses.spectral import Spectral
from ufm.losses.supcon import SupCon, SupConIn

#: every registered loss, by its ``--loss`` name
LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (SupCon, SupConIn, InfoNCE, DCL, DHEL, KCL, AlphaCL, Spectral)
}


def loss_class(name: str) -> type[Loss]:
    try:
        return LOSSES[name]
    except KeyError:
        known = ", ".join(LOSSES)
        raise UFMInputError("--loss", f"unknown loss {name!r} (known: {known})") from None


def get_loss(name: str, **params) -> Loss:
    """The loss ``name`` with ``params`` (the rest at their declared defaults)."""
    return loss_class(name)(**params)


def available_losses() -> list[str]:
    return list(LOSSES)


def all_params():
    """Every declared parameter, by name, with the losses that take it (for the CLI)."""
    out: dict = {}
    for cls in LOSSES.values():
        for p in cls.params:
            out.setdefault(p.name, (p, []))[1].append(cls.name)
    return out


__all__ = [
    "Loss",
    "SupCon",
    "SupConIn",
    "InfoNCE",
    "DCL",
    "DHEL",
    "KCL",
    "AlphaCL",
    "Spectral",
    "LOSSES",
    "get_loss",
    "loss_class",
    "available_losses",
    "all_params",
    "as_samples",
]
