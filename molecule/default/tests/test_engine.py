"""Outcome of the devenv_engine role on a host that boots systemd."""

import json


def test_engine_package_installed(host):
    assert host.package("docker.io").is_installed


def test_daemon_json_content_and_mode(host):
    f = host.file("/etc/docker/daemon.json")
    assert f.exists
    assert f.user == "root"
    assert f.group == "root"
    assert f.mode == 0o644
    config = json.loads(f.content_string)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["live-restore"] is True
    assert "userns-remap" not in config


def test_engine_service_active_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_engine_answers_with_the_written_configuration(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"


def test_a_container_runs_on_the_engine(host):
    # No registry is reachable: import a minimal image made of the host's own files.
    host.check_output(
        "d=$(mktemp -d) && mkdir -p $d/bin $d/lib64 $d/lib/x86_64-linux-gnu"
        " && cp /usr/bin/true $d/bin/ && cp -L /lib64/ld-linux-x86-64.so.2 $d/lib64/"
        " && cp -L /lib/x86_64-linux-gnu/libc.so.6 $d/lib/x86_64-linux-gnu/"
        " && tar -C $d -c . | docker import - devenv-smoke:1 >/dev/null && rm -rf $d"
    )
    out = host.run("docker run --rm devenv-smoke:1 /bin/true && echo ran")
    assert out.rc == 0, out.stderr
    assert "ran" in out.stdout
