#!/usr/bin/env python3
"""Render docs/settings.md from the settings table (module_utils/_settings.py).

Usage: python3 scripts/settings_doc.py [--check]
Without --check the file is rewritten; with it, the exit status says whether it is
current (tests/unit/test_settings_doc.py runs the same comparison).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "settings.md"
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.kuatecno.devenv.plugins.module_utils import _settings  # noqa: E402

WHERE = {
    _settings.SYSTEM: "system file",
    _settings.PER_USER: "users.&lt;login&gt;",
    _settings.USER: "user file",
    _settings.FLAG: "flag",
    _settings.MODULE: "module",
}


def _default(value):
    return "`null`" if value is None else f"`{json.dumps(value)}`"


def _where(setting):
    words = []
    for scope in _settings.SCOPES:
        if scope in setting.scopes:
            word = WHERE[scope]
            if scope == _settings.FLAG and setting.flag:
                word = f"`{setting.flag}`"
            elif scope == _settings.FLAG:
                word = "`devenv run -- COMMAND`"
            words.append(word)
    return ", ".join(words)


def _row(setting):
    default = _default(setting.default)
    if _settings.MODULE in setting.scopes and setting.module_default != setting.default:
        default += f" (module: {_default(setting.module_default)})"
    doc = setting.doc.replace("|", "\\|")
    return f"| `{setting.name}` | {default} | {_where(setting)} | {doc} |"


def render():
    lines = [
        "# Settings",
        "",
        "Generated from the settings table in",
        "`collections/devenv/plugins/module_utils/_settings.py` by",
        "`python3 scripts/settings_doc.py`; do not edit by hand.",
        "",
        "Every run takes its settings from layers, lowest first: the defaults below, the",
        "administrator's system file (`/etc/devenv/config.json`, with its",
        "`users.<login>` entry for the invoking user), the user's own file",
        "(`~/.config/devenv/config.json`), then `devenv run` flags. The `secure_run` module",
        "takes the same settings as options (one layer). `devenv config` shows each value",
        "and where it came from. A null value leaves the layer below in place.",
        "",
        "| setting | default | set in | what |",
        "|---|---|---|---|",
    ]
    lines += [_row(s) for s in _settings.SETTINGS]
    lines += [
        "",
        "## `secrets`",
        "",
        "The module's `infisical` option takes the same keys (without `provider`), plus",
        "`token`, which never goes in a configuration file.",
        "",
        "| key | default | what |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{s.name}` | {_default(s.default)} | {s.doc} |" for s in _settings.SECRET_SETTINGS
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    text = render()
    if argv[1:] == ["--check"]:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{DOC.relative_to(ROOT)} is stale: run python3 scripts/settings_doc.py\n"
            )
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
