"""Load `isthmus.yaml`: parse YAML, interpolate `${VAR}` from the environment, validate into `GatewaySettings`.

This is the edge that reads files and the environment; the caller passes the environment in. Every problem is
reported with its config path and line, all at once, and never with a secret value in it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from toolpolicy.settings import GatewaySettings, ReferenceProblems

__all__ = ["ConfigError", "ConfigProblem", "load_config", "load_config_text"]

Loc = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, at a config path."""

    path: str
    message: str
    line: int | None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return text if self.line is None else f"{text} (line {self.line})"


class ConfigError(Exception):
    """A config file that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        super().__init__("\n".join([f"{source}: {count}", *(f"  {problem}" for problem in problems)]))


def load_config(path: str | Path, *, environ: Mapping[str, str]) -> GatewaySettings:
    """Read, interpolate and validate the config file at `path`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigProblem("", "config file not found", None)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [ConfigProblem("", f"config file is not valid UTF-8 ({exc.reason})", None)]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(source, [ConfigProblem("", f"cannot read config file: {reason}", None)]) from None
    return load_config_text(text, environ=environ, source=source)


def load_config_text(text: str, *, environ: Mapping[str, str], source: str = "<config>") -> GatewaySettings:
    """Parse, interpolate and validate config text; raise ConfigError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc)]) from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
        return GatewaySettings()
    if not isinstance(root, yaml.MappingNode):
        problem = ConfigProblem("", "the config must be a mapping of settings (e.g. `listen: ...`)", _line(root))
        raise ConfigError(source, [problem])
    reader = _Reader(environ)
    data = reader.node(root, ())
    problems = list(reader.problems)
    try:
        settings = GatewaySettings.model_validate(data)
    except ValidationError as exc:
        # A value that already has a problem (e.g. an unset variable) gets no second one from validation.
        flagged = [problem.path for problem in problems]
        for problem in _validation_problems(exc, data, reader.lines):
            if not any(_within(problem.path, path) for path in flagged) and problem not in problems:
                problems.append(problem)
    else:
        if not problems:
            return settings
    problems.sort(key=lambda problem: (problem.line is None, problem.line or 0))
    raise ConfigError(source, problems)


def _yaml_problem(exc: yaml.YAMLError) -> ConfigProblem:
    # Only the error's own words and marks: its snippet of the file could show a secret.
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return ConfigProblem("", f"invalid YAML: {exc}", None)
    mark = exc.problem_mark
    message = f"invalid YAML at column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return ConfigProblem("", message, mark.line + 1)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _format(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((f"{ancestor}.", f"{ancestor}["))


class _Reader:
    """Turns YAML nodes into plain data, noting each path's line and every problem on the way."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.lines: dict[Loc, int] = {}
        self.problems: list[ConfigProblem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._open: set[int] = set()

    def problem(self, loc: Loc, message: str, line: int | None) -> None:
        self.problems.append(ConfigProblem(_format(loc), message, line))

    def node(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if id(node) in self._open:
            self.problem(loc, "recursive YAML alias", _line(node))
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items: list[Any] = []
                for index, item in enumerate(node.value):
                    self.lines[(*loc, index)] = _line(item)
                    items.append(self.node(item, (*loc, index)))
                return items
            return self.mapping(node, loc)
        finally:
            self._open.discard(id(node))

    def mapping(self, node: yaml.Node, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in node.value:  # `<<: *base` first, so the mapping's own keys override it
            if key.tag == _MERGE_TAG:
                bases = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for base in reversed(bases):
                    if isinstance(base, yaml.MappingNode):
                        result.update(self.node(base, loc))
                    else:
                        self.problem(loc, "'<<' must merge a mapping or a list of mappings", _line(base))
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                continue
            if not isinstance(key, yaml.ScalarNode):
                self.problem(loc, "mapping keys must be plain values, not lists or mappings", _line(key))
                continue
            name, here, line = str(key.value), (*loc, str(key.value)), _line(key)
            if name in seen:
                self.problem(here, f"duplicate key {name!r} (first at line {seen[name]})", line)
            seen[name] = line
            self.lines[here] = line
            result[name] = self.node(value, here)
        return result

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag == _STR_TAG:
            return self.interpolate(node.value, loc, _line(node))
        if node.tag == _TIMESTAMP_TAG:
            return node.value  # pydantic parses ISO 8601 itself, with its time zone
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError as exc:
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            self.problem(loc, f"cannot read this value: {reason}", _line(node))
            return None

    def interpolate(self, text: str, loc: Loc, line: int) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            inner, closed = match.group(1), match.group(2)
            variable = _VARIABLE.fullmatch(inner)
            if not closed:
                self.problem(loc, "unterminated '${' (write '$${' for a literal '${')", line)
            elif variable is None:
                self.problem(loc, f"invalid environment variable reference '${{{inner}}}'", line)
            else:
                name, default = variable.groups()
                value = self.environ.get(name)
                if default is not None and not value:
                    return default
                if value is not None:
                    return value
                self.problem(loc, f"environment variable {name} is not set", line)
            return ""

        return _REFERENCE.sub(replace, text)


def _validation_problems(exc: ValidationError, data: Any, lines: Mapping[Loc, int]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ReferenceProblems):
            for entry in cause.problems:
                path, _, message = entry.partition(": ")
                loc = tuple(int(i) if i else name for i, name in _PATH_PART.findall(path))
                problems.append(ConfigProblem(path, message, _nearest_line(loc, lines)))
            continue
        loc = _document_loc(error["loc"], data)
        if error["type"] == "extra_forbidden":
            message = f"unknown field {str(loc[-1])!r}"
            close = difflib.get_close_matches(str(loc[-1]), _field_names(loc[:-1]), n=1)
            message += f" (did you mean {close[0]!r}?)" if close else ""
        elif error["type"] == "missing":
            message = "required field is missing"
        else:
            message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(ConfigProblem(_format(loc), message, _nearest_line(loc, lines)))
    return problems


def _document_loc(loc: Loc, data: Any) -> Loc:
    """Drop pydantic's union member tags from `loc`, keeping the places that are in the document."""
    kept: list[str | int] = []
    for position, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif position != len(loc) - 1:
            continue  # a tag like `function-after[...]`: not a place in the document
        kept.append(part)
    return tuple(kept)


def _nearest_line(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field_names(loc: Loc) -> list[str]:
    """The field names of the model at `loc`, for suggestions; empty where there is no model."""
    annotation: Any = GatewaySettings
    for part in (*loc, None):
        origin = get_origin(annotation)
        if origin in (Union, UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = options[0] if len(options) == 1 else None
            origin = get_origin(annotation)
        if part is None:
            break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and str(part) in annotation.model_fields:
            annotation = annotation.model_fields[str(part)].annotation
        elif origin in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []
