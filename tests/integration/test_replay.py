"""``fraudstream replay`` into a real broker: order, keys, completeness and pacing."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from models.simulator import SimulatorConfig, simulate_history
from schemas import decode_transaction
from streams.consuming import read_topic
from streams.settings import Settings
from tests.integration._scorer import FRAUDSTREAM, read_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """A day of simulated traffic, rows shuffled so that replay has to sort them."""
    frame = simulate_history(SimulatorConfig(users=150, merchants=30, days=1, seed=11))
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


@pytest.fixture
def history_file(history: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "history.parquet"
    history.to_parquet(path)
    return path


def epoch_ms(frame: pd.DataFrame) -> dict[str, int]:
    times = frame["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return dict(zip(frame["tx_id"], times.tolist(), strict=True))


def replay(path: Path, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [FRAUDSTREAM, "replay", str(path), "--topic", topic, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def test_max_speed_delivers_everything_in_event_time_order_per_partition(
    servers: Settings, topic: str, history: pd.DataFrame, history_file: Path
) -> None:
    result = replay(history_file, topic, "--speed", "max")

    assert f"delivered {len(history):,}" in result.stdout
    assert "failed 0" in result.stdout
    original = epoch_ms(history)
    records = read_all(servers, topic)
    assert len(records) == len(history)
    by_partition: dict[int, list[int]] = defaultdict(list)
    partitions_of_user: dict[str, set[int]] = defaultdict(set)
    seen = set()
    for record in records:  # partition, then offset order
        tx = decode_transaction(record.value)
        assert record.key == tx.user_id.encode()
        event_ms = orjson.loads(record.value)["event_time"]
        assert event_ms == original[tx.tx_id]  # the file's own times by default
        by_partition[record.partition].append(event_ms)
        partitions_of_user[tx.user_id].add(record.partition)
        seen.add(tx.tx_id)
    assert seen == set(original)
    assert len(by_partition) > 1
    for times in by_partition.values():
        assert times == sorted(times)
    assert all(len(parts) == 1 for parts in partitions_of_user.values())


def test_count_and_window_select_the_earliest_events_of_the_window(
    servers: Settings, topic: str, history: pd.DataFrame, history_file: Path
) -> None:
    start = history["event_time"].min().floor("h") + pd.Timedelta(hours=6)
    result = replay(
        history_file, topic, "--speed", "max", "--start", start.isoformat(), "--count", "25"
    )

    assert "delivered 25" in result.stdout
    window = history[history["event_time"] >= start].sort_values("event_time", kind="stable")
    expected = set(window["tx_id"].iloc[:25])
    received = {decode_transaction(r.value).tx_id for r in read_all(servers, topic)}
    assert received == expected


def test_paced_replay_spreads_records_over_history_span_divided_by_speed(
    servers: Settings, topic: str, history: pd.DataFrame, history_file: Path
) -> None:
    original = epoch_ms(history)
    first_ms, last_ms = min(original.values()), max(original.values())
    target_wall_s = 2.0
    speed = (last_ms - first_ms) / 1000 / target_wall_s

    result = replay(history_file, topic, "--speed", f"{speed:.3f}x", "--restamp")

    assert "failed 0" in result.stdout
    arrivals: list[tuple[int, int, int]] = []  # (kafka timestamp, original, restamped)
    for message in read_topic(
        servers, topic, from_beginning=True, max_messages=len(history), idle_timeout_s=20
    ):
        value = message.value()
        assert value is not None
        payload = orjson.loads(value)
        _kind, stamp = message.timestamp()
        arrivals.append((stamp, original[payload["tx_id"]], payload["event_time"]))
    assert len(arrivals) == len(history)

    stamps = np.array([a[0] for a in arrivals], dtype=np.int64)
    offsets = np.array([a[1] for a in arrivals], dtype=np.int64) - first_ms
    restamped = np.array([a[2] for a in arrivals], dtype=np.int64)
    # Pacing: the records' wall-clock spread is the history span / speed (generous ±40 %).
    spread_s = (stamps.max() - stamps.min()) / 1000
    assert target_wall_s * 0.6 <= spread_s <= target_wall_s * 1.4
    # Each record went out near its own due time, not merely within the right total.
    late_s = (stamps - stamps.min()) / 1000 - offsets / 1000 / speed
    assert np.percentile(np.abs(late_s), 90) < 0.4 * target_wall_s
    # --restamp: the first event is stamped with the start, the others offset / speed.
    first_stamp = restamped[offsets == 0].min()
    assert np.all(np.abs(restamped - first_stamp - offsets / speed) <= 1)
    assert abs(int(first_stamp) - int(stamps.min())) < 5_000
