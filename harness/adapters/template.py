"""``{placeholder}`` templates: the client's command line and its config file.

Command templates
    ``shell=False`` (default): the template is split into arguments with ``shlex.split``
    *first*, then each argument is filled in. A value never gets re-split or re-parsed, so a
    password with spaces, quotes or ``$(…)`` arrives as the exact argument it was put in, and
    no quoting is needed anywhere. ``{{``/``}}`` are literal braces (``str.format`` rules).

    ``shell=True``: the template is filled with every value passed through ``shlex.quote`` and
    run by ``/bin/sh -c``, for pipes, redirections and ``&&``. Write placeholders bare
    (``--pass {password}``, not ``'{password}'``): quoting them again would put literal quote
    characters into the value. Shell braces are doubled: ``${{HOME}}``, ``awk '{{print}}'``.

Config templates (``.mbsyncrc``, ``.offlineimaprc``, ``.fetchmailrc``, JSON…)
    Only ``{name}`` with a bare identifier inside is a placeholder; every other brace is left
    alone, so JSON and similar formats need no escaping. ``${NAME}`` is left alone too (shell
    variables), and ``{{name}}`` renders as a literal ``{name}``. Values are inserted
    verbatim: the config's own quoting rules are the template author's business.

Both kinds reject unknown placeholders when the adapter is built, naming the closest valid one.
"""

from __future__ import annotations

import re
import shlex
import string
from typing import Mapping

from .base import AdapterError, closest

# (literal text, placeholder name or None) pieces of one string.
Pieces = list[tuple[str, str | None]]


class TemplateError(AdapterError):
    """A template that cannot be rendered: unknown placeholder, bad syntax."""


def _unknown(name: str, names: frozenset[str], where: str) -> TemplateError:
    hint = closest(name, names)
    hint = hint if hint.startswith(" (did you mean") else ""
    return TemplateError(f"{where}: unknown placeholder {{{name}}}{hint}; "
                         f"placeholders are {', '.join('{%s}' % n for n in sorted(names))}")


def _pieces(text: str, names: frozenset[str], where: str) -> Pieces:
    """Parse ``str.format`` syntax, allowing plain names only (no ``.attr``, ``[i]``,
    ``!r`` or ``:spec``), each one of ``names``."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
    out: Pieces = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            out.append((literal, None))
            continue
        if not field.isidentifier():
            if field == "" or field.isdigit():
                raise TemplateError(f"{where}: placeholders need a name, not {{{field}}}")
            raise TemplateError(f"{where}: {{{field}}} is not a placeholder: placeholders are "
                                "plain names; write {{ and }} for literal braces")
        if spec or conversion:
            raise TemplateError(f"{where}: {{{field}}}: placeholders take no conversion "
                                "or format spec")
        if field not in names:
            raise _unknown(field, names, where)
        out.append((literal, field))
    return out


def _fill(pieces: Pieces, values: Mapping[str, str], quote=lambda v: v) -> str:
    return "".join(lit + (quote(values[name]) if name else "") for lit, name in pieces)


class CommandTemplate:
    """A command line with placeholders, checked once, rendered per run."""

    def __init__(self, text: str, names: frozenset[str], shell: bool = False) -> None:
        self.text = text
        self.shell = shell
        self.names = frozenset(names)
        where = f"client command {text!r}"
        if shell:
            if not text.strip():
                raise TemplateError(f"{where}: empty command")
            self._args = [_pieces(text, self.names, where)]
            return
        try:
            args = shlex.split(text)
        except ValueError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        if not args:
            raise TemplateError(f"{where}: empty command")
        self._args = [_pieces(arg, self.names, where) for arg in args]

    @property
    def program(self) -> str | None:
        """The program to run, when it is fixed (no placeholder in it) and not a shell line."""
        if self.shell or any(name for _, name in self._args[0]):
            return None
        return _fill(self._args[0], {})

    def used(self) -> set[str]:
        return {name for arg in self._args for _, name in arg if name}

    def render(self, values: Mapping[str, str]) -> list[str]:
        """The argv to execute: ``[arg, …]``, or ``["/bin/sh", "-c", line]`` in shell mode."""
        if self.shell:
            return ["/bin/sh", "-c", _fill(self._args[0], values, shlex.quote)]
        return [_fill(arg, values) for arg in self._args]


_CONFIG_FIELD = re.compile(
    r"\{\{(?P<literal>[A-Za-z_][A-Za-z0-9_]*)\}\}"  # {{name}}: a literal {name}
    r"|(?<!\$)\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")  # {name}, but not ${NAME}


class ConfigTemplate:
    """A config file with placeholders, checked once, rendered per run."""

    def __init__(self, text: str, names: frozenset[str], source: str = "config template",
                 filename: str = "client.conf") -> None:
        self.text = text
        self.source = source
        self.filename = filename  # the name it gets in the state dir
        self.names = frozenset(names)
        for match in _CONFIG_FIELD.finditer(text):
            name = match.group("name")
            if name is not None and name not in self.names:
                line = text.count("\n", 0, match.start()) + 1
                raise _unknown(name, self.names, f"{source}, line {line}")

    def used(self) -> set[str]:
        return {m.group("name") for m in _CONFIG_FIELD.finditer(self.text) if m.group("name")}

    def render(self, values: Mapping[str, str]) -> str:
        def replace(match: re.Match) -> str:
            if match.group("literal") is not None:
                return "{" + match.group("literal") + "}"
            return values[match.group("name")]

        return _CONFIG_FIELD.sub(replace, self.text)
