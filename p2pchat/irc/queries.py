"""Who is who: WHO, WHOIS, ISON and USERHOST, answered from the roster (the IRC nick of each
linked peer) and the node's ``users()`` (where each peer is, whether it is one of ours)."""

from __future__ import annotations

from twisted.words.protocols import irc

from p2pchat.interfaces import PeerView
from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.lan import MAX_TARGETS
from p2pchat.irc.names import CHANNEL, Member, channel, channel_room, is_channel
from p2pchat.irc.text import SERVER_NAME


def who(client: IrcClientProtocol, params: list[str]) -> None:
    target = params[0] if params and params[0] else "*"
    lan = client.lan
    where = CHANNEL
    if target == "*":
        members = lan.roster.members()
    elif is_channel(target):
        room, code, _ = channel_room(target)
        members = lan.members(room) if code is None else []
        where = channel(room) if code is None else where
    else:
        found = lan.roster.find(target)
        members = [found] if found is not None else []
    views = {v.peer_id: v for v in lan.node.users()}
    for m in members:
        client.numeric(irc.RPL_WHOREPLY, where, m.user, m.host, SERVER_NAME, m.nick, "H",
                       text=f"0 {_realname(client, m, views.get(m.peer_id))}")
    client.numeric(irc.RPL_ENDOFWHO, target[:64], text="End of /WHO list")


def whois(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NONICKNAMEGIVEN, text="No nickname given")
        return
    nick = params[-1]
    lan = client.lan
    member = lan.roster.find(nick)
    if member is None:
        client.numeric(irc.ERR_NOSUCHNICK, nick[:64], text="No such nick")
    else:
        view = {v.peer_id: v for v in lan.node.users()}.get(member.peer_id)
        client.numeric(irc.RPL_WHOISUSER, member.nick, member.user, member.host, "*",
                       text=_realname(client, member, view))
        away = lan.node.away_of(member.peer_id)
        if away:
            client.numeric(irc.RPL_AWAY, member.nick, text=away)
        client.numeric(irc.RPL_WHOISCHANNELS, member.nick,
                       text=" ".join(channel(r) for r in lan.rooms_of(member)))
        client.numeric(irc.RPL_WHOISSERVER, member.nick, SERVER_NAME, text="the p2pchat LAN")
    client.numeric(irc.RPL_ENDOFWHOIS, nick[:64], text="End of /WHOIS list")


def _realname(client: IrcClientProtocol, member: Member, view: PeerView | None) -> str:
    if member is client.lan.roster.me:
        return f"this peer ({member.peer_id})"
    address = view.address if view is not None else member.address
    kind = "" if view is None or view.ours else ", a base peer"
    return f"peer {member.peer_id} at {address}{kind}"


def ison(client: IrcClientProtocol, params: list[str]) -> None:
    roster = client.lan.roster
    asked = " ".join(params).split()[:MAX_TARGETS * 4]
    present = [m.nick for m in (roster.find(n) for n in asked) if m is not None]
    client.numeric(irc.RPL_ISON, text=" ".join(present))


def userhost(client: IrcClientProtocol, params: list[str]) -> None:
    roster = client.lan.roster
    found = [m for m in (roster.find(n) for n in params[:5]) if m is not None]
    client.numeric(irc.RPL_USERHOST, text=" ".join(f"{m.nick}=+{m.user}@{m.host}"
                                                   for m in found))


COMMANDS: dict[str, Handler] = {
    "WHO": who, "WHOIS": whois, "ISON": ison, "USERHOST": userhost,
}
