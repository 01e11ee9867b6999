"""train() starts a Ray of its own rather than attaching to the one a stale file names."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from algospace.training.train import ensure_ray


@pytest.mark.parametrize(("env", "expected"), [(None, "local"), ("10.0.0.5:6379", "10.0.0.5:6379")])
def test_ensure_ray_starts_a_local_ray_unless_an_address_is_given(
        monkeypatch: Any, env: str | None, expected: str) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    ensure_ray()
    assert [c["address"] for c in calls] == [expected]


def test_ensure_ray_leaves_a_running_ray_alone(monkeypatch: Any) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    ensure_ray()
    assert calls == []
