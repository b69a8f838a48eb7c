"""One unit w (||w|| = 1) with an activation h between the data and the embedding, trained
contrastively (Tian 2023, "Understanding the Role of Nonlinearity in Training Dynamics of
Contrastive Learning", section 4): its objective is the contrastive covariance energy E_alpha,
maximised on the unit sphere.

**Activations.** linear, relu, leaky_relu (slope 0.1) are positively homogeneous,
h(x) = h'(x) x (Tian's assumption): E(w) = w' C[w] w with a covariance gated by w itself, and for
ReLU and leaky ReLU a local maximum can sit on each pattern. ``quadratic`` (h(z) = z^2) is *not*
in that class: it is homogeneous of degree 2 (h'(z) z = 2 h(z)), its E is a quartic form in w;
it is kept as a smooth, sign-symmetric contrast. Nothing in the census or its checks assumes
homogeneity of a smooth unit (its check is the Riemannian gradient and Hessian of E, valid for any
smooth E); the kink certificate (``solvers.networks.kinks``) is for ReLU and leaky ReLU only and
uses their degree-1 homogeneity (E piecewise quadratic).

**E_alpha for one unit** (Tian 2023, eqn. 2 and section 4, after Tian 2022's alpha-CL). Outputs
f_i = h(w . x_i) (first view) and f_i' = h(w . x_i') (second view), i = 1..n. Pairs: each anchor i
with every other sample j != i of the first view (negatives) and with its own second view
(positive). With pair weights alpha_ij >= 0 (j != i) and positive weights beta_i >= 0:

    E_alpha(w) = 1/2 sum_i sum_{j != i} alpha_ij (f_i - f_j)^2  -  1/2 sum_i beta_i (f_i - f_i')^2

= 1/2 tr C_alpha[f] for the contrastive covariance of a 1-dimensional output. Two choices of
alpha (``ALPHAS``):

- ``uniform``: alpha_ij = 1/n^2, beta_i = 1/n. Then E = Var_i f_i - 1/(2n) sum_i (f_i - f_i')^2,
  the quadratic contrastive loss (the authors' code, luckmatters ssl/real-dataset/relu_2layer.py,
  ``loss_type: quadratic``, whose positives carry weight (1 + 1/N) so that each anchor's positive
  weighs 1/N): the objective this module had before alpha was a choice.
- ``infonce`` at temperature tau: alpha from the current point, as the paper's E_alpha for
  InfoNCE. With half squared distances d_ij^2 = (f_i - f_j)^2 / 2 and d_i^2 = (f_i - f_i')^2 / 2
  (the unnormalised "negdist" similarity of relu_2layer.py; a scalar output is not normalised),
  row i's softmax over its positive and its n - 1 negatives is
  p_ij = exp(-d_ij^2/tau) / Z_i, p_i+ = exp(-d_i^2/tau) / Z_i, Z_i = exp(-d_i^2/tau) + sum_{k != i}
  exp(-d_ik^2/tau); then alpha_ij = p_ij / n and beta_i = sum_{j != i} alpha_ij = (1 - p_i+) / n
  (C_alpha's positive weight is the row's total, as relu_2layer.py's ``B = 1 - A.diag()``). With
  L the InfoNCE loss of these logits, mean over anchors, grad_w E_alpha (alpha held fixed) =
  -tau grad_w L: ascending E_alpha with alpha recomputed at every point is descending tau L
  (``infonce_objective``). As tau -> infinity, alpha_ij -> 1/n^2 and beta_i -> (n - 1)/n^2 (the
  uniform pair weights, with the positive's weight (n - 1)/n of uniform's).

**alpha held fixed at the end point.** E_alpha with alpha recomputed at each w is not the function
whose local maxima the census certifies: at an end point w*, alpha* = alpha(w*) is frozen and the
checks decide whether w* is a strict local maximum of w -> E_{alpha*}(w) (a fixed point of the
alpha-CL coordinate-wise dynamics: the max player's local optimum at its own alpha). It is not a
statement about the InfoNCE loss L(w) itself. With uniform alpha the two coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ufm.errors import UFMInputError

ACTIVATIONS = ("linear", "relu", "leaky_relu", "quadratic")
#: the positively homogeneous activations, h(x) = h'(x) x (Tian 2023's class); quadratic is not
HOMOGENEOUS = ("linear", "relu", "leaky_relu")
#: negative slope of the leaky ReLU
LEAKY_SLOPE = 0.1
#: the activations with a kink at 0, h(z) = s z + (1 - s) max(z, 0), and their slope s below it
KINK_SLOPES = {"relu": 0.0, "leaky_relu": LEAKY_SLOPE}
#: the pair weights of E_alpha (module docstring)
ALPHAS = ("uniform", "infonce")
#: temperature of InfoNCE's alpha where none is given (alpha-CL's default, Tian 2022)
DEFAULT_ALPHA_TAU = 0.5
#: the command-line options of the pair weights (their names and help: the model's words, so that
#: ``solvers.options`` declares them without naming a loss)
ALPHA_OPTION, ALPHA_TAU_OPTION = "alpha", "alpha_tau"
ALPHA_HELP = ("one-layer: the pair weights of E_alpha: uniform (the quadratic loss, Var - view spread) | "
              "infonce (InfoNCE's softmax over each anchor's positive and negatives at --alpha-tau, from the "
              "current point; each end point is certified for E with its alpha held fixed)")
ALPHA_TAU_HELP = "one-layer: the temperature of InfoNCE's alpha (with --alpha infonce)"


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise UFMInputError("activation", f"unknown activation {name!r} (choose from "
                            f"{', '.join(ACTIVATIONS)})")
    return name


def check_alpha(alpha: str, tau) -> tuple[str, float | None]:
    """(alpha, tau) checked: tau is InfoNCE's temperature (a finite number > 0), None for uniform."""
    if alpha not in ALPHAS:
        raise UFMInputError("alpha", f"unknown alpha {alpha!r} (choose from {', '.join(ALPHAS)})")
    if alpha == "uniform":
        if tau is not None:
            raise UFMInputError("alpha_tau", "the temperature of InfoNCE's alpha: give it with alpha "
                                "infonce (uniform alpha has none)")
        return alpha, None
    tau = DEFAULT_ALPHA_TAU if tau is None else tau
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not np.isfinite(tau) or tau <= 0:
        raise UFMInputError("alpha_tau", f"must be a finite number > 0, got {tau!r}")
    return alpha, float(tau)


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


