"""Result bundles: one JSON file per leaderboard entry (schema in ``leaderboards/SCHEMA.md``).

A bundle holds, for one agent on one leaderboard, every per-seed, per-task, per-protocol value
(score, success, return, episodes, and the per-episode values where the run's records keep
them), the budget used, provenance per seed (package versions, git SHA, machine, wall time,
config hash) and, when checkpoints are kept, their SHA-256. Its ``summary`` (IQM, mean, median,
optimality gap with seeded stratified-bootstrap CIs) is a pure function of those values and the
definition, so the same runs always give a byte-identical file.

Bundles are untrusted input (``load``): the file size is capped before it is read, JSON is
parsed without NaN / Infinity, every field is type- and range-checked, strings are capped and
only ever treated as text, the definition's requirements (suite, budget, episodes, seeds,
protocols) are checked, and the summary is recomputed and must equal the stored one. Nothing is
unpickled. A bundle that fails any check is rejected with a one-line reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench import stats
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import Leaderboard, definition_hash, get_leaderboard

SCHEMA = "mtrl-bench/bundle"
SCHEMA_VERSION = 1
MAX_BYTES = 16 << 20
"""Largest bundle file accepted (16 MiB; a 5-seed MT50 bundle with per-episode values is ~3 MiB)."""
MAX_STRING = 2000
"""Longest string accepted anywhere in a bundle (descriptions included)."""
_TOP = {"schema", "schema_version", "leaderboard", "agent", "suite", "budget", "seeds", "results",
        "curves", "summary", "provenance", "checkpoints"}  # fmt: skip
MAX_CURVE = 1000
"""Most ``[env_steps, success]`` points per seed in ``curves``."""
_AGENT = {"name", "version", "url", "description"}
_RESULT = {"protocol", "seed", "task", "task_index", "score", "success", "return", "episodes",
           "per_episode"}  # fmt: skip
_EPISODE = {"return", "length", "success", "env_seed", "env_episode"}


def _reject(msg: str) -> UsageError:
    return UsageError(f"bundle rejected: {msg}")


def _interval(scores: np.ndarray, lb: Leaderboard) -> dict[str, Any]:
    """Aggregates of one (seeds, tasks) score matrix; a single seed has no CI (``null``)."""
    s = stats.summarize(scores, reps=lb.reps, confidence=lb.confidence, seed=0)
    single = scores.shape[0] == 1
    return {k: [_r(v.point), None if single else _r(v.lo), None if single else _r(v.hi)]
            for k, v in s.items()}  # fmt: skip


def _r(x: float) -> float:
    """Rounded to 12 significant digits: the summary is then stable across BLAS and platforms."""
    return float(f"{x:.12g}")


def matrix(bundle: Mapping[str, Any], protocol: str, metric: str = "score") -> np.ndarray:
    """(seeds, tasks) matrix of ``metric`` for ``protocol``, seeds and task indices ascending."""
    rows = [r for r in bundle["results"] if r["protocol"] == protocol]
    seeds = sorted({r["seed"] for r in rows})
    tasks = sorted({r["task_index"] for r in rows})
    table = {(r["seed"], r["task_index"]): r[metric] for r in rows}
    if len(table) != len(rows) or len(table) != len(seeds) * len(tasks):
        raise _reject(f"protocol {protocol!r} does not have exactly one result per seed and task")
    return np.array([[table[s, t] for t in tasks] for s in seeds], dtype=np.float64)


def summarize(bundle: Mapping[str, Any], lb: Leaderboard) -> dict[str, Any]:
    out = {}
    for name in sorted({r["protocol"] for r in bundle["results"]}):
        scores, success = matrix(bundle, name), matrix(bundle, name, "success")
        out[name] = {"n_seeds": int(scores.shape[0]), **_interval(scores, lb),
                     "success": _r(float(success.mean())),
                     "task_score": [_r(x) for x in scores.mean(axis=0)]}  # fmt: skip
    return out


def dumps(bundle: Mapping[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, fixed separators, ASCII, no NaN; same bundle, same bytes."""
    return (json.dumps(bundle, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False)
            + "\n").encode()  # fmt: skip


