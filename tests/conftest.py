"""Set-up shared by every test: Ansible's collection loader for the source tree, installed
before any test module imports the collection (see tests/support/role_templar.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
import role_templar

role_templar.install_collection_loader()
