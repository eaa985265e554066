"""``fraudstream score``: run the scoring dataflow.

Three ways to run it: one process; a local cluster (``--processes N`` starts N processes
on this host); or one member of a cluster whose processes are started one by one, one
per host or Kubernetes pod (``--process-id`` with ``--addresses``, see ``infra/k8s/``).
A member needs what a local cluster gets from its supervisor, worked out here: its id
(a StatefulSet pod only knows its name), the same address list as every other member,
a metrics port that does not depend on its id when it has a host of its own, and
recovery partitions created once for the whole cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from models._fs import private_dir
from streams.cli._common import friendly_errors

__all__ = ["score"]

#: ``7`` or a StatefulSet pod name such as ``fraudstream-scorer-7``: the trailing ordinal.
_PROCESS_ID = re.compile(r"(?:.*-)?(?P<ordinal>\d+)")
#: In a single ``--addresses`` entry, stands for each process id in turn.
_EACH = "{i}"


@dataclass(frozen=True, slots=True)
class _Member:
    """This process's place in a cluster whose processes are started separately."""

    index: int
    addresses: list[str]

    @property
    def metrics_port_offset(self) -> int:
        """Processes listed before this one on the same host: each needs its own port."""
        host = _host(self.addresses[self.index])
        return sum(1 for address in self.addresses[: self.index] if _host(address) == host)


def _host(address: str) -> str:
    return address.rpartition(":")[0]


def _parse_process_id(value: str, processes: int) -> int:
    match = _PROCESS_ID.fullmatch(value.strip())
    if match is None:
        raise typer.BadParameter(
            f"{value!r} is neither a number nor a pod name ending in -<ordinal>",
            param_hint="--process-id",
        )
    index = int(match["ordinal"])
    if index >= processes:
        raise typer.BadParameter(
            f"{value!r} is process {index}, but --processes is {processes}: every member "
            "must be started with the cluster's size (on Kubernetes: the StatefulSet's "
            "replicas)",
            param_hint="--process-id",
        )
    return index


def _parse_addresses(value: str, processes: int) -> list[str]:
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if len(entries) == 1 and _EACH in entries[0]:
        entries = [entries[0].replace(_EACH, str(i)) for i in range(processes)]
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not host or _EACH in entry or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(f"{entry!r} is not host:port", param_hint="--addresses")
    if len(entries) != processes:
        raise typer.BadParameter(
            f"{len(entries)} addresses for --processes {processes}: give one per process, "
            f"or a single one with {_EACH} in it",
            param_hint="--addresses",
        )
    return entries


def _member(processes: int, process_id: str | None, addresses: str | None) -> _Member | None:
    if process_id is None and addresses is None:
        return None
    if process_id is None or addresses is None:
        raise typer.BadParameter(
            "a cluster member needs both --process-id and --addresses",
            param_hint="--process-id" if process_id is None else "--addresses",
        )
    return _Member(_parse_process_id(process_id, processes), _parse_addresses(addresses, processes))


def _prepare_member_recovery(recovery_dir: Path, member: _Member, partitions: int) -> None:
    """Process 0 creates the recovery partitions, once; the others hold none at first.

    Bytewax needs the cluster as a whole to hold every partition, not each process.
    Members do not share a directory (one volume per pod), so only one of them may
    create the set: process 0, the one member every cluster size has. Later runs, with
    any number of processes, resume from that set.
    """
    from streams.scorer import prepare_recovery

    if member.index == 0:
        prepare_recovery(recovery_dir, partitions)
    else:
        private_dir(recovery_dir)


def score(
    processes: Annotated[
        int, typer.Option(help="Bytewax processes sharing the partitions.", min=1)
    ] = 1,
    workers: Annotated[int, typer.Option(help="Worker threads per process.", min=1)] = 1,
    recovery_dir: Annotated[
        Path | None,
        typer.Option(help="Snapshot window state here; a restart resumes from it."),
    ] = None,
    process_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="Run as this member of a cluster started process by process (one per host "
            "or pod): 0 to PROCESSES-1, or a pod name ending in the ordinal (scorer-2). "
            "Needs --addresses.",
        ),
    ] = None,
    addresses: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT,...",
            help="Every member's address in process-id order, the same for all; one "
            "entry with {i} stands for all of them (scorer-{i}.scorer:2101).",
        ),
    ] = None,
) -> None:
    """Score transactions into decisions until Ctrl-C.

    Reads `transactions`, writes `decisions` and `transactions-dlq`. The models come from
    the `model-updates` topic (champion decides, challenger scores in shadow and decides
    FRAUD_CHALLENGER_TRAFFIC_SHARE of users), swapped live between batches; without any
    update, from the registry's champion (FRAUD_REGISTRY_DIR). FRAUD_MODEL_DIR pins one
    model folder instead. Without a model, decisions are made by the rules alone and
    flagged degraded. Metrics are served on FRAUD_METRICS_PORT (+1 per process on the
    same host).

    A cluster across hosts (Kubernetes: infra/k8s/) starts one process per host, each
    with the same --processes, --workers and --addresses and its own --process-id.
    Process 0 creates the recovery partitions in its --recovery-dir; the cluster resumes
    from them at any size. Changing the size restarts every member.
    """
    from streams.scorer import run_scorer
    from streams.settings import get_settings

    member = _member(processes, process_id, addresses)
    with friendly_errors():
        settings = get_settings()
        if member is not None:
            # run_scorer serves process i on metrics_port + i, right for a local cluster.
            # A member binds metrics_port + (members before it on its host): 0 in a pod.
            port = settings.metrics_port + member.metrics_port_offset
            settings = settings.model_copy(update={"metrics_port": port - member.index})
            if recovery_dir is not None:
                _prepare_member_recovery(recovery_dir, member, processes * workers)
        code = run_scorer(
            settings,
            processes=processes,
            workers=workers,
            recovery_dir=recovery_dir,
            process_id=member.index if member else None,
            addresses=member.addresses if member else None,
        )
    raise typer.Exit(code)
