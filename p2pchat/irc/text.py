"""IRC lines as text (pure code): the 512-byte line, how a line out is built so nothing a
peer says can break out of its parameter, and how a long chat line is cut to fit."""

from __future__ import annotations

#: An IRC line, CR LF included (RFC 1459/2812).  A longer one is refused with 417 and skipped.
MAX_IRC_LINE_BYTES = 512
#: The server name clients see (the prefix of our own lines, NETWORK=).
SERVER_NAME = "p2pchat"

#: Numerics not in twisted.words' table.
ERR_INPUTTOOLONG = "417"
ERR_INVALIDCAPCMD = "410"
ERR_TOOMANYTARGETS = "407"


def clean(text: str) -> str:
    """No CR, LF or NUL may reach a client inside a parameter (line injection)."""
    return text.replace("\r", " ").replace("\n", " ").replace("\0", " ")


def middle(param: str) -> str:
    """A middle parameter: one word, not starting with ':' (that would begin the trailing one)."""
    word = clean(param).replace(" ", "_")
    return word if word and not word.startswith(":") else "*" + word


def line(command: str, *middles: str, text: str | None = None,
         prefix: str = SERVER_NAME) -> str:
    """One line out (without CR LF): middle parameters (nicks, channels: never spaces) and an
    optional trailing text, cleaned of line breaks and cut to 512 bytes with CR LF."""
    parts = [f":{prefix}", command, *(middle(p) for p in middles)]
    if text is not None:
        parts.append(":" + clean(text))
    out = " ".join(parts)
    encoded = out.encode("utf-8")
    if len(encoded) > MAX_IRC_LINE_BYTES - 2:
        out = encoded[:MAX_IRC_LINE_BYTES - 2].decode("utf-8", "ignore")
    return out


def split_text(text: str, budget: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``budget`` UTF-8 bytes, at spaces where it can, so
    a long line from a peer fits IRC's 512-byte lines."""
    pieces = []
    while len(text.encode("utf-8")) > budget:
        cut = len(text.encode("utf-8")[:budget].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        cut = max(cut, 1)  # a budget below one character still makes progress
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    if text or not pieces:
        pieces.append(text)
    return pieces
