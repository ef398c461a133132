"""How ONNX Runtime runs the two graphs on this machine: threads, spin-waiting and graph optimisation level, per
graph and per schedule.

Two schedules (:class:`Schedule`) want different settings:

- ``SEQUENTIAL``: one graph at a time (a deterministic replay, ``eval``, ``bench``). Each graph gets the whole
  machine, but the other graph's idle threads are still there: spinning ones take cores from it.
- ``CONCURRENT``: the background encoder runs beside the decoder (live runs, ``--realtime``). With both graphs
  on every core and spinning, each steals the other's cores; splitting the cores and sleeping instead can make
  both faster.

Which settings win depends on the CPU, so ``xrseg model build`` measures them (:mod:`xrseg.sam.choose_runtime`)
and records a :class:`RuntimeChoice` in the manifest; :class:`RuntimeProfile.fallback` (ONNX Runtime's own
defaults: one thread per core, spinning) stands where nothing was measured.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["GraphOptimization", "RuntimeChoice", "RuntimeProfile", "Schedule", "SessionSettings"]


class Schedule(enum.Enum):
    """Whether the encoder and the decoder run one at a time or at the same time."""

    SEQUENTIAL = "sequential"
    """One graph at a time: deterministic replays, ``eval``, ``bench``'s per-stage timings."""
    CONCURRENT = "concurrent"
    """The background encoder beside the decoder: live runs and ``--realtime`` replays."""


class GraphOptimization(enum.Enum):
    """ONNX Runtime's graph optimisation level (``ORT_ENABLE_<NAME>``). ``ALL`` adds layout transforms (NCHWc
    convolutions) to ``EXTENDED``'s fusions; which is faster depends on the CPU's kernels."""

    ALL = "all"
    EXTENDED = "extended"


@dataclass(frozen=True)
class SessionSettings:
    """One graph's ONNX Runtime session: ``threads`` intra-op threads; ``spinning``: whether idle intra-op
    threads spin-wait for the next operator (faster alone, but they hold cores another graph could use);
    ``optimization`` the graph optimisation level."""

    threads: int
    spinning: bool
    optimization: GraphOptimization = GraphOptimization.ALL

    def to_json(self) -> dict[str, Any]:
        return {"threads": self.threads, "spinning": self.spinning, "optimization": self.optimization.value}

    @classmethod
    def from_json(cls, data: Any) -> SessionSettings:
        """Raises ValueError for anything but ``{"threads": int >= 1, "spinning": bool, "optimization": str}``
        (``optimization`` may be missing: ``all``)."""
        if not isinstance(data, dict):
            raise ValueError("session settings must be an object")
        threads, spinning = data.get("threads"), data.get("spinning")
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
            raise ValueError(f"threads must be an integer in 1..1024, got {threads!r}")
        if not isinstance(spinning, bool):
            raise ValueError(f"spinning must be true or false, got {spinning!r}")
        return cls(threads, spinning, GraphOptimization(data.get("optimization", GraphOptimization.ALL.value)))

    def describe(self) -> str:
        plural = "s" if self.threads != 1 else ""
        spinning = ", spinning" if self.spinning else ""
        return f"{self.threads} thread{plural}{spinning}, {self.optimization.value} optimisations"


@dataclass(frozen=True)
class RuntimeProfile:
    """The settings of both graphs for one schedule."""

    encoder: SessionSettings
    decoder: SessionSettings

    @classmethod
    def fallback(cls) -> RuntimeProfile:
        """ONNX Runtime's defaults (one intra-op thread per core, spinning) for both graphs: what runs where
        nothing was measured."""
        settings = SessionSettings(os.cpu_count() or 1, True)
        return cls(settings, settings)

    def with_threads(self, threads: int) -> RuntimeProfile:
        """Both graphs on ``threads`` threads (an explicit ``--threads``), the rest as measured."""
        return RuntimeProfile(replace(self.encoder, threads=threads), replace(self.decoder, threads=threads))

    def to_json(self) -> dict[str, Any]:
        return {"encoder": self.encoder.to_json(), "decoder": self.decoder.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> RuntimeProfile:
        """Raises ValueError for a malformed profile."""
        if not isinstance(data, dict):
            raise ValueError("a runtime profile must be an object")
        return cls(SessionSettings.from_json(data.get("encoder")), SessionSettings.from_json(data.get("decoder")))

    def describe(self) -> str:
        return f"encoder {self.encoder.describe()}; decoder {self.decoder.describe()}"


@dataclass(frozen=True)
class RuntimeChoice:
    """This machine's profile per schedule, as ``xrseg model build`` measured them (the trials' figures are in
    ``trials``: JSON-ready records of what was timed)."""

    profiles: dict[Schedule, RuntimeProfile]
    cores: int
    trials: tuple[dict[str, Any], ...] = ()

    def profile(self, schedule: Schedule) -> RuntimeProfile:
        return self.profiles.get(schedule) or RuntimeProfile.fallback()

    def to_json(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "profiles": {s.value: p.to_json() for s, p in self.profiles.items()},
            "trials": list(self.trials),
        }

    @classmethod
    def from_json(cls, data: Any) -> RuntimeChoice:
        """Raises ValueError for a malformed record."""
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
            raise ValueError("a runtime choice must be an object with 'profiles'")
        cores = data.get("cores")
        if not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores must be a positive integer, got {cores!r}")
        profiles = {Schedule(name): RuntimeProfile.from_json(p) for name, p in data["profiles"].items()}
        trials = data.get("trials", [])
        kept = tuple(t for t in trials if isinstance(t, dict)) if isinstance(trials, list) else ()
        return cls(profiles, cores, kept)
