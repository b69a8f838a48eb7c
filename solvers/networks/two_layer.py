"""Train the two-layer network of ``ufm.networks.two_layer`` through a loss of the family on the
two views of pattern data, and measure how its hidden units specialise (Tian 2023)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.nonconvex import cpu_threads_for
from solvers.options import NETWORK_OPTIONS
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.two_layer import TwoLayer, pattern_tokens, specialisation
from ufm.options import defaults

#: the declared defaults of ``ufm network``'s options (``solvers.options.NETWORK_OPTIONS``)
NETWORK = defaults(NETWORK_OPTIONS)
#: a hidden unit is specialised when one pattern token carries at least this share of its response
#: variance
SPECIALISED = 0.8


@dataclass
class TwoLayerResult:
    activation: str
    loss: str
    values: np.ndarray  # loss after each step
    specialisation: np.ndarray  # (K, M) per hidden unit, NaN where no pattern fixes a token
    initial_specialisation: np.ndarray
    stop: StopReason
    steps: int
    W: np.ndarray
    timings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        s, s0 = self.specialisation, self.initial_specialisation

        def median(a):
            a = a[np.isfinite(a)]
            return float(np.median(a)) if a.size else None

        def share(a):
            a = a[np.isfinite(a)]
            return float(np.mean(a >= SPECIALISED)) if a.size else None

        return {"activation": self.activation, "loss": self.loss, "steps": self.steps,
                "stop": self.stop.value,
                "final_loss": float(self.values[-1]), "initial_loss": float(self.values[0]),
                "median_specialisation": median(s), "initial_median_specialisation": median(s0),
                "specialised_fraction": share(s), "initial_specialised_fraction": share(s0),
                "live_units": int(np.isfinite(s).sum()),
                "time_s": self.timings.get("total")}


def check_network_loss(loss) -> None:
    """A loss a network can be trained through: posed on instances x views, with a scalar
    objective."""
    from ufm.samples import Samples

    loss.check_samples(Samples.instances_views(2, 2), "loss")
    if not loss.scalar_objective:
        raise UFMInputError("loss", f"{loss.name} has no scalar objective (its dynamics re-weight pairs "
                            "at every step): networks are trained through a loss with one")


def train_two_layer(data, locations: int, vocab: int, activation: str = "relu", hidden: int = NETWORK.hidden,
                    out_dim: int = NETWORK.out_dim, loss=None, steps: int = NETWORK.steps,
                    lr: float = NETWORK.lr, seed: int = NETWORK.seed, grad_tol: float = 1e-8,
                    optimizer: str = NETWORK.optimizer) -> TwoLayerResult:
    """Gradient descent (SGD with momentum 0.9, as in Tian 2023, or Adam) on the loss (default
    InfoNCE, tau = 0.1) of the embeddings of both views of ``data`` (a pattern_data TwoViews), full
    batch; the loss's closed-form gradient in the embeddings is back-propagated through the
    network. (Adam's per-weight step sizes blur the specialisation: measured 5-30% of ReLU units
    against 18-47% with SGD on the same data.)"""
    import torch

    from ufm.losses import InfoNCE
    from ufm.samples import Samples

    if int(steps) != steps or steps < 1:
        raise UFMInputError("steps", f"must be an integer >= 1, got {steps}")
    if data.dim != locations * vocab:
        raise UFMInputError("locations", f"data has {data.dim} inputs, not locations x vocab = "
                            f"{locations * vocab}")
    loss = InfoNCE(tau=0.1) if loss is None else loss
    check_network_loss(loss)
    t0 = time.perf_counter()
    n = data.n
    samples = Samples.instances_views(n, 2)
    x = torch.as_tensor(np.stack([data.x1, data.x2], axis=1).reshape(2 * n, -1), dtype=torch.float64)
    net = TwoLayer.random(locations, vocab, hidden, out_dim, activation, seed)
    tokens = pattern_tokens(data.directions, locations, vocab)
    s0 = specialisation(net.W.numpy(), tokens, activation)
    params = net.parameters()
    for p in params:
        p.requires_grad_(True)
    if optimizer not in ("adam", "sgd"):
        raise UFMInputError("optimizer", f"unknown optimizer {optimizer!r} (choose from adam, sgd)")
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9))
    with cpu_threads_for(x.shape[0] * x.shape[1] * hidden + x.shape[0] ** 2 * out_dim, "cpu"):
        values, stop, taken = _descend(net, x, samples, loss, opt, params, int(steps), lr, grad_tol)
    with torch.no_grad():
        values.append(float(loss.torch_value_and_grad(net.embed(x), samples)[0]))
    W = net.W.detach().numpy()
    final = specialisation(W, tokens, activation)
    if not np.isfinite(values[-1]) or not np.all(np.isfinite(W)):
        raise UFMInputError("lr", f"training diverged (non-finite weights or loss): lower the learning "
                            f"rate (lr = {lr:g})")
    return TwoLayerResult(activation, loss.name, np.array(values), final, s0, stop,
                          taken, W, {"total": time.perf_counter() - t0})


def _descend(net, x, samples, loss, opt, params, steps: int, lr: float, grad_tol: float):
    """The training loop: (values, stop reason, steps taken)."""
    import torch

    values, stop, taken = [], StopReason.ITERATION_LIMIT, 0
    for _ in range(steps):
        opt.zero_grad()
        H = net.embed(x)
        value, grad = loss.torch_value_and_grad(H.detach(), samples)
        if not (torch.isfinite(value) and torch.isfinite(grad).all()):
            raise UFMInputError("lr", f"training diverged at step {len(values)} (non-finite loss or "
                                f"gradient): lower the learning rate (lr = {lr:g})")
        values.append(float(value))
        H.backward(grad)
        gnorm = float(sum(p.grad.norm() ** 2 for p in params) ** 0.5)
        if gnorm <= grad_tol:
            stop = StopReason.GRADIENT_TOL
            break
        opt.step()
        taken += 1
    return values, stop, taken
