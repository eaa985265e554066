"""A retrain run end to end: train -> register -> gate -> champion or challenger -> publish.

This is what ``fraudstream train`` and the weekly job run. The candidate is trained and
gated inside a registry staging folder, so the gate's verdict is written into its
manifest *before* the version is registered (registered versions never change), and
the champion it was judged against is its ``parent_version``. Publishing is the
registry's: when it fails, the alias change stands and the outcome says so.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.candidate import train_candidate, updated_manifest
from models.ensemble import DEFAULT_MEMBERS, EnsembleMember, ThresholdPolicy
from models.gate import GatePolicy, run_gate
from models.manifest import GateRecord, Manifest, write_atomically, write_manifest
from models.pit import PointInTimeSet
from models.registry import AliasEvent, ModelRegistry, UnpublishedChangeError

__all__ = ["RetrainOutcome", "retrain", "train_to_folder"]


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """The registered candidate, the gate's record, the alias change and its publication.

    ``publish_error`` is set when the alias changed but the scorers were not told.
    """

    manifest: Manifest
    path: Path
    gate: GateRecord
    event: AliasEvent
    publish_error: str | None = None


def retrain(
    dataset: PointInTimeSet,
    registry: ModelRegistry,
    *,
    members: Sequence[str | EnsembleMember] = DEFAULT_MEMBERS,
    threshold_policy: ThresholdPolicy | None = None,
    gate_policy: GatePolicy | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> RetrainOutcome:
    """Train a candidate on ``dataset``, gate it against the champion and assign its role."""
    report = on_stage or (lambda _stage: None)
    champion = registry.aliases().champion
    champion_dir = None if champion is None else registry.verify(champion).path
    with registry.staging() as staged:
        manifest = train_candidate(
            dataset,
            staged,
            members=members,
            threshold_policy=threshold_policy,
            parent_version=champion,
            on_stage=on_stage,
        )
        report(f"gate against {champion or 'no champion'}")
        record = run_gate(dataset, staged, champion_dir, gate_policy)
        manifest = updated_manifest(manifest, gate=record)
        write_manifest(manifest, staged)
        report(f"register {manifest.version}")
        registered = registry.add(staged)
    report(f"make {manifest.version} the {record.verdict}")
    try:
        event = registry.promote(manifest.version, record.verdict, expected_champion=champion)
    except UnpublishedChangeError as exc:
        return RetrainOutcome(manifest, registered.path, record, exc.event, str(exc))
    return RetrainOutcome(manifest, registered.path, record, event)


def train_to_folder(
    dataset: PointInTimeSet,
    out_dir: Path,
    *,
    members: Sequence[str | EnsembleMember] = DEFAULT_MEMBERS,
    threshold_policy: ThresholdPolicy | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Manifest:
    """Train into a plain model folder (FRAUD_MODEL_DIR / ``--out``), no registry, no gate.

    The model is built in a temporary sibling folder, then its files are copied over
    and the manifest written last, so a scorer watching ``out_dir`` sees one change.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        manifest = train_candidate(
            dataset, staged, members=members, threshold_policy=threshold_policy, on_stage=on_stage
        )
        for file, _ in manifest.files:
            write_atomically(out_dir / file, (staged / file).read_bytes())
        write_manifest(manifest, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return manifest
