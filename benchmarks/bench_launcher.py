"""The `devenv` launcher as the benchmark uses it: installed into a prefix under .state/.

It is installed with tests/support/install_launcher.py (the devenv_launcher role's layout),
configured through DEVENV_CONFIG (the administrator's file) with an empty user config
directory, and run as this machine's root with `user` set to 1000:1000 (the launcher
refuses to run a container as root unless told to; the work it does is the same).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
from pathlib import Path


class Launcher:
    def __init__(self, work: Path, root: Path, image: str, *, run, log):
        self.work = work / "launcher"
        self.root = root
        self.image = image
        self.run = run
        self.log = log
        self.prefix = self.work / "prefix"
        self.program = self.prefix / "bin" / "devenv"
        self.config = self.work / "config.json"
        self.code_dir = self.work / "code"
        self.xdg = self.work / "xdg"
        self._docker_argv = {}
        self.python = "/usr/bin/python3"

    def install(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        for path in (self.code_dir, self.xdg):
            path.mkdir(parents=True)
        # The interpreter the devenv_launcher role uses by default (devenv_launcher_python).
        self.run(
            [
                "python3",
                self.root / "tests" / "support" / "install_launcher.py",
                self.prefix,
                self.python,
            ]
        )
        config = {
            "image": self.image,
            "code_dir": str(self.code_dir),
            "user": "1000:1000",
            "gitconfig": None,
            "ssh": "none",
            # Docker's default bridge, as before the network policy, so the comparisons
            # keep measuring the same runs; the proxy comparison times allowlist itself.
            "network": "open",
            "labels": {"io.kuatecno.devenv.test": "1", "io.kuatecno.devenv.bench": "1"},
            "secrets": {
                "provider": "infisical",
                "project_id": "bench",
                "environment": "dev",
                "path": "/",
                "binary": str(self.root / "tests" / "support" / "infisical"),
            },
        }
        self.config.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.log(f"launcher installed in {self.prefix}")

    def env(self, *, secrets: bool) -> dict:
        env = dict(os.environ)
        env["DEVENV_CONFIG"] = str(self.config)
        env["XDG_CONFIG_HOME"] = str(self.xdg)
        for key in list(env):
            if key.startswith(("INFISICAL_", "DEVENV_FAKE_INFISICAL_")):
                del env[key]
        if secrets:
            # The stand-in wants a token in the environment, as the real CLI does.
            env["INFISICAL_TOKEN"] = "bench-token-not-a-secret"  # noqa: S105
        return env

    def argv(self, run_args) -> list:
        return [str(self.program), "run", *run_args]

    def docker_argv(self, command) -> list:
        """The docker argv the launcher would exec, from `devenv run --dry-run`."""
        key = tuple(command)
        if key not in self._docker_argv:
            out = self.run(
                self.argv(["--dry-run", "--no-secrets", "--", *command]),
                env=self.env(secrets=False),
            ).stdout
            first = next(line for line in out.splitlines() if line and not line.startswith("#"))
            self._docker_argv[key] = shlex.split(first)
        return list(self._docker_argv[key])

    @staticmethod
    def fresh_name(argv) -> list:
        """argv with a new container name of the same shape (the launcher makes a new one)."""
        argv = list(argv)
        index = argv.index("--name") + 1
        old = argv[index]
        stem, _, suffix = old.rpartition("-")
        argv[index] = f"{stem}-{secrets.token_hex(max(len(suffix), 8) // 2)}"
        return argv

    def warm_up(self) -> None:
        """One untimed run of each kind, so no case pays for a cold page cache alone."""
        for secrets_on in (False, True):
            args = ["--", "true"] if secrets_on else ["--no-secrets", "--", "true"]
            self.run(self.argv(args), env=self.env(secrets=secrets_on))
        self.run(self.fresh_name(self.docker_argv(["true"])), env=self.env(secrets=False))

    def display(self, argv) -> str:
        """A command as the report shows it: the installed program as plain `devenv`."""
        argv = [str(a) for a in argv]
        if argv and argv[0] == str(self.program):
            argv[0] = "devenv"
        if "--name" in argv:
            # The name holds this machine's host name and a random part: shown generically.
            argv[argv.index("--name") + 1] = "devenv-HOST-RANDOM"
        text = shlex.join(argv).replace(str(self.code_dir), "$CODE_DIR")
        # Files of the benchmark (its configurations under .state/) by their path in the
        # repository: the report never names a path of the machine it ran on.
        return text.replace(f"{self.root}/", "")

    def notes(self) -> list:
        return [
            "The launcher is installed as the devenv_launcher role lays it out "
            "(`tests/support/install_launcher.py`, interpreter `/usr/bin/python3` as the role's "
            "default): `bin/devenv` runs `python3 -IBS` on byte-identical copies of the "
            "collection's module_utils.",
            "Configuration: `DEVENV_CONFIG` points at a file with the image, a code directory, "
            "`user: 1000:1000` (the benchmark runs as root, which the launcher refuses as the "
            "container user by default), `ssh: none`, `network: open` (Docker's default "
            "bridge; what `allowlist` adds is comparison 6), no git config and the secrets "
            "settings; no user file.",
            "What the launcher does before docker starts: parse and merge the configuration, "
            "validate the whole run specification, ask the engine over its socket whether it "
            "answers and whether the image is present (one request: the image lookup), then "
            "start `docker run` as a child and wait for it (it stays as the parent to report "
            "an OOM kill).",
            "Secrets: the Infisical stand-in (`tests/support/infisical`, a Python script) "
            "answers `infisical export --format json` with two secrets and no network; the real "
            "CLI adds its own start-up and a round trip to the Infisical server.",
        ]

    def close(self) -> None:
        """Nothing runs in the background; the prefix stays for inspection."""
