"""The resource sampler: processes watched under one name are summed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from streams.bench._resources import ResourceSampler, machine

#: Sleeps after saying so; with an argument, first starts one more like itself as a child.
SLEEPER = """
import subprocess, sys, time
if len(sys.argv) > 1:
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
    child.stdout.readline()
print("ready", flush=True)
time.sleep(60)
"""


def start_sleeper(nested: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", SLEEPER] + ([SLEEPER] if nested else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()


def rss_at_start(name: str, pids: int | list[int | None], *, children: bool = False) -> float:
    sampler = ResourceSampler()
    sampler.watch(name, pids, children=children)
    sampler.start_window()
    sampler.end_window()
    rss = sampler.summary()[name]["rss_start_mib"]
    assert rss is not None
    return rss


def test_a_group_of_processes_is_sampled_as_one(sleepers):
    sleepers += [start_sleeper(), start_sleeper()]
    one = rss_at_start("one", sleepers[0].pid)
    both = rss_at_start("both", [sleepers[0].pid, sleepers[1].pid, None])
    assert both > 1.5 * one


def test_children_are_counted_only_when_asked(sleepers):
    sleepers.append(start_sleeper(nested=True))
    alone = rss_at_start("parent", sleepers[0].pid)
    with_child = rss_at_start("parent", sleepers[0].pid, children=True)
    assert with_child > 1.5 * alone


def test_vanished_or_unknown_pids_are_skipped():
    sampler = ResourceSampler()
    sampler.watch("nobody", None)
    sampler.watch("empty", [None])
    assert sampler.summary() == {}


def test_the_machine_is_described():
    described = machine()
    assert described["cores"] == os.cpu_count()
    assert described["cpu"]
