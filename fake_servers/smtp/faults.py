"""What fault rules do to an SMTP connection: carry out transport and state actions at once,
and collect what they add around the fake's own replies (a :class:`Plan`).

The semantics are the IMAP fake's: ``reply`` answers instead of the command (on
``command``) or replaces the reply (on ``response``); ``bye``, ``close``, ``reset`` and
``stall`` halt the command; ``untagged`` lines go before the reply or, with
``when = "after"``, right behind it (before a STARTTLS hand-over). SMTP has no BYE: ``bye``
is a 421 reply followed by the close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..faults import Action, OutboundPipe
from ..mailstore import MailStore
from .config import SmtpConfig
from .session import Close, Reply

HALTING = ("bye", "close", "reset", "stall")  # actions after which the command is not executed
BYE_TEXT = "Service not available, closing channel"


@dataclass
class Plan:
    """What the fault actions of one event add around the protocol's own output."""

    before: list = field(default_factory=list)  # extra lines before the reply
    after: list = field(default_factory=list)  # extra lines right behind the reply (before STARTTLS)
    tail: list = field(default_factory=list)  # closes, after everything else
    reply: Action | None = None  # the last "reply" (or "bye") action, if any
    halted: bool = False  # bye/close/reset/stall: the command is not executed

    def extend(self, other: "Plan") -> "Plan":
        return Plan([*self.before, *other.before], [*self.after, *other.after], [*self.tail, *other.tail],
                    other.reply or self.reply, self.halted or other.halted)

    def around(self, outputs: list) -> list:
        """``outputs`` with this plan's additions: "after" lines right behind the final reply."""
        if self.after:
            index = final_index(outputs)
            cut = len(outputs) if index is None else index + 1
            outputs = [*outputs[:cut], *self.after, *outputs[cut:]]
        return [*self.before, *outputs, *self.tail]


# What an event no rule acted on adds: nothing (shared, so its parts are tuples: never changed)
NO_PLAN = Plan((), (), ())  # type: ignore[arg-type]


def apply(actions: Iterable[tuple], pipe: OutboundPipe, *, configs: Iterable[SmtpConfig], store: MailStore,
          username: str | None) -> Plan:
    """Carry out transport and state actions now; collect what adds to the output."""
    plan = Plan()
    for _, a in actions:
        name = a.name
        if name == "reply":
            plan.reply = a
        elif name == "untagged":
            lines = [Reply([line], injected=True) for line in a.get("lines", [])]
            (plan.after if a.get("when", "before") == "after" else plan.before).extend(lines)
        elif name == "bye":
            plan.reply = Action("reply", {"status": "421", "code": a.get("code", "4.7.0"),
                                          "text": a.get("text", BYE_TEXT)})
            plan.tail.append(Close("fault: bye"))
        elif name == "close":
            plan.tail.append(Close("fault: close"))
        elif pipe.apply(a):  # reset, stall, delay, latency, bandwidth, slice, truncate
            pass
        elif name == "capabilities":  # EHLO extension lines, on both ports from now on
            change_capabilities(a, configs)
        else:  # uidvalidity, expunge, new_mail: the mail store, as the IMAP fake does them
            from ..imap import state_actions

            account = store.account(username) if username is not None else None
            state_actions.apply(a, store, account, ())
        if name in HALTING:
            plan.halted = True
    return plan


def change_capabilities(action: Action, configs: Iterable[SmtpConfig]) -> None:
    """A ``capabilities`` action: add, then remove, EHLO extension lines (``add`` lines,
    ``remove`` keywords) on every SMTP server of the provider, from now on."""
    for config in configs:
        config.change_extensions(action.get("add", []), action.get("remove", []))


def apply_at_run(action: Action, configs: Iterable[SmtpConfig]) -> None:
    """A state action at a run boundary (a ``run`` rule, ``FakeProvider.change``) as it
    concerns SMTP. Such a rule names no protocol, so, as any rule without ``protocol``, it
    applies to both: ``capabilities`` changes the EHLO lines here as it changes the IMAP
    capabilities there (a name only one protocol knows, e.g. IDLE, is harmless to the other:
    removing it does nothing, adding it lists an extension nobody uses). ``uidvalidity``,
    ``expunge`` and ``new_mail`` change the mail store, which both share: done once, there."""
    if action.name == "capabilities":
        change_capabilities(action, configs)


def fault_reply(action: Action, kind: str = "reply") -> Reply:
    """The reply line a ``reply`` action gives: status, enhanced code, text."""
    parts = [str(action.get("status", "451")).upper(), action.get("code") or "", action.get("text", "")]
    return Reply([" ".join(p for p in parts if p)], kind, injected=True)


def final_index(outputs: list) -> int | None:
    """Where the command's final reply is (334 challenges are not final; the fake's own
    reply before any injected line)."""
    for i, out in enumerate(outputs):
        if isinstance(out, Reply) and out.kind != "continuation" and not out.injected:
            return i
    for i, out in enumerate(outputs):
        if isinstance(out, Reply) and out.kind != "continuation":
            return i
    return None
