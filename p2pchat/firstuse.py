"""Collaborators of the node made at their first use, not at start: an idle peer alone does
without their code.  ``FirstUse`` stands in ``node.X`` for the real object, which it makes
(importing its module then) the first time anything but its own few calls needs it; every
other attribute read or set is the real object's.  ``files/later.py`` (the file transfers),
``SealingLater`` (private lines sealed for absent peers, the items we carry) and
``CatchUpLater`` (catching a linked peer up, handing on absent authors' lines) are three.

``tests/test_latetls.py`` fails if an idle peer imports what they stand for;
``tests/test_firstuse.py`` and ``tests/test_sealing.py`` that each still works once used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.syncing import CatchUp
    from p2pchat.sealing import Sealing
    from p2pchat.session import PeerSession
    from p2pchat.wire import Message

T = TypeVar("T")

#: The stand-in's own attributes; any other is the real object's.
_OWN = frozenset({"_node", "_real", "_made", "_path", "_config"})


class FirstUse(Generic[T]):
    """Stands for what ``make`` makes, until it is needed (``real``)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._real: T | None = None
        #: told the real object when made (``when_made``)
        self._made: list[Callable[[T], None]] = []

    def make(self) -> T:
        raise NotImplementedError

    @property
    def real(self) -> T:
        """The real object, made at the first need."""
        if self._real is None:
            real = self._real = self.make()
            for tell in self._made:
                tell(real)
        return self._real

    def made(self) -> bool:
        return self._real is not None

    def when_made(self, tell: Callable[[T], None]) -> None:
        """``tell(real)`` once it is made (at once if it is)."""
        if self._real is not None:
            tell(self._real)
        else:
            self._made.append(tell)

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:
            raise AttributeError(name)
        return getattr(self.real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.real, name, value)


class SealingLater(FirstUse["Sealing"]):
    """``node.sealing`` (sealing.py, with sealed.py, carrier.py and PyNaCl's boxes): made,
    with its store opened and what it kept taken back, at the first link or the first
    private line kept for an absent peer.  Until then nothing sealed can come or go: no
    link to carry it."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self._path: str | None = None

    def make(self) -> Sealing:
        from p2pchat.sealing import Sealing

        real = Sealing(self._node)
        if self._path is not None:
            real.open_store(self._path)
        return real

    def open_store(self, path: str | None) -> None:
        """Opened when made (``make``)."""
        if self._real is not None:
            self._real.open_store(path)
        else:
            self._path = path

    def linked(self, link: PeerSession) -> None:
        self.real.linked(link)

    def pump(self, link: PeerSession) -> None:
        self.real.pump(link)

    def line(self, link: PeerSession, msg: Message) -> None:
        self.real.line(link, msg)

    def acked(self, peer_id: str, have: int) -> None:
        self.real.acked(peer_id, have)

    def kept(self, msg: Message, nick: str, text: str) -> None:
        self.real.kept(msg, nick, text)


class CatchUpLater(FirstUse["CatchUp"]):
    """``node.catchup`` (syncing.py, with checking.py's steps of signature checks): made at
    the first link (``start``) or the first catch-up line read.  Until then there is no one
    to catch up, nothing relayed to check, no ack waiting: leaving (``stop``) has nothing to
    do.  Once made it steps aside (``node.catchup`` is then the real one), so the read path
    pays nothing for it."""

    def make(self) -> CatchUp:
        from p2pchat.syncing import CatchUp

        real = self._node.catchup = CatchUp(self._node)
        return real

    def stop(self) -> None:
        if self._real is not None:
            self._real.stop()
