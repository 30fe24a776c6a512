"""``kline-rs run --config kline.toml``: every ``run`` option from a TOML file.

Keys are the option names without ``--`` (``venue``, ``symbols``, ``store-wait``; ``_`` may
stand for ``-``). A value is checked by the same rule as on the command line, after a check of
its TOML type: a flag takes ``true``/``false``, a number a TOML number, a list option
(``symbols``, ``intervals``) a list of strings or one comma-separated string, the rest a
string. The command line overrides the file, also within a group of options of which one is
given (``symbols`` in the file, ``--quote`` on the command line: the quote).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kline_rs._core import KlineError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the backport, a dependency there
    import tomli as tomllib

#: Options whose value is a comma list on the command line: a TOML list in the file.
LIST_OPTIONS = frozenset({"symbols", "intervals"})
#: Not settable from the file (the file is not read from itself).
NOT_IN_FILE = frozenset({"help", "config"})


class ConfigError(KlineError):
    """The config file cannot be read, or a key or value in it is wrong (names file and key)."""


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str], command: str = "run"
) -> argparse.Namespace:
    """``parser.parse_args(argv)``; for ``COMMAND --config FILE``, the file's options are the
    defaults the command line overrides. Raises :class:`ConfigError` for a wrong file."""
    if argv[:1] != [command]:
        return parser.parse_args(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv[1:])[0].config
    if not path:
        return parser.parse_args(argv)
    sub = _subparser(parser, command)
    values = read_config(path, sub)
    from_file: list[str] = []  # per group of exclusive options, the one the file gives
    for group in sub._mutually_exclusive_groups:
        dests = [a.dest for a in group._group_actions]
        chosen = [d for d in dests if d in values]
        if len(chosen) > 1:
            raise ConfigError(f"config file {path}: {' and '.join(chosen)}: give one of {dests}")
        if chosen:  # the command line may still choose another
            group.required = False
            from_file.append(chosen[0])
    sub.set_defaults(**values)
    args = parser.parse_args(argv)
    for group in sub._mutually_exclusive_groups:
        given = [a.dest for a in group._group_actions if getattr(args, a.dest) is not None]
        for dest in from_file:
            if dest in given and len(given) > 1:
                setattr(args, dest, None)  # the command line's choice wins
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)


def read_config(path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The options of ``path`` as ``parser``'s destinations and values, each checked by the
    option's own rule; raises :class:`ConfigError` naming the file and the key."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML: {e}") from None
    actions = options(parser)
    values: dict[str, Any] = {}
    for key, value in table.items():
        action = actions.get(key.replace("_", "-"))
        if action is None:
            known = ", ".join(sorted(actions))
            raise ConfigError(f"config file {path}: unknown key {key!r}; the known ones: {known}")
        try:
            values[action.dest] = _value(action, value)
        except (argparse.ArgumentTypeError, ValueError, KlineError) as e:
            raise ConfigError(f"config file {path}: {key}: {e}") from None
    return values


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``parser``'s long options that a file may set, by name without ``--``."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        for flag in action.option_strings:
            name = flag.removeprefix("--")
            if flag.startswith("--") and name not in NOT_IN_FILE:
                out[name] = action
    return out


def _value(action: argparse.Action, value: object) -> object:
    """The value as the command line would give it, or why it cannot be."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_shown(value)}")
        return value
    if action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_shown(value)}")
        return value
    if action.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {_shown(value)}")
        return float(value)
    if action.dest in LIST_OPTIONS:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        elif not isinstance(value, str):
            raise ValueError(f"expected a list of strings, got {_shown(value)}")
    elif not isinstance(value, str):
        raise ValueError(f"expected a string, got {_shown(value)}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(repr, action.choices))
        raise ValueError(f"expected one of {choices}, got {value!r}")
    return action.type(value) if callable(action.type) else value


def _shown(value: object) -> str:
    """A TOML value named by its type, quoted short."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    what = kind.get(type(value), "a table" if isinstance(value, dict) else "a list")
    text = repr(value)
    return f"{what} ({text[:40]}{'…' if len(text) > 40 else ''})"
