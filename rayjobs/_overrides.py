"""The command line checked against the config schema before Hydra composes it.

Hydra reports a misspelt key in its own words (ending ``Set the environment variable
HYDRA_FULL_ERROR=1 ...``), advises ``+train.lrr=...`` for a typo, and accepts a new
top-level key given with ``+`` (``+trian.lr=0.1``) without a word. Here every override
is read with Hydra's own grammar and walked down the dataclass tree of
:class:`~recsys.config.RecsysConfig`: an unknown setting (with or without ``+``, at
any depth), a value of the wrong type, an unknown config-group choice or an unreadable
override is a :class:`~recsys.errors.ConfigError` naming the setting, the closest valid
names and the expected type. Whatever Hydra still refuses when it composes becomes one
such error too; then :func:`recsys.checks.check_config` checks ranges and agreement.

>>> check_overrides(["train.lr=0.01", "eval.k=[5,10]", "dataset=movielens", '+encoder.templates.table="{name}"'])
>>> check_overrides(["train.lrr=0.1"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'train.lrr': unknown setting; did you mean 'train.lr' or 'train.loss'? The settings of train are: batch_size, ..., lr, ...
>>> check_overrides(["train.epochs=abc"])
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'train.epochs': expected an integer, got 'abc'. What to do: write e.g. train.epochs=20
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Union

from recsys.config import RecsysConfig
from recsys.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Hydra flags after which the command line is Hydra's to handle (help, printing the config, other configs, sweeps)
HYDRA_HANDLES = ("help", "hydra_help", "cfg", "info", "shell_completion", "config_path", "config_name", "config_dir",
                 "experimental_rerun", "multirun")


def command_line_overrides(argv: list[str]) -> list[str] | None:
    """The overrides of an entry point's command line; None when a Hydra flag takes it over (``--help``, ``--cfg``).

    >>> command_line_overrides(["train.lr=0.1", "report.dir=r"]), command_line_overrides(["--help"])
    (['train.lr=0.1', 'report.dir=r'], None)
    """
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    if any(getattr(args, flag, None) for flag in HYDRA_HANDLES):
        return None
    return list(args.overrides)


def given_settings(argv: list[str]) -> set[str]:
    """The setting paths the overrides of a command line name (without ``+``/``~``); other words are ignored.

    Reads the words quietly (no usage message), as ``sys.argv`` may belong to another program (pytest).

    >>> sorted(given_settings(["eval.baseline=mf", "+train.lr=0.1", "-k", "tests/x.py", "--durations=5"]))
    ['eval.baseline', 'train.lr']
    """
    keys: set[str] = set()
    for word in argv:
        if word.startswith("-") or "=" not in word:
            continue
        try:
            keys |= {override.key_or_group for override in _parse([word])}
        except ConfigError:
            continue
    return keys


def check_command_line(argv: list[str], stages: list[str] | None = None) -> RecsysConfig | None:
    """Check the command line and compose it; the checked config, or None when Hydra's flags take over.

    Raises :class:`ConfigError` for the first bad override, a composition Hydra refuses, or a
    setting :func:`recsys.checks.check_config` finds out of range or in disagreement for ``stages``
    (default: every stage).
    """
    overrides = command_line_overrides(argv)
    if overrides is None:
        return None
    check_overrides(overrides)
    cfg = compose_checked([o for o in overrides if not _is_hydra(o)])
    from recsys.checks import check_config

    check_config(cfg, stages=stages, explicit=given_settings(argv))
    return cfg


def compose_checked(overrides: list[str]) -> RecsysConfig:
    """Compose ``overrides`` as the entry points do; whatever Hydra or OmegaConf refuses becomes one ConfigError."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rayjobs._common import compose

    try:
        return compose(overrides)
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
        text = " ".join(str(cause).split("\n")[0].split())
        raise ConfigError(f"the configuration cannot be composed: {text}", setting=key or None,
                          hint="check the setting's name and value against `python -m rayjobs.pipeline --cfg job`") \
            from None


