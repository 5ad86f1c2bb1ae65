"""Looking for a secret where it must never be: files, command lines, engine state."""

import os
import stat
from pathlib import Path

# Where the engine and containerd keep containers' configuration and metadata.
ENGINE_STATE = ("/var/lib/docker", "/var/lib/containerd", "/run/docker", "/run/containerd")


def files_containing(needles, roots, since=None):
    """Regular files under the roots (changed since `since`, a time.time(), when given)
    whose content holds one of the needles (str or bytes). Symlinks are not followed."""
    wanted = [n.encode() if isinstance(n, str) else n for n in needles]
    hits = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode) or info.st_size > 16 * 1024 * 1024:
                        continue
                    if since is not None and max(info.st_mtime, info.st_ctime) < since:
                        continue
                    data = Path(path).read_bytes()
                except OSError:
                    continue  # removed meanwhile, or unreadable
                if any(needle in data for needle in wanted):
                    hits.append(path)
    return hits


def command_lines_containing(needle):
    """PIDs of processes whose command line holds the needle."""
    data = needle.encode() if isinstance(needle, str) else needle
    hits = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if data in Path(f"/proc/{pid}/cmdline").read_bytes():
                    hits.append(pid)
            except OSError:
                pass
    return hits
