"""ufm: landscape analysis of unconstrained features models.

Problems, losses, geometry and closed forms live here; solvers live in the ``solvers``
package (``from solvers import solve``).
"""

from ufm.errors import UFMInputError
from ufm.losses import available_losses, get_loss
from ufm.problem import Problem

__version__ = "0.1.0"
__all__ = ["Problem", "UFMInputError", "get_loss", "available_losses", "__version__"]
