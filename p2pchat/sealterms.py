"""The words of sealed lines a peer needs before the sealing is made (firstuse.SealingLater,
at the first link): the cap it announces and a link is checked for, the line type it
dispatches on, and the store's file name.  sealed.py (the items, their seals and checks) and
sealstore.py come with the sealing, so a peer alone does without them (tests/test_latetls.py,
LATE_MODULES); they re-export these.  Pure."""

from __future__ import annotations

#: ``sealed/1``: carries sealed items for others and takes its own (never sent to base peers).
CAP_SEALED = "sealed/1"
#: The line type that carries one item (its fields in ``metadata``).
SEALED = "sealed"
#: The sealed-line store in the data dir (sealstore.py).
SEALED_NAME = "sealed.sqlite3"
