"""The data dir: our key, the pins, the history and the log, all private.

Every file p2pchat makes there is 0600 and the directory it makes 0700, whatever the user's
umask: the history holds private lines, the log names peers and addresses.  One mechanism for
all of them: ``make_private`` sets the process's umask to ``PRIVATE_UMASK`` before anything is
created (SQLite's -wal and -journal files take the database file's mode), and puts files of
ours left from older runs back to ``FILE_MODE``.  A data dir others can read gets a warning
rather than a chmod: it is the user's directory, perhaps on purpose.
"""

from __future__ import annotations

import os
import stat

#: The umask the whole process runs under: nothing we create is readable by others.
PRIVATE_UMASK = 0o077
#: The mode of every file in the data dir, and of the data dir we make.
FILE_MODE = 0o600
DIR_MODE = 0o700
LOCK_NAME = "lock"
#: The pidfile a daemon writes when no --pidfile is given.
PIDFILE_NAME = "twistd.pid"


class DataDirError(Exception):
    """The data dir can't be used; the text, one line, is for the user."""


def make_private() -> None:
    """From now on, what this process creates is its owner's alone."""
    os.umask(PRIVATE_UMASK)


def prepare(path: str) -> str | None:
    """Make the data dir (0700) if it is missing and check we can use it; put the files of
    ours in it back to 0600.  Returns a warning when others can read the directory."""
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"--data-dir {path} is not a directory") from None
    except NotADirectoryError:
        raise DataDirError(f"--data-dir {path}: a part of that path is a file, "
                           "not a directory") from None
    except OSError as e:
        raise DataDirError(f"can't make the data dir {path}: {e.strerror}") from None
    if not os.path.isdir(path):
        raise DataDirError(f"--data-dir {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"can't write in the data dir {path}")
    _privatize_files(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o066:
        return (f"the data dir {path} can be read by others (mode {mode:04o}); "
                f"chmod 700 it to keep your history private")
    return None


def _privatize_files(path: str) -> None:
    """Files we made before this rule (or under a looser umask) go back to 0600."""
    me = os.geteuid()
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if (stat.S_ISREG(info.st_mode) and info.st_uid == me
                    and stat.S_IMODE(info.st_mode) != FILE_MODE):
                os.chmod(entry.path, FILE_MODE)
        except OSError:
            pass  # gone meanwhile, or not ours to change: nothing to keep private here


def open_private(path: str) -> int:
    """Open (or create) a file of ours, 0600 whatever the umask; returns the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd
