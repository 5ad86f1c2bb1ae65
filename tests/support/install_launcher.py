"""Install the `devenv` launcher into a prefix, in the layout the devenv_launcher role uses.

    <prefix>/bin/devenv
    <prefix>/lib/devenv/devenv_lib/<LAUNCHER_FILES>   byte-identical module_utils copies
    <prefix>/lib/devenv/devenv_lib/__pycache__/       their bytecode, compiled once

Usage: python tests/support/install_launcher.py PREFIX [PYTHON]
The file list is LAUNCHER_FILES in the collection's module_utils/_launcher.py.
"""

import ast
import compileall
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "collections" / "devenv" / "plugins" / "module_utils"

ENTRY_POINT = '''\
#!{python} -IBS
"""devenv: run a shell or a command in a fresh, locked-down container."""

import sys

sys.path.insert(0, {lib_root!r})

from devenv_lib._launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
'''


def launcher_files():
    """LAUNCHER_FILES, read from _launcher.py without importing it."""
    tree = ast.parse((MODULE_UTILS / "_launcher.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "LAUNCHER_FILES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("LAUNCHER_FILES not found in _launcher.py")


def install(prefix, python=None):
    """Install into prefix; returns the path of the devenv program."""
    prefix = Path(prefix)
    lib_root = prefix / "lib" / "devenv"
    lib = lib_root / "devenv_lib"
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    lib.mkdir(parents=True, exist_ok=True)
    for path in (prefix, prefix / "bin", prefix / "lib", lib_root, lib):
        path.chmod(0o755)
    for name in launcher_files():
        shutil.copyfile(MODULE_UTILS / name, lib / name)
        (lib / name).chmod(0o644)
    # As the role does: compiled once, so a start under -B does not compile again.
    compileall.compile_dir(str(lib), quiet=1)
    program = prefix / "bin" / "devenv"
    program.write_text(
        ENTRY_POINT.format(python=python or sys.executable, lib_root=str(lib_root)),
        encoding="utf-8",
    )
    program.chmod(0o755)
    return program


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(install(os.path.abspath(sys.argv[1]), *sys.argv[2:]))
