"""Benchmark contract: interleaved timing, medians and ratio, machine description, JSON."""
import json
import os
import types


from bridge import bench, registry
from bridge.bench import BenchResult, Benchmark, Timing


class FakeClock:
    """A perf_counter that only moves when a fake workload says so: timings become exact."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_interleave_alternates_order_and_counts_calls(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    calls = []

    def baseline():
        calls.append("b")
        clock.now += 2.0

    def coupled():
        calls.append("c")
        clock.now += 30.0 if calls.count("c") == 5 else 3.0  # one slow timed call: the median ignores it

    t = bench.interleave(baseline, coupled, repeats=5, warmup=2)
    assert calls.count("b") == calls.count("c") == 2 + 5
    assert calls[:4] == ["b", "c", "b", "c"]  # warm-up pairs
    assert calls[4:] == ["b", "c", "c", "b", "b", "c", "c", "b", "b", "c"]  # first of each pair alternates
    assert t.baseline == [2.0] * 5
    assert sorted(t.coupled) == [3.0, 3.0, 3.0, 3.0, 30.0]
    assert t.baseline_median == 2.0 and t.coupled_median == 3.0 and t.ratio == 1.5


def test_timing_ratio_is_the_ratio_of_medians():
    t = Timing(baseline=[4.0, 1.0, 2.0], coupled=[10.0, 2.0, 6.0, 100.0])
    assert t.baseline_median == 2.0 and t.coupled_median == 8.0  # even count: mean of the middle two
    assert t.ratio == 4.0


def test_machine_has_cpu_and_cores():
    m = bench.machine()
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert m["cores"] == os.cpu_count() and m["cores"] >= 1
    assert "python" in m and "gpu" in m
    json.dumps(m)  # serialisable as is


def result(goal=None, ratio=1.2):
    return BenchResult("overhead", ratio, "coupled/native", 1.0, ratio, {"atoms": 1000}, goal=goal,
                       details={"steps": 10}, timings={"baseline": [1.0], "coupled": [ratio]})


def test_met_goal():
    assert result(goal=None).met_goal is None
    assert result(goal=1.5).met_goal is True and result(goal=1.1).met_goal is False


def test_write_json(tmp_path):
    path = tmp_path / "b" / "bench.json"
    bench.write_json([result(goal=1.5), result(goal=1.0, ratio=2.0)], path)
    data = json.loads(path.read_text())
    assert data["machine"]["cores"] == os.cpu_count()
    assert [b["met_goal"] for b in data["benchmarks"]] == [True, False]
    assert data["benchmarks"][0]["size"] == {"atoms": 1000} and data["benchmarks"][1]["ratio"] == 2.0
    assert os.listdir(path.parent) == ["bench.json"]
    text = bench.format_result(result(goal=1.0, ratio=2.0))
    assert "coupled/native = 2.0000" in text and "MISSED" in text and "atoms=1000" in text


def test_discover_uses_the_registry(entry_points):
    b = Benchmark("fake", "a fake benchmark", lambda quick, repeats: result())
    registry.register(registry.BENCHMARKS, "mine", [b])
    assert bench.discover() == [b]


def test_gpus_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.gpus() == []
    assert bench.machine()["gpu"] is None
