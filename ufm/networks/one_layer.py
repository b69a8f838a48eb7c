"""One unit w (||w|| = 1) with a homogeneous activation h between the data and the embedding,
trained contrastively (Tian 2023, section 4): its objective is the contrastive covariance energy

    E(w) = Var_i h(w . x_i) - 1/(2n) sum_i (h(w . x_i) - h(w . x_i'))^2,

the spread of the outputs over samples (uniform pairwise weights alpha, the quadratic
contrastive loss) minus their spread between the two views of a sample, maximised on the unit
sphere. With h linear, E(w) = w' C w for the contrastive covariance
C = Cov(x) - 1/(2n) sum_i (x_i - x_i')(x_i - x_i')': one maximiser (up to sign), the top
eigenvector of C (PCA of the contrastive covariance). With h(x) = h'(x) x (ReLU, leaky ReLU),
E(w) = w' C[w] w with a covariance gated by w itself, and a local maximum can sit on each pattern.
"""

from __future__ import annotations

import numpy as np

from ufm.errors import UFMInputError

ACTIVATIONS = ("linear", "relu", "leaky_relu", "quadratic")
#: negative slope of the leaky ReLU
LEAKY_SLOPE = 0.1
#: the activations with a kink at 0, h(z) = s z + (1 - s) max(z, 0), and their slope s below it
KINK_SLOPES = {"relu": 0.0, "leaky_relu": LEAKY_SLOPE}


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise UFMInputError("activation", f"unknown activation {name!r} (choose from "
                            f"{', '.join(ACTIVATIONS)})")
    return name


def activate(z, name: str):
    """h(z) for a torch tensor."""
    import torch

    if name == "linear":
        return z
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(z, LEAKY_SLOPE)
    if name == "quadratic":
        return z * z
    raise UFMInputError("activation", f"unknown activation {name!r}")


def sign_symmetric(name: str) -> bool:
    """E(-w) = E(w): w and -w are the same optimum (linear: h odd; quadratic: h even)."""
    return name in ("linear", "quadratic")


def energy(W, x1, x2, activation: str):
    """E(w) for each row w of W ((R, D) torch, rows of any norm: the caller keeps them unit)."""
    f1 = activate(x1 @ W.T, activation)  # (n, R)
    f2 = activate(x2 @ W.T, activation)
    spread = f1.var(dim=0, unbiased=False)
    views = 0.5 * ((f1 - f2) ** 2).mean(dim=0)
    return spread - views


def contrastive_covariance(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """C = Cov(x1) - 1/(2n) sum_i (x_i - x_i')(x_i - x_i')' (population covariance), so that
    E(w) = w' C w for a linear unit."""
    n = x1.shape[0]
    centred = x1 - x1.mean(axis=0)
    diff = x1 - x2
    return centred.T @ centred / n - diff.T @ diff / (2 * n)