def activate_np(z: np.ndarray, name: str) -> np.ndarray:
    """h(z) in numpy."""
    if name == "linear":
        return z
    if name == "quadratic":
        return z * z
    if name in KINK_SLOPES:
        return np.where(z > 0, z, KINK_SLOPES[name] * z)
    raise UFMInputError("activation", f"unknown activation {name!r}")


def sign_symmetric(name: str) -> bool:
    """E(-w) = E(w): w and -w are the same optimum (linear: h odd; quadratic: h even). Holds for
    either alpha (InfoNCE's alpha reads squared differences of outputs)."""
    return name in ("linear", "quadratic")


@dataclass(frozen=True)
class PairWeights:
    """Fixed pair weights of E_alpha (module docstring): ``A`` (n, n) alpha_ij with a zero
    diagonal and ``beta`` (n,), or both None for uniform (alpha_ij = 1/n^2, beta_i = 1/n; computed
    by its closed forms). E_alpha = f1' L f1 - 1/2 (f1 - f2)' diag(beta) (f1 - f2) with L the
    Laplacian of S = (A + A')/2, i.e. E = f' K f for f = (f1, f2) and
    K = [[L - B/2, B/2], [B/2, -B/2]], B = diag(beta)."""

    n: int
    A: np.ndarray | None = None
    beta: np.ndarray | None = None
    kind: str = "uniform"
    tau: float | None = None

    @property
    def uniform(self) -> bool:
        return self.A is None

    @property
    def _S(self) -> np.ndarray:
        return 0.5 * (self.A + self.A.T)

    def energy(self, f1: np.ndarray, f2: np.ndarray) -> float:
        if self.uniform:
            return float(f1.var() - 0.5 * np.mean((f1 - f2) ** 2))
        S = self._S
        lap = S.sum(axis=1) * f1 - S @ f1
        return float(f1 @ lap - 0.5 * np.sum(self.beta * (f1 - f2) ** 2))

    def sensitivity(self, f1: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dE/df for the first-view and second-view outputs."""
        n = f1.shape[0]
        if self.uniform:
            c2 = (f1 - f2) / n
            return 2 * (f1 - f1.mean()) / n - c2, c2
        S = self._S
        c2 = self.beta * (f1 - f2)
        return 2 * (S.sum(axis=1) * f1 - S @ f1) - c2, c2

    def covariance(self, F1: np.ndarray, F2: np.ndarray) -> np.ndarray:
        """F' K F for row-gated inputs F (the gated covariance Q_g; F = X for C_alpha)."""
        n = F1.shape[0]
        diff = F1 - F2
        if self.uniform:
            m = F1.sum(axis=0)
            Q = F1.T @ F1 / n - np.outer(m, m) / n**2 - diff.T @ diff / (2 * n)
        else:
            S = self._S
            Q = ((F1 * S.sum(axis=1)[:, None]).T @ F1 - F1.T @ (S @ F1)
                 - 0.5 * (diff * self.beta[:, None]).T @ diff)
        return 0.5 * (Q + Q.T)

    def kernel_bound(self) -> float:
        """An upper bound on |K|_2 (Gershgorin: max_i 2 deg_i + beta_i; uniform: 2/n)."""
        if self.uniform:
            return 2.0 / self.n
        return float(np.max(2 * self._S.sum(axis=1) + self.beta))

    def describe(self) -> dict:
        return {"alpha": self.kind, "alpha_tau": self.tau}


def uniform_weights(n: int) -> PairWeights:
    return PairWeights(n)


def infonce_weights(f1: np.ndarray, f2: np.ndarray, tau: float) -> PairWeights:
    """InfoNCE's alpha at outputs (f1, f2), temperature tau (module docstring), in float64 with
    log-sum-exp: a weight below float64's range is 0, never 0/0."""
    n = f1.shape[0]
    logits = -0.5 * (f1[:, None] - f1[None, :]) ** 2 / tau
    np.fill_diagonal(logits, -0.5 * (f1 - f2) ** 2 / tau)  # the positive in the diagonal slot
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    p = e / e.sum(axis=1, keepdims=True)
    positive = np.diag(p).copy()
    A = p / n
    np.fill_diagonal(A, 0.0)
    return PairWeights(n, A, (1.0 - positive) / n, "infonce", tau)


def weights_at(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str, alpha: str = "uniform",
               tau: float | None = None) -> PairWeights:
    """The pair weights at unit w: uniform, or InfoNCE's alpha from w's outputs."""
    if alpha == "uniform":
        return uniform_weights(x1.shape[0])
    return infonce_weights(activate_np(x1 @ w, activation), activate_np(x2 @ w, activation), tau)


def _infonce_logits(f1, f2, tau):
    """(R, n, n) logits of each anchor's softmax: negatives off the diagonal, the positive on it."""
    import torch

    logits = -0.5 * (f1[:, :, None] - f1[:, None, :]) ** 2 / tau
    eye = torch.eye(f1.shape[1], dtype=torch.bool, device=f1.device)
    return torch.where(eye, (-0.5 * (f1 - f2) ** 2 / tau)[:, :, None], logits)


def energy(W, x1, x2, activation: str, alpha="uniform", tau: float | None = None):
    """E_alpha(w) for each row w of W ((R, D) torch, rows of any norm: the caller keeps them unit).
    ``alpha``: "uniform"; "infonce" (alpha from each row's own outputs at temperature ``tau``,
    held fixed: the gradient is E_alpha's with alpha frozen, i.e. -tau grad L_InfoNCE); or a
    :class:`PairWeights` (the same fixed weights for every row)."""
    import torch

    f1 = activate(x1 @ W.T, activation).T  # (R, n)
    f2 = activate(x2 @ W.T, activation).T
    if (isinstance(alpha, str) and alpha == "uniform") or (isinstance(alpha, PairWeights) and alpha.uniform):
        spread = f1.var(dim=1, unbiased=False)
        views = 0.5 * ((f1 - f2) ** 2).mean(dim=1)
        return spread - views
    n = f1.shape[1]
    if isinstance(alpha, PairWeights):
        A = torch.as_tensor(alpha.A, dtype=f1.dtype, device=f1.device)[None]
        beta = torch.as_tensor(alpha.beta, dtype=f1.dtype, device=f1.device)[None]
    elif alpha == "infonce":
        with torch.no_grad():
            p = torch.softmax(_infonce_logits(f1, f2, tau), dim=2)
            eye = torch.eye(n, dtype=torch.bool, device=f1.device)
            beta = (1.0 - torch.diagonal(p, dim1=1, dim2=2)) / n
            A = torch.where(eye, 0.0, p) / n
    else:
        raise UFMInputError("alpha", f"unknown alpha {alpha!r} (choose from {', '.join(ALPHAS)})")
    pairs = 0.5 * (A * (f1[:, :, None] - f1[:, None, :]) ** 2).sum(dim=(1, 2))
    return pairs - 0.5 * (beta * (f1 - f2) ** 2).sum(dim=1)


def _derivative(z, name: str):
    """h'(z) for a torch tensor (0 for ReLU at 0, as torch's autograd)."""
    import torch

    if name == "linear":
        return torch.ones_like(z)
    if name == "quadratic":
        return 2 * z
    if name in KINK_SLOPES:
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, KINK_SLOPES[name]))
    raise UFMInputError("activation", f"unknown activation {name!r}")


