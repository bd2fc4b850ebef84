"""Channel commands: rooms are channels (``general`` is ``#general``).  JOIN and PART of a room
are the peer's ``/join`` and ``/part``, so every client of the peer sees them; only
``#general``, which the peer can't leave, may be hidden by one client alone (PART) and shown
again (JOIN).  Also NAMES, TOPIC, MODE and LIST, and what a client is shown when it enters a
room (its names and the last lines of its history)."""

from __future__ import annotations

from twisted.words.protocols import irc

from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.lan import refusal
from p2pchat.irc.caps import USERHOST_IN_NAMES
from p2pchat.irc.names import CHANNEL, channel, channel_room, irc_fold, is_channel
from p2pchat.irc.playback import play_history
from p2pchat.irc.text import MAX_IRC_LINE_BYTES, SERVER_NAME, split_text
from p2pchat.wire import DEFAULT_ROOM, MAX_ROOMS

TOPIC = "the LAN room: everyone running p2pchat on this network is in it"
#: What TOPIC says of the other rooms (331): p2pchat rooms have no topic.
NO_TOPIC = "No topic is set (p2pchat rooms have no topic)"


def room_of(client: IrcClientProtocol, target: str, quiet: bool = False) -> str | None:
    """The room a channel target names, or None after telling the client why it can't be one
    (479, or 403 and a notice)."""
    room, code, why = channel_room(target)
    if code is None:
        return room
    if not quiet:
        client.refuse(code, target, why or "No such channel")
    return None


def _no_such_channel(client: IrcClientProtocol, target: str, room: str) -> None:
    client.refuse(irc.ERR_NOSUCHCHANNEL, target,
                  f"No such channel: nobody is in #{room} (/join #{room} makes it)")


def join(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "JOIN", text="Not enough parameters")
        return
    if params[0] == "0":  # "leave every channel"
        part(client, [",".join(channel(r) for r in client.shown_rooms())])
        return
    lan = client.lan
    for target in client.targets(params[0]):
        room = room_of(client, target)
        if room is None:
            continue
        if room == DEFAULT_ROOM:
            if not client.in_general:  # general is never left: this client shows it again
                client.in_general = True
                enter(client, DEFAULT_ROOM)
        elif room not in lan.my_rooms():
            # Every client (this one too) is shown the JOIN by the node's RoomChanged.
            problem = refusal(lan.run_verb(client, lan.node.join_room, room))
            if problem and room not in lan.my_rooms():
                code = (irc.ERR_TOOMANYCHANNELS if len(lan.my_rooms()) >= MAX_ROOMS
                        else irc.ERR_NOSUCHCHANNEL)
                client.refuse(code, target, problem)
        # else: already in it, so every client already shows it (ircds say nothing)


def enter(client: IrcClientProtocol, room: str) -> None:
    """Show ``client`` that we are in ``room``: JOIN, the topic (#general's: 332; other rooms
    have none, and as ircds do we then send nothing: irssi shows an unasked 331 as noise in
    its status window), the names, and the room's last lines."""
    client.show_join(client.lan.roster.me, room)
    if room == DEFAULT_ROOM:
        _topic(client, room)
    names(client, room)
    play_history(client, room)


def part(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "PART", text="Not enough parameters")
        return
    reason = params[1] if len(params) > 1 and params[1] else None
    for target in client.targets(params[0]):
        room = room_of(client, target)
        if room is None:
            continue
        if not client.in_channel(room):
            client.numeric(irc.ERR_NOTONCHANNEL, channel(room), text="You're not on that channel")
        elif room == DEFAULT_ROOM:
            # The peer can't leave #general (everyone's room): this client stops showing it.
            client.in_general = False
            client.show_part(client.lan.roster.me, room, reason)
        else:
            problem = client.lan.part_room(client, room, reason)
            if problem:
                client.refuse(irc.ERR_NOTONCHANNEL, target, problem)


