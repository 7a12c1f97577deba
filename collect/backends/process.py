"""The process backend (``--num-envs K``, default ``--vector-mode process``): K local worker
processes, each running whole episodes with its own env, annotator, policy and writer (a
:class:`collect.engine.CollectorActor`), pulling episode indices from a shared queue after a
warm-up (:func:`collect.engine.warm_up`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from collect.engine import CollectorActor, warm_up
from collect.errors import CollectRunError

_POLL_S = 0.5  # how often the driver checks that its workers are alive while it waits


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles (so the driver re-raises the same type and message)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except (pickle.PickleError, TypeError, AttributeError, ValueError):
        return CollectRunError(f"{type(exc).__name__} in a collector worker: {exc}")


def exit_with_parent(parent_pid: int) -> None:
    """Makes this process die with its parent (the driver), even when the driver is killed -9
    and cannot tell it to stop: on Linux the kernel sends SIGKILL when the parent exits
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread polls the parent pid and exits
    once the process was re-parented. Without this a worker blocked on the task queue waits
    forever, and so does multiprocessing's resource tracker, which exits once every process
    holding its pipe is gone.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watchdog below still works
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_POLL_S)
        os._exit(1)

    if os.getppid() != parent_pid:  # the driver died before the kernel hook was set
        os._exit(1)
    threading.Thread(target=watch, name="byog-parent-watchdog", daemon=True).start()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _worker_main(wid: int, cfg_fields: dict[str, Any], info: dict[str, Any], tasks: Any, results: Any,
                 parent_pid: int | None = None) -> None:
    """One worker process: build and warm a one-env collector, report ready, then run the
    episode indices pulled from the shared ``tasks`` queue until it hands out ``None``."""
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    try:
        actor = CollectorActor({**cfg_fields, "num_envs": 1, "vector_mode": "sync", "workers": 0,
                                "ray_address": None}, info)
        warm_up(actor.collector)
        results.put(("ready", wid, os.getpid()))
        while (index := tasks.get()) is not None:
            results.put(("done", wid, actor.run([index])))
        actor.close()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the driver reports it
        return
    except BaseException as e:  # noqa: BLE001 - any failure goes back to the driver, which raises it
        import traceback

        e.add_note("in collector worker " + str(wid) + ":\n" + "".join(traceback.format_tb(e.__traceback__)))
        results.put(("error", wid, _sendable(e)))


def _receive(results: Any, procs: list[Any]) -> tuple[str, int, Any]:
    """The next ``(kind, wid, payload)`` message from the workers, raising a worker's error here.

    It polls every ``_POLL_S`` so that a worker killed outright (OOM, -9), which sends nothing,
    ends the run with a clear error instead of leaving the driver blocked on the queue forever.
    """
    import queue

    while True:
        try:
            kind, wid, payload = results.get(timeout=_POLL_S)
        except queue.Empty:
            dead = [(p.name, p.exitcode) for p in procs if p.exitcode is not None]
            if dead:
                raise CollectRunError(
                    f"Collector worker {dead[0][0]} died (exit code {dead[0][1]}); finished "
                    "episodes are saved: rerun with --resume to continue.") from None
            continue
        if kind == "error":
            raise payload
        return kind, wid, payload


def _run_episodes(tasks: Any, source: Any, receive: Callable[[], tuple[str, int, Any]], slots: int,
                  on_episode: Callable[[dict[str, Any]], None]) -> None:
    """Hands out episode indices until ``source`` runs dry and every one handed out is done.

    At most ``slots`` (one per worker) are queued at a time, so whichever worker is free takes the
    next index and long and short episodes balance out; asking ``source`` only when a slot frees
    lets in-flight episodes count toward ``--steps`` once written.
    """
    running = 0
    for _ in range(slots):
        idx = source.next(0)
        if idx is None:
            break
        tasks.put(idx)
        running += 1
    while running:
        _, _, records = receive()  # "done"
        running -= 1
        for record in records:
            on_episode(record)
        idx = source.next(0)
        if idx is not None:
            tasks.put(idx)
            running += 1


def _stop_workers(procs: list[Any], tasks: Any, results: Any) -> None:
    """Terminates any worker still alive and closes both queues, so that no process or queue
    feeder thread outlives the run, whether it ended normally or by an error."""
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    tasks.close()
    results.close()


def collect_with_processes(cfg: Any, info: dict[str, Any], source: Any,
                           on_episode: Callable[[dict[str, Any]], None],
                           on_ready: Callable[[], None] = lambda: None) -> None:
    """Runs the episodes ``source`` hands out in ``cfg.num_envs`` local worker processes.

    Each process owns one env and its policy and writes whole episodes, exactly like a Ray actor
    (same seeds, same files); there is no lock-step, so on 2 cores two processes give close to
    2x, where gymnasium's AsyncVectorEnv waits for its slowest env every step (measured by
    ``benchmarks/bench_collect.py``).

    Scheduling is dynamic: the driver keeps one episode index per worker in a shared queue and
    whichever worker is free pulls the next one, so long and short episodes balance out (no
    static split). Every worker builds its env and steps it once (:func:`warm_up`) before it
    reports ready; ``on_ready`` is called once all of them have, and only then are episodes
    handed out, so the stepping loop timed from there contains no start-up.

    Raises:
        The worker's own exception (e.g. :class:`~collect.policies.PolicyError`), or
        :class:`~collect.errors.CollectError` if a worker process dies.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a driver that runs threads (tqdm, pyarrow)
    fields = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    tasks, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(w, fields, info, tasks, results, os.getpid()), daemon=True,
                         name=f"byog-collect-{w}") for w in range(cfg.num_envs)]

    def receive() -> tuple[str, int, Any]:
        return _receive(results, procs)

    for p in procs:
        p.start()
    try:
        for _ in procs:
            receive()  # "ready"
        on_ready()
        _run_episodes(tasks, source, receive, len(procs), on_episode)
        for _ in procs:
            tasks.put(None)
        for p in procs:
            p.join(timeout=30)
    finally:
        _stop_workers(procs, tasks, results)


def run(cfg: Any, info: dict[str, Any], writer: Any, source: Any,
        on_episode: Callable[[dict[str, Any]], None], on_ready: Callable[[], None]) -> None:
    """Backend entry point (see :mod:`collect.backends`)."""
    collect_with_processes(cfg, info, source, on_episode, on_ready=on_ready)