def infonce_objective(W, x1, x2, activation: str, tau: float, grad: bool = False):
    """-tau (L - log n) per row of W: L the InfoNCE loss of the logits of ``infonce_weights`` (mean
    over anchors), shifted by its value log n at equal logits. Its gradient is E_alpha's with
    alpha held at the current point; it is the scalar the ascent's line search reads. Written as
    tau mean_i log1p(mean_j expm1(u_ij)), u_ij the logits less the positive's, where every |u| < 1,
    so that huge tau (logits ~ 1/tau) keeps its digits; log-sum-exp elsewhere. With ``grad`` also
    its gradient in W, in closed form (dPhi/df_i = 1/n [sum_j (p_ij + p_ji)(f_i - f_j) -
    (1 - p_ii)(f_i - f_i')], dPhi/df_i' = 1/n (1 - p_ii)(f_i - f_i'), p the rows' softmax, the
    positive on the diagonal): no autograd graph over the (R, n, n) logits."""
    import torch

    with torch.no_grad():
        z1, z2 = (x1 @ W.T).T, (x2 @ W.T).T  # (R, n)
        f1, f2 = activate(z1, activation), activate(z2, activation)
        n = f1.shape[1]
        logits = _infonce_logits(f1, f2, tau)
        pos = torch.diagonal(logits, dim1=1, dim2=2)
        u = logits - pos[:, :, None]  # row i: logit_ij - logit_i+ (0 on the diagonal)
        small = u.abs().amax(dim=2) < 1.0
        near = torch.log1p(torch.expm1(u.clamp(max=1.0)).mean(dim=2))
        lse = torch.logsumexp(u, dim=2)
        rows = torch.where(small, near, lse - float(np.log(n)))  # L_i - log n
        value = -tau * rows.mean(dim=1)
        if not grad:
            return value
        p = torch.exp(u - lse[:, :, None])  # softmax rows, the positive on the diagonal
        p_pos = torch.diagonal(p, dim1=1, dim2=2)
        eye = torch.eye(n, dtype=torch.bool, device=f1.device)
        sym = torch.where(eye, 0.0, p + p.transpose(1, 2))
        view = (1 - p_pos) * (f1 - f2)
        c1 = (sym.sum(dim=2) * f1 - (sym @ f1[:, :, None])[:, :, 0] - view) / n
        c2 = view / n
        G = (c1 * _derivative(z1, activation)) @ x1 + (c2 * _derivative(z2, activation)) @ x2
        return value, G