def names_command(client: IrcClientProtocol, params: list[str]) -> None:
    if not params or not params[0]:
        for room in client.shown_rooms():
            names(client, room)
        if not client.shown_rooms():
            client.numeric(irc.RPL_ENDOFNAMES, "*", text="End of /NAMES list")
        return
    for target in client.targets(params[0]):
        room, code, _ = channel_room(target)
        if code is None and client.lan.known(room):
            names(client, room)
        else:
            client.numeric(irc.RPL_ENDOFNAMES, target[:64], text="End of /NAMES list")


def names(client: IrcClientProtocol, room: str) -> None:
    name = channel(room)
    head = f":{SERVER_NAME} {irc.RPL_NAMREPLY} {client.nick} = {name} :"
    budget = MAX_IRC_LINE_BYTES - 2 - len(head.encode("utf-8"))
    masks = client.has(USERHOST_IN_NAMES)
    listed = " ".join(m.mask if masks else m.nick for m in client.lan.members(room))
    if listed:
        for piece in split_text(listed, budget):
            client.numeric(irc.RPL_NAMREPLY, "=", name, text=piece)
    client.numeric(irc.RPL_ENDOFNAMES, name, text="End of /NAMES list")


def topic(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "TOPIC", text="Not enough parameters")
        return
    room = room_of(client, params[0])
    if room is None:
        return
    if not client.lan.known(room):
        _no_such_channel(client, params[0], room)
    elif len(params) > 1:
        client.numeric(irc.ERR_CHANOPRIVSNEEDED, channel(room),
                       text="Topics can't be set: #general's is fixed, other rooms have none")
    else:
        _topic(client, room)


def _topic(client: IrcClientProtocol, room: str) -> None:
    if room == DEFAULT_ROOM:
        client.numeric(irc.RPL_TOPIC, CHANNEL, text=TOPIC)
    else:
        client.numeric(irc.RPL_NOTOPIC, channel(room), text=NO_TOPIC)


def mode(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "MODE", text="Not enough parameters")
        return
    target = params[0]
    if is_channel(target):
        room = room_of(client, target)
        if room is None:
            return
        name = channel(room)
        if not client.lan.known(room):
            _no_such_channel(client, target, room)
        elif len(params) == 1:
            client.numeric(irc.RPL_CHANNELMODEIS, name, "+nt")
        elif params[1].lstrip("+") == "b":  # the ban list, asked for by clients on join
            client.numeric(irc.RPL_ENDOFBANLIST, name, text="End of channel ban list")
        else:
            client.numeric(irc.ERR_CHANOPRIVSNEEDED, name, text="Channel modes can't be changed")
    elif irc_fold(target) == irc_fold(client.nick):
        client.numeric(irc.RPL_UMODEIS, "+i")
    else:
        client.numeric(irc.ERR_USERSDONTMATCH, text="Can't change mode for other users")


def list_rooms(client: IrcClientProtocol, params: list[str]) -> None:
    """Every room known (ours, and those linked peers are in), with how many are in it.
    ``LIST #a,#b`` lists those only; other arguments (ELIST conditions) are ignored."""
    rooms = [name for name, _ in client.lan.node.room_list()]
    if params and params[0].startswith("#"):
        wanted = {channel_room(t)[0] for t in client.targets(params[0])}
        rooms = [r for r in rooms if r in wanted]
    client.numeric(irc.RPL_LISTSTART, "Channel", text="Users  Name")
    for room in rooms:
        members = client.lan.members(room)
        if room == DEFAULT_ROOM:
            about = TOPIC
        else:
            about = "in it: " + (", ".join(m.nick for m in members) or "nobody linked now")
        client.numeric(irc.RPL_LIST, channel(room), str(len(members)), text=about)
    client.numeric(irc.RPL_LISTEND, text="End of /LIST")


COMMANDS: dict[str, Handler] = {
    "JOIN": join, "PART": part, "NAMES": names_command, "TOPIC": topic, "MODE": mode,
    "LIST": list_rooms,
}
