"""The runtime properties of security-notes.md, asserted on one `docker inspect` result.

Shared by the launcher's and the module's integration tests, so both adapters are held
to the very same list.
"""

SENSITIVE_SOURCES = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")


def assert_runtime_properties(info, *, memory, read_only_rootfs=True):
    host = info["HostConfig"]
    config = info["Config"]
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert "no-new-privileges" in (host["SecurityOpt"] or [])
    assert not any("unconfined" in opt for opt in host["SecurityOpt"] or [])
    assert host["Memory"] == memory
    assert host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] > 0
    assert host["PidsLimit"] not in (None, 0, -1)
    for key in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        assert host.get(key, "") != "host", key
    for mount in info["Mounts"]:
        assert mount["Type"] == "bind", mount
        assert "docker.sock" not in mount["Source"], mount
        assert mount["Source"] not in SENSITIVE_SOURCES, mount
        assert mount["Propagation"] == "rprivate", mount
    assert not host["Devices"]
    assert not host["PortBindings"]
    assert not host["PublishAllPorts"]
    assert not info["NetworkSettings"]["Ports"]
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert host["AutoRemove"] is True
    assert config["User"] not in ("", "0", "root", "0:0")
    assert not config["User"].startswith(("0:", "root:"))
    assert host["ReadonlyRootfs"] is read_only_rootfs
    assert host["Init"] is True
    assert config["Labels"]["io.kuatecno.devenv.managed"] == "true"
