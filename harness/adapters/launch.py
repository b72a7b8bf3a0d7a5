"""From templates to a started client: what the command and daemon adapters share.

Per run: the config template (if any) is rendered into the state dir, the command template
is rendered with the same values plus ``{config}``, and the program starts in its own session
with ``os.environ`` (minus inherited ``MAILCONFORM_*``) plus the run's ``MAILCONFORM_*``,
stdin reading from ``/dev/null``, stdout and stderr captured.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from .base import Adapter, AdapterError
from .context import PLACEHOLDERS, ClientContext, client_environment
from .process import OUTPUT_LIMIT, ClientProcess
from .template import CommandTemplate, ConfigTemplate, TemplateError

CONFIG_NAMES = PLACEHOLDERS | {"config"}


def load_config_template(path: str | Path | None = None,
                         text: str | None = None) -> ConfigTemplate | None:
    """The config template from a file (``path``, a str or a Path, read now: the rendered
    file keeps its name, minus a ``.tmpl`` suffix) or given inline (``text``, rendered as
    ``client.conf``)."""
    if path is not None and text is not None:
        raise AdapterError("give a config template file or its text, not both")
    if text is not None:
        return ConfigTemplate(text, CONFIG_NAMES)
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"config template must be a path, not {type(path).__name__}")
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise AdapterError(f"cannot read the config template {str(path)!r}: {reason}") from None
    name = path.name[:-len(".tmpl")] if path.name.endswith(".tmpl") else path.name
    return ConfigTemplate(content, CONFIG_NAMES, source=str(path), filename=name or "client.conf")


class Launcher(Adapter):
    """An adapter that runs a program from a command template (and maybe a config file)."""

    def __init__(self, template: str, config_template: str | Path | None = None,
                 features: Iterable[str] | str | None = None, shell: bool = False, *,
                 grace: float = 2.0, output_limit: int = OUTPUT_LIMIT,
                 name: str | None = None, config_text: str | None = None) -> None:
        self.config = load_config_template(config_template, config_text)
        self.command = _command_template(template, shell, with_config=self.config is not None)
        program = self.command.program
        if program is not None and shutil.which(program) is None:
            raise AdapterError(f"client command {template!r}: program {program!r} "
                               + ("is not an executable file" if os.sep in program
                                  else "not found on PATH"))
        if grace < 0:
            raise ValueError("grace must be >= 0")
        self.template = template
        self.shell = shell
        self.grace = grace
        self.output_limit = output_limit
        label = name or os.path.basename(program or template.split()[0])
        super().__init__(label, features)

    def prepare(self, ctx: ClientContext) -> tuple[ClientContext, list[str]]:
        """Render the config file into the state dir and the argv; returns the context with
        ``config`` set (when there is a config) and the argv to run."""
        if self.config is not None:
            if ctx.state_dir is None:
                raise AdapterError("a config template needs the run's state_dir")
            ctx.state_dir.mkdir(parents=True, exist_ok=True)
            path = ctx.state_dir / self.config.filename
            ctx = ctx.with_config(path)
            _write_private(path, self.config.render(ctx.placeholders()))
        return ctx, self.command.render(ctx.placeholders())

    def launch(self, ctx: ClientContext) -> ClientProcess:
        ctx, argv = self.prepare(ctx)
        return ClientProcess(argv, client_environment(ctx, dict(os.environ)),
                             output_limit=self.output_limit)

    def describe(self) -> str:
        shell = " (shell)" if self.shell else ""
        config = f" [config: {self.config.source}]" if self.config is not None else ""
        return f"{self.kind}{shell}: {self.template}{config}"


def _command_template(template: str, shell: bool, with_config: bool) -> CommandTemplate:
    if with_config:
        return CommandTemplate(template, CONFIG_NAMES, shell)
    try:
        return CommandTemplate(template, PLACEHOLDERS, shell)
    except TemplateError as error:
        try:  # was {config} the only problem?
            CommandTemplate(template, CONFIG_NAMES, shell)
        except TemplateError:
            raise error from None
        raise TemplateError(f"client command {template!r}: {{config}} needs a config "
                            "template (--client-config)") from None


def _write_private(path: Path, text: str) -> None:
    """Write the rendered config readable by its owner only: it holds the password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # also when it existed with wider permissions
        f.write(text)
