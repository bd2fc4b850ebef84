"""File transfer (issue 19): offers made in the chat, streamed on their own TLS connection.

- offers.py: the offer as a value, its limits, safe names, resume ranges, hash lists (pure);
- hashing.py: hashing a file or a partial one, run in a thread (never on the reactor);
- stream.py: the transfer connection (TLS with the chat's identities and pins), the file
  producer of the sending side and the checking consumer of the receiving side;
- transfers.py: the node's collaborator: control lines, state, the partials kept on disk;
- describe.py: what the faces show of transfers (over interfaces.py only).
"""
