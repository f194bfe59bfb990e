"""From run directories (or an agent id) to a leaderboard bundle.

``from_runs`` turns finished run directories into a bundle after checking each run's saved
config against the definition, field by field (a run trained for another budget, evaluated with
other episodes or on another suite is refused, and the error names the field). ``submit`` runs
the missing seeds with the resumable runner first, exactly as the definition says, then calls
``from_runs``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mtrl_bench import bundle as bundles
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import Leaderboard
from mtrl_bench.results import EVAL_KEYS, config_hash, read_json, read_jsonl, read_run_config


def run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories in ``paths``: each path is a run (has ``config.json``) or holds runs."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise UsageError(f"runs path {path} is not a directory")
        if (path / "config.json").is_file():
            out.append(path)
            continue
        found = sorted(p.parent for p in path.glob("*/config.json"))
        if not found:
            raise UsageError(f"runs path {path} holds no run directory (no */config.json)")
        out.extend(found)
    return out


def check_config(lb: Leaderboard, config: Mapping[str, Any], where: Path) -> None:
    """Refuse a run whose saved config does not satisfy the definition; name the field."""
    want: dict[str, Any] = {"suite": lb.suite, "steps": lb.steps,
                            "eval_episodes": lb.eval_episodes,
                            "deterministic_eval": lb.deterministic_eval}  # fmt: skip
    for field, value in want.items():
        if config.get(field) != value:
            raise UsageError(f"run {where} has {field} = {config.get(field)!r}; "
                             f"{lb.key} requires {value!r}")  # fmt: skip
    protocols = config.get("protocols") or []
    for p in lb.protocols:
        if p.required and p.name not in protocols:
            raise UsageError(f"run {where} lacks protocol {p.name!r}, required by {lb.key}")
        adapt = config.get("few_shot_steps")
        if p.name == "few_shot" and p.name in protocols and adapt != p.adapt_steps:
            raise UsageError(f"run {where} has few_shot_steps = {config.get('few_shot_steps')!r}; "
                             f"{lb.key} requires {p.adapt_steps}")  # fmt: skip


def _results(lb: Leaderboard, path: Path, seed: int) -> list[dict[str, Any]]:
    scored = {p.name: p for p in lb.protocols}
    out = []
    for r in read_jsonl(path / "eval.jsonl", EVAL_KEYS):
        if r["protocol"] not in scored or r["env_steps"] != lb.steps:
            continue
        if r["split"] != scored[r["protocol"]].split:
            raise UsageError(f"run {path}: protocol {r['protocol']} evaluated split {r['split']!r};"
                             f" {lb.key} scores {scored[r['protocol']].split!r}")  # fmt: skip
        row = {"protocol": r["protocol"], "seed": seed, "task": r["task"],
               "task_index": r["task_index"], "score": r["score"], "success": r["success"],
               "return": r["return"], "episodes": r["episodes"]}  # fmt: skip
        if "per_episode" in r:
            row["per_episode"] = {k: list(r["per_episode"][k]) for k in sorted(bundles._EPISODE)}
        out.append(row)
    return out


def _seconds(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


def _provenance(path: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    env = read_json(path / "env.json") if (path / "env.json").is_file() else {}
    env = env if isinstance(env, dict) else {}
    times = [r["time"] for r in read_jsonl(path / "eval.jsonl") if "time" in r]
    if (path / "metrics.jsonl").is_file():
        times += [r["time"] for r in read_jsonl(path / "metrics.jsonl") if "time" in r]
    prov = {k: env[k] for k in ("git_sha", "git_dirty", "versions", "device", "platform",
                                "python") if k in env}  # fmt: skip
    prov["config_hash"] = config_hash(config)
    prov["preset"] = config.get("preset", "")
    prov["agent_config"] = config.get("agent_config", {})
    if "time" in env and times:
        prov["started"], prov["finished"] = env["time"], max(times)
        prov["wall_time_s"] = max(0.0, _seconds(env["time"], max(times)))
    return prov


def _curve(path: Path) -> list[list[float]]:
    """Training success against env steps from ``metrics.jsonl`` (last row per step: a restarted
    run repeats steps), thinned evenly to at most ``bundle.MAX_CURVE`` points."""
    if not (path / "metrics.jsonl").is_file():
        return []
    last = {r["env_steps"]: r["success"] for r in read_jsonl(path / "metrics.jsonl")
            if r.get("split", "train") == "train" and isinstance(r.get("success"), int | float)
            and isinstance(r.get("env_steps"), int)}  # fmt: skip
    points = [[float(k), float(v)] for k, v in sorted(last.items())]
    stride = -(-len(points) // bundles.MAX_CURVE) or 1
    return points[::stride]


def _checkpoints(path: Path, seed: int) -> dict[str, str]:
    ckpt = path / "ckpt"
    if not ckpt.is_dir():
        return {}
    return {f"{seed}/{p.relative_to(ckpt).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(ckpt.rglob("*")) if p.is_file()}  # fmt: skip


def from_runs(lb: Leaderboard, paths: Sequence[Path], *, name: str = "", version: str = "",
              url: str = "", description: str = "") -> dict[str, Any]:  # fmt: skip
    """A bundle from finished run directories of one agent and one config (seeds may differ)."""
    results, provenance, checkpoints, agents, hashes = [], {}, {}, set(), set()
    curves: dict[str, list[list[float]]] = {}
    for path in run_dirs(paths):
        config = read_run_config(path)
        check_config(lb, config, path)
        if not (path / "DONE").is_file():
            raise UsageError(f"run {path} is not finished (no DONE marker); finish it first")
        seed = config.get("seed")
        if not isinstance(seed, int) or seed < 0 or str(seed) in provenance:
            raise UsageError(f"run {path} has seed {seed!r}: seeds must be distinct integers >= 0")
        agents.add(str(config.get("agent")))
        hashes.add(json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True))
        results += _results(lb, path, seed)
        provenance[str(seed)] = _provenance(path, config)
        checkpoints.update(_checkpoints(path, seed))
        if curve := _curve(path):
            curves[str(seed)] = curve
    if len(agents) != 1 or len(hashes) != 1:
        raise UsageError(f"runs mix agents or configs ({', '.join(sorted(agents))}); a bundle is "
                         "one agent with one config")  # fmt: skip
    agent = agents.pop()
    if not version:  # the package version and every commit that made a seed
        ours = {p.get("versions", {}).get("mtrl-bench", "?") for p in provenance.values()}
        shas = sorted({p["git_sha"][:7] for p in provenance.values() if "git_sha" in p})
        version = f"mtrl-bench {', '.join(sorted(ours))}"
        version += f" @ {', '.join(shas)}" if shas else ""
    meta = {"name": name or agent, "version": version, "url": url, "description": description}
    budget = {"env_steps": lb.steps, "eval_episodes": lb.eval_episodes}
    return bundles.make_bundle(lb, meta, results, provenance, budget, checkpoints, curves)


def submit(lb: Leaderboard, agent: str, *, seeds: Sequence[int], runs_dir: Path,
           preset: str = "default", jobs: int = 1, progress: bool = True,
           **meta: str) -> dict[str, Any]:  # fmt: skip
    """Train and evaluate ``agent`` on every seed as ``lb`` says (resuming finished work), then
    build its bundle."""
    from mtrl_bench.registry import get_agent
    from mtrl_bench.runner import sweep

    if lb.kind != "multitask":
        raise UsageError(f"{lb.key} is a transfer leaderboard; build its entries with "
                         "`mtrl submit --from-runs` on transfer results")  # fmt: skip
    if len(seeds) < lb.min_seeds:
        raise UsageError(f"{len(seeds)} seed(s) given; {lb.key} needs at least {lb.min_seeds}")
    meta = {**meta, "name": meta.get("name") or get_agent(agent).id}  # `pkg.mod:SPEC`: its id
    base = leaderboard_run(lb, agent, preset)
    sweep(base, seeds=list(seeds), agents=[agent], runs_dir=runs_dir, jobs=jobs, progress=progress)
    paths = [Path(runs_dir) / lb.suite / agent / str(s) for s in seeds]
    return from_runs(lb, paths, **meta)


def leaderboard_run(lb: Leaderboard, agent: str, preset: str = "default", seed: int = 0) -> Any:
    """The ``runner.RunConfig`` of one seed of ``agent`` on ``lb``: its suite, budget, episodes
    and protocols (``few_shot`` where the agent can adapt)."""
    from mtrl_bench.registry import get_agent
    from mtrl_bench.runner import RunConfig

    adapts = get_agent(agent).adapt is not None  # optional protocols: where the agent can
    protocols = tuple(p.name for p in lb.protocols
                      if p.required or (adapts and p.name == "few_shot"))  # fmt: skip
    few = {"few_shot_steps": lb.protocol("few_shot").adapt_steps} if "few_shot" in protocols else {}
    return RunConfig(suite=lb.suite, agent=agent, seed=seed, steps=lb.steps, preset=preset,
                     protocols=protocols, eval_episodes=lb.eval_episodes,
                     deterministic_eval=lb.deterministic_eval, **few)  # fmt: skip
