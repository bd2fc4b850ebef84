"""What every face shares: running what the user typed against the node, and describing the
peer list, so each command behaves the same in the console, the line face and the rest."""

from __future__ import annotations

from p2pchat.commands import Command, Refusal, Say, help_lines, parse_input
from p2pchat.node import Node, PeerView


def describe_users(rows: list[PeerView], me: str) -> list[str]:
    """The text of /users."""
    linked = sum(1 for r in rows if r.state == "connected")
    lines = [f"{linked} connected, {len(rows)} known; you are {me}"]
    for r in rows:
        how = "encrypted" if r.encrypted else "plain" if r.state == "connected" else ""
        kind = "" if r.ours else " (base peer)"
        flag = ", KEY NOT THE PINNED ONE" if r.flagged else ""
        lines.append(f"  {r.nick:<21} {r.state:<10} {how:<9} {r.address}{kind}{flag}")
    return lines


class CommandFace:
    """Mixin for a face: ``handle_input`` runs one line the user typed.  The face supplies
    ``node`` and the four ways to answer: ``show_info``, ``show_error``, ``clear``, ``quit``."""

    node: Node

    def show_info(self, lines: list[str]) -> None:
        raise NotImplementedError

    def show_error(self, text: str) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def quit(self) -> None:
        raise NotImplementedError

    def handle_input(self, text: str) -> None:
        parsed = parse_input(text)
        if parsed is None:
            return
        if isinstance(parsed, Refusal):
            self.show_error(parsed.reason)
        elif isinstance(parsed, Say):
            self.node.say(parsed.text)
        elif isinstance(parsed, Command):
            self.run_command(parsed)

    def run_command(self, command: Command) -> None:
        name, arg = command.name, command.arg
        if name == "help":
            self.show_info(["commands:"] + [f"  {line}" for line in help_lines()])
        elif name == "users":
            self.show_info(describe_users(self.node.users(), self.node.nick))
        elif name == "nick":
            problem = self.node.set_nick(arg)
            if problem:
                self.show_error(f"nick not changed: {problem}")
        elif name == "me":
            self.node.act(arg)
        elif name == "whois":
            lines = self.node.whois(arg)
            if lines is None:
                self.show_error(f"no linked peer is shown as {arg}; /users lists them")
            else:
                self.show_info(lines)
        elif name == "trust":
            self.show_info([self.node.trust_peer(arg)])
        elif name == "forget":
            self.show_info([self.node.forget_pin(arg)])
        elif name == "clear":
            self.clear()
        elif name == "quit":
            self.quit()
