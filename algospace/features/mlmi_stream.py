"""MLMI one 30-minute bar at a time, its recurrences carried: :func:`compute_mlmi` bit for bit.

:func:`algospace.features.mlmi.compute_mlmi` solves the four Wilder averages (gains and
losses of the fast and slow RSI) as linear recurrences in blocks of 64 bars with a carry
across block ends. :class:`MLMIStream` keeps those carries, so a new bar recomputes only
its own block's values, in the same arithmetic; the moving averages and the crossover test
read the last 21 bars, the labelled points grow by one at each crossover, and the kNN vote
runs for the new bar alone. Defaults of :func:`compute_mlmi` besides ``k`` and
``threshold`` (as :func:`algospace.features.build.strategic_features` calls it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from algospace.features.mlmi import _BLOCK, compute_mlmi, knn_vote, rsi_wilder, wma
from algospace.features.streaming import Growing

MA_FAST, MA_SLOW, RSI_FAST, RSI_SLOW, RSI_SMOOTH, MAX_POINTS = 5, 20, 5, 20, 20, 2000
"""``compute_mlmi``'s defaults."""
_J = np.arange(_BLOCK, dtype=np.float64)


def _block_local(u: np.ndarray, a: float) -> np.ndarray:
    """``_linear_recurrence``'s in-block solution of blocks of ``u`` (rows; zero-padded)."""
    nb = -(-len(u) // _BLOCK)
    padded = np.zeros(nb * _BLOCK)
    padded[:len(u)] = u
    return np.asarray(a**_J * np.cumsum(padded.reshape(nb, _BLOCK) * a ** (-_J), axis=1))


class _Wilder:
    """One Wilder average (gains or losses over ``period`` bars), block carries kept."""

    def __init__(self, period: int, sign: float) -> None:
        self.period, self.sign, self.a = period, sign, 1.0 - 1.0 / period
        self.carries: list[float] = []  # the value at the end of each complete block

    def _u(self, close: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Inputs ``u[lo .. hi-1]`` of the recurrence (``u[i]`` belongs to bar period + i):
        ``rsi_wilder``'s moves over the period, the first the mean of the first ``period``."""
        p = self.period
        u = np.maximum(self.sign * np.diff(close[p - 1 + lo:p + hi]), 0.0) / p
        if lo == 0:
            u[0] = np.maximum(self.sign * np.diff(close[:p + 1]), 0.0).mean()
        return u

    def reset(self, close: np.ndarray) -> None:
        """Carries of every complete block of ``close``'s bars."""
        u_len = len(close) - self.period
        self.carries = []
        if u_len < _BLOCK or self.a == 0.0:
            return
        complete = u_len // _BLOCK * _BLOCK
        ends = _block_local(self._u(close, 0, complete), self.a)[:, -1].tolist()
        carry = 0.0
        for end in ends:
            carry = self.a**_BLOCK * carry + end
            self.carries.append(carry)

    def last(self, close: np.ndarray) -> float:
        """The average at the last bar of ``close`` (one bar after the previous call)."""
        i = len(close) - 1 - self.period
        b = i // _BLOCK
        u = self._u(close, b * _BLOCK, i + 1)
        if self.a == 0.0:
            return float(u[-1])
        local = _block_local(u, self.a)[0]
        if b > 0:
            local = local + self.a ** (_J + 1) * self.carries[b - 1]
        if i % _BLOCK == _BLOCK - 1:  # the block is complete: its carry
            prev = self.carries[b - 1] if b > 0 else 0.0
            self.carries.append(self.a**_BLOCK * prev + _block_local(u, self.a)[0, -1])
        return float(local[i % _BLOCK])


class MLMIStream:
    """``mlmi_value`` and ``mlmi_signal`` of each new bar (see the module docstring)."""

    def __init__(self, k: int, threshold: float) -> None:
        self.k, self.threshold = k, threshold
        self._avg = {(p, s): _Wilder(p, s) for p in (RSI_SLOW, RSI_FAST) for s in (1.0, -1.0)}
        self.n_rows = 0
        self._rsi_rows = Growing(2)  # slow, fast RSI of every bar
        self._query = Growing(2)  # the kNN query of every bar
        self.crosses: list[int] = []

    def rows(self, close: np.ndarray, first: int) -> dict[str, np.ndarray]:
        """``mlmi_value``, ``mlmi_signal`` of bars ``first .. len(close)-1``."""
        n = len(close)
        if first != self.n_rows or n - first != 1:
            out = compute_mlmi(close, k=self.k, threshold=self.threshold, rows_from=first)
            self._hold(close)
            return {name: v[first:] for name, v in out.items()}
        t = n - 1
        rsi = [self._rsi(close, p) for p in (RSI_SLOW, RSI_FAST)]
        self._rsi_rows.append(rsi)
        tail = self._rsi_rows.view[max(0, t - RSI_SMOOTH + 1):]
        query = [wma(tail[:, j], RSI_SMOOTH)[-1] if len(tail) >= RSI_SMOOTH else np.nan
                 for j in (0, 1)]
        self._query.append(query)
        c = np.asarray(close[max(0, t - MA_SLOW):], np.float64)
        d = wma(c, MA_FAST)[-2:] - wma(c, MA_SLOW)[-2:] if len(c) > MA_SLOW else [np.nan] * 2
        crossed = (d[1] > 0 >= d[0]) or (d[1] < 0 <= d[0])
        if crossed and not np.isnan(self._query.view[t]).any():
            self.crosses.append(t)
        value = self._vote(close, t)
        self.n_rows = n
        signal = np.where(np.abs(value) > self.threshold, np.sign(value), 0.0)
        return {"mlmi_value": value, "mlmi_signal": np.where(np.isnan(value), np.nan, signal)}

    def _rsi(self, close: np.ndarray, period: int) -> float:
        """RSI of the last bar (``rsi_wilder``'s arithmetic)."""
        if len(close) - 1 < period:
            return float("nan")
        gain, loss = (self._avg[(period, s)].last(close) for s in (1.0, -1.0))
        total = gain + loss
        return 100.0 * gain / total if total > 0 else 50.0

    def _vote(self, close: np.ndarray, t: int) -> np.ndarray:
        """The kNN vote at bar ``t`` over the last ``MAX_POINTS`` completed points (passing
        only those changes nothing: the vote never reads an earlier one)."""
        bars = np.asarray(self.crosses[-(MAX_POINTS + 1):], np.int64)
        start, end = bars[:-1], bars[1:]
        label = np.sign(close[end] - close[start])
        query = self._query.view
        return knn_vote(query[t:t + 1], query[start], label, np.array([len(end)]),
                        k=self.k, max_points=MAX_POINTS)

    def _hold(self, close: np.ndarray) -> None:
        """The carried state after every bar of ``close`` (computed in bulk)."""
        c = np.asarray(close, np.float64)
        self.n_rows = len(c)
        for avg in self._avg.values():
            avg.reset(c)
        rsi = np.column_stack([rsi_wilder(c, RSI_SLOW), rsi_wilder(c, RSI_FAST)])
        query = np.column_stack([wma(rsi[:, 0], RSI_SMOOTH), wma(rsi[:, 1], RSI_SMOOTH)])
        self._rsi_rows, self._query = Growing(2), Growing(2)
        self._rsi_rows.put(0, rsi)
        self._query.put(0, query)
        fast, slow = wma(c, MA_FAST), wma(c, MA_SLOW)
        d = fast - slow
        cross = np.flatnonzero(((d[1:] > 0) & (d[:-1] <= 0)) | ((d[1:] < 0) & (d[:-1] >= 0))) + 1
        self.crosses = [int(b) for b in cross if not np.isnan(query[b]).any()]

    def state(self) -> dict[str, np.ndarray]:
        """The carried state as arrays (see :meth:`load_state`)."""
        out = {"mlmi_rsi": self._rsi_rows.view, "mlmi_query": self._query.view,
               "mlmi_crosses": np.asarray(self.crosses, np.int64),
               "mlmi_rows": np.array([self.n_rows], np.int64)}
        out.update({f"mlmi_carries_{p}_{int(s)}": np.asarray(a.carries, np.float64)
                    for (p, s), a in self._avg.items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from :meth:`state`'s arrays."""
        self._rsi_rows.put(0, np.asarray(state["mlmi_rsi"], np.float64).reshape(-1, 2))
        self._query.put(0, np.asarray(state["mlmi_query"], np.float64).reshape(-1, 2))
        self.crosses = [int(b) for b in state["mlmi_crosses"]]
        self.n_rows = int(state["mlmi_rows"][0])
        for (p, s), a in self._avg.items():
            a.carries = [float(v) for v in state[f"mlmi_carries_{p}_{int(s)}"]]
