"""Running a batch on Ray: each session a Ray task (the ``ray`` extra).

- ``address`` ``"auto"`` joins the cluster this machine belongs to (``RAY_ADDRESS``, or one started with
  ``ray start`` here) and, when there is none, starts a private local Ray for the batch: ``num_cpus`` this
  machine's cores, no dashboard, no usage statistics, its temporary folder removed when the batch ends. Any
  other address is passed to ``ray.init`` (``ray://head:10001``, ``head:6379``, ``local``).
- Each task declares ``cpus_per_session`` CPUs (also its engine's ONNX Runtime threads) and
  ``gpus_per_session`` GPUs (ONNX Runtime takes the CUDA provider where ``onnxruntime-gpu`` is installed).
- Before the sessions, one task per node verifies (or builds) the node's model cache
  (:func:`~xrseg.batch.models.prepare_model_cache`), so that tasks only load it.
- A task gets its job as JSON text and writes its outputs and ``result.json`` into the output folder (on
  storage every node sees: the user's); it returns only the result's JSON text, a few hundred bytes.
- Ctrl-C cancels every task (as Ctrl-C: the runs unwind; after 10 s their workers are killed) and, for a Ray
  the batch started, shuts it down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from xrseg.batch.records import SessionJob, SessionResult, failed
from xrseg.errors import InputError, MissingExtraError

log = logging.getLogger(__name__)

AUTO = "auto"
OBJECT_STORE_BYTES = 100 * 1024 * 1024
"""Object store of a Ray the batch starts: results are a few hundred bytes of JSON each."""

CANCEL_WAIT_S = 10.0
"""How long cancelled tasks get to unwind before their workers are killed."""

OnStart = Callable[[SessionJob], None]
OnResult = Callable[[SessionResult], None]


def _session_task(job_json: str) -> str:
    """The Ray task: one session, in the Ray worker's process."""
    from xrseg.batch.worker import run_job_logged

    return run_job_logged(job_json)


def _prepare_task(variant: str | None) -> str:
    """The once-per-node task: verify (or build) this node's model cache; a line saying what it found."""
    from xrseg.batch.models import prepare_model_cache
    from xrseg.errors import ModelError

    try:
        return prepare_model_cache(variant, build=True)
    except ModelError as err:
        return f"model cache not ready: {err}"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingExtraError("--ray needs Ray: pip install 'xrseg[ray]'") from err
    return ray


@contextmanager
def connected(address: str, num_cpus: int, runtime_env: dict[str, Any] | None) -> Iterator[Any]:
    """``ray`` connected to ``address`` (see the module docstring) for the duration; disconnected after, and a
    Ray started here is stopped and its temporary folder removed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _import_ray()
    if ray.is_initialized():
        raise InputError("Ray is already initialised in this process: call xrseg.batch.run before ray.init")
    common: dict[str, Any] = {"runtime_env": runtime_env, "log_to_driver": False, "configure_logging": False}
    with contextlib.ExitStack() as stack:  # undone in reverse: shutdown, environment, temporary folder
        if address != AUTO or _cluster_in_sight(ray):
            stack.callback(ray.shutdown)
            try:
                ray.init(address=address, **common)
            except ConnectionError as err:
                raise InputError(f"cannot connect to Ray at {address}: {str(err).splitlines()[0]}") from err
        else:
            temp_dir = tempfile.mkdtemp(prefix="xrseg-ray-")
            stack.callback(shutil.rmtree, temp_dir, ignore_errors=True)
            stack.enter_context(_private_token())
            log.info("no Ray cluster found: starting a local one (%d CPUs) in %s", num_cpus, temp_dir)
            stack.callback(ray.shutdown)
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                _temp_dir=temp_dir,
                **common,
            )
        yield ray


def _cluster_in_sight(ray: Any) -> bool:
    """Whether ``ray.init("auto")`` has a cluster to join: ``RAY_ADDRESS``, or the address file a ``ray start``
    on this machine leaves (Ray's own lookup, documented under ``ray.init``)."""
    if os.environ.get("RAY_ADDRESS"):
        return True
    try:
        return bool(ray._private.utils.read_ray_address())
    except AttributeError:  # Ray moved its helper: let ray.init("auto") look
        return True


@contextmanager
def _private_token() -> Iterator[None]:
    """While a local Ray runs: its auth token in the environment its processes inherit, made for this batch
    (Ray would otherwise write one to ``~/.ray/auth_token`` and leave it there). A mode or token the user set
    is theirs; what Ray or this adds to the environment is removed after."""
    before = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    if before["RAY_AUTH_MODE"] is None and before["RAY_AUTH_TOKEN"] is None:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)


@dataclass
class RayBackend:
    """Sessions as Ray tasks on the cluster at ``address``."""

    address: str
    cpus_per_session: float
    gpus_per_session: float
    max_in_flight: int | None = None
    """At most this many tasks submitted at once (None: all; Ray queues them by resources)."""
    variant: str | None = None
    runtime_env: dict[str, Any] | None = None
    local_cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    node_reports: list[str] = field(default_factory=list)

    def run(self, jobs: Sequence[SessionJob], on_start: OnStart, on_result: OnResult) -> None:
        """Run every job as a Ray task; callbacks on this thread. On ``KeyboardInterrupt`` every task is
        cancelled before it propagates."""
        with connected(self.address, self.local_cpus, self.runtime_env) as ray:
            self.node_reports = self._prepare_nodes(ray)
            for line in self.node_reports:
                log.info("%s", line)
            task = ray.remote(_session_task).options(
                num_cpus=self.cpus_per_session, num_gpus=self.gpus_per_session, max_retries=0
            )
            refs: dict[Any, SessionJob] = {}
            queue = list(jobs)
            try:
                while queue or refs:
                    while queue and (self.max_in_flight is None or len(refs) < self.max_in_flight):
                        job = queue.pop(0)
                        on_start(job)
                        refs[task.remote(job.to_json())] = job
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    for ref in ready:
                        on_result(_result(ray, ref, refs.pop(ref)))
            except BaseException:
                _cancel(ray, list(refs))
                raise

    def _prepare_nodes(self, ray: Any) -> list[str]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        prepare = ray.remote(_prepare_task)
        refs = [
            prepare.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(self.variant)
            for n in nodes
        ]
        return [str(line) for line in ray.get(refs)]


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel the tasks: first as Ctrl-C would (their runs unwind, remove their temporary files and say
    ``interrupted`` in summary.json), then, for those still running after :data:`CANCEL_WAIT_S`, by killing
    their workers."""
    if not refs:
        return
    for ref in refs:
        ray.cancel(ref, force=False)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
    for ref in left:
        ray.cancel(ref, force=True)


def _result(ray: Any, ref: Any, job: SessionJob) -> SessionResult:
    """The task's result, or a failure naming why the task produced none (its worker died, ...)."""
    try:
        text = ray.get(ref)
    except Exception as err:  # Ray's own errors (a worker died, a node was lost): the session failed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return failed(job, f"Ray task failed: {type(err).__name__}: {first}")
    return SessionResult.from_dict(json.loads(text))
