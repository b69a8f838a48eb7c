"""Solvers for ufm problems: convex relaxations (CVXPY), the factored float64 solver and the
global-optimality certificate. ``solvers`` imports ``ufm``; never the reverse."""

from solvers.certificate import Certificate, certify_embeddings, certify_gram, certify_reduced
from solvers.result import SolveResult, SolveStatus
from solvers.solve import METHODS, SOLVERS, solve

__all__ = ["solve", "SolveResult", "SolveStatus", "Certificate", "certify_gram",
           "certify_reduced", "certify_embeddings", "METHODS", "SOLVERS"]
