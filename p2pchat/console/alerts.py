"""The console's notifications: /highlight, /mute, /unmute and /dnd, and the choice, for
each line heard, of whether to notify (the rules are ``p2pchat.notify``'s; what is on
screen is the console's)."""

from __future__ import annotations

from typing import Callable

from p2pchat import events
from p2pchat.notify import Notifier

#: The commands this module answers (commands.py parses them for every face).
ALERT_COMMANDS = ("highlight", "mute", "unmute", "dnd")
#: Most rooms and nicks muted at once (kept in memory, for this run).
MAX_MUTED = 200


class Alerts:
    """Notifications for one console.  ``send(title, body)`` tells the user (the terminal's
    sequences, notify-send), its texts cleaned already."""

    def __init__(self, notifier: Notifier, send: Callable[[str, str], object]) -> None:
        self.notifier = notifier
        self.send = send

    def heard(self, line: events.ChatLine, me: str, where: str, on_screen: bool) -> bool:
        """A line shown in the conversation ``where`` ("#ops"; "" for a private talk):
        notify if the rules say so.  Returns whether it did."""
        notifier = self.notifier
        reason = notifier.reason(text=line.text, nick=line.nick, me=me, room=line.room,
                                 private=bool(line.private), own=line.own,
                                 replayed=line.replayed, on_screen=on_screen)
        if reason is None:
            return False
        title, body = notifier.texts(text=line.text, nick=line.nick, where=where)
        self.send(title, body)
        return True

    def command(self, name: str, arg: str, current: str, current_label: str) -> list[str]:
        """Run /highlight, /mute, /unmute or /dnd; the lines to show.  ``current``: the key
        of the conversation shown ("general", "@peer_id"), ``current_label`` its name."""
        notifier = self.notifier
        if name == "dnd":
            notifier.dnd = not notifier.dnd
            return ["do not disturb: no notifications until /dnd again" if notifier.dnd
                    else "do not disturb is off: notifications again"]
        if name == "highlight":
            verb, _, word = arg.partition(" ")
            word = word.strip()
            if not verb:
                words = notifier.highlights.words
                return [f"highlight words: {', '.join(words)}" if words
                        else "no highlight words; /highlight add WORD"]
            if verb.lower() == "add" and word:
                return [notifier.highlights.add(word)]
            if verb.lower() in ("del", "delete", "rm", "remove") and word:
                return [notifier.highlights.remove(word)]
            return ["usage: /highlight [add WORD | del WORD]"]
        # /mute and /unmute: a room ("#ops"), a nick, or the conversation shown.
        target = arg.split()[0] if arg.split() else ""
        if not target:
            key = current if current.startswith("@") else f"#{current}"
            shown = current_label
        elif target.startswith("#"):
            key = shown = target.lower()
        else:
            key, shown = target.lower(), target
        if name == "mute":
            if key not in notifier.muted and len(notifier.muted) >= MAX_MUTED:
                return [f"{MAX_MUTED} muted already; /unmute one first"]
            notifier.muted.add(key)
            return [f"{shown} muted: no notifications from it (/unmute undoes it)"]
        if key not in notifier.muted:
            muted = ", ".join(sorted(notifier.muted)) or "nothing"
            return [f"{shown} is not muted (muted: {muted})"]
        notifier.muted.discard(key)
        return [f"{shown} unmuted"]
