"""Train the two-layer network of ``ufm.networks.two_layer`` through a loss of the family on the
two views of pattern data, and measure how its hidden units specialise (Tian 2023).

Beside the project's defaults (full-batch SGD on one fixed sample, the loss symmetric over the
views) the trainer reproduces the paper's simulation: BatchNorm of the hidden layer, weight decay,
fresh batches drawn every step, and InfoNCE anchored on view 1; :data:`TIAN2023` holds the
paper's values (``ufm network two-layer --setup tian2023``, ``setup = "tian2023"`` in a study).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.nonconvex import cpu_threads_for
from solvers.options import NETWORK_OPTIONS
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.two_layer import (
    TwoLayer,
    check_batchnorm,
    paper_score,
    paper_summary,
    pattern_tokens,
    specialisation,
    token_coverage,
)
from ufm.options import defaults

#: the declared defaults of ``ufm network``'s options (``solvers.options.NETWORK_OPTIONS``)
NETWORK = defaults(NETWORK_OPTIONS)
#: a hidden unit is specialised when one pattern token carries at least this share of its response
#: variance
SPECIALISED = 0.8
#: which samples anchor the loss: symmetric (every sample of both views, the loss as the family
#: defines it); view1 (the samples of view 1 only, as the paper's code: InfoNCE's anchors are the
#: first view, its positive the second view; see :func:`view1_infonce`)
ANCHORS = ("symmetric", "view1")

#: The paper's simulation (Tian 2023, section 5, "two-layer"), from its code: the repository
#: facebookresearch/luckmatters, ``ssl/real-dataset/bn_gen.py`` with its config
#: ``ssl/real-dataset/config/bn_gen.yaml``, and the overrides of the command that
#: ``ssl/real-dataset/README.md`` gives for the paper's section 5 ("Fourth paper [4]": ``python
#: bn_gen.py distri.num_tokens=20 distri.num_tokens_per_pos=5 model.activation=relu beta=5
#: model.bn_spec.use_bn=true model.bn_spec.backprop_var=false seed=1 model.shared_low_layer=false
#: opt.wd=0.005 distri.pattern_cnt=40 model.output_d=50 opt.lr=0.02``). Option by option:
#:
#: - locations 10: ``distri.num_loc: 10`` (yaml)
#: - vocab 20: ``distri.num_tokens=20`` (README; yaml 8)
#: - tokens_per_location 5: ``distri.num_tokens_per_pos=5`` (README; yaml 2)
#: - patterns 40: ``distri.pattern_cnt=40`` (README; yaml 10)
#: - fixed 5: ``distri.pattern_len: 5`` (yaml)
#: - hidden 25: ``multi = beta * distri.num_tokens_per_pos`` (bn_gen.py ``main``), ``beta=5`` (README)
#: - out_dim 50: ``model.output_d=50`` (README; yaml 20)
#: - batchnorm detach_var: ``model.bn_spec.use_bn: true``, ``backprop_mean: true`` (yaml),
#:   ``model.bn_spec.backprop_var=false`` (README); BatchNorm after the activation (``Model.forward``)
#: - weight_decay 5e-3: ``opt.wd: 5e-3`` (yaml; README ``opt.wd=0.005``)
#: - lr 0.02: ``opt.lr=0.02`` (README; yaml 0.01); SGD with ``opt.momentum: 0.9``, the project's
#:   default optimizer
#: - steps 5000: ``niter: 5000`` (yaml)
#: - batch 128, fresh_batches on: ``batchsize: 128`` (yaml); ``main`` draws ``gen.sample(
#:   args.batchsize)`` every iteration
#: - anchor view1 and the loss :data:`TIAN2023_LOSS`: ``loss_type: infoNCE``, ``similarity: dotprod``,
#:   ``l2_type: regular`` (yaml): ``M = z1 @ z1.t()`` with its diagonal replaced by ``(z1 * z2).sum(1)``
#:   and ``nn.CrossEntropyLoss()(M / T, arange)``: InfoNCE anchored on view 1, negatives the other
#:   samples of view 1 (``same_view``), the mean over the batch; ``T: 0.1`` (yaml)
#:
#: Not reproduced: PyTorch's default initialisation of ``nn.Linear`` (the project draws Gaussian
#: weights), and the data's magnitudes (``distri.mag_split: 1``: all tokens of magnitude 1, as here).
#: ``samples`` is not the paper's: it is the fixed sample on which the initial and final losses are
#: measured (``N: 1000`` in the yaml is not read by ``bn_gen.py``).
TIAN2023 = {"locations": 10, "vocab": 20, "tokens_per_location": 5, "patterns": 40, "fixed": 5, "hidden": 25,
            "out_dim": 50, "batchnorm": "detach_var", "weight_decay": 5e-3, "lr": 0.02, "steps": 5000,
            "batch": 128, "fresh_batches": "on", "anchor": "view1"}
#: the loss of the paper's simulation (see :data:`TIAN2023`)
TIAN2023_LOSS = {"loss": "infonce", "tau": 0.1, "negatives": "same_view", "reduction": "mean"}
#: the presets of ``--setup`` (``none``: the project's defaults)
SETUPS = {"tian2023": TIAN2023}


def setup_loss(setup: str | None):
    """The loss a setup trains through (None: the network default, InfoNCE with tau 0.1)."""
    if setup in (None, "none"):
        return None
    from ufm.losses import InfoNCE

    return InfoNCE(**{k: v for k, v in TIAN2023_LOSS.items() if k != "loss"})


@dataclass
class TwoLayerResult:
    activation: str
    loss: str
    values: np.ndarray  # the loss on each step's batch before its update, then on ``data`` after the last
    specialisation: np.ndarray  # (K, M) per hidden unit, NaN where no pattern fixes a token or dead
    initial_specialisation: np.ndarray
    stop: StopReason
    steps: int
    W: np.ndarray
    timings: dict = field(default_factory=dict)
    paper_score: np.ndarray | None = None  # (K, V) the paper's score per (location, pattern token)
    initial_paper_score: np.ndarray | None = None
    coverage: np.ndarray | None = None  # (K, V) bool: pattern tokens with a dedicated unit
    initial_coverage: np.ndarray | None = None
    pattern_token_count: int | None = None  # (location, token) pairs some pattern fixes
    eval_losses: tuple | None = None  # (initial, final) loss on ``data`` (the training sample, or the
    # evaluation sample of a run on fresh batches)

    def summary(self) -> dict:
        """The run in numbers. ``specialised_fraction`` and ``median_specialisation`` are over the
        *live* units (``live_units``: units at a location where some pattern fixes a token whose
        response is not constant); ``token_coverage`` is the fraction of the ``pattern_tokens``
        (location, token) pairs that some unit is dedicated to (``covered_tokens``); ``paper_score``
        the paper's ``loc_all`` (``ufm.networks.two_layer.paper_score``). The median is kept for
        compatibility: it misleads where many live units answer no pattern token (ReLU)."""
        s, s0 = self.specialisation, self.initial_specialisation

        def median(a):
            a = a[np.isfinite(a)]
            return float(np.median(a)) if a.size else None

        def share(a):
            a = a[np.isfinite(a)]
            return float(np.mean(a >= SPECIALISED)) if a.size else None

        def coverage(c):
            if c is None or not self.pattern_token_count:
                return None
            return float(c.sum() / self.pattern_token_count)

        first, last = self.eval_losses or (self.values[0], self.values[-1])
        out = {"activation": self.activation, "loss": self.loss, "steps": self.steps,
               "stop": self.stop.value,
               "final_loss": float(last), "initial_loss": float(first),
               "median_specialisation": median(s), "initial_median_specialisation": median(s0),
               "specialised_fraction": share(s), "initial_specialised_fraction": share(s0),
               "live_units": int(np.isfinite(s).sum()),
               "time_s": self.timings.get("total")}
        out.update({"units": int(s.size), "specialised_units": int(np.sum(s[np.isfinite(s)] >= SPECIALISED)),
                    "token_coverage": coverage(self.coverage),
                    "initial_token_coverage": coverage(self.initial_coverage),
                    "covered_tokens": None if self.coverage is None else int(self.coverage.sum()),
                    "pattern_tokens": self.pattern_token_count,
                    "paper_score": None if self.paper_score is None else paper_summary(self.paper_score),
                    "initial_paper_score": (None if self.initial_paper_score is None
                                            else paper_summary(self.initial_paper_score))})
        return out


def check_network_loss(loss) -> None:
    """A loss a network can be trained through: posed on instances x views, with a scalar
    objective."""
    from ufm.samples import Samples

    loss.check_samples(Samples.instances_views(2, 2), "loss")
    if not loss.scalar_objective:
        raise UFMInputError("loss", f"{loss.name} has no scalar objective (its dynamics re-weight pairs "
                            "at every step): networks are trained through a loss with one")


def check_anchor(anchor: str, loss) -> str:
    """``anchor`` is one of :data:`ANCHORS`; view1 anchors InfoNCE (and its variants) only."""
    from ufm.losses import InfoNCE

    if anchor not in ANCHORS:
        raise UFMInputError("anchor", f"unknown anchor {anchor!r} (choose from {', '.join(ANCHORS)})")
    if anchor == "view1" and not isinstance(loss, InfoNCE):
        raise UFMInputError("anchor", f"view1 anchors InfoNCE on the first view (the paper's loss); "
                            f"{loss.name} is posed on both views alike (anchor symmetric)")
    return anchor


def view1_infonce(H, loss):
    """InfoNCE anchored on view 1 (the paper's loss; ``anchor = "view1"``): H (2n, d) holds n
    instances x 2 views, instance-major. Each sample i of view 1 is an anchor, the same instance's
    view 2 its positive, and with G = H H^T

        l_i = log sum_{l in {i'} u N(i)} exp(G_il / tau) - G_ii' / tau

    N(i): the other samples of view 1 (negatives ``same_view``, the paper's), the other instances'
    samples of both views (``all``), those without the positive in the sum (``decoupled``). The
    sum over the n anchors, or their mean with ``reduction = "mean"`` (the paper's
    ``nn.CrossEntropyLoss``). Differentiable (autograd)."""
    import torch

    z1, z2 = H[0::2], H[1::2]
    n = z1.shape[0]
    tau = float(loss.tau)
    pos = (z1 * z2).sum(dim=1) / tau
    eye = torch.eye(n, dtype=torch.bool, device=H.device)
    same = (z1 @ z1.T / tau).masked_fill(eye, -math.inf)  # other samples of view 1
    parts = [same]
    if loss.negatives in ("all", "decoupled"):
        parts.append((z1 @ z2.T / tau).masked_fill(eye, -math.inf))  # other instances' view 2
    if loss.negatives != "decoupled":
        parts.append(pos[:, None])
    terms = torch.logsumexp(torch.cat(parts, dim=1), dim=1) - pos
    value = terms.sum()
    return value / n if loss.reduction == "mean" else value


def train_two_layer(data, locations: int, vocab: int, activation: str = "relu", hidden: int = NETWORK.hidden,
                    out_dim: int = NETWORK.out_dim, loss=None, steps: int = NETWORK.steps,
                    lr: float = NETWORK.lr, seed: int = NETWORK.seed, grad_tol: float = 1e-8,
                    optimizer: str = NETWORK.optimizer, *, batchnorm: str = "off", weight_decay: float = 0.0,
                    anchor: str = "symmetric", source=None, batch: int | None = None) -> TwoLayerResult:
    """Gradient descent (SGD with momentum 0.9, as in Tian 2023, or Adam) on the loss (default
    InfoNCE, tau = 0.1) of the embeddings of both views of ``data`` (a pattern_data TwoViews), full
    batch; the loss's closed-form gradient in the embeddings is back-propagated through the
    network. (Adam's per-weight step sizes blur the specialisation: measured 5-30% of ReLU units
    against 18-47% with SGD on the same data.)

    The paper's simulation besides (:data:`TIAN2023`): ``batchnorm`` (``ufm.networks.two_layer.
    BATCHNORMS``: the hidden layer batch-normalised, each view by its own statistics);
    ``weight_decay`` (the optimizer's L2 term on W and V; 0 is the plain path, step for step);
    ``anchor`` (:data:`ANCHORS`: ``view1`` trains through :func:`view1_infonce` by autograd);
    ``source`` (a ``ufm.networks.data.PatternSource``): each step draws a fresh batch of ``batch``
    samples (default ``data.n``) from it with a generator seeded by (``seed``, 2023), and ``data`` is the
    fixed sample the initial and final losses are measured on."""
    import torch

    from ufm.losses import InfoNCE
    from ufm.samples import Samples

    if int(steps) != steps or steps < 1:
        raise UFMInputError("steps", f"must be an integer >= 1, got {steps}")
    if data.dim != locations * vocab:
        raise UFMInputError("locations", f"data has {data.dim} inputs, not locations x vocab = "
                            f"{locations * vocab}")
    if isinstance(weight_decay, bool) or not np.isfinite(weight_decay) or weight_decay < 0:
        raise UFMInputError("weight_decay", f"must be a finite number >= 0, got {weight_decay}")
    check_batchnorm(batchnorm)
    if batch is not None and (source is None or int(batch) != batch or batch < 2):
        raise UFMInputError("batch", f"the samples of each fresh batch: an integer >= 2 with fresh batches "
                            f"(fresh_batches on), got {batch}" + ("" if source is not None else
                                                                  " without fresh batches"))
    if source is not None and (source.locations, source.vocab) != (locations, vocab):
        raise UFMInputError("locations", "the source of fresh batches has other locations or vocab")
    loss = InfoNCE(tau=0.1) if loss is None else loss
    check_network_loss(loss)
    check_anchor(anchor, loss)
    t0 = time.perf_counter()

    def views(d):
        return torch.as_tensor(np.stack([d.x1, d.x2], axis=1).reshape(2 * d.n, -1), dtype=torch.float64)

    x = views(data)
    samples = Samples.instances_views(data.n, 2)
    net = TwoLayer.random(locations, vocab, hidden, out_dim, activation, seed, batchnorm)
    tokens = pattern_tokens(data.directions, locations, vocab)

    def measures(W):
        return (specialisation(W, tokens, activation), paper_score(W, tokens, activation),
                token_coverage(W, tokens, activation, SPECIALISED))

    s0, p0, c0 = measures(net.W.numpy())
    params = net.parameters()
    for p in params:
        p.requires_grad_(True)
    if optimizer not in ("adam", "sgd"):
        raise UFMInputError("optimizer", f"unknown optimizer {optimizer!r} (choose from adam, sgd)")
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))

    def evaluate(xe, se):
        with torch.no_grad():
            H = net.embed(xe, 2)
            return float(view1_infonce(H, loss) if anchor == "view1" else loss.torch_value_and_grad(H, se)[0])

    if source is None:
        batches = None
        rows = x.shape[0]
    else:
        size = data.n if batch is None else int(batch)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2023]))
        batch_samples = Samples.instances_views(size, 2)

        def batches():
            return views(source.draw(size, rng)), batch_samples

        rows = 2 * size
    initial = None if source is None else evaluate(x, samples)
    with cpu_threads_for(rows * x.shape[1] * hidden + rows ** 2 * out_dim, "cpu"):
        values, stop, taken = _descend(net, x, samples, loss, opt, params, int(steps), lr, grad_tol,
                                       anchor=anchor, batches=batches)
    values.append(evaluate(x, samples))
    W = net.W.detach().numpy()
    if not np.isfinite(values[-1]) or not np.all(np.isfinite(W)):
        raise UFMInputError("lr", f"training diverged (non-finite weights or loss): lower the learning "
                            f"rate (lr = {lr:g})")
    final, p1, c1 = measures(W)
    return TwoLayerResult(activation, loss.name, np.array(values), final, s0, stop, taken, W,
                          {"total": time.perf_counter() - t0}, p1, p0, c1, c0,
                          int(sum(len(t) for t in tokens)),
                          (values[0] if initial is None else initial, values[-1]))


def _descend(net, x, samples, loss, opt, params, steps: int, lr: float, grad_tol: float,
             anchor: str = "symmetric", batches=None):
    """The training loop: (values, stop reason, steps taken). Each step's batch is (x, samples), or
    a fresh one from ``batches()``; the loss symmetric over the views (its closed-form gradient in
    the embeddings, back-propagated) or anchored on view 1 (:func:`view1_infonce`, autograd)."""
    import torch

    values, stop, taken = [], StopReason.ITERATION_LIMIT, 0
    for _ in range(steps):
        opt.zero_grad()
        xb, sb = (x, samples) if batches is None else batches()
        H = net.embed(xb, 2)
        if anchor == "view1":
            value = view1_infonce(H, loss)
            ok = bool(torch.isfinite(value))
            if ok:
                value.backward()
                ok = all(bool(torch.isfinite(p.grad).all()) for p in params)
        else:
            value, grad = loss.torch_value_and_grad(H.detach(), sb)
            ok = bool(torch.isfinite(value) and torch.isfinite(grad).all())
            if ok:
                H.backward(grad)
        if not ok:
            raise UFMInputError("lr", f"training diverged at step {len(values)} (non-finite loss or "
                                f"gradient): lower the learning rate (lr = {lr:g})")
        values.append(float(value.detach()))
        gnorm = float(sum(p.grad.norm() ** 2 for p in params) ** 0.5)
        if gnorm <= grad_tol:
            stop = StopReason.GRADIENT_TOL
            break
        opt.step()
        taken += 1
    return values, stop, taken
