"""The probes' classifier: multinomial logistic regression, or one hidden layer, on (-1, 0, +1).

A :class:`ProbeModel` maps a feature vector to scores for the three classes
``-1`` (short), ``0`` (flat) and ``+1`` (long) and predicts the class with the
highest score. Inputs are standardised with the training rows' mean and
standard deviation (a column constant on the training rows is centred only),
so the L2 penalty treats every column alike. Fitting (:func:`fit_probe`)
minimises the mean cross-entropy plus ``l2 × Σ w²`` over the weight matrices
(biases unpenalised) by full-batch L-BFGS (torch's, strong Wolfe line search)
on a gradient computed here in numpy:

- ``hidden=0``: multinomial logistic regression. The objective is convex and
  the weights start at zero, so the fit does not depend on a seed.
- ``hidden=h``: one tanh layer of ``h`` units, its weights drawn from
  ``numpy.random.default_rng(seed)``; the same seed gives the same model.

Prediction runs in numpy on the fitted arrays (no torch at scoring time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algospace.errors import ConfigError

CLASSES: tuple[int, ...] = (-1, 0, 1)
"""The classes, in score order: short, flat, long (unit positions)."""


@dataclass(frozen=True)
class ProbeModel:
    """A fitted probe: standardisation, weights and the settings it was fitted with."""

    mean: np.ndarray
    """Per-column mean of the training rows."""
    scale: np.ndarray
    """Per-column standard deviation of the training rows (1 where constant)."""
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    """(weights, bias) per layer, float64; tanh between layers."""
    l2: float
    """The L2 strength it was fitted with."""
    hidden: int
    """Units of the hidden layer (0: logistic regression)."""

    @property
    def kind(self) -> str:
        """``linear`` or ``mlp<h>``."""
        return "linear" if self.hidden == 0 else f"mlp{self.hidden}"

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class scores (logits), rows × 3, in :data:`CLASSES` order."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.tanh(x)
        return x

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`scores`."""
        s = self.scores(features)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The most likely class per row (int64 in -1, 0, +1; ties to the lower class)."""
        return np.asarray(CLASSES, dtype=np.int64)[np.argmax(self.scores(features), axis=1)]


def log_loss(model: ProbeModel, features: np.ndarray, target: np.ndarray) -> float:
    """Mean cross-entropy of ``model`` on ``target`` (classes -1, 0, +1)."""
    p = model.probabilities(features)
    idx = _class_index(target)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(idx)), idx], 1e-300))))


def _class_index(target: np.ndarray) -> np.ndarray:
    """Column of each target's class in the scores."""
    y = np.asarray(target, dtype=np.int64)
    if y.ndim != 1 or not np.isin(y, CLASSES).all():
        raise ConfigError(f"probe targets must be a 1-D array of -1, 0 and +1; found values "
                          f"{np.unique(y)[:5].tolist()} in shape {y.shape}; pass unit positions")
    return y + 1


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the columns (scale 1 for a column constant on these rows)."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    return mean, scale


