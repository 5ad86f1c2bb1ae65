"""A stand-in of Infisical's apt repository, made and served on a test host.

    python3 infisical_apt_repo.py STAND_IN ROOT PORT VERSION [VERSION...]

Infisical's repository (artifacts-cli.infisical.com) cannot be reached from the test
machines. This makes one with the same layout and signing as the real one, so the apt
method is exercised end to end: a throwaway signing key, exported ASCII-armoured as
ROOT/infisical.gpg (what Infisical serves under that name); ROOT/deb with suite
`stable`, component `main`, a signed Release (InRelease and Release.gpg); the package
`infisical` at each VERSION, holding the Infisical CLI stand-in as /usr/bin/infisical.
Then it serves ROOT on 127.0.0.1:PORT in the background and returns once it answers.
Needs gpg (and gpg-agent) and dpkg-deb; standard library otherwise.
"""

import email.utils
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def run(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def package(stand_in, version, pool, arch_dir):
    work = Path(tempfile.mkdtemp())
    (work / "DEBIAN").mkdir()
    (work / "usr" / "bin").mkdir(parents=True)
    binary = work / "usr" / "bin" / "infisical"
    binary.write_bytes(Path(stand_in).read_bytes())
    binary.chmod(0o755)
    (work / "DEBIAN" / "control").write_text(
        f"Package: infisical\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: devenv tests <tests@localhost>\nDepends: python3\n"
        "Description: Infisical CLI stand-in for the devenv tests\n"
    )
    deb = pool / f"infisical_{version}_all.deb"
    run("dpkg-deb", "--root-owner-group", "--build", str(work), str(deb))
    data = deb.read_bytes()
    control = run("dpkg-deb", "-f", str(deb)).stdout.strip()
    return (
        f"{control}\nFilename: {deb.relative_to(arch_dir)}\nSize: {len(data)}\n"
        f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def main(stand_in, root, port, versions):
    root = Path(root)
    repo = root / "deb"
    pool = repo / "pool" / "main" / "i" / "infisical"
    pool.mkdir(parents=True)
    arch = run("dpkg", "--print-architecture").stdout.strip()
    binary_dir = repo / "dists" / "stable" / "main" / f"binary-{arch}"
    binary_dir.mkdir(parents=True)
    packages = "\n".join(package(stand_in, v, pool, repo) for v in versions)
    (binary_dir / "Packages").write_text(packages)
    data = (binary_dir / "Packages").read_bytes()
    release = repo / "dists" / "stable" / "Release"
    release.write_text(
        "Origin: devenv-test\nLabel: Infisical stand-in\nSuite: stable\nCodename: stable\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\nArchitectures: {arch}\n"
        "Components: main\nSHA256:\n"
        f" {hashlib.sha256(data).hexdigest()} {len(data)} main/binary-{arch}/Packages\n"
    )
    home = tempfile.mkdtemp()
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    run(
        "gpg",
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "devenv test repository <tests@localhost>",
        "ed25519",
        "sign",
        "never",
        env=env,
    )
    armoured = run("gpg", "--armor", "--export", env=env).stdout
    (root / "infisical.gpg").write_text(armoured)
    run(
        "gpg",
        "--batch",
        "--yes",
        "--clearsign",
        "-o",
        str(release.with_name("InRelease")),
        str(release),
        env=env,
    )
    run(
        "gpg",
        "--batch",
        "--yes",
        "-abs",
        "-o",
        str(release.with_name("Release.gpg")),
        str(release),
        env=env,
    )
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            port,
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/infisical.gpg", timeout=1)
            return 0
        except OSError:
            time.sleep(0.1)
    return 1


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
