"""Why an optimiser stopped: one enum for every optimiser of the project (the factored L-BFGS of
``solve``, the batched restarts of ``verify``, the coordinate-wise dynamics)."""

from __future__ import annotations

import enum


class StopReason(enum.Enum):
    GRADIENT_TOL = "gradient_tolerance"  # the (preconditioned or Riemannian) gradient norm met its tolerance
    NO_PROGRESS = "no_progress"  # steps were taken, but for a while neither the objective (beyond
    # round-off) nor the gradient norm improved: converged to working precision
    STALLED = "stalled"  # no step decreases the objective at working precision (line search failed),
    # or nothing improved for the patience of a batched restart
    ITERATION_LIMIT = "iteration_limit"
    TARGET = "target_reached"  # the caller's test said so (e.g. the certificate holds)
    FLOOR = "floor_reached"  # the excess over the loss's floor is 0 within round-off: the value equals a
    # lower bound, nothing is left to minimise (losses whose floor is attained; never chase log(0))

    @property
    def converged(self) -> bool:
        """A stop that ends at a point the optimiser could not improve on."""
        return self in (StopReason.GRADIENT_TOL, StopReason.NO_PROGRESS, StopReason.TARGET,
                        StopReason.FLOOR)
