"""The crash harness's points tried side by side (``python -m bench crash --jobs J``).

Each job is a world of its own in a process of its own (``python -m bench.bench_crash --worker``):
its own city generated from the same seed (the same data), its own sandboxes and receivers on
ports of their own, its own hub home and snapshot in a directory of its own, its own fork server
and API, and its own clean run, whose digest is the reference its crashes are compared with. No
environment variable (``HUB_HOME``, ``HUB_KILL_POINT``) is shared: each job's processes get the
environment its world builds.

The harness chooses the points from the first job's tally exactly as a single job does (the same
seed gives the same points whatever ``J``) and hands them out one at a time to whichever job is
free; the outcomes come back in the order of the points.

A worker speaks JSON lines on the standard output it started with (its own prints go to its
standard error): ``{"clean": figures}`` once, then ``{"outcome": ...}`` for each ``{"index",
"point", "hit"}`` line it reads; it ends its world when its standard input closes.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import IO, Any

#: the repository, where the workers run
REPO = Path(__file__).resolve().parent.parent


#: seconds a worker may take to end its world once told there is nothing left
CLOSE_TIMEOUT = 120


def worker(config: dict[str, Any], harness: ModuleType) -> int:
    """One job: a world, its clean run, then the points it is handed (``config``: job, sizes, cases;
    ``harness``: :mod:`bench.bench_crash`, passed in so that this module does not import it back)."""
    clean_run, crash_once, world, Outcome = harness.clean_run, harness.crash_once, harness.world, harness.Outcome

    answers: IO[str] = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever this process or its children print never mixes with the answers

    def send(kind: str, body: Any) -> None:
        answers.write(json.dumps({kind: body}, default=str) + "\n")

    with (
        tempfile.TemporaryDirectory(prefix=f"bench_crash_job{config['job']}_") as tmp,
        world(Path(tmp), config["sizes"], seed=2016, cases=config["cases"]) as w,
    ):
        figures, reference, window = clean_run(w)
        if reference is not None:  # a hash per part: where two jobs' references differ
            figures["parts"] = reference.parts()
        send("clean", figures)
        if not figures["clean_ok"]:
            return 0
        for line in sys.stdin:
            request = json.loads(line)
            try:
                o = crash_once(w, reference, window, request["point"], request["hit"])
            except Exception as exc:  # this point's failure, not the job's: the next one restores the snapshot
                o = Outcome(request["point"], request["hit"], False, False, 0, 0.0, [f"{type(exc).__name__}: {exc}"])
            send("outcome", {"index": request["index"], **asdict(o)})
    return 0


class Job:
    """A worker process and its pipes."""

    def __init__(self, number: int, sizes: dict[str, int], cases: int) -> None:
        self.number = number
        env = {k: v for k, v in os.environ.items() if k != "HUB_KILL_POINT"}
        config = json.dumps({"job": number, "sizes": sizes, "cases": cases})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_crash", "--worker", config],
            env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
        )  # fmt: skip

    def receive(self, kind: str) -> Any:
        """The worker's next answer of ``kind``; None when it ended without one."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return None
        return json.loads(line)[kind]

    def ask(self, index: int, point: str, hit: int, outcome: type) -> Any:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"index": index, "point": point, "hit": hit}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        body = self.receive("outcome")
        if body is None:
            return None
        body.pop("index")
        return outcome(**body)

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its world's children end with their sessions' owners gone or at their own timeouts
            self.proc.wait()


def run_jobs(
    points: int,
    seed: int,
    sizes: dict[str, int],
    cases: int,
    *,
    every_point: bool,
    at: Sequence[tuple[str, int]] | None,
    jobs: int,
    harness: ModuleType,
) -> dict[str, Any]:
    """:func:`bench.bench_crash.run` over ``jobs`` worlds side by side: the same figures (the first
    job's clean run, the outcomes in the order of the points) and the same lines printed
    (``harness``: :mod:`bench.bench_crash`)."""
    chosen_points, print_clean, print_outcome = harness.chosen_points, harness.print_clean, harness.print_outcome
    Outcome = harness.Outcome

    figures: dict[str, Any] = {"clean_ok": False, "failure": "", "invariant_problems": [], "outcomes": []}
    if at is not None:
        jobs = max(1, min(jobs, len(at)))
    with ExitStack() as stack:
        workers = []
        for number in range(jobs):
            job = Job(number, sizes, cases)
            stack.callback(job.close)
            workers.append(job)
        cleans = [job.receive("clean") for job in workers]
        for job, clean in zip(workers, cleans, strict=True):
            if clean is None:
                figures["failure"] = f"(job {job.number + 1}: its world ended, exit {job.proc.wait()})"
                return figures
            if clean["failure"]:
                figures["failure"] = f"(job {job.number + 1}) {clean['failure']}"
                return figures
        figures.update(cleans[0])
        figures["outcomes"] = []
        for job, clean in zip(workers, cleans, strict=True):  # the hits once, unless the tallies differ
            print_clean(
                clean, f" (job {job.number + 1}/{jobs})", hits=job.number == 0 or clean["tally"] != cleans[0]["tally"]
            )
        bad = [f"job {j + 1}: {p}" for j, clean in enumerate(cleans) for p in clean["invariant_problems"]]
        if bad:
            figures["invariant_problems"], figures["clean_ok"] = bad, False
            return figures
        for j, clean in enumerate(cleans[1:], 2):
            parts = sorted(p for p, h in clean["parts"].items() if cleans[0]["parts"].get(p) != h)
            parts += sorted(set(cleans[0]["parts"]) - set(clean["parts"]))
            if parts:  # each job's crashes are compared with its own clean run, never another job's
                print(f"job {j}'s reference differs from job 1's in: {', '.join(parts)}", flush=True)
            if clean["tally"] != cleans[0]["tally"]:
                print(f"job {j}'s clean run passes the kill points another number of times than job 1's: "
                      "its points are chosen from job 1's tally", flush=True)  # fmt: skip
        figures.pop("parts", None)
        chosen = chosen_points(cleans[0]["tally"], points, seed, every_point, at)
        todo: queue.Queue[tuple[int, str, int]] = queue.Queue()
        for i, (point, hit) in enumerate(chosen, 1):
            todo.put((i, point, hit))
        outcomes: list[Any] = [None] * len(chosen)
        printing = threading.Lock()

        def serve(job: Job) -> None:
            while True:
                try:
                    i, point, hit = todo.get_nowait()
                except queue.Empty:
                    return
                o = job.ask(i, point, hit, Outcome)
                if o is None:
                    died = f"job {job.number + 1} ended (exit {job.proc.wait()}) while trying this point"
                    o = Outcome(point, hit, False, False, 0, 0.0, [died])
                outcomes[i - 1] = o
                with printing:
                    print_outcome(o, i, len(chosen))
                if job.exit_code() is not None:
                    return

        threads = [threading.Thread(target=serve, args=(job,)) for job in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (point, hit) in enumerate(chosen):
            if outcomes[i] is None:  # every job ended before this point's turn
                outcomes[i] = Outcome(point, hit, False, False, 0, 0.0, ["not tried: every job had ended"])
        figures["outcomes"] = [o for o in outcomes if o is not None]
    figures["tried"] = len(figures["outcomes"])
    figures["converged"] = sum(o.converged for o in figures["outcomes"])
    return figures
