"""Global modulation (Tian 2023, section 6, "global modulation"): which local tokens a two-layer
network learns first and most, on the data of :func:`ufm.networks.modulation.modulation_data`
(tokens discriminative of the global pattern against tokens shared across global patterns: fixed
by groups of patterns, the paper's, or drawn per sample, frequency-matched).

Per (location k, token t) the score of the best unit at k (:func:`token_scores`)

    score[k, t] = max_m  h+(W[k, m, t]) / ||W[k, m, :]||,

h+ the positive part for ReLU and leaky ReLU (a unit answers token t with h(W[k, m, t]): it
responds to t through a positive weight, a negative one silences it) and the magnitude for the
sign-free activations, linear and quadratic (w and -w answer alike up to the read-out). 1: a
unit whose weight is all on t. It is the measure of the paper's code (``bn_gen.py``,
``check_result``: the same ratio, |W| for linear units) without its small constant in the
denominator. Recorded every ``record_every`` steps; a token's crossing step is the first recorded
step at which its score is >= ``threshold``.

Measured on the default data (``modulation_data(128)``: 4 patterns, 2 discriminative and 2 shared
locations, 8 tokens each) with the defaults below (wildcards drawn afresh every step), seeds 0-4
(the shipped study ``experiments/network_modulation.toml``; about 1 s a run on one thread). In
neither data model do the discriminative tokens lead:

- ``fixed`` (the paper's; a shared token fixed by 2 of the 4 patterns, twice as frequent as a
  discriminative one): no consistent lead. ReLU: the discriminative class ends ahead in median
  score in seeds 0-2 (by 0.06-0.13), the shared one in seeds 3-4 (by 0.08-0.15); in every seed
  half or more of one class or both never cross 0.8. Linear: the shared class ends ahead in 4 of 5
  seeds (lead -0.23 to +0.04). ReLU units give a unit of its own to more discriminative tokens
  than linear units in every seed (25-62% against 12-38% crossing 0.8).
- ``drawn`` (frequency-matched; a shared token varies from instance to instance): ReLU units learn
  the *shared* tokens first and most: shared median crossing of 0.8 at steps 6.5-11.5 in every
  seed, discriminative at 17-32.5 in two seeds and never in three; the shared class ahead in the
  fraction crossed (by 0.125-0.5) and in final median score (by 0.005-0.13) in every seed. Linear
  units' class medians never cross 0.8.

Other setups measured on the same seeds, same direction: with one pair of views for all steps
(``fresh_views=False``, the default before) the fixed model's scores peak near step 50 and then
fall as the network fits the 128 samples' wildcards (ReLU, 10 seeds pooled: 50% of the
discriminative tokens cross, 55% of the shared), the drawn model's shared tokens lead as above
(ReLU shared median crossing at steps 7-18 against 18.5-41 or never); with BatchNorm (detach_var)
and weight decay 5e-3, the paper's training ingredients (one pair of views), the shared tokens
lead in both models (fixed, ReLU, 10 seeds pooled: 80% of the shared tokens cross, at a median
step 2, against 68% of the discriminative ones, at step 6.5). The paper's simulation as a whole
(InfoNCE with negatives of the same view and mean reduction, lr 0.02, BatchNorm, weight decay
5e-3, fresh views; 2000 steps; seeds 0-4) learns slowly on this small data: fixed, ReLU, 1-4 of the
8 discriminative tokens and 1-3 of the 4 shared ones cross 0.8 (final medians 0.67-0.80 and
0.69-0.81); drawn, ReLU, 0-2 of 8 against 4-5 of 8.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.nonconvex import cpu_threads_for
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.modulation import BACKGROUND, CLASSES, DISCRIMINATIVE, SHARED
from ufm.networks.two_layer import TwoLayer, check_batchnorm

#: activations scored by the magnitude of a weight (h odd or even: w and -w answer alike)
SIGN_FREE = ("linear", "quadratic")
#: defaults of the measurement. The learning rate is 50 times below ``ufm network two-layer``'s 0.05:
#: the loss is a sum over the 2n samples, and at 0.05 (or 0.005) every token's best unit jumps past
#: any threshold in the first two steps, so no order can be read; at 0.001 the crossings of 0.8
#: spread over steps 5-40 and the scores settle by step ~100 (n = 128; measured on the drawn data
#: with one pair of views; on the study's runs, both data models, fresh views: class medians cross at
#: steps 5-52.5, where they cross).
HIDDEN, OUT_DIM, STEPS, LR, RECORD_EVERY, THRESHOLD, TAU = 8, 16, 300, 0.001, 1, 0.8, 0.1
#: the two token classes compared
COMPARED = ("discriminative", "shared")


def token_scores(W: np.ndarray, activation: str) -> np.ndarray:
    """(K, V): per (location k, token t), max over the units m at k of h+(W[k, m, t]) /
    ||W[k, m, :]|| (module docstring; 0 for a unit of zero weight). ``W``: (K, M, V), or
    (R, K, M, V) for R recorded steps, giving (R, K, V)."""
    W = np.asarray(W, dtype=float)
    norm = np.linalg.norm(W, axis=-1, keepdims=True)
    ratio = np.divide(W, norm, out=np.zeros_like(W), where=norm > 0)
    ratio = np.abs(ratio) if activation in SIGN_FREE else np.maximum(ratio, 0.0)
    return ratio.max(axis=-2)


def crossing_steps(steps: np.ndarray, scores: np.ndarray, threshold: float) -> list[int | None]:
    """Per token (column of ``scores``, (R, T) at the R recorded ``steps``): the first recorded step
    at which the score is >= ``threshold``, None if it never is."""
    scores = np.asarray(scores, dtype=float)
    above = scores >= threshold
    first = np.argmax(above, axis=0)
    return [int(steps[i]) if above[i, j] else None for j, i in enumerate(first)]


def median_step(crossings: list[int | None]) -> float | None:
    """The median crossing step of a class, a token that never crosses counting as later than every
    step (+inf): the honest median of a censored sample. None when it is not finite (half of the
    tokens or more never crossed, or no tokens)."""
    if not crossings:
        return None
    m = float(np.median([np.inf if c is None else c for c in crossings]))
    return m if np.isfinite(m) else None


@dataclass
class ModulationResult:
    activation: str
    loss: str
    threshold: float
    steps: np.ndarray  # (R,) the recorded steps, 0 and the last step taken included
    scores: np.ndarray  # (R, T) the score of each compared token at each recorded step
    tokens: np.ndarray  # (T, 2) (location, token) of each compared token
    classes: list[str]  # (T,) "discriminative" or "shared"
    crossing: list[int | None]  # (T,) first recorded step with score >= threshold
    values: np.ndarray  # the loss before each step, then after the last
    stop: StopReason
    taken: int  # steps taken
    timings: dict = field(default_factory=dict)

    @property
    def final(self) -> np.ndarray:
        """(T,) the score of each token after the last step."""
        return self.scores[-1]

    def _of(self, cls: str) -> np.ndarray:
        return np.array([c == cls for c in self.classes], dtype=bool)

    def summary(self) -> dict:
        """``<class>_step``: the median over the class's tokens of the step at which the token's best
        unit crosses the threshold (:func:`median_step`: never crossing counts as +inf; None when
        half or more never crossed); ``<class>_crossed``: how many crossed, of ``<class>_tokens``
        (``<class>_crossed_fraction`` the ratio); ``weight_lead`` and ``crossed_lead``: the
        discriminative class's weight and crossed fraction minus the shared class's (> 0: the
        discriminative tokens ahead, as global modulation would have them);
        ``<class>_weight``: the median final score, ``<class>_initial_weight`` the median at step 0;
        for class in discriminative, shared."""
        out = {"activation": self.activation, "loss": self.loss, "threshold": self.threshold,
               "steps": self.taken, "stop": self.stop.value,
               "initial_loss": float(self.values[0]), "final_loss": float(self.values[-1])}
        for cls in COMPARED:
            mask = self._of(cls)
            crossed = [c for c, m in zip(self.crossing, mask, strict=True) if m]
            out[f"{cls}_step"] = median_step(crossed)
            out[f"{cls}_crossed"] = sum(c is not None for c in crossed)
            out[f"{cls}_tokens"] = int(mask.sum())
            out[f"{cls}_crossed_fraction"] = (out[f"{cls}_crossed"] / out[f"{cls}_tokens"] if mask.any()
                                              else None)
            out[f"{cls}_weight"] = float(np.median(self.final[mask])) if mask.any() else None
            out[f"{cls}_initial_weight"] = float(np.median(self.scores[0, mask])) if mask.any() else None
        d, s = out["discriminative_weight"], out["shared_weight"]
        out["weight_lead"] = None if d is None or s is None else d - s
        d, s = out["discriminative_crossed_fraction"], out["shared_crossed_fraction"]
        out["crossed_lead"] = None if d is None or s is None else d - s
        out["time_s"] = self.timings.get("total")
        return out

    def to_dict(self) -> dict:
        """Plain data for JSON and :func:`ufm.plotting.modulation.modulation_curves`: ``steps``,
        ``threshold``, ``activation``, ``summary`` and per class ``scores`` (one row per token,
        one column per recorded step), ``tokens`` ((location, token) per row) and ``crossing``."""
        out = {"activation": self.activation, "threshold": self.threshold,
               "steps": [int(s) for s in self.steps], "summary": self.summary()}
        for cls in COMPARED:
            mask = self._of(cls)
            out[cls] = {"scores": self.scores[:, mask].T.tolist(),
                        "tokens": self.tokens[mask].tolist(),
                        "crossing": [c for c, m in zip(self.crossing, mask, strict=True) if m]}
        return out


def _check_loss(loss) -> None:
    from ufm.samples import Samples

    loss.check_samples(Samples.instances_views(2, 2), "loss")
    if not loss.scalar_objective:
        raise UFMInputError("loss", f"{loss.name} has no scalar objective (its dynamics re-weight pairs "
                            "at every step): networks are trained through a loss with one")


def _fresh_views(data, seed: int):
    """A function drawing the n x 2 views again (rows instance-major, as ``train_modulation``'s x):
    the fixed tokens of every sample kept, the wildcard locations (no token of them discriminative
    or shared) filled uniformly, independently per view; seeded."""
    import torch

    n, K, V = data.n, data.locations, data.vocab
    wild = np.flatnonzero((data.token_class == BACKGROUND).all(axis=1))
    base = np.stack([data.x1, data.x2], axis=1).reshape(2 * n, K, V)
    base[:, wild, :] = 0.0
    rng = np.random.default_rng([int(seed), 1])

    def draw():
        x = base.copy()
        tokens = rng.integers(0, V, size=(2 * n, wild.size))
        x[np.arange(2 * n)[:, None], wild[None, :], tokens] = 1.0
        return torch.as_tensor(x.reshape(2 * n, K * V))

    return draw


def train_modulation(data, activation: str = "relu", hidden: int = HIDDEN, out_dim: int = OUT_DIM, loss=None,
                     steps: int = STEPS, lr: float = LR, seed: int = 0, record_every: int = RECORD_EVERY,
                     threshold: float = THRESHOLD, optimizer: str = "sgd", weight_decay: float = 0.0,
                     grad_tol: float = 1e-8, batchnorm: str = "off",
                     fresh_views: bool = True) -> ModulationResult:
    """Train the two-layer network (:class:`ufm.networks.two_layer.TwoLayer`, seeded by ``seed``)
    on ``data`` (a :class:`ufm.networks.modulation.ModulationData`) through ``loss`` (default
    InfoNCE, tau = 0.1, over the n instances x 2 views), full batch, float64, SGD with momentum 0.9
    (or Adam): the loss's closed-form gradient in the embeddings back-propagated through the
    network, as ``ufm network two-layer``; ``weight_decay`` the optimizer's L2 term (0: none);
    ``batchnorm`` that of the hidden layer (:data:`ufm.networks.two_layer.BATCHNORMS`, each view
    normalised by its own statistics); ``fresh_views`` (default): the wildcards of both views drawn
    afresh at every step (seeded by ``seed``; the fixed tokens kept), as the paper's code draws its
    views at every step (``bn_gen.py``, ``Generator.sample``), so that no wildcard configuration can
    be learned by heart (off, on the data's one pair of views, the scores of the fixed model peak
    near step 50 and then fall, as the network fits the wildcards of its 128 samples); the losses
    reported are on the data's own views. Records
    :func:`token_scores` every ``record_every`` steps (and after the last) for the
    discriminative and shared tokens (Tian 2023, global modulation)."""
    import torch

    from ufm.losses import InfoNCE
    from ufm.samples import Samples

    for name, value, low in (("steps", steps, 1), ("record_every", record_every, 1), ("hidden", hidden, 1),
                             ("out_dim", out_dim, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise UFMInputError(name, f"must be an integer >= {low}, got {value}")
    if not np.isfinite(lr) or lr <= 0:
        raise UFMInputError("lr", f"must be a finite number > 0, got {lr}")
    if not np.isfinite(threshold) or not 0 < threshold <= 1:
        raise UFMInputError("threshold", f"a score in (0, 1], got {threshold}")
    if isinstance(weight_decay, bool) or not np.isfinite(weight_decay) or weight_decay < 0:
        raise UFMInputError("weight_decay", f"must be a finite number >= 0, got {weight_decay}")
    if optimizer not in ("adam", "sgd"):
        raise UFMInputError("optimizer", f"unknown optimizer {optimizer!r} (choose from adam, sgd)")
    if not hasattr(data, "token_class"):
        raise UFMInputError("data", "global modulation needs modulation data (its token classes)")
    loss = InfoNCE(tau=TAU) if loss is None else loss
    _check_loss(loss)
    t0 = time.perf_counter()
    K, V, n = data.locations, data.vocab, data.n
    samples = Samples.instances_views(n, 2)
    x = torch.as_tensor(np.stack([data.x1, data.x2], axis=1).reshape(2 * n, -1), dtype=torch.float64)
    draw = _fresh_views(data, seed) if fresh_views else None
    net = TwoLayer.random(K, V, int(hidden), int(out_dim), activation, seed, check_batchnorm(batchnorm))
    params = net.parameters()
    for p in params:
        p.requires_grad_(True)
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))
    recorded, snapshots = [0], [net.W.detach().numpy().copy()]
    values, stop, taken = [], StopReason.ITERATION_LIMIT, 0
    with cpu_threads_for(x.shape[0] * x.shape[1] * int(hidden) + x.shape[0] ** 2 * int(out_dim), "cpu"):
        for _ in range(int(steps)):
            opt.zero_grad()
            H = net.embed(x if draw is None else draw(), 2)
            value, grad = loss.torch_value_and_grad(H.detach(), samples)
            if not (torch.isfinite(value) and torch.isfinite(grad).all()):
                raise UFMInputError("lr", f"training diverged at step {taken} (non-finite loss or gradient): "
                                    f"lower the learning rate (lr = {lr:g})")
            values.append(float(value))
            H.backward(grad)
            if float(sum(p.grad.norm() ** 2 for p in params) ** 0.5) <= grad_tol:
                stop = StopReason.GRADIENT_TOL
                break
            opt.step()
            taken += 1
            if taken % record_every == 0 or taken == steps:
                recorded.append(taken)
                snapshots.append(net.W.detach().numpy().copy())
        with torch.no_grad():
            values.append(float(loss.torch_value_and_grad(net.embed(x, 2), samples)[0]))
    if recorded[-1] != taken:
        recorded.append(taken)
        snapshots.append(net.W.detach().numpy().copy())
    if not np.isfinite(values[-1]) or not np.all(np.isfinite(snapshots[-1])):
        raise UFMInputError("lr", f"training diverged (non-finite weights or loss): lower the learning "
                            f"rate (lr = {lr:g})")
    scores = token_scores(np.stack(snapshots), activation)  # (R, K, V)
    mask = (data.token_class == DISCRIMINATIVE) | (data.token_class == SHARED)
    tokens = np.argwhere(mask)
    per_token = scores[:, tokens[:, 0], tokens[:, 1]]
    classes = [CLASSES[c] for c in data.token_class[tokens[:, 0], tokens[:, 1]]]
    steps_arr = np.array(recorded)
    return ModulationResult(activation, loss.name, float(threshold), steps_arr, per_token, tokens, classes,
                            crossing_steps(steps_arr, per_token, threshold), np.array(values), stop, taken,
                            {"total": time.perf_counter() - t0})