def _derivative_np(z: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return np.ones_like(z)
    if name == "quadratic":
        return 2 * z
    return np.where(z > 0, 1.0, KINK_SLOPES[name])


def infonce_objective_np(W: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str, tau: float):
    """``infonce_objective`` with its gradient, in float64 numpy, one row of W at a time (on a CPU
    the (R, n, n) logits of all rows at once are memory-bound: 10x slower at R = 32, n = 400).
    Returns (value (R,), gradient (R, D))."""
    n = x1.shape[0]
    Z1, Z2 = x1 @ W.T, x2 @ W.T  # (n, R)
    values, C1, C2 = np.empty(W.shape[0]), np.empty_like(Z1), np.empty_like(Z2)
    diag = np.arange(n)
    for r in range(W.shape[0]):
        f1, f2 = activate_np(Z1[:, r], activation), activate_np(Z2[:, r], activation)
        u = f1[:, None] - f1[None, :]
        u *= u
        positive = (f1 - f2) ** 2
        u[diag, diag] = positive
        u -= positive[:, None]
        u *= -0.5 / tau  # row i: logit_ij - logit_i+
        top = u.max(axis=1)
        small = np.abs(u).max(axis=1) < 1.0
        if small.any():
            near = np.log1p(np.expm1(np.minimum(u[small], 1.0)).mean(axis=1))
        np.subtract(u, top[:, None], out=u)
        np.exp(u, out=u)
        total = u.sum(axis=1)
        rows = top + np.log(total) - np.log(n)  # L_i - log n
        if small.any():
            rows[small] = near
        values[r] = -tau * rows.mean()
        u /= total[:, None]  # p, the positive on the diagonal
        p_pos = u[diag, diag].copy()
        u[diag, diag] = 0.0
        view = (1 - p_pos) * (f1 - f2)
        C1[:, r] = ((u.sum(axis=1) + u.sum(axis=0)) * f1 - u @ f1 - f1 @ u - view) / n
        C2[:, r] = view / n
    G = (C1 * _derivative_np(Z1, activation)).T @ x1 + (C2 * _derivative_np(Z2, activation)).T @ x2
    return values, G


def contrastive_covariance(x1: np.ndarray, x2: np.ndarray, weights: PairWeights | None = None) -> np.ndarray:
    """C_alpha with E(w) = w' C_alpha w for a linear unit; uniform (default):
    C = Cov(x1) - 1/(2n) sum_i (x_i - x_i')(x_i - x_i')' (population covariance)."""
    if weights is not None and not weights.uniform:
        return weights.covariance(x1, x2)
    n = x1.shape[0]
    centred = x1 - x1.mean(axis=0)
    diff = x1 - x2
    return centred.T @ centred / n - diff.T @ diff / (2 * n)
