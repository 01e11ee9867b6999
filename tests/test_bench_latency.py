"""The latency benchmark runs end to end in quick mode and writes its figures (no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments import bench, latency

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")


def test_quick_latency_bench_writes_every_figure(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    out = tmp_path / "latency.json"
    assert bench.main(["latency", "--quick", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert torch.get_num_threads() == threads  # the bench's one thread is undone

    assert figures["latency_torch_threads"] == 1
    assert figures["latency_repeats"] == latency.QUICK["repeats"]
    assert 0.0 <= figures["latency_export_max_abs_logit_diff"] <= 1e-5
    for layer in ("tactical", "strategic"):
        assert figures[f"{layer}_target_p99_us"] == latency.TARGET_P99_US[layer]
        for mc in latency.MC_VARIANTS:
            for impl in latency.IMPLS:
                key = f"{layer}_mc{mc}_{impl}"
                assert 0 < figures[f"{key}_p50_us"] <= figures[f"{key}_p99_us"]
                assert figures[f"{key}_mean_us"] > 0
                assert isinstance(figures[f"{key}_p99_pass"], bool)
            for q in ("p50", "p99"):
                for impl in ("exported", "engine"):
                    assert figures[f"{layer}_mc{mc}_{impl}_vs_eager_{q}_ratio"] > 0
    assert figures["stream_timed_bars"] == latency.QUICK["stream_bars"]
    assert figures["stream_strategic_closes"] >= 1
    for name in ("all", "5m_only", "strategic_close"):
        assert 0 < figures[f"stream_bar_{name}_p50_ms"] <= figures[f"stream_bar_{name}_p99_ms"]
    assert figures["stream_history_days"] == list(latency.QUICK["history_days"])
    for label in ("30d", "35d"):  # the stream's update after each history length
        assert figures[f"history_bars_{label}"] > 0 and figures[f"timed_closes_{label}"] >= 1
        for key in ("feature_update", "close_update"):
            assert 0 < figures[f"{key}_p50_ms_{label}"] <= figures[f"{key}_p99_ms_{label}"]
    assert figures["history_bars_35d"] > figures["history_bars_30d"]
    assert latency.history_label(1260) == "5y" and latency.history_label(30) == "30d"
    assert figures["machine_cores"] >= 1 and figures["machine_load_1m_end"] >= 0

    printed = capsys.readouterr().out
    assert "feature update of the stream" in printed and "35d" in printed
    assert "one CPU thread" in printed and "does not depend on the weight values" in printed
    assert printed.count("PASS") + printed.count("MISS") == (
        2 * len(latency.IMPLS) * len(latency.MC_VARIANTS))