def check_overrides(overrides: list[str]) -> None:
    """Raise a :class:`ConfigError` for the first override that names no setting or has a value of the wrong type."""
    from hydra.core.override_parser.types import OverrideType

    for override in _parse(overrides):
        line = override.input_line
        if _is_hydra(line) or override.package:
            continue
        key = override.key_or_group
        if override.is_sweep_override():
            _walk(key)                                  # a multirun sweep: its values are Hydra's to expand
            continue
        if "." not in key and (CONFIG_DIR / key).is_dir() and isinstance(override.value(), str):
            _check_choice(key, override.value())
            continue
        annotation = _walk(key)
        if override.type is OverrideType.ADD and _exists(key):
            raise ConfigError("already set; a '+' adds a new key only", setting=key,
                              hint=f"write it without the '+': {line.lstrip('+')}")
        if override.type is OverrideType.DEL:
            continue
        _check_value(override.value(), annotation, key)


def _is_hydra(line: str) -> bool:
    bare = line.lstrip("+~")
    return bare.startswith(("hydra.", "hydra/", "hydra="))


def _parse(overrides: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed += parser.parse_overrides([line])
        except OverrideParseException as err:
            lines = [t.strip() for t in str(err).split("\n")[1:] if t.strip() and not t.startswith("See ")]
            reason = lines[0] if lines else "not key=value"
            key = line.split("=", 1)[0].lstrip("+~") if "=" in line else line
            raise ConfigError(f"cannot read the override {line!r} ({reason})", setting=key or None,
                              hint="write key=value, e.g. train.lr=0.01; quote a value holding spaces, commas, "
                                   "brackets or '=' (e.g. 'encoder.template=\"{title}. {genres}\"')") from None
    return parsed


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(annotation) -> tuple[Any, bool]:
    """``(inner, optional)`` of ``Optional[inner]``; other annotations unchanged."""
    if typing.get_origin(annotation) is Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(annotation))
    return annotation, False


def all_settings(cls=RecsysConfig, prefix: str = "") -> list[str]:
    """Every setting path of the dataclass tree (sections and leaves), e.g. ``train.lr``.

    >>> "model.two_tower.depth" in all_settings() and "train" in all_settings()
    True
    """
    found = []
    for name, annotation in _hints(cls).items():
        path = f"{prefix}{name}"
        found.append(path)
        inner, _ = _unwrap(annotation)
        if dataclasses.is_dataclass(inner):
            found += all_settings(inner, f"{path}.")
    return found


def _unknown(path: str, where: str, known: list[str]) -> ConfigError:
    depth = path.count(".")
    close = difflib.get_close_matches(path, [p for p in all_settings() if p.count(".") == depth], n=2, cutoff=0.6)
    guess = "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else "."
    listing = f"The settings of {where} are: " if where else "The sections are: "
    return ConfigError(f"unknown setting{guess} {listing}{', '.join(sorted(known))}", setting=path)


def _walk(path: str):
    """The annotation of the setting at ``path``; a ConfigError naming it when the schema has no such setting."""
    node: Any = RecsysConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        inner, _ = _unwrap(node)
        origin = typing.get_origin(inner)
        if inner is Any:
            return Any
        if dataclasses.is_dataclass(inner):
            hints = _hints(inner)
            if part not in hints:
                raise _unknown(path, ".".join(parts[:i]), list(hints))
            node = hints[part]
        elif origin is dict:
            node = typing.get_args(inner)[1] if typing.get_args(inner) else Any
        elif origin is list and part.isdigit():
            node = typing.get_args(inner)[0] if typing.get_args(inner) else Any
        else:
            where = ".".join(parts[:i])
            raise ConfigError(f"unknown setting: {where} is a single value, it has no '{part}'", setting=path,
                              hint=f"set {where} itself, e.g. {where}={_example(where)}")
    return node


