"""p2pchat's own commands that IRC clients keep for themselves (their /ignore is local; irssi
and weechat take /connect, /disconnect and /invite): ``/msg *p2pchat COMMAND`` (a service
nick, as ZNC's ``*status``), or ``/quote IGNORE`` and ``/quote UNIGNORE``.  A nick in them is the one IRC shows (``bob|2``, ``carol|other``): it
names the peer by its id, so the node finds the right one."""

from __future__ import annotations

from typing import Callable

from twisted.words.protocols import irc

from p2pchat.face import search_answer
from p2pchat.files.describe import FILE_COMMANDS, file_command
from p2pchat.interfaces import IChat, Refused, SearchHit
from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.lan import answer
from p2pchat.irc.text import SERVER_NAME
from p2pchat.search import USAGE

#: The service nick.  ``*`` can't be in a peer's IRC nick, so no peer can be shown as it.
SERVICE_NICK = "*p2pchat"
SERVICE_MASK = f"{SERVICE_NICK}!p2pchat@{SERVER_NAME}"
#: What ``/msg *p2pchat help`` answers (also ``/quote IGNORE`` and ``/quote UNIGNORE``).
SERVICE_HELP = (
    "p2pchat's commands, as /msg *p2pchat COMMAND (or /quote COMMAND):",
    "  ignore [NICK]   hide NICK's lines from now on (by its key, kept); alone: who is ignored",
    "  unignore NICK   show NICK's lines again",
    "  search WORDS    find lines in the history (newest first); filters from:NICK",
    "                  in:#ROOM before:YYYY-MM-DD after:YYYY-MM-DD (local time)",
    "  connect HOST:PORT|INVITE  link with a static peer, or a friend's invite (over Tor)",
    "  disconnect NAME|ADDRESS   forget a static peer, contact or used invite",
    "  contacts        the static peers and contacts, and their state",
    "  invite          an invite for one friend to reach you over Tor",
    "  send NICK PATH  offer a file or folder to NICK (or #ROOM: everyone in it)",
    "  files           the file transfers; accept [N], reject [N], cancel N",
    "  help            this list",
)


def to_service(client: IrcClientProtocol, text: str) -> None:
    """``/msg *p2pchat COMMAND [ARG]``: answered by PRIVMSGs from *p2pchat (a query window
    of its own in irssi and weechat)."""
    command, _, arg = irc.stripFormatting(text).strip().partition(" ")
    if command.lower() == "search":
        find(client, arg.strip(), lambda line: client.send(
            "PRIVMSG", client.nick, prefix=SERVICE_MASK, text=line))
        return
    if command.lower() in FILE_COMMANDS:
        files(client, command.lower(), arg.strip(), lambda line: client.send(
            "PRIVMSG", client.nick, prefix=SERVICE_MASK, text=line))
        return
    for line in run(client, command.lower(), arg.strip()):
        client.send("PRIVMSG", client.nick, prefix=SERVICE_MASK, text=line)


def ignore(client: IrcClientProtocol, params: list[str]) -> None:
    """``/quote IGNORE [NICK]``: the node's /ignore (the client's own /ignore is local)."""
    for line in run(client, "ignore", " ".join(params[:1])):
        client.server_notice(line)


def unignore(client: IrcClientProtocol, params: list[str]) -> None:
    if not params or not params[0]:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "UNIGNORE", text="Not enough parameters")
        return
    for line in run(client, "unignore", params[0]):
        client.server_notice(line)


def search(client: IrcClientProtocol, params: list[str]) -> None:
    """``/quote SEARCH WORDS``: the node's /search, answered as server notices."""
    find(client, " ".join(params), client.server_notice)


class _FileAnswers:
    """/send, /files, /accept, /reject, /cancel answered to one IRC client."""

    def __init__(self, node: IChat, client: IrcClientProtocol,
                 tell: Callable[[str], None]) -> None:
        self.node, self.client, self.tell = node, client, tell

    def show_info(self, lines: list[str]) -> None:
        if self.client.connected:
            for line in lines:
                self.tell(line)

    def show_error(self, text: str) -> None:
        self.show_info([text])


def files(client: IrcClientProtocol, command: str, arg: str, tell: Callable[[str], None]
          ) -> None:
    """The file commands; a nick in /send is the one IRC shows (``bob|2``)."""
    if command == "send":
        target, _, path = arg.partition(" ")
        member = client.lan.roster.holder(target) if target else None
        arg = f"{member.peer_id if member is not None else target} {path}"
    file_command(_FileAnswers(client.lan.node, client, tell), command, arg)


def files_quote(client: IrcClientProtocol, params: list[str]) -> None:
    """``/quote FILES``: the transfers, as server notices."""
    files(client, "files", "", client.server_notice)


def find(client: IrcClientProtocol, text: str, tell: Callable[[str], None]) -> None:
    """Search (off the reactor) and tell each line of the answer when it comes, if the
    client is still there."""
    if not text.strip():
        tell(USAGE)
        return
    node = client.lan.node

    def answer_lines(found: list[SearchHit] | Refused) -> None:
        if not client.connected:
            return
        for line in search_answer(found, text, node):
            tell(line)

    node.search(text).addCallback(answer_lines)


def run(client: IrcClientProtocol, command: str, arg: str) -> list[str]:
    """What a p2pchat command answers."""
    node = client.lan.node
    member = client.lan.roster.holder(arg) if arg else None
    shown = member.peer_id if member is not None else arg
    if command == "ignore":
        return [answer(node.ignore(shown))] if arg else node.ignored()
    if command == "unignore":
        if not arg:
            return ["unignore NICK: whose lines to show again"]
        result = node.unignore(shown)
        if member is not None and isinstance(result, Refused):
            # Not ignored by its id: maybe by the nick as the client named it (another peer
            # once shown so), and if not, the answer names it as the client did.
            result = node.unignore(arg)
        return [answer(result)]
    if command == "help":
        return list(SERVICE_HELP)
    reach = node.reach
    if command == "contacts":
        return reach.contacts()
    if command == "invite":
        return [answer(reach.invite())]
    if command in ("connect", "disconnect"):
        if not arg:
            return [f"{command} {'HOST:PORT|INVITE' if command == 'connect' else 'NAME|ADDRESS'}"
                    ": whom"]
        return [answer(reach.connect(arg) if command == "connect" else reach.disconnect(arg))]
    return [f"unknown: {command or '(nothing)'}; commands: ignore [NICK], unignore NICK, "
            "search WORDS, connect, disconnect, contacts, invite, help"]


COMMANDS: dict[str, Handler] = {"IGNORE": ignore, "UNIGNORE": unignore, "SEARCH": search,
                                "FILES": files_quote}
