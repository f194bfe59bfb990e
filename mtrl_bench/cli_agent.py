"""The parts of ``mtrl`` that need more than a signature: per-agent options and one-line errors.

``mtrl train --agent ID`` exposes that agent's ``Config`` fields as ``--agent-config.FIELD``
(tyro's form for a nested dataclass). The type depends on ``--agent``, so ``--agent``,
``--preset`` and ``--agent-config-file`` are read from argv before tyro builds the parser: the
nested field's default is the preset's config with the TOML file applied, so explicit flags win
(preset < TOML < flags) and ``--help`` shows the values a run would use.

No ``from __future__ import annotations`` here: the dataclass below is annotated with a type held
in a local variable, which must be evaluated when the class is built.
"""

import contextlib
import tomllib
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import tyro

from mtrl_bench.errors import UsageError
from mtrl_bench.runner import RunConfig, preset_config

AGENT_HELP = (
    "Agent id (mtrl list shows them). `mtrl train --agent ID --help` lists its hyperparameters, "
    "options --agent-config.FIELD, with the preset's values."
)


def flag_value(argv: Sequence[str], name: str) -> str | None:
    """The last value given to option ``name`` (``--name v`` or ``--name=v``), as argparse and
    tyro read it; tyro also accepts ``_`` for ``-``."""
    value = None
    for i, token in enumerate(argv):
        key, eq, rest = token.partition("=")
        if key.replace("_", "-") == name:
            value = rest if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def run_config_type(argv: Sequence[str]) -> type[RunConfig]:
    """``RunConfig`` whose ``agent_config`` is the ``Config`` of the agent named in ``argv``,
    defaulting to its preset's with ``--agent-config-file`` applied; hidden without ``--agent``."""
    from mtrl_bench.registry import get_agent

    agent = flag_value(argv, "--agent")
    config_type: Any = tyro.conf.Suppress[Any]
    default = None
    if agent is not None:
        spec = get_agent(agent)
        config_type = spec.config_cls
        default = preset_config(spec, flag_value(argv, "--preset") or RunConfig.preset)
        if (path := flag_value(argv, "--agent-config-file")) is not None:
            default = apply_toml(default, Path(path), agent)

    @dataclass(frozen=True)
    class TrainConfig(RunConfig):
        agent: Annotated[str, tyro.conf.arg(help=AGENT_HELP)]
        agent_config: config_type = default
        """The agent's hyperparameters: the preset's, then --agent-config-file's, then these."""

    return TrainConfig


def run_config(cfg: RunConfig) -> RunConfig:
    """A plain ``RunConfig`` (the class above is local, so worker processes could not unpickle
    it)."""
    return RunConfig(**{f.name: getattr(cfg, f.name) for f in fields(RunConfig)})


def apply_toml(config: Any, path: Path, agent: str) -> Any:
    """``config`` with the fields of the flat TOML table in ``path`` replaced (type-checked)."""
    if not path.is_file():
        raise UsageError(f"agent config file {path} does not exist or is not a file")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"agent config file {path} is not valid TOML: {err}") from None
    names, hints = [f.name for f in fields(config)], typing.get_type_hints(type(config))
    values = {}
    for key, value in table.items():
        if key not in names:
            allowed = ", ".join(names) or "none (it has no hyperparameters)"
            raise UsageError(f"{path}: unknown field {key!r} for agent {agent}; allowed: {allowed}")
        try:
            values[key] = _coerce(value, hints[key])
        except TypeError:
            kind = getattr(hints[key], "__name__", None) or str(hints[key]).replace("typing.", "")
            raise UsageError(f"{path}: {key} must be {kind}, got {value!r}") from None
    return replace(config, **values)


def _coerce(value: Any, hint: Any) -> Any:
    """A TOML value as type ``hint`` (the field types agent configs use); ``TypeError`` if not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint in (bool, int, str) and type(value) is hint:
        return value
    if origin is Literal and any(type(value) is type(a) and value == a for a in args):
        return value
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            with contextlib.suppress(TypeError):
                return _coerce(value, arg)
    raise TypeError(value)


def _parse_error(event: Any) -> NoReturn:
    """tyro's parse errors as one ``UsageError`` line (tyro draws multi-line boxes)."""
    from tyro import _errors as e

    arg = getattr(event, "argument", None)
    name = f"{arg.display_name()}: " if arg is not None else ""
    if isinstance(event, e.MissingArgs):
        missing = ", ".join(a.arg.display_name() for a in event.missing_arguments)
        message = f"missing required option {missing}"
    elif isinstance(event, e.InvalidChoice):
        message = f"{name}invalid choice {event.value!r}; allowed: {', '.join(event.choices)}"
    elif isinstance(event, e.UnrecognizedArgs):
        message = f"unrecognized arguments: {' '.join(event.tokens)}"
    elif isinstance(event, e.MissingSubcommand):
        found = f"unknown command {event.found_token!r}" if event.found_token else "no command"
        message = f"{found}; allowed: {', '.join(event.subcommand_spec.parser_from_name)}"
    elif isinstance(event, e.InstantiationFailure):
        message = f"{name}{event.message}"
    elif isinstance(event, e.BadValue):
        value = event.offending_value
        message = f"{name}{'too few values' if value is None else f'cannot take {value!r}'}"
    else:  # an event type newer than this code
        message = f"invalid arguments ({type(event).__name__})"
    raise UsageError(f"{message} (see --help)")


@contextlib.contextmanager
def one_line_parse_errors() -> Iterator[None]:
    """tyro's parse-error hook is private and experimental (tyro pinned in constraints.txt); if
    it is gone, errors keep tyro's boxes and tests/test_cli_errors.py fails."""
    try:
        from tyro._errors import on_parse_error
    except ImportError:
        yield
        return
    with on_parse_error(_parse_error):
        yield
