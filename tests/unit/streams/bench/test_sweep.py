"""The sweep: the sustainable-rate criteria, the bounded search, the JSON it writes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from streams.bench._run import BenchConfig
from streams.bench._sweep import (
    Criteria,
    SearchPlan,
    SweepConfig,
    SweepEvent,
    next_rate,
    search,
    summarise_system,
    sweep_document,
)
from streams.exceptions import InfraError


def run_doc(system: str, rate: float, capacity: float, rss_mib: float = 100.0) -> dict[str, Any]:
    """A run of a system that keeps up to ``capacity`` tx/s and falls behind above it."""
    keeps_up = rate <= capacity
    return {
        "rate_target": rate,
        "throughput_eps": rate if keeps_up else capacity,
        "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0 if keeps_up else 5_000.0,
                       "p999": 40.0 if keeps_up else 6_000.0, "max": 50.0},
        "missing": 0,
        "lag_slope_eps": 0.0 if keeps_up else rate - capacity,
        "generator": {"send_rate_eps": rate},
        "system": {"name": system, "rss_peak_mib": rss_mib},
    }  # fmt: skip


class FakeRunner:
    """Stands in for a real run: records what it was asked, answers from a capacity."""

    def __init__(self, capacity: float, fail_at: frozenset[float] = frozenset()) -> None:
        self.capacity = capacity
        self.fail_at = fail_at
        self.asked: list[BenchConfig] = []

    def __call__(self, config: BenchConfig) -> dict[str, Any]:
        self.asked.append(config)
        if config.rate in self.fail_at:
            raise InfraError("the system exited with code 1")
        return run_doc(config.system, config.rate, self.capacity)

    @property
    def rates(self) -> list[float]:
        return [config.rate for config in self.asked]


def sweep_config(rate: float = 1000.0, **overrides: Any) -> SweepConfig:
    base = BenchConfig(rate=rate, duration_s=20.0)
    return SweepConfig(base=base, **({"max_runs": 30} | overrides))


def run_search(runner: FakeRunner, config: SweepConfig, deadline: float = float("inf"), **kw: Any):
    events: list[SweepEvent] = []
    runs, stopped = search(config, "quix", runner, deadline, events.append, **kw)
    return runs, stopped, events


def best(runs: list[dict[str, Any]]) -> float | None:
    return summarise_system(runs, "")["max_sustainable_eps"]


# --- criteria -------------------------------------------------------------------


def test_a_run_that_keeps_up_within_budget_is_sustainable():
    assert Criteria().judge(run_doc("x", 1000.0, 2000.0)) == {"sustainable": True, "reasons": []}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"latency_ms": {"p99": 51.0}}, "p99 51 > 50 ms"),
        ({"latency_ms": {"p99": None}}, "p99 - > 50 ms"),
        ({"missing": 3}, "3 missing"),
        ({"throughput_eps": 960.0}, "throughput 960/s < 97% of 1,000/s"),
        ({"lag_slope_eps": 10.5}, "backlog growing 10/s"),
        ({"lag_slope_eps": None}, "run too short to fit the backlog's slope"),
    ],
)
def test_each_criterion_alone_makes_a_rate_unsustainable(change, reason):
    doc = run_doc("x", 1000.0, 2000.0)
    for key, value in change.items():
        doc[key] = doc[key] | value if isinstance(value, dict) else value
    verdict = Criteria().judge(doc)
    assert verdict == {"sustainable": False, "reasons": [reason]}


def test_the_thresholds_are_inclusive():
    doc = run_doc("x", 1000.0, 2000.0)
    doc |= {"throughput_eps": 970.0, "lag_slope_eps": 10.0}
    doc["latency_ms"]["p99"] = 50.0
    assert Criteria().judge(doc)["sustainable"]


def test_a_generator_that_could_not_offer_the_rate_is_named():
    doc = run_doc("x", 1000.0, 2000.0) | {"throughput_eps": 800.0}
    doc["generator"]["send_rate_eps"] = 810.0
    assert "the generators sent only 810/s" in Criteria().judge(doc)["reasons"]


def test_the_criteria_are_written_down_in_the_json():
    criteria = Criteria().as_dict()
    assert criteria["p99_ms_max"] == 50.0
    assert criteria["missing_max"] == 0
    assert criteria["throughput_share_min"] == 0.97
    assert criteria["lag_slope_share_max"] == 0.01
    assert "p99 <= 50 ms" in criteria["definition"]


# --- the search -----------------------------------------------------------------


def test_the_next_rate_grows_shrinks_and_bisects():
    plan = SearchPlan(start_rate=1000.0, growth=2.0, resolution=0.05)
    assert next_rate(plan, None, None) == 1000.0
    assert next_rate(plan, 1000.0, None) == 2000.0
    assert next_rate(plan, None, 1000.0) == 500.0
    assert next_rate(plan, 2000.0, 4000.0) == 3000.0
    assert next_rate(plan, 3000.0, 3500.0) == 3200.0  # 3250 to two significant digits
    fine = SearchPlan(start_rate=1000.0, resolution=0.01)
    assert next_rate(fine, 3000.0, 3100.0) == 3050.0  # two digits would hit an end
    assert next_rate(plan, 3000.0, 3150.0) is None  # within 5 %
    assert next_rate(SearchPlan(start_rate=15.0), None, 15.0) is None  # below min_rate


@pytest.mark.parametrize("capacity", [900.0, 3100.0, 12_345.0, 40_000.0])
def test_the_search_finds_the_boundary_within_the_resolution(capacity):
    runner = FakeRunner(capacity)
    runs, stopped, _ = run_search(runner, sweep_config())
    found = best(runs)
    first_bad = summarise_system(runs, "")["first_unsustainable_eps"]
    assert stopped == "boundary found"
    assert found is not None
    assert found <= capacity < first_bad
    assert first_bad <= found * 1.05
    assert len(set(runner.rates)) == len(runner.rates)  # no rate twice


def test_the_search_grows_from_the_start_rate_then_bisects():
    runner = FakeRunner(3100.0)
    run_search(runner, sweep_config(max_runs=5))
    assert runner.rates == [1000.0, 2000.0, 4000.0, 3000.0, 3500.0]


def test_a_system_with_its_own_start_rate_starts_there():
    runner = FakeRunner(300.0)
    run_search(runner, sweep_config(max_runs=3, start_rates={"quix": 100.0, "passthrough": 1e4}))
    assert runner.rates == [100.0, 200.0, 400.0]


def test_the_search_respects_max_runs():
    runner = FakeRunner(1e9)
    runs, stopped, _ = run_search(runner, sweep_config(max_runs=4))
    assert len(runs) == 4
    assert runner.rates == [1000.0, 2000.0, 4000.0, 8000.0]
    assert stopped == "max runs (4)"
    assert best(runs) == 8000.0


def test_a_system_without_any_sustainable_rate_is_said_so():
    runs, stopped, _ = run_search(FakeRunner(0.0), sweep_config())
    assert stopped == "no sustainable rate found"
    assert best(runs) is None
    assert min(run["rate_target"] for run in runs) >= 10.0


def test_the_search_stops_when_the_next_point_would_not_fit_the_time():
    now = [0.0]

    def clock() -> float:
        return now[0]

    class SlowRunner(FakeRunner):
        def __call__(self, config: BenchConfig) -> dict[str, Any]:
            now[0] += 100.0
            return super().__call__(config)

    runs, stopped, _ = run_search(SlowRunner(1e9), sweep_config(), deadline=250.0, clock=clock)
    assert len(runs) == 2
    assert stopped == "time budget"


def test_the_first_point_runs_even_past_the_deadline():
    runs, _, _ = run_search(FakeRunner(1e9), sweep_config(), deadline=-1.0)
    assert len(runs) == 1


def test_a_system_that_cannot_run_at_all_ends_its_search():
    runner = FakeRunner(1e9, fail_at=frozenset({1000.0}))
    runs, stopped, events = run_search(runner, sweep_config())
    assert stopped == "the system could not be run"
    assert len(runs) == 1
    assert runs[0]["verdict"]["reasons"] == [
        "run failed: InfraError: the system exited with code 1"
    ]
    verdicts = [event for event in events if event.kind == "verdict"]
    assert not verdicts[0].sustainable


def test_a_point_that_fails_later_counts_as_unsustainable_and_the_search_goes_on():
    runner = FakeRunner(1e9, fail_at=frozenset({4000.0}))
    runs, stopped, _ = run_search(runner, sweep_config())
    assert stopped == "boundary found"
    assert best(runs) == 3900.0
    assert "error" in runs[2]


def test_each_point_is_a_fresh_run_of_the_system_at_the_rate():
    runner = FakeRunner(3000.0)
    run_search(runner, sweep_config(max_runs=2, memory=False))
    assert [config.system for config in runner.asked] == ["quix", "quix"]
    assert all(config.reuse_running is False for config in runner.asked)
    assert all(config.duration_s == 20.0 for config in runner.asked)


def test_the_display_hears_of_every_point_and_verdict():
    _, _, events = run_search(FakeRunner(1500.0), sweep_config(max_runs=2))
    kinds = [(event.kind, event.rate, event.sustainable) for event in events]
    assert kinds == [
        ("point", 1000.0, False), ("verdict", 1000.0, True),
        ("point", 2000.0, False), ("verdict", 2000.0, False),
    ]  # fmt: skip
    assert "backlog growing" in " ".join(events[-1].reasons)
    assert "p99 5,000 ms" in events[-1].figures


# --- the document ---------------------------------------------------------------


def judged(system: str, rates: list[float], capacity: float) -> list[dict[str, Any]]:
    docs = [run_doc(system, rate, capacity, rss_mib=100.0 + rate / 100) for rate in rates]
    for doc in docs:
        doc["verdict"] = Criteria().judge(doc)
    return docs


def test_the_sweep_json_has_the_issues_shape():
    results = {
        "fraudstream": (judged("fraudstream", [1000.0, 2000.0, 4000.0], 3000.0), "max runs (3)"),
        "passthrough": (judged("passthrough", [1000.0, 2000.0], 1e9), "max runs (2)"),
        "quix": (judged("quix", [1000.0, 500.0], 700.0), "boundary found"),
    }
    memory = {"100000": {"bytes_per_user": 900.0}, "1000000": {"bytes_per_user": 850.5}}
    document = sweep_document(sweep_config(), results, memory, elapsed_s=12.34)

    assert set(document) >= {"fraudstream", "passthrough", "quix", "machine", "criteria", "runs"}
    fraudstream = document["fraudstream"]
    assert fraudstream["max_sustainable_eps"] == 2000.0
    assert fraudstream["latency_ms_at"] == {
        "1000": {"p50": 10.0, "p99": 30.0, "p999": 40.0},
        "2000": {"p50": 10.0, "p99": 30.0, "p999": 40.0},
        "4000": {"p50": 10.0, "p99": 5_000.0, "p999": 6_000.0},
    }
    assert fraudstream["rss_mb"] == pytest.approx(120.0 * 2**20 / 1e6, abs=0.1)
    assert fraudstream["bytes_per_user"] == 850.5
    assert fraudstream["memory"] == memory
    assert fraudstream["first_unsustainable_eps"] == 4000.0
    assert document["passthrough"]["max_sustainable_eps"] == 2000.0
    assert document["quix"]["max_sustainable_eps"] == 500.0
    assert list(document["quix"]["latency_ms_at"]) == ["500", "1000"]  # by rate
    assert document["machine"]["cores"] == os.cpu_count()
    assert document["machine"]["cpu"]
    assert document["criteria"] == Criteria().as_dict()
    assert len(document["runs"]) == 7
    assert document["sweep"]["elapsed_s"] == 12.3


def test_without_the_memory_measurement_bytes_per_user_is_absent():
    results = {"fraudstream": (judged("fraudstream", [1000.0], 3000.0), "max runs (1)")}
    document = sweep_document(sweep_config(memory=False), results, None, elapsed_s=1.0)
    assert "bytes_per_user" not in document["fraudstream"]
    assert "quix" not in document


def test_a_failed_run_has_no_latency_entry():
    failed = {"rate_target": 4000.0, "system": {"name": "quix"}, "error": "boom",
              "verdict": {"sustainable": False, "reasons": ["run failed: boom"]}}  # fmt: skip
    entry = summarise_system([*judged("quix", [1000.0], 3000.0), failed], "boundary found")
    assert list(entry["latency_ms_at"]) == ["1000"]
    assert entry["first_unsustainable_eps"] == 4000.0
    assert entry["runs"] == 2
