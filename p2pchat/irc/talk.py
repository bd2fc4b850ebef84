"""Saying things: PRIVMSG and NOTICE, to channels (a line said in that room) and to nicks (a
private line, kept by the node for a peer that is away).  A CTCP ACTION is an action (/me);
other CTCPs are dropped.  A NOTICE never gets an error reply (RFC 2812: it must never trigger
an automatic answer), and a CTCP in a NOTICE is a reply: dropped.  TAGMSG (IRCv3) is read
and passed on only for ``+typing``."""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from twisted.words.protocols import irc

from p2pchat.interfaces import private_key
from p2pchat.irc.caps import MESSAGE_TAGS, TYPING_ACTIVE, TYPING_TAG
from p2pchat.irc.channels import room_of
from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.lan import kept_notice, refusal
from p2pchat.irc.names import channel, irc_fold, is_channel
from p2pchat.irc.own_commands import SERVICE_NICK, to_service
from p2pchat.wire import DEFAULT_ROOM

log = Logger()


def privmsg(client: IrcClientProtocol, params: list[str]) -> None:
    _message(client, "PRIVMSG", params)


def notice(client: IrcClientProtocol, params: list[str]) -> None:
    _message(client, "NOTICE", params)


def _message(client: IrcClientProtocol, command: str, params: list[str]) -> None:
    quiet = command == "NOTICE"
    if not params or not params[0]:
        if not quiet:
            client.numeric(irc.ERR_NORECIPIENT, text=f"No recipient given ({command})")
        return
    if len(params) < 2 or not params[1]:
        if not quiet:
            client.numeric(irc.ERR_NOTEXTTOSEND, text="No text to send")
        return
    text = params[1]
    for target in client.targets(params[0]):
        if is_channel(target):
            _to_room(client, target, text, quiet)
        else:
            _to_nick(client, target, text, quiet)


def _to_room(client: IrcClientProtocol, target: str, text: str, quiet: bool) -> None:
    room = room_of(client, target, quiet)
    if room is None:
        return
    if client.in_channel(room):
        node = client.lan.node
        _speak(client, channel(room), text, quiet,
               lambda line: node.say(line, room=room),
               lambda line: node.act(line, room=room))
    elif not quiet:
        why = "you left it" if room == DEFAULT_ROOM else f"you are not in #{room}"
        client.numeric(irc.ERR_CANNOTSENDTOCHAN, channel(room),
                       text=f"Cannot send to channel: {why} (/join #{room})")


def _to_nick(client: IrcClientProtocol, target: str, text: str, quiet: bool) -> None:
    if irc_fold(target) == irc_fold(SERVICE_NICK):
        if not quiet:  # a NOTICE never gets an answer, so it runs nothing either
            to_service(client, text)
        return
    lan = client.lan
    member = lan.roster.find(target)
    if member is lan.roster.me:
        # To ourselves: back to this client, as an ircd would; nobody else hears it.
        client.send("NOTICE" if quiet else "PRIVMSG", member.nick, text=text, prefix=member.mask)
        return
    # A peer shown now is named by its id; one away as the node knows it (see away_peer).
    named = (member.peer_id, member.peer_id) if member is not None else lan.away_peer(target)
    if named is None:  # nobody linked, nor away (linked in this run, or pinned)
        if not quiet:
            client.numeric(irc.ERR_NOSUCHNICK, target[:64], text="No such nick")
        return
    shown, peer_id = named
    node = lan.node
    result = _speak(client, member.nick if member is not None else target, text, quiet,
                    lambda line: node.say_private(shown, line),
                    lambda line: node.say_private(shown, line, action=True))
    told = kept_notice(result)
    if told:
        _tell_kept(client, peer_id, told)
    away = node.away_of(peer_id) if member is not None and not quiet else ""
    if away and member is not None:  # RPL_AWAY, as an ircd answers a line to an away user
        client.numeric(irc.RPL_AWAY, member.nick, text=away)


def _tell_kept(client: IrcClientProtocol, peer_id: str, told: str) -> None:
    """The peer is away: its line is kept and sent when it is back.  Said once per absence
    to each client (the node's own notice of it, once, reaches every client too)."""
    if peer_id in client.told_kept:
        return
    client.told_kept.add(peer_id)
    if told not in client.lan.verb_notices:
        client.server_notice(told)


def _speak(client: IrcClientProtocol, target: str, text: str, quiet: bool,
           say: Callable[[str], object], act: Callable[[str], object]) -> object:
    """Say ``text`` (a line, or a CTCP ACTION as an action; other CTCPs are dropped) with a
    node verb; if the node refuses, a notice says why (not for a NOTICE).  Returns what the
    verb returned (None if nothing was said)."""
    if text.startswith("\x01"):
        kind, _, arg = text.strip("\x01").partition(" ")
        if kind.upper() == "ACTION" and not quiet and arg.strip():
            result = client.lan.run_verb(client, act, irc.stripFormatting(arg),
                                         command="PRIVMSG")
        else:
            log.debug("CTCP {kind} to {target} ignored", kind=kind[:16], target=target[:64])
            return None
    else:
        plain = irc.stripFormatting(text)
        if not plain.strip():
            return None
        result = client.lan.run_verb(client, say, plain,
                                     command="NOTICE" if quiet else "PRIVMSG")
    problem = refusal(result)
    if problem and not quiet:
        client.server_notice(f"{target}: not sent: {problem}")
    return result


def tagmsg(client: IrcClientProtocol, params: list[str]) -> None:
    """TAGMSG (message-tags): ``+typing=active`` to a channel we are in, or to a peer's nick,
    tells the peers there we type (the node rate-limits it); other tags are dropped.  Without
    message-tags it is an unknown command (421)."""
    if not client.has(MESSAGE_TAGS):
        client.numeric(irc.ERR_UNKNOWNCOMMAND, "TAGMSG", text="Unknown command")
        return
    if client.tags_in.get(TYPING_TAG) != TYPING_ACTIVE or not params:
        return
    target = params[0]
    if is_channel(target):
        room = room_of(client, target, quiet=True)
        if room is not None and client.in_channel(room):
            client.lan.node.typing(room)
        return
    member = client.lan.roster.find(target)
    if member is not None and member is not client.lan.roster.me:
        client.lan.node.typing(private_key(member.peer_id))


COMMANDS: dict[str, Handler] = {"PRIVMSG": privmsg, "NOTICE": notice, "TAGMSG": tagmsg}
