"""Trained intent classifiers kept on disk, so that a restart (`voicebot serve`, `voicebot chat`, a cluster node)
loads its classifier in a fraction of a second instead of training it again for seconds.

An entry's name is a hash of what the classifier is made of: the training examples, the features, the sources
of this package (which turn examples into training texts) and the versions of scikit-learn and numpy. Changed
examples or code give a new name, so a stale entry is never used; an entry that cannot be read (truncated, from
other library versions) is trained again, with a log line. The folder is the user's cache
(``$XDG_CACHE_HOME/voicebot/nlu``, else ``~/.cache/voicebot/nlu``), readable by the user only: entries are
pickles, and a pickle runs code when loaded. The newest :data:`KEEP_ENTRIES` entries are kept.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

log = logging.getLogger(__name__)

# Entries kept (the newest by modification time): each code or domain change leaves one behind.
KEEP_ENTRIES = 16


def user_cache_dir() -> Path:
    """The default folder of the cache: ``$XDG_CACHE_HOME/voicebot/nlu``, else ``~/.cache/voicebot/nlu``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicebot" / "nlu"


@functools.cache
def _code_version() -> str:
    digest = hashlib.sha256(f"{sklearn.__version__} {np.__version__}".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def entry_key(training: Any) -> str:
    """The name of the entry for ``training`` (a value with a stable ``repr``: the examples and features)."""
    return hashlib.sha256(f"{_code_version()}\0{training!r}".encode()).hexdigest()[:32]


def _writable_by_others(path: Path) -> str:
    """Why another user could have written ``path`` (empty: nobody but this user could)."""
    st = path.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {st.st_mode & 0o777:o})"
    return ""


class ClassifierCache:
    """Pickled classifiers in ``directory``, one file per :func:`entry_key`."""

    def __init__(self, directory: Path):
        self.directory = directory

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pickle"

    def get(self, key: str) -> Any | None:
        """The object stored under ``key``; None when there is none or it cannot be read (logged), or when the folder
        or the entry could have been written by another user (a pickle runs code when loaded)."""
        path = self.path(key)
        try:
            with path.open("rb") as f:
                unsafe = _writable_by_others(self.directory) or _writable_by_others(path)
                if unsafe:
                    log.warning("NLU cache %s is %s; not loading it, training again", self.directory, unsafe)
                    return None
                return pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception as exc:  # any unreadable entry means "train again", never a failed start
            log.warning("NLU cache entry %s is unreadable (%s: %s); training again", path, type(exc).__name__, exc)
            return None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` atomically; a cache that cannot be written is logged and skipped."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, suffix=".part", delete=False) as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(f.name, self.path(key))  # atomic: processes starting side by side never read half a file
            self._prune()
        except OSError as exc:
            log.warning("NLU cache %s is not writable (%s); the classifier is not kept", self.directory, exc)

    def _prune(self) -> None:
        entries = sorted(self.directory.glob("*.pickle"), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
        for old in entries[KEEP_ENTRIES:]:
            old.unlink(missing_ok=True)
