"""Fault 4: a corrupted model file, a wrong hash, and an ONNX run that fails, on a live scorer.

- A scorer following ``model-updates`` serves model A under paced traffic. An update whose
  member file was altered after its manifest was hashed, and an update whose sha256 is not
  the manifest's, are both refused with ``model_update_refused`` naming the file and the
  hashes; every decision, before and after the attempts, is A's, none degraded, none lost.
- A scorer started with ``FRAUD_MODEL_DIR`` on a corrupted folder refuses to load it
  (``model_load_refused`` naming the file and hashes) and, as ``streams.model_holder``
  documents ("without any model the scorer decides with rules only, flagged degraded,
  rather than refusing traffic"), keeps deciding every transaction by rules, flagged
  ``no_model``.
- A real ONNX member that loads, passes the load-time contract and its warm-up run, but
  fails at run time on some inputs (a Gather whose index goes out of bounds when a row's
  amount is above 50,000): the batches holding such a row are decided by the rules alone,
  flagged ``model_error``, and the pipeline goes on scoring the others.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import onnx
import orjson
import pytest
from onnx import TensorProto, helper

from models.manifest import (
    MEMBER_INPUT,
    MEMBER_OUTPUT,
    read_manifest,
    sha256_bytes,
    write_manifest,
)
from operators.features import FEATURE_NAMES
from schemas import Decision, ModelUpdate, encode
from streams.settings import Settings
from tests.integration._decisions import first_decisions, run_tag, wait_for_records
from tests.integration._scorer import (
    PacedProducer,
    Record,
    Scorer,
    ScoreTopics,
    following_scorer,
    isolated_events,
    keyed,
    model_info,
    produce,
    read_all,
    wait_serving,
    wait_until,
)
from tests.unit.models._trained import model_update, train_tiny

pytestmark = pytest.mark.integration

WAIT_S = 120
RATE = 200
FAILING_AMOUNT = 50_000.0  # the crafted member fails on any row above this amount
POISON_AMOUNT = "77777.00"
POISON_EVERY = 50


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    """The structlog JSON lines of ``event`` in a scorer's log."""
    return [
        orjson.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and f'"{event}"' in line
    ]