def make_bundle(lb: Leaderboard, agent: Mapping[str, str], results: Sequence[Mapping[str, Any]],
                provenance: Mapping[str, Any], budget: Mapping[str, int],
                checkpoints: Mapping[str, str] | None = None,
                curves: Mapping[str, list[list[float]]] | None = None,
                ) -> dict[str, Any]:  # fmt: skip
    """A complete bundle (summary computed) from per-(protocol, seed, task) results."""
    order = sorted(results, key=lambda r: (r["protocol"], r["seed"], r["task_index"]))
    bundle = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "leaderboard": {"key": lb.key, "definition_hash": definition_hash(lb)},
        "agent": {k: str(agent.get(k, "")) for k in sorted(_AGENT)},
        "suite": lb.suite, "budget": dict(budget),
        "seeds": sorted({r["seed"] for r in order}),
        "results": [dict(r) for r in order], "provenance": dict(provenance),
        "checkpoints": dict(checkpoints or {}), "curves": dict(curves or {}),
    }  # fmt: skip
    bundle["summary"] = summarize(bundle, lb)
    validate(bundle)
    return bundle


def write(bundle: Mapping[str, Any], path: Path) -> Path:
    from mtrl_bench.results import atomic_write_bytes

    atomic_write_bytes(Path(path), dumps(bundle))
    return Path(path)


# ---- validation of untrusted bundles ------------------------------------------------------------


def _no_constants(name: str) -> float:
    raise _reject(f"non-finite number {name} (NaN and Infinity are not allowed)")


