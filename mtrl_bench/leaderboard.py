"""Leaderboard definitions: frozen, versioned data (``leaderboards/definitions/*.toml``).

A leaderboard fixes everything that decides whether two entries are comparable: the suite (with
its version in the id), the scored protocols and their splits, the training budget, the
evaluation episodes per task, the minimum number of seeds, the primary metric and the bootstrap
settings of its intervals. Changing any of these makes a new version: definitions are never
edited in place, a new ``<id>-v<N+1>.toml`` is added instead (a test pins the content hash of
every shipped definition).

Two kinds:

- ``multitask``: entries are agents trained on the suite's ``train`` split by the resumable
  runner and evaluated by the named protocols (``mt``, ``zero_shot``, ``few_shot``). Scores are
  the suite's normalised returns; the primary metric is their IQM over seeds x tasks.
- ``transfer``: entries are source-task selection strategies on a committed transfer matrix
  (MBTL's protocol). A seed is a trial (one matrix); a "task" is a target context; its score is
  the target's normalised performance under the best of the first k selected sources, averaged
  over k = 1..K. The mean over targets is then MBTL's "mean over k" figure.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from functools import cache
from importlib import resources
from typing import Any, Literal

from mtrl_bench.errors import UsageError

PROTOCOL_NAMES = ("mt", "zero_shot", "few_shot", "transfer")
METRICS = ("iqm", "mean", "median", "optimality_gap")


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    """``mt`` (train split), ``zero_shot`` / ``few_shot`` (held-out split) or ``transfer``."""
    split: str
    """The suite split it is scored on."""
    required: bool = True
    """Whether every entry must report it (``few_shot`` is optional: not every agent adapts)."""
    adapt_steps: int = 0
    """``few_shot``: adaptation budget in env steps over all held-out tasks."""
    episodes: int = 0
    """Evaluation episodes per task on this protocol; 0: the leaderboard's ``eval_episodes``.
    Set it where the split has fewer fixed goals than that (Meta-World's 40 held-out goals:
    the evaluation plays each goal once, see ``mtrl_bench.evaluation``)."""


@dataclass(frozen=True)
class Leaderboard:
    id: str
    """Name without version, e.g. ``minigrid-mt3``."""
    version: int
    """Bumped whenever any other field changes."""
    title: str
    description: str
    kind: Literal["multitask", "transfer"]
    suite: str
    """Suite id (its own version is part of it, e.g. ``minigrid-jax/mt3-v1``)."""
    steps: int
    """Training budget: env steps over all training tasks (``transfer``: per source task)."""
    eval_episodes: int
    """Evaluation episodes per task (``transfer``: of each source policy on each target)."""
    min_seeds: int
    """Fewest seeds (``transfer``: trials) an entry must have."""
    protocols: tuple[ProtocolSpec, ...]
    deterministic_eval: bool = False
    primary_protocol: str = "mt"
    primary_metric: str = "iqm"
    secondary: tuple[str, ...] = ("mean", "optimality_gap", "success")
    reps: int = 2000
    """Bootstrap replicates of every interval (seeded: the same bundle gives the same CIs)."""
    confidence: float = 0.95
    k_max: int = 0
    """``transfer``: number of selected source tasks averaged over (K)."""
    matrix: str = ""
    """``transfer``: the committed matrix folder, relative to the repository root."""
    strategies: str = ""
    """``transfer``: ``module:attr`` of the built-in strategies (``f(scores, budget, *, seed,
    suite) -> {name: draws}``); users name their own ``package.module:attr``."""

    @property
    def key(self) -> str:
        """``id/vN``: what users type and what bundles name."""
        return f"{self.id}/v{self.version}"

    def episodes(self, protocol: str) -> int:
        """Evaluation episodes per task that ``protocol``'s records must have."""
        return self.protocol(protocol).episodes or self.eval_episodes

    def protocol(self, name: str) -> ProtocolSpec:
        for p in self.protocols:
            if p.name == name:
                return p
        raise UsageError(f"leaderboard {self.key} has no protocol {name!r}; "
                         f"allowed: {', '.join(p.name for p in self.protocols)}")  # fmt: skip