class _Objective:
    """Mean cross-entropy + ``l2 × Σ w²`` and its gradient, on a flat parameter vector.

    Identical rows are merged first, each carrying its count of every class (a
    ``strategic_v0`` bar's six rows share their features), so the loss is the same and
    the products are smaller. The two big products run in ``dtype`` (float32: half the
    memory traffic) on the standardised rows and their transpose, both contiguous; the
    rest in float64.
    """

    def __init__(self, x: np.ndarray, classes: np.ndarray, l2: float, hidden: int,
                 dtype: type[np.floating] = np.float32) -> None:
        rows, inverse = np.unique(x.astype(dtype), axis=0, return_inverse=True)
        self.counts = np.zeros((len(rows), len(CLASSES)))
        np.add.at(self.counts, (inverse.ravel(), classes), 1.0)
        self.weight = self.counts.sum(axis=1, keepdims=True)
        self.total = float(len(classes))
        self.x = np.ascontiguousarray(rows)
        self.xt = np.ascontiguousarray(rows.T)
        self.l2, self.hidden = l2, hidden
        d, n = x.shape[1], len(CLASSES)
        self.shapes = [(d, n), (n,)] if hidden == 0 else [(d, hidden), (hidden,),
                                                           (hidden, n), (n,)]

    def unpack(self, theta: np.ndarray) -> list[np.ndarray]:
        """The weight matrices and biases of a flat vector."""
        out, at = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(theta[at:at + size].reshape(shape))
            at += size
        return out

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = self.unpack(theta)
        first = (self.x @ p[0].astype(self.x.dtype)).astype(np.float64) + p[1]
        hidden = np.tanh(first) if self.hidden else first
        s = hidden @ p[2] + p[3] if self.hidden else first
        s = s - s.max(axis=1, keepdims=True)
        log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        penalty = sum(float((w * w).sum()) for w in p[0::2])
        loss = -float((self.counts * log_p).sum()) / self.total + self.l2 * penalty
        d_s = (np.exp(log_p) * self.weight - self.counts) / self.total
        grads: list[np.ndarray] = []
        if self.hidden:
            grads = [hidden.T @ d_s + 2 * self.l2 * p[2], d_s.sum(axis=0)]
            d_s = (d_s @ p[2].T) * (1.0 - hidden * hidden)
        first_w = (self.xt @ d_s.astype(self.x.dtype)).astype(np.float64) + 2 * self.l2 * p[0]
        grads = [first_w, d_s.sum(axis=0), *grads]
        return loss, np.concatenate([g.ravel() for g in grads])


def fit_probe(features: np.ndarray, target: np.ndarray, *, l2: float, hidden: int = 0,
              seed: int = 0, max_iter: int = 200,
              start: ProbeModel | None = None) -> ProbeModel:
    """Fit a probe on ``features`` (rows × columns) and ``target`` (-1, 0, +1 per row).

    ``start``: a model of the same shape to start from (a warm start along an L2 grid;
    the standardisation is recomputed from ``features`` either way).
    """
    import torch

    x_np = np.asarray(features, dtype=np.float64)
    classes = _class_index(target)
    if x_np.ndim != 2 or len(x_np) != len(classes) or len(x_np) == 0:
        raise ConfigError(f"probe features must be rows × columns with one row per target; "
                          f"found {x_np.shape} for {len(classes)} targets")
    if not (l2 >= 0 and np.isfinite(l2)):
        raise ConfigError(f"l2 must be a finite number >= 0; found {l2!r}")
    if hidden < 0:
        raise ConfigError(f"hidden must be >= 0 units; found {hidden}")
    mean, scale = standardisation(x_np)
    objective = _Objective((x_np - mean) / scale, classes, float(l2), int(hidden))
    theta = torch.from_numpy(_initial(objective, seed, start))

    def closure() -> torch.Tensor:
        loss, grad = objective(theta.numpy())
        theta.grad = torch.from_numpy(grad)
        return torch.tensor(loss, dtype=torch.float64)

    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-10,
                            line_search_fn="strong_wolfe")
    opt.step(closure)
    arrays = [a.copy() for a in objective.unpack(theta.numpy())]
    layers = tuple((arrays[i], arrays[i + 1]) for i in range(0, len(arrays), 2))
    return ProbeModel(mean, scale, layers, float(l2), int(hidden))


def _initial(objective: _Objective, seed: int, start: ProbeModel | None) -> np.ndarray:
    """The starting parameters: ``start``'s if it has the same shapes, else zeros for a
    logistic regression and a draw from ``default_rng(seed)`` for a hidden layer."""
    if start is not None and [a.shape for layer in start.layers for a in layer] \
            == objective.shapes:
        return np.concatenate([a.ravel() for layer in start.layers for a in layer])
    if objective.hidden == 0:
        return np.zeros(sum(int(np.prod(s)) for s in objective.shapes))
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=s) / np.sqrt(s[0]) if len(s) == 2 else np.zeros(s)
             for s in objective.shapes]
    return np.concatenate([p.ravel() for p in parts])