def _exists(path: str) -> bool:
    node: Any = RecsysConfig()
    for part in path.split("."):
        if dataclasses.is_dataclass(node) and hasattr(node, part):
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def _example(path: str) -> str:
    node: Any = RecsysConfig()
    for part in path.split("."):
        if not dataclasses.is_dataclass(node):
            return "..."
        node = getattr(node, part)
    if node is None:
        return "null"
    if isinstance(node, bool):
        return str(node).lower()
    if isinstance(node, list):
        return "[" + ",".join(str(v) for v in node) + "]"
    return "..." if dataclasses.is_dataclass(node) or isinstance(node, dict) else str(node)


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a text"}


def _describe(annotation) -> str:
    inner, optional = _unwrap(annotation)
    origin = typing.get_origin(inner)
    if origin is list:
        text = f"a list of {_describe(typing.get_args(inner)[0]).removeprefix('an ').removeprefix('a ')}s"
    elif origin is dict:
        text = "a mapping {key: value}"
    elif dataclasses.is_dataclass(inner):
        text = f"a section {{{', '.join(list(_hints(inner))[:4])}, ...}}"
    else:
        text = _KINDS.get(inner, "a value")
    return f"{text} or null" if optional else text


def _fits(value, annotation) -> bool:
    inner, optional = _unwrap(annotation)
    if value is None:
        return optional or inner is Any
    if inner is Any or (isinstance(value, str) and "${" in value):     # an interpolation: OmegaConf resolves it
        return True
    origin = typing.get_origin(inner)
    if origin is list:
        args = typing.get_args(inner)
        return isinstance(value, list) and all(_fits(v, args[0] if args else Any) for v in value)
    if origin is dict:
        args = typing.get_args(inner)
        return isinstance(value, dict) and all(_fits(v, args[1] if args else Any) for v in value.values())
    if dataclasses.is_dataclass(inner):
        return isinstance(value, dict)
    if inner is bool:
        return isinstance(value, bool)
    if inner is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and _int(value))
    if inner is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
            (isinstance(value, str) and _float(value))
    if inner is str:
        return not isinstance(value, (list, dict))
    return True


def _int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_value(value, annotation, path: str) -> None:
    inner, _ = _unwrap(annotation)
    if dataclasses.is_dataclass(inner) and isinstance(value, dict):       # a whole section: check its keys
        for name, item in value.items():
            _check_value(item, _walk_from(inner, str(name), path), f"{path}.{name}")
        return
    if typing.get_origin(inner) is list and isinstance(value, list):
        element = typing.get_args(inner)[0] if typing.get_args(inner) else Any
        element_inner, _ = _unwrap(element)
        if dataclasses.is_dataclass(element_inner):                   # e.g. datasets=[{name:synthetic}, ...]
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise ConfigError(f"expected {_describe(element)} in entry {i}, got {item!r}", setting=path,
                                      hint=f"write e.g. {path}=[{{name:synthetic}}]")
                for name, field_value in item.items():
                    _check_value(field_value, _walk_from(element_inner, str(name), f"{path}[{i}]"),
                                 f"{path}[{i}].{name}")
            return
    if not _fits(value, annotation):
        raise ConfigError(f"expected {_describe(annotation)}, got {_show(value)}", setting=path,
                          hint=f"write e.g. {path}={_example(path)}")


def _walk_from(cls, name: str, prefix: str):
    hints = _hints(cls)
    if name not in hints:
        close = difflib.get_close_matches(name, list(hints), n=3, cutoff=0.6)
        guess = "; did you mean " + " or ".join(f"'{prefix}.{c}'" for c in close) + "?" if close else "."
        raise ConfigError(f"unknown setting{guess} The settings of {prefix} are: {', '.join(sorted(hints))}",
                          setting=f"{prefix}.{name}")
    return hints[name]


def _show(value) -> str:
    if value is None:
        return "null"
    return repr(value)


def _check_choice(group: str, choice: str) -> None:
    options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    if choice in options:
        return
    close = difflib.get_close_matches(choice, options, n=2, cutoff=0.5)
    guess = "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else "."
    raise ConfigError(f"unknown choice {choice!r}{guess} The choices are: {', '.join(options)}", setting=group)