def _check_strings(obj: Any, where: str) -> None:
    if isinstance(obj, str):
        if len(obj) > MAX_STRING:
            raise _reject(f"string at {where} has {len(obj)} characters; at most {MAX_STRING}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_strings(k, where)
            _check_strings(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_strings(v, f"{where}[{i}]")


def _num(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _reject(f"{where} must be a finite number, got {str(value)[:40]!r}")
    if not lo <= value <= hi:
        raise _reject(f"{where} = {value} is outside [{lo}, {hi}]")
    return float(value)


def _int(value: Any, where: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _reject(f"{where} must be an integer >= {lo}, got {str(value)[:40]!r}")
    return value


def _keys(obj: Any, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise _reject(f"{where} must be an object")
    if unknown := sorted(set(obj) - allowed):
        raise _reject(f"{where} has unknown key {unknown[0]!r}")
    if missing := sorted(required - set(obj)):
        raise _reject(f"{where} lacks key {missing[0]!r}")


def _check_result(r: Any, i: int, lb: Leaderboard) -> None:
    where = f"results[{i}]"
    _keys(r, _RESULT, _RESULT - {"per_episode"}, where)
    if not isinstance(r["protocol"], str) or r["protocol"] not in {p.name for p in lb.protocols}:
        raise _reject(f"{where}.protocol {str(r['protocol'])[:40]!r} is not scored by {lb.key}")
    _int(r["seed"], f"{where}.seed")
    _int(r["task_index"], f"{where}.task_index")
    if not isinstance(r["task"], str):
        raise _reject(f"{where}.task must be a string")
    _num(r["score"], f"{where}.score", -1e6, 1e6)
    _num(r["success"], f"{where}.success", 0.0, 1.0)
    _num(r["return"], f"{where}.return")
    episodes = _int(r["episodes"], f"{where}.episodes", 1)
    if lb.kind == "multitask" and episodes != (want := lb.episodes(r["protocol"])):
        raise _reject(f"{where}.episodes = {episodes}; {lb.key} evaluates {want} on "
                      f"{r['protocol']}")  # fmt: skip
    if "per_episode" in r:
        per = r["per_episode"]
        _keys(per, _EPISODE, _EPISODE, f"{where}.per_episode")
        for k in sorted(_EPISODE):
            if not isinstance(per[k], list) or len(per[k]) != episodes:
                raise _reject(f"{where}.per_episode.{k} must list {episodes} values")
            for j, v in enumerate(per[k]):
                _num(v, f"{where}.per_episode.{k}[{j}]")
        if abs(float(np.mean(per["return"])) - r["return"]) > 1e-6 * max(1.0, abs(r["return"])):
            raise _reject(f"{where}.return disagrees with the mean of its per-episode returns")


def _check_curves(curves: Any, seeds: list[int]) -> None:
    if not isinstance(curves, dict):
        raise _reject("curves must be an object")
    for seed, points in curves.items():
        if seed not in {str(s) for s in seeds}:
            raise _reject(f"curves has seed {seed[:20]!r}, which is not among the seeds {seeds}")
        if not isinstance(points, list) or len(points) > MAX_CURVE:
            raise _reject(f"curves.{seed} must be a list of at most {MAX_CURVE} points")
        for i, point in enumerate(points):
            if not isinstance(point, list) or len(point) != 2:
                raise _reject(f"curves.{seed}[{i}] must be [env_steps, success]")
            _num(point[0], f"curves.{seed}[{i}][0]", 0)
            _num(point[1], f"curves.{seed}[{i}][1]", 0.0, 1.0)


def validate(bundle: Any) -> Leaderboard:
    """Check a parsed bundle completely; returns its leaderboard definition."""
    _keys(bundle, _TOP, _TOP, "bundle")
    _check_strings(bundle, "bundle")
    if bundle["schema"] != SCHEMA or bundle["schema_version"] != SCHEMA_VERSION:
        raise _reject(f"schema {str(bundle['schema'])[:40]!r} version "
                      f"{str(bundle['schema_version'])[:10]}; allowed: {SCHEMA} version "
                      f"{SCHEMA_VERSION}")  # fmt: skip
    _keys(bundle["leaderboard"], {"key", "definition_hash"}, {"key", "definition_hash"},
          "leaderboard")  # fmt: skip
    lb = get_leaderboard(str(bundle["leaderboard"]["key"]))
    if lb.key != bundle["leaderboard"]["key"]:
        raise _reject(f"leaderboard key {bundle['leaderboard']['key']!r} must name a version")
    if bundle["leaderboard"]["definition_hash"] != definition_hash(lb):
        raise _reject(f"it was made for another definition of {lb.key} (definition hash differs)")
    _keys(bundle["agent"], _AGENT, _AGENT, "agent")
    if not all(isinstance(v, str) for v in bundle["agent"].values()) or not bundle["agent"]["name"]:
        raise _reject("agent fields must be strings and agent.name must not be empty")
    if bundle["suite"] != lb.suite:
        raise _reject(f"suite {str(bundle['suite'])[:80]!r}; {lb.key} is on {lb.suite}")
    _keys(bundle["budget"], {"env_steps", "eval_episodes"}, {"env_steps", "eval_episodes"},
          "budget")  # fmt: skip
    if _int(bundle["budget"]["env_steps"], "budget.env_steps", 1) != lb.steps:
        raise _reject(f"budget.env_steps = {bundle['budget']['env_steps']}; {lb.key} trains for "
                      f"exactly {lb.steps}")  # fmt: skip
    if bundle["budget"]["eval_episodes"] != lb.eval_episodes:
        raise _reject(f"budget.eval_episodes = {bundle['budget']['eval_episodes']}; {lb.key} "
                      f"evaluates {lb.eval_episodes}")  # fmt: skip
    if not isinstance(bundle["results"], list) or not bundle["results"]:
        raise _reject("results must be a non-empty list")
    for i, r in enumerate(bundle["results"]):
        _check_result(r, i, lb)
    seeds = sorted({r["seed"] for r in bundle["results"]})
    if bundle["seeds"] != seeds:
        raise _reject(f"seeds {str(bundle['seeds'])[:80]} do not match the results' seeds {seeds}")
    if len(seeds) < lb.min_seeds:
        raise _reject(f"{len(seeds)} seed(s); {lb.key} needs at least {lb.min_seeds}")
    protocols = {r["protocol"] for r in bundle["results"]}
    for p in lb.protocols:
        if p.required and p.name not in protocols:
            raise _reject(f"protocol {p.name!r} is required by {lb.key} and missing")
        rows = [r for r in bundle["results"] if r["protocol"] == p.name]
        if rows and sorted({r["seed"] for r in rows}) != seeds:
            raise _reject(f"protocol {p.name!r} lacks some of the seeds {seeds}")
    if not isinstance(bundle["provenance"], dict) or not isinstance(bundle["checkpoints"], dict):
        raise _reject("provenance and checkpoints must be objects")
    for name, digest in bundle["checkpoints"].items():
        hexdigits = set("0123456789abcdef")
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= hexdigits):
            raise _reject(f"checkpoints.{name[:40]} must be a hex SHA-256 digest")
    _check_curves(bundle["curves"], seeds)
    if bundle["summary"] != summarize(bundle, lb):
        raise _reject("summary disagrees with the per-seed results it summarises")
    return lb


def load(path: Path) -> tuple[dict[str, Any], Leaderboard]:
    """Read and validate an untrusted bundle file (size-capped, no pickle, no NaN)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"bundle {path} is not a file")
    if (size := path.stat().st_size) > MAX_BYTES:
        raise _reject(f"{path} has {size} bytes; at most {MAX_BYTES}")
    with path.open("rb") as f:
        data = f.read(MAX_BYTES + 1)
    try:
        bundle = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _reject(f"{path} is not UTF-8 JSON ({str(exc).splitlines()[0][:80]})") from None
    except RecursionError:
        raise _reject(f"{path} is nested too deeply") from None
    return bundle, validate(bundle)
