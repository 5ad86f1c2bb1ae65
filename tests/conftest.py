"""Session-wide set-up shared by every test layer."""

import signal


def pytest_configure(config):
    # A suite started in the background by a non-interactive shell (CI, nohup) inherits
    # SIGINT ignored, and so would every program it starts: the tests of what Ctrl-C does
    # need the default disposition, as in a terminal. Python's own handler is reset to the
    # default in the children it executes.
    signal.signal(signal.SIGINT, signal.default_int_handler)
