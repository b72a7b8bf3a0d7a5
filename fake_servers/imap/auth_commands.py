"""Commands of any state and of the not-authenticated state (RFC 3501 §6.1, §6.2; RFC 5161, 2971)."""

from __future__ import annotations

from ..mailstore import AuthResult
from . import sasl
from .parser import Command
from .responses import Close, StartTLS, continuation, status_untagged, tagged, untagged
from .session import ANY, AUTH, NOT_AUTH, SELECTED, BadCommand, ImapSession, State, args, astring, atom, command

# -- any state ------------------------------------------------------------------------------


@command("CAPABILITY", ANY)
def capability(s: ImapSession, cmd: Command):
    args(cmd, 0)
    return s._with_updates(cmd, [untagged("CAPABILITY " + s.capability_line()),
                                 tagged(cmd.tag, "OK", "Pre-login capabilities listed, post-login capabilities have more."
                                        if s.state is State.NOT_AUTHENTICATED else "Capability completed.")])


@command("NOOP", ANY)
def noop(s: ImapSession, cmd: Command):
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", "NOOP completed.")])


@command("CHECK", SELECTED)
def check(s: ImapSession, cmd: Command):
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", "Check completed.")])


@command("LOGOUT", ANY)
def logout(s: ImapSession, cmd: Command):
    s.close()
    return [status_untagged("BYE", s.config.texts.bye_logout), tagged(cmd.tag, "OK", "Logout completed."),
            Close("client logged out")]


@command("ID", ANY)
def id_(s: ImapSession, cmd: Command):
    args(cmd, 1)
    return [untagged(b'ID ("name" "mailconform" "vendor" "mailconform")'), tagged(cmd.tag, "OK", "ID completed.")]


# -- not authenticated ----------------------------------------------------------------------


@command("STARTTLS", NOT_AUTH)
def starttls(s: ImapSession, cmd: Command):
    args(cmd, 0)
    if s.tls:
        return [tagged(cmd.tag, "BAD", "TLS is already active.")]
    if not s.config.starttls:
        return [tagged(cmd.tag, "BAD", s.config.texts.starttls_unavailable)]
    return [tagged(cmd.tag, "OK", s.config.texts.starttls_ok), StartTLS()]


def _plaintext_refused(s: ImapSession) -> bool:
    return s.config.login_disabled and not s.tls


def _finish_login(s: ImapSession, tag: str, creds: sasl.Credentials):
    account = sasl.account_for(s.store, creds)
    result = AuthResult.INVALID
    if account is not None:
        if creds.kind == "oauth":
            result = account.check_token(creds.secret)  # EXPIRED is refused like INVALID, as Gmail does
        else:
            result = account.check_password(creds.secret)
    if result is AuthResult.OK:
        s._authenticate_as(account)
        return [tagged(tag, "OK", f"[CAPABILITY {s.capability_line()}] {s.config.texts.login_ok}")]
    if result is AuthResult.APP_PASSWORD_REQUIRED:
        return [tagged(tag, "NO", s.config.texts.app_password_required)]
    return [tagged(tag, "NO", s.config.texts.auth_failed)]


@command("LOGIN", NOT_AUTH)
def login(s: ImapSession, cmd: Command):
    user, secret = args(cmd, 2)
    if _plaintext_refused(s):
        return [status_untagged("BAD", "[ALERT] Plaintext authentication not allowed without SSL/TLS, but your "
                                "client did it anyway. If anyone was listening, the password was exposed."),
                tagged(cmd.tag, "NO", s.config.texts.privacy_required)]
    try:
        username, password = astring(user).decode("utf-8"), astring(secret).decode("utf-8")
    except UnicodeDecodeError:
        return [tagged(cmd.tag, "NO", s.config.texts.auth_failed)]
    return _finish_login(s, cmd.tag, sasl.Credentials(username, password))


@command("AUTHENTICATE", NOT_AUTH)
def authenticate(s: ImapSession, cmd: Command):
    parts = args(cmd, 1, 2)
    name = atom(parts[0], "SASL mechanism").upper()
    if name not in sasl.MECHANISMS or name not in s.config.mechanisms:
        return [tagged(cmd.tag, "NO", "Unsupported authentication mechanism.")]
    if _plaintext_refused(s):  # a known mechanism, not offered until TLS (Dovecot's answer)
        return [tagged(cmd.tag, "NO", s.config.texts.privacy_required_sasl)]
    offered = [c[5:].upper() for c in s.capabilities() if c.upper().startswith("AUTH=")]
    if name not in offered:
        return [tagged(cmd.tag, "NO", "Unsupported authentication mechanism.")]
    mech = sasl.MECHANISMS[name]()
    s.sasl = (cmd.tag, mech)
    if len(parts) == 2:  # SASL-IR initial response
        return sasl_continue(s, astring(parts[1]))
    return [continuation(_b64(mech.first_challenge()))]


def sasl_continue(s: ImapSession, line: bytes):
    tag, mech = s.sasl
    if line.strip() == b"*":
        s.sasl = None
        return [tagged(tag, "BAD", "Authentication aborted by client.")]
    if getattr(mech, "failed", False):  # the answer to an XOAUTH2/OAUTHBEARER error challenge (any: NO)
        s.sasl = None
        return [tagged(tag, "NO", s.config.texts.auth_failed)]
    try:
        data = sasl.b64decode(line)
    except sasl.SaslError as exc:
        s.sasl = None
        return [tagged(tag, "BAD", f"Invalid authentication data: {exc}")]
    try:
        step = mech.step(data)
    except sasl.SaslError:
        # Decodable but unusable credentials (a Latin-1 user name, a missing field) are a
        # failed login, as on Dovecot, not a protocol error.
        s.sasl = None
        return [tagged(tag, "NO", s.config.texts.auth_failed)]
    if isinstance(step, bytes):
        return [continuation(_b64(step))]
    out = _finish_login(s, tag, step)
    if mech.name in ("XOAUTH2", "OAUTHBEARER") and out[-1].status == "NO":
        # Gmail-style for XOAUTH2, RFC 7628 §3.2.2 for OAUTHBEARER: an error challenge, then NO
        # after the client's reply to it (empty for XOAUTH2, ^A for OAUTHBEARER)
        mech.failed = True
        if mech.name == "OAUTHBEARER":
            return [continuation(_b64(sasl.OAUTHBEARER_ERROR))]
        return [continuation(_b64(b'{"status":"401","schemes":"Bearer","scope":"https://mail.example.test/"}'))]
    s.sasl = None
    return out


def _b64(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)


# -- authenticated: session-wide settings ---------------------------------------------------


@command("ENABLE", AUTH)
def enable(s: ImapSession, cmd: Command):
    if not cmd.args:
        raise BadCommand("Missing arguments.")
    offered = {c.upper() for c in s.capabilities()}
    newly, out = [], []
    for item in cmd.args:
        name = atom(item, "capability").upper()
        if name not in offered or name in s.enabled:
            continue
        if name == "CONDSTORE":
            out += s.enable_condstore()
        elif name == "UTF8=ACCEPT":
            s.enabled.add(name)
        else:
            continue
        newly.append(name)
    out.append(untagged("ENABLED" + "".join(" " + n for n in newly)))
    return [*out, tagged(cmd.tag, "OK", "Enabled.")]


@command("NAMESPACE", AUTH)
def namespace(s: ImapSession, cmd: Command):
    delim = s.account.delimiter if s.account else s.config.hierarchy_delimiter
    return s._with_updates(cmd, [untagged(f'NAMESPACE (("" "{delim}")) NIL NIL'),
                                 tagged(cmd.tag, "OK", "Namespace completed.")])
