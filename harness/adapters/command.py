"""One-shot clients: a command run once per run of a scenario (mbsync, offlineimap, curl…)."""

from __future__ import annotations

import time

from ..outcome import Outcome
from .base import Until
from .context import ClientContext
from .launch import Launcher


class CommandAdapter(Launcher):
    """Run a command template once per run and wait for it, up to the run's deadline.

    ``CommandAdapter(template, config_template=None, features=None, shell=False, *,
    grace=2.0, output_limit=1 MiB, name=None, config_text=None)``: ``config_template`` is the
    path of a template file (str or Path), ``config_text`` an inline template. See
    ``template`` for how placeholders are filled and ``launch`` for the config file and
    environment.

    At the deadline every process of the client's session gets SIGTERM, then SIGKILL after
    ``grace`` seconds; the outcome says ``killed_at_deadline=True, exit_status=None``. When
    the client exits by itself, processes it left behind in its session are ended the same
    way (a one-shot run is over when its program exits), noted at the end of stderr.
    """

    kind = "command"

    def run(self, ctx: ClientContext, deadline: float, until: Until = None) -> Outcome:
        process = self.launch(ctx)
        try:
            status = process.wait(deadline)
            ended_at = time.monotonic()
            ending = process.end(self.grace)
        except BaseException:  # interrupted: never leave the client running
            process.end(0)
            raise
        if status is None:
            ended_at = time.monotonic()
            how = (f"SIGKILL after {self.grace:g} s for {ending.killed} of them"
                   if ending.killed else "all ended on SIGTERM")
            process.notes.append(f"killed at the deadline ({deadline:g} s): SIGTERM to "
                                 f"{ending.terminated} process(es) of its session; {how}")
        elif ending.terminated:
            how = f", {ending.killed} needed SIGKILL" if ending.killed else ""
            process.notes.append(f"the client exited, leaving {ending.terminated} process(es) "
                                 f"in its session; they got SIGTERM{how}")
        return Outcome(run=ctx.run, exit_status=status, killed_at_deadline=status is None,
                       duration=ended_at - process.started, stdout=process.stdout.text(),
                       stderr=process.stderr_text())