def flip_bytes(path: Path, count: int = 16) -> None:
    """Corrupt a file in place (same size: only the hash can tell)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def publish(settings: Settings, topic: str, update: ModelUpdate) -> None:
    produce(settings, topic, [(update.role.encode(), encode(update))])


def decisions_of(records: list[Record]) -> list[Decision]:
    return [Decision.model_validate_json(r.value) for r in records]


def test_a_corrupted_or_mis_hashed_update_is_refused_and_the_previous_model_keeps_serving(
    servers: Settings, score_topics: ScoreTopics, topic: str, tmp_path: Path
) -> None:
    """Two bad updates during traffic: both refused, model A decides every transaction.

    Figures checked: refusals == [(fault-b, file_integrity), (fault-c,
    manifest_hash_mismatch)], each error naming the file and both hashes; decisions ==
    transactions (each once); model versions == {fault-a}; degraded == 0.
    """
    registry = tmp_path / "registry"
    folder_a = train_tiny(registry, "fault-a", seed=3)
    folder_b = train_tiny(registry, "fault-b", seed=7)
    folder_c = train_tiny(registry, "fault-c", seed=11)
    corrupted_update = model_update(folder_b)  # the manifest hash is right...
    member_file = folder_b / read_manifest(folder_b).members[0].file
    flip_bytes(member_file)  # ...but a file it pins changed afterwards
    wrong_hash = "0" * 64
    events = isolated_events(2_400, seed=41, tag=f"m{uuid.uuid4().hex[:8]}")

    log = tmp_path / "scorer.log"
    with following_scorer(score_topics, log, topic, registry) as scorer:
        publish(servers, topic, model_update(folder_a))
        wait_serving(scorer, "fault-a")
        with PacedProducer(servers, score_topics.transactions, keyed(events), rate=RATE):
            wait_for_records(scorer, servers, {score_topics.decisions: 400})
            attempted_at = time.time()
            publish(servers, topic, corrupted_update)
            wait_until(
                lambda: len(log_events(log, "model_update_refused")) >= 1,
                timeout_s=WAIT_S,
                what="the corrupted update refused",
                diagnose=scorer.log_tail,
            )
            publish(servers, topic, model_update(folder_c, sha256=wrong_hash))
            wait_until(
                lambda: len(log_events(log, "model_update_refused")) >= 2,
                timeout_s=WAIT_S,
                what="the mis-hashed update refused",
                diagnose=scorer.log_tail,
            )
            info = model_info(scorer)
        wait_for_records(scorer, servers, {score_topics.decisions: len(events)})
    records = read_all(servers, score_topics.decisions)
    decisions = decisions_of(records)
    refused = log_events(log, "model_update_refused")
    after = [d for d in decisions if d.decided_at.timestamp() >= attempted_at]
    print(
        f"\n[fault 4 bad updates] decisions={len(decisions)} transactions={len(events)} "
        f"after_attempts={len(after)} versions={dict(Counter(d.model_version for d in decisions))} "
        f"degraded={sum(d.degraded for d in decisions)} "
        f"refused={[(r['version'], r['reason']) for r in refused]}"
    )
    for r in refused:
        print(f"  refusal {r['version']}: {r['error']}")

    assert [(r["version"], r["reason"]) for r in refused] == [
        ("fault-b", "file_integrity"),
        ("fault-c", "manifest_hash_mismatch"),
    ]
    corrupted, mis_hashed = refused
    assert str(member_file) in corrupted["error"]
    assert sha256_bytes(member_file.read_bytes()) in corrupted["error"]
    assert "does not match the manifest's" in corrupted["error"]
    assert str(folder_c / "manifest.json") in mis_hashed["error"]
    assert wrong_hash in mis_hashed["error"]
    assert sha256_bytes((folder_c / "manifest.json").read_bytes()) in mis_hashed["error"]
    assert info.get(("fault-a", "champion")) == 1
    assert not {version for version, _ in info} & {"fault-b", "fault-c"}

    assert len(records) == len(events), "a decision was lost or duplicated"
    assert {d.tx_id for d in decisions} == {e["tx_id"] for e in events}
    assert len(after) > 0
    assert {d.model_version for d in decisions} == {"fault-a"}
    assert not any(d.degraded for d in decisions)
    assert all(d.score is not None for d in decisions)


def test_a_scorer_started_on_a_corrupted_model_dir_refuses_it_and_decides_by_rules_flagged(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    """FRAUD_MODEL_DIR with an altered member file: refused at load, rules-only, flagged.

    Figures checked: one ``model_load_refused`` naming the file and both hashes; decisions
    == transactions, all degraded ``no_model`` with no score and no model version; no
    champion in ``fraud_model_info``; the scorer keeps running.
    """
    folder = tmp_path / "corrupted-model"
    shutil.copytree(model_dir, folder)
    member_file = folder / read_manifest(folder).members[0].file
    flip_bytes(member_file)
    events = isolated_events(500, seed=42, tag=run_tag())

    log = tmp_path / "scorer.log"
    with Scorer(score_topics, log, model_dir=folder) as scorer:
        produce(servers, score_topics.transactions, keyed(events))
        wait_for_records(scorer, servers, {score_topics.decisions: len(events)})
        scorer.assert_running()
        info = model_info(scorer)
    decisions = first_decisions(read_all(servers, score_topics.decisions))
    refused = log_events(log, "model_load_refused")
    causes = Counter(d.degraded_cause for d in decisions.values())
    print(
        f"\n[fault 4 corrupted model dir] decisions={len(decisions)} degraded by cause="
        f"{dict(causes)} refusals={len(refused)} champion_info={info}"
    )
    for r in refused[:1]:
        print(f"  refusal: {r['error']}")

    assert refused, "the corrupted model was not refused"
    assert str(member_file) in refused[0]["error"]
    assert sha256_bytes(member_file.read_bytes()) in refused[0]["error"]
    assert "does not match the manifest's" in refused[0]["error"]
    assert set(decisions) == {e["tx_id"] for e in events}
    assert causes == {"no_model": len(events)}
    assert all(d.score is None and d.model_version is None for d in decisions.values())
    assert not any(value == 1 for (_version, role), value in info.items() if role == "champion")


def failing_member(n_features: int, amount_column: int) -> bytes:
    """A member graph with the exact member contract that fails at run time on big amounts.

    ``features`` float ``[n, F]`` in, ``probability`` float ``[n]`` out: it loads, passes
    the signature checks and the warm-up run on NaNs, and answers 0.02 for every row,
    unless a row's amount is above FAILING_AMOUNT: then its Gather index is 1000 into a
    table of one value, and ONNX Runtime fails the whole run (out of bounds).
    """

    def const(name: str, kind: int, dims: list[int], values: list[Any]) -> onnx.NodeProto:
        return helper.make_node(
            "Constant", [], [name], value=helper.make_tensor(name, kind, dims, values)
        )

    nodes = [
        const("column", TensorProto.INT64, [], [amount_column]),
        helper.make_node("Gather", [MEMBER_INPUT, "column"], ["amount"], axis=1),
        const("limit", TensorProto.FLOAT, [], [FAILING_AMOUNT]),
        helper.make_node("Greater", ["amount", "limit"], ["big"]),  # NaN > limit: false
        helper.make_node("Cast", ["big"], ["flag"], to=TensorProto.INT64),
        const("stride", TensorProto.INT64, [], [1000]),
        helper.make_node("Mul", ["flag", "stride"], ["index"]),
        const("table", TensorProto.FLOAT, [1], [0.02]),
        helper.make_node("Gather", ["table", "index"], [MEMBER_OUTPUT], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "fails_on_big_amounts",
        [helper.make_tensor_value_info(MEMBER_INPUT, TensorProto.FLOAT, ["n", n_features])],
        [helper.make_tensor_value_info(MEMBER_OUTPUT, TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    serialized: bytes = model.SerializeToString()
    return serialized


def test_an_onnx_run_failure_decides_rules_only_flagged_and_the_pipeline_goes_on(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    """A member that fails at run time on some batches: those are rules-only, ``model_error``.

    Figures checked: decisions == transactions; every transaction with a failing amount
    (1 in 50) is decided with degraded_cause ``model_error``, no score and no model
    version; every decision not degraded has a score; the decisions after the last failing
    batch are scored again (the pipeline goes on); the scorer keeps running.
    """
    folder = tmp_path / "failing-model"
    shutil.copytree(model_dir, folder)
    manifest = read_manifest(folder)
    last = manifest.members[-1]
    graph = failing_member(len(FEATURE_NAMES), FEATURE_NAMES.index("amount"))
    (folder / last.file).write_bytes(graph)
    members = (*manifest.members[:-1], last.model_copy(update={"sha256": sha256_bytes(graph)}))
    write_manifest(manifest.model_copy(update={"members": members}), folder)

    events = isolated_events(2_000, seed=43, tag=run_tag(), spacing=timedelta(milliseconds=5))
    for event in events[POISON_EVERY // 2 :: POISON_EVERY]:
        event["amount"] = POISON_AMOUNT
    poisoned = {e["tx_id"] for e in events if e["amount"] == POISON_AMOUNT}

    log = tmp_path / "scorer.log"
    with Scorer(score_topics, log, model_dir=folder) as scorer:
        produce(servers, score_topics.transactions, keyed(events[:10]))  # start it up
        wait_for_records(scorer, servers, {score_topics.decisions: 10})
        with PacedProducer(servers, score_topics.transactions, keyed(events[10:]), rate=RATE):
            pass
        wait_for_records(scorer, servers, {score_topics.decisions: len(events)})
        scorer.assert_running()
    decisions = first_decisions(read_all(servers, score_topics.decisions))
    causes = Counter(d.degraded_cause for d in decisions.values())
    failed = [d for d in decisions.values() if d.degraded_cause == "model_error"]
    ordered = sorted(decisions.values(), key=lambda d: d.decided_at)
    last_failed = max(i for i, d in enumerate(ordered) if d.degraded_cause == "model_error")
    later = ordered[last_failed + 1 :]
    print(
        f"\n[fault 4 onnx run failure] decisions={len(decisions)} poisoned={len(poisoned)} "
        f"degraded by cause={dict(causes)} model_error={len(failed)} "
        f"(collateral rows in failing batches={len(failed) - len(poisoned)}) "
        f"scored={sum(d.score is not None for d in decisions.values())} "
        f"scored after the last failing batch={sum(d.score is not None for d in later)}"
    )

    assert set(decisions) == {e["tx_id"] for e in events}
    assert all(decisions[tx].degraded_cause == "model_error" for tx in poisoned)
    assert all(d.score is None and d.model_version is None for d in failed)
    assert all(d.member_scores == {} for d in failed)
    assert all(
        d.score is not None and d.model_version == manifest.version
        for d in decisions.values()
        if not d.degraded
    )
    assert set(causes) <= {None, "model_error"}, causes
    assert causes[None] > len(events) // 2, "most batches hold no failing row: scored"
    assert later and all(d.score is not None for d in later)
