"""Session-wide set-up shared by every test layer: Ansible's collection loader for the
source tree, installed before any test module imports the collection (see
tests/support/role_templar.py), and the default SIGINT disposition."""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
try:
    import role_templar
except ImportError:  # no Ansible: the launcher's own tests on Python 3.9 (test_python39.py)
    pass
else:
    role_templar.install_collection_loader()


def pytest_configure(config):
    # A suite started in the background by a non-interactive shell (CI, nohup) inherits
    # SIGINT ignored, and so would every program it starts: the tests of what Ctrl-C does
    # need the default disposition, as in a terminal. Python's own handler is reset to the
    # default in the children it executes.
    signal.signal(signal.SIGINT, signal.default_int_handler)
