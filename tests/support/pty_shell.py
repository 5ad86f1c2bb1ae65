"""Type into a real interactive shell on a terminal and print what it shows.

    python3 pty_shell.py SHELL LINE [LINE...]

Starts `SHELL -i` (bash or zsh, reading the user's own rc files) on a pseudo-terminal,
waits for its first prompt, types each LINE as keystrokes (escapes: \\t TAB, \\a Ctrl-A, \\u Ctrl-U,
\\r Enter), then `exit`, and writes everything the terminal showed to stdout. Standard
library only, so it runs with any python3 on a test host (tests copy it in).

A completion is checked the way a person sees it: type `devenv ru\\t`, then Ctrl-A and
`printf '<%s>\\n' ` in front and Enter; the shell prints the completed words one per
line, `<devenv>` `<run>`, whatever the prompt or the line editor drew in between.
"""

import os
import pty
import select
import sys
import time

KEYS = {"\\t": "\t", "\\a": "\x01", "\\u": "\x15", "\\r": "\r"}


def _keys(line):
    for escape, key in KEYS.items():
        line = line.replace(escape, key)
    return line


def _read(fd, seconds, quiet=0.7):
    """What the terminal shows until it has been quiet for `quiet` seconds after some
    output (or for `seconds` in all, or the shell's end)."""
    out = b""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if last is not None and time.monotonic() - last > quiet:
            break
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the shell has exited
            break
        if not chunk:
            break
        out += chunk
        last = time.monotonic()
    return out


def main(shell, lines):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("EDITOR", "VISUAL")  # zsh would pick vi keys from these
    }
    # No history file: what is typed here is not the user's.
    env.update(TERM="xterm", COLUMNS="120", LINES="40", HISTFILE="/dev/null")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(shell, [shell, "-i"], env)  # noqa: S606 - the shell under test
    shown = _read(fd, 15, quiet=1.5)  # start-up: rc files, compinit, the first prompt
    for line in lines:
        for key in _keys(line):
            os.write(fd, key.encode())
            time.sleep(0.05)
        shown += _read(fd, 10)
    os.write(fd, b"\x15exit\r")
    shown += _read(fd, 10)
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    os.waitpid(pid, 0)
    sys.stdout.write(shown.decode("utf-8", "replace"))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
