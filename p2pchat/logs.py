"""Where the log goes.  Under twistd the plugin's options pick a file in the data dir (or stdout
when headless) and a level; twistd then asks ``observer()`` for the observer (``--logger``).
Nothing here ever writes to the terminal a face is drawing on."""

from __future__ import annotations

import os
import sys

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile

from p2pchat import datadir

LOG_NAME = "p2pchat.log"
#: The log file is rotated past this size; this many old files are kept.
LOG_ROTATE_BYTES = 1_000_000
LOG_KEEP_FILES = 3
#: Log stamps, to the microsecond (so the bench can tell when a peer in a room of 100 was up,
#: which its face shows seconds later on a starved machine: bench/scenarios.py).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

_settings: dict[str, object] = {"path": None, "debug": False}


def configure(path: str | None, debug: bool) -> None:
    """Say where ``observer()`` logs: a file path, or None for stdout."""
    _settings["path"] = path
    _settings["debug"] = debug


def observer() -> ILogObserver:
    """The log observer twistd installs (named by ``--logger``)."""
    path = _settings["path"]
    if path is None:
        out = sys.stdout
    else:
        os.makedirs(os.path.dirname(str(path)), mode=0o700, exist_ok=True)
        # 0600 whatever the umask (twistd's --umask is applied after this): the log names
        # peers and addresses.  Rotated files keep the mode.
        out = LogFile.fromFullPath(str(path), rotateLength=LOG_ROTATE_BYTES,
                                   maxRotatedFiles=LOG_KEEP_FILES, defaultMode=datadir.FILE_MODE)
    level = LogLevel.debug if _settings["debug"] else LogLevel.info
    # stamps finer than a second: how a room forms is told in tenths of a second
    return FilteringLogObserver(textFileLogObserver(out, timeFormat=TIME_FORMAT),
                                [LogLevelFilterPredicate(defaultLogLevel=level)])


def debugging() -> bool:
    """Whether debug lines are logged (``--debug``): a debug line on a hot path is skipped
    before it is made (a Logger call builds its event even when the filter then drops it:
    in a room of 100 forming, 10,000 such, a few percent of the CPU after its last peer was
    up)."""
    return bool(_settings["debug"])


def log_path() -> str | None:
    """Where the log is written (for /help), or None when it is not a file of ours."""
    path = _settings["path"]
    return str(path) if path else None