def _field(raw: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in raw:
        raise UsageError(f"{where}: missing field {name!r}")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UsageError(f"{where}: field {name!r} has type {type(value).__name__}")
    return value


def parse_definition(raw: dict[str, Any], where: str) -> Leaderboard:
    """A ``Leaderboard`` from parsed TOML, every field checked (one-line errors)."""
    known = set(Leaderboard.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        allowed = ", ".join(sorted(known))
        raise UsageError(f"{where}: unknown field {unknown[0]!r}; allowed: {allowed}")
    protocols = []
    for i, p in enumerate(_field(raw, "protocols", list, where)):
        pw = f"{where} protocols[{i}]"
        if not isinstance(p, dict) or set(p) - set(ProtocolSpec.__dataclass_fields__):
            raise UsageError(f"{pw}: must be a table of name, split, required, adapt_steps, "
                             "episodes")
        if (name := _field(p, "name", str, pw)) not in PROTOCOL_NAMES:
            raise UsageError(f"{pw}: protocol {name!r}; allowed: {', '.join(PROTOCOL_NAMES)}")
        protocols.append(ProtocolSpec(name, _field(p, "split", str, pw),
                                      bool(p.get("required", True)), int(p.get("adapt_steps", 0)),
                                      int(p.get("episodes", 0))))  # fmt: skip
        if protocols[-1].episodes < 0:
            raise UsageError(f"{pw}: episodes must be >= 0, got {protocols[-1].episodes}")
    lb = Leaderboard(**{**raw, "protocols": tuple(protocols),
                        "secondary": tuple(raw.get("secondary", Leaderboard.secondary))})
    for name in ("id", "title", "suite"):
        _field(raw, name, str, where)
    for name in ("version", "steps", "eval_episodes", "min_seeds"):
        if _field(raw, name, int, where) < 1:
            raise UsageError(f"{where}: {name} must be >= 1, got {raw[name]}")
    if lb.kind not in ("multitask", "transfer"):
        raise UsageError(f"{where}: kind {lb.kind!r}; allowed: multitask, transfer")
    if lb.primary_metric not in METRICS:
        raise UsageError(f"{where}: primary_metric {lb.primary_metric!r}; "
                         f"allowed: {', '.join(METRICS)}")
    lb.protocol(lb.primary_protocol)
    if lb.kind == "transfer" and (lb.k_max < 1 or not lb.matrix):
        raise UsageError(f"{where}: a transfer leaderboard needs k_max >= 1 and matrix")
    return lb


def definition_hash(lb: Leaderboard) -> str:
    """First 16 hex digits of the SHA-256 of the definition's canonical JSON: bundles record it,
    so a definition edited in place (instead of versioned) is caught when its bundles are loaded.
    Fields left at their defaults are omitted, so a field added to this module later (with a
    default) does not change the hash of the definitions that exist."""
    canon = {f.name: getattr(lb, f.name) for f in fields(lb) if getattr(lb, f.name) != f.default}
    # ``episodes`` joined ProtocolSpec later: left out at its default, like the fields above.
    canon["protocols"] = [{k: v for k, v in asdict(p).items() if k != "episodes" or v}
                          for p in lb.protocols]  # fmt: skip
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def leaderboards() -> dict[str, Leaderboard]:
    """Every shipped definition by key (``id/vN``)."""
    out: dict[str, Leaderboard] = {}
    folder = resources.files("mtrl_bench.leaderboards").joinpath("definitions")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        where = f"leaderboards/definitions/{entry.name}"
        try:
            raw = tomllib.loads(entry.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{where}: invalid TOML ({exc})") from None
        lb = parse_definition(raw, where)
        if entry.name != f"{lb.id}-v{lb.version}.toml":
            raise UsageError(f"{where}: file name must be {lb.id}-v{lb.version}.toml")
        out[lb.key] = lb
    return out


def get_leaderboard(key: str) -> Leaderboard:
    """The definition ``id/vN``; ``id`` alone means its latest version."""
    known = leaderboards()
    if key in known:
        return known[key]
    versions = sorted((lb.version, k) for k, lb in known.items() if lb.id == key)
    if versions:
        return known[versions[-1][1]]
    import difflib

    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.3) or sorted(known)[:5]
    raise UsageError(f"unknown leaderboard {key!r}; closest: {', '.join(close)}")
