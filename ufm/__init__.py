"""ufm: landscape analysis of unconstrained features models.

Problems, samples, losses, symmetries, geometry and closed forms live here; solvers live in the
``solvers`` package (``from solvers import solve``).
"""

from ufm.errors import UFMInputError
from ufm.losses import LOSSES, available_losses, get_loss
from ufm.problem import Problem
from ufm.samples import Samples

__version__ = "0.1.0"
__all__ = ["Problem", "Samples", "UFMInputError", "get_loss", "available_losses", "LOSSES", "__version__"]
