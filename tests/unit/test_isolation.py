"""The isolation setting: runc or gVisor, chosen by the administrator per host; a user
may choose the stronger one, the weaker only where the administrator allows it; a run
under gVisor needs the engine's runsc runtime, checked before anything starts."""

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _settings as st
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    GVISOR_PIDS_BASE,
    GVISOR_PIDS_PER_PROCESS,
    Host,
    build_spec,
    check_engine_info,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._settings import (
    FLAG,
    SYSTEM,
    USER,
    RunSpecError,
    parse,
)

SYSTEM_FILE = "/etc/devenv/config.json"


def settings_of(system=None, user=None, flag=None):
    layers = []
    if system is not None:
        layers.append((f"system file {SYSTEM_FILE}", SYSTEM, system))
    if user is not None:
        layers.append(("user file ~/.config/devenv/config.json", USER, user))
    if flag is not None:
        layers.append(("flag", FLAG, flag))
    return parse(layers, login="alice", system_file=SYSTEM_FILE)


def test_runc_is_the_default_and_gvisor_a_choice():
    assert settings_of()["isolation"] == "runc"
    assert settings_of(system={"isolation": "gvisor"})["isolation"] == "gvisor"
    with pytest.raises(RunSpecError, match="isolation: 'kata' is not one of runc, gvisor"):
        settings_of(system={"isolation": "kata"})


@pytest.mark.parametrize("where", ["user", "flag"])
def test_a_user_may_always_choose_the_stronger_isolation(where):
    assert settings_of(**{where: {"isolation": "gvisor"}})["isolation"] == "gvisor"


@pytest.mark.parametrize("where", ["user", "flag"])
def test_a_user_may_not_weaken_the_administrator_s_isolation(where):
    with pytest.raises(RunSpecError) as info:
        settings_of(system={"isolation": "gvisor"}, **{where: {"isolation": "runc"}})
    message = str(info.value)
    assert "'runc' isolates less than the administrator's 'gvisor'" in message
    assert f"the administrator sets it in {SYSTEM_FILE} (isolation_widen: true" in message


def test_the_administrator_may_let_users_choose_runc():
    given = {"system": {"isolation": "gvisor", "isolation_widen": True}}
    assert settings_of(flag={"isolation": "runc"}, **given)["isolation"] == "runc"
    with pytest.raises(RunSpecError, match="isolation_widen can only be set by the administrator"):
        settings_of(user={"isolation_widen": True})


def test_the_flag_and_the_module_option_come_from_the_table():
    assert st.flag_names()["--isolation"] == "isolation"
    assert st.module_options()["isolation"]["choices"] == ["runc", "gvisor"]
    assert "isolation_widen" not in st.module_options()


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "Coding").mkdir()
    host = Host(1000, 1000, "alice", str(tmp_path), 2, {})

    def make(**settings):
        return build_spec(dict({"ssh": "none", "gitconfig": None}, **settings), host=host)

    return make


def test_a_gvisor_run_needs_the_engine_s_runsc_runtime(spec):
    run = spec(isolation="gvisor", pids_limit=50)
    assert run.needs_engine_info and run.runtime == "runsc"
    check_engine_info(run, {"Runtimes": {"runc": {}, "runsc": {"path": "/usr/bin/runsc"}}})
    with pytest.raises(RunSpecError) as info:
        check_engine_info(run, {"Runtimes": {"runc": {}}})
    assert "devenv_engine_gvisor: true" in str(info.value)
    assert "which has runc" in str(info.value)
    runc = spec()
    assert not runc.needs_engine_info
    check_engine_info(runc, {})


def test_under_gvisor_the_process_limit_is_the_sandbox_kernel_s(spec):
    run = spec(isolation="gvisor", pids_limit=50)
    host = run.engine_create_body()["HostConfig"]
    assert host["Ulimits"] == [{"Name": "nproc", "Soft": 50, "Hard": 50}]
    assert host["PidsLimit"] == GVISOR_PIDS_BASE + GVISOR_PIDS_PER_PROCESS * 50
    argv = run.docker_argv(tty=False, interactive=False)
    assert argv[argv.index("--ulimit") + 1] == "nproc=50:50"
    assert argv[argv.index("--runtime") + 1] == "runsc"
    assert run.describe()["runtime"] == "runsc"
    runc = spec(pids_limit=50).engine_create_body()["HostConfig"]
    assert runc["PidsLimit"] == 50 and not runc["Ulimits"] and runc["Runtime"] == "runc"
