"""The command table: every IRC command a client may send, to its handler.  A command not in
it is answered 421 (client.py); before registration only ``client.PRE_REGISTRATION`` ones
are let through."""

from __future__ import annotations

from p2pchat.irc import channels, own_commands, playback, queries, register, talk
from p2pchat.irc.client import Handler

COMMANDS: dict[str, Handler] = {
    **register.COMMANDS, **channels.COMMANDS, **queries.COMMANDS, **talk.COMMANDS,
    **own_commands.COMMANDS, **playback.COMMANDS,
}
