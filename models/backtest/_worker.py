"""Training workers: child processes that train a backtest's candidates ahead of time.

A worker is ``python -m models.backtest._worker``: it imports the training libraries,
then reads from stdin the folder of the run's ``.npy`` arrays (a JSON string line) and
one training job per line of JSON, trains each from the memory-mapped arrays (see
:func:`models.backtest._lifecycle.train_job`) and answers one line of JSON per job on
stdout, in order: ``{"seconds": s}`` or ``{"error": message}``. Plain
processes and JSON rather than :mod:`multiprocessing`: nothing is pickled, and the
caller's ``__main__`` is never re-imported (a script without a ``__main__`` guard works).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import orjson

from models.backtest._config import BacktestError
from models.exceptions import TrainingError

__all__ = ["WorkerPool", "main"]

_ROOT = Path(__file__).resolve().parents[2]


class WorkerPool:
    """``workers`` child processes, started early so their imports overlap other work.

    :meth:`submit` hands out the jobs: job ``i`` goes to worker ``i % workers`` (the jobs
    are alike in size, and each worker trains its share in order).
    """

    def __init__(self, workers: int, log_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(_ROOT),
               os.environ.get("PYTHONPATH"))))}  # fmt: skip
        self._logs: list[Path] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._slot: dict[int, tuple[int, int]] = {}  # job index -> (worker, position)
        self._answers: list[list[dict[str, Any]]] = []
        for worker in range(max(1, workers)):
            log = log_dir / f"worker-{worker}.log"
            self._logs.append(log)
            with log.open("wb") as errors:
                process = subprocess.Popen(
                    [sys.executable, "-m", "models.backtest._worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    env=env,
                )
            self._processes.append(process)
            self._answers.append([])

    def submit(self, arrays_dir: Path, jobs: list[Any]) -> None:
        """Send every job (training from the arrays in ``arrays_dir``), once."""
        count = len(self._processes)
        lines: list[list[bytes]] = [[orjson.dumps(str(arrays_dir)) + b"\n"] for _ in range(count)]
        for index, job in enumerate(jobs):
            worker = index % count
            self._slot[index] = (worker, len(lines[worker]) - 1)
            lines[worker].append(orjson.dumps(asdict(job)) + b"\n")
        for process, batch in zip(self._processes, lines, strict=True):
            stdin = _pipe(process.stdin)
            try:
                stdin.write(b"".join(batch))
                stdin.close()
            except BrokenPipeError:  # it died while importing: result() reports its log
                pass

    def result(self, index: int) -> float:
        """Seconds job ``index`` took; waits for it.

        A job that failed raises :class:`TrainingError` with its message; a worker that
        died raises :class:`BacktestError` with the end of its log.
        """
        worker, position = self._slot[index]
        answers, process = self._answers[worker], self._processes[worker]
        stdout = _pipe(process.stdout)
        while len(answers) <= position:
            line = stdout.readline()
            if not line:
                tail = self._logs[worker].read_text(errors="replace")[-2000:]
                raise BacktestError(f"a training worker stopped unexpectedly:\n{tail}")
            answers.append(orjson.loads(line))
        answer = answers[position]
        if "error" in answer:
            raise TrainingError(str(answer["error"]))
        return float(answer["seconds"])

    def close(self) -> None:
        """Stop the workers (a job still training is abandoned)."""
        for process in self._processes:
            if process.stdin is not None and not process.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
            if process.poll() is None:
                process.terminate()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:  # pragma: no cover - Popen was given PIPE
        raise BacktestError("worker pipe missing")
    return stream


def main() -> int:
    """Train every job read from stdin; see the module doc."""
    from models.backtest._lifecycle import TrainingJob, train_job
    from models.exceptions import ModelsError

    lines = iter(sys.stdin.buffer)
    first = next(lines, b"")
    if not first.strip():
        return 0  # closed before any work (the run had nothing to train)
    arrays_dir = str(orjson.loads(first))
    for line in lines:
        if not line.strip():
            continue
        fields = orjson.loads(line)
        fields["members"] = tuple(fields["members"])
        fields["feature_names"] = tuple(fields["feature_names"])
        try:
            answer: dict[str, Any] = {"seconds": train_job(TrainingJob(**fields), arrays_dir)}
        except ModelsError as exc:
            answer = {"error": str(exc)}
        sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
