#!/usr/bin/python
# Copyright: kuatecno devenv maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: secure_run
short_description: Run a command in a fresh, isolated devenv container
version_added: 0.1.0
description:
  - Runs one command non-interactively in a new container of a devenv image, with the same
    isolation as the C(devenv run) launcher, and returns its exit status and output.
  - Every security-relevant setting comes from the collection's run specification, which
    this module shares with the launcher. Always on, with no option to turn them off - all
    capabilities dropped, C(no-new-privileges), the default seccomp profile, an init
    process, memory swap equal to memory (unless O(memory_swap) is set), CPU and process
    limits, removal of the container by the engine when the command ends. Never -
    privileged mode, host namespaces, devices, published ports, a restart policy or the
    Docker socket.
  - The image must already be present on the target host; it is never pulled.
  - Bind mounts use mount semantics - a missing source is an error. Credentials are
    mounted read-only; only O(code_dir) (and, with O(ephemeral=false), the agents' state
    that devenv keeps) is writable. The host's own C(~/.claude), C(~/.claude.json) and
    C(~/.gemini) are never writable.
  - Secrets (O(secrets), or fetched from Infisical with O(infisical)) reach the container's
    environment only; this module never writes them to disk, puts them on a command line
    or returns them (see the notes on pipelining for Ansible's own handling of arguments).
  - The container is removed by the engine when its command ends, even when this
    module's process is killed while the command runs. A container that was created but
    not yet started when the module was stopped is removed by the module or, after a
    SIGKILL, by a small watchdog process it starts for that short window.
  - Reports C(changed) whenever the command ran, and in check mode when it would run. A
    container was created and removed, and the module cannot know what the command
    changed in O(code_dir). Set C(changed_when) on the task (for example from RV(rc) or
    RV(stdout)) to say what counts as a change.
  - Fails when the exit status is not in O(expected_rc) or when the command is killed at
    O(timeout). Reports C(memory limit reached) when the engine says it killed the command
    for memory, and names the memory limit as the likely cause of an unexplained exit
    status 137 (some engines never report out-of-memory kills).
author:
  - kuatecno devenv maintainers (@kuatecno)
requirements:
  - Docker SDK for Python (C(docker)) on the target host
  - A Docker engine reachable from the target host
attributes:
  action_group:
    description: Use C(group/kuatecno.devenv.docker) in C(module_defaults) to set defaults
      for this module (such as O(docker_host)); the group also holds community.docker's modules.
    support: full
    membership:
      - kuatecno.devenv.docker
  check_mode:
    description: Can run in check_mode and return changed status prediction without
      modifying target.
    support: full
    details: Validates the parameters and returns the planned container in RV(spec);
      nothing is fetched, created or started.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in
      check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  image:
    description:
      - The image to run, already present on the target host (for example C(devenv:1.2.0)).
    type: str
    required: true
  command:
    description:
      - The command and its arguments, run without a shell.
      - A list is taken as it is, one argument per item.
      - A string is split into arguments the way a POSIX shell splits words (quotes and
        backslashes), never on commas; C("echo a, b") runs C(echo) with C(a,) and C(b). As
        with M(ansible.builtin.command), nothing else of a shell applies (no variables,
        globs, pipes or redirections); use C([sh, -c, "..."]) for those. A string with an
        unclosed quote is refused.
    type: raw
    required: true
  workdir:
    description:
      - The working directory inside the container. The run specification's default is
        C(/app).
    type: str
  code_dir:
    description:
      - The host directory mounted read-write at C(/app); it must exist. It is the only
        writable host path of the run.
      - Without it, a fresh empty temporary directory is mounted there (owned by the user
        the command runs as) and removed after the run, so nothing of the host is
        writable.
    type: path
  container_home:
    description:
      - The writable HOME of the user inside the container. The run specification's
        default is C(/home/dev).
    type: str
  mounts:
    description:
      - Further bind mounts. The source must exist; sensitive host paths (the Docker
        socket, C(/), system directories, the whole home directory) are refused.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Host path.
        type: path
        required: true
      target:
        description: Absolute path inside the container.
        type: str
        required: true
      read_only:
        description: Mount read-only.
        type: bool
        default: true
  credentials:
    description:
      - Further files or directories, mounted read-only into the container HOME. Not for
        the agents' own state (see O(ephemeral)); targets inside C(.claude) or C(.gemini)
        are refused.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Host path.
        type: path
        required: true
      target:
        description: Path relative to the container HOME (for example C(.claude)).
        type: str
        required: true
      required:
        description: Fail when the source is missing; otherwise it is skipped.
        type: bool
        default: false
  ephemeral:
    description:
      - The agents' state (Claude Code's C(~/.claude), Gemini CLI's C(~/.gemini)) is a
        private tmpfs of this run, discarded at exit.
      - With V(false) it is kept as the launcher keeps it, in the directory devenv owns in
        the home of the user the command runs as (C(~/.local/share/devenv/state), mode
        C(0700)), created as that user, the host's own login imported once; the host's
        own agent files are never mounted.
    type: bool
    default: true
  agent_state:
    description:
      - With O(ephemeral=false), one state for all runs of the user (V(user)) or one per
        O(code_dir) (V(code_dir)). The run specification's default is V(user).
    type: str
    choices: [user, code_dir]
  claude_nonessential_traffic:
    description:
      - Let Claude Code send non-essential traffic (telemetry, error reports). Off by
        default (C(CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1)); its auto-updater is off
        either way.
    type: bool
  gitconfig:
    description:
      - A git configuration file mounted read-only as C(~/.gitconfig) in the container.
      - Without it, none is mounted (the launcher's default of C(~/.gitconfig) does not
        apply to the module).
    type: path
  ssh:
    description:
      - C(agent) forwards the SSH agent socket of the module's environment (read-only,
        with the host's C(~/.ssh/known_hosts)), C(keys) mounts C(~/.ssh) read-only,
        C(auto) picks C(agent) when an agent runs, else gives none, C(none) gives the
        container no SSH access. On a Mac with Docker Desktop the agent comes through
        Docker Desktop's forwarded socket.
      - Unlike the interactive launcher, the module gives no SSH access unless asked.
    type: str
    choices: [auto, agent, keys, none]
    default: none
  network:
    description:
      - C(allowlist) attaches the container only to an internal network with no route
        out, whose one way out is the host's egress proxy (Squid in its own hardened
        container), which allows only O(network_allow); C(HTTPS_PROXY), C(HTTP_PROXY)
        and C(NO_PROXY) are set in the container, and names outside do not resolve. The
        proxy and its network are created when missing, shared by runs with the same
        configuration. Without a running proxy nothing is started (fail closed).
      - C(none) gives the container loopback only; C(open) is Docker's default bridge.
      - The run specification's default is C(allowlist), as for the launcher.
    type: str
    choices: [none, allowlist, open]
  network_allow:
    description:
      - The destinations the proxy allows with O(network=allowlist), each
        C(HOST:PORT); C(*.example.com:443) allows example.com and every name under it.
        Host names only, never IP addresses.
      - The run specification's default covers the Anthropic and Gemini APIs and their
        login hosts, the npm registry, PyPI, and GitHub (HTTPS, and SSH on port 22).
    type: list
    elements: str
  network_egress:
    description:
      - The Docker network the egress proxy reaches the outside through; created as a
        bridge when missing. The run specification's default is C(devenv-egress).
    type: str
  network_proxy_image:
    description:
      - The egress proxy's image, present on the target host (built by the
        C(kuatecno.devenv.devenv_image) role); never pulled. The run specification's
        default is C(devenv-proxy:latest).
    type: str
  isolation:
    description:
      - The kernel boundary of the run. C(runc) shares the host's kernel (namespaces,
        seccomp, no capabilities); C(gvisor) runs the container on gVisor's user-space
        kernel, through the engine's C(runsc) runtime, which the
        C(kuatecno.devenv.devenv_engine) role installs with C(devenv_engine_gvisor=true).
        On an engine without it the run fails before anything starts.
      - Under C(gvisor) the process limit O(pids_limit) is kept by the sandbox's own
        kernel, and the engine's limit bounds the sandbox as a whole.
      - The run specification's default is C(runc).
    type: str
    choices: [runc, gvisor]
  memory:
    description:
      - Memory limit with a unit (C(512m), C(4g)). The run specification's default is
        C(4g).
    type: str
  memory_swap:
    description:
      - Memory plus swap limit with a unit. Defaults to O(memory), so the container gets
        no extra swap.
    type: str
  cpus:
    description:
      - CPUs the container may use, from 0.01 up to the host's CPU count, a number in
        ASCII digits (V(1.5) or V("1.5")). The run specification's default is 2, or the
        CPUs the module may use where fewer.
    type: raw
  pids_limit:
    description:
      - Maximum number of processes in the container, an integer in ASCII digits. The run
        specification's default is 100.
    type: raw
  read_only_rootfs:
    description:
      - Run with a read-only root filesystem (with a private C(/tmp) and the writable
        HOME). The run specification's default is V(true).
    type: bool
  run_as_root:
    description:
      - Run the command as root inside the container instead of the invoking user.
        Capabilities stay dropped and C(no-new-privileges) stays on.
      - Only on an engine that remaps users (userns-remap), or with O(root_without_userns).
        Otherwise root in the container could create host files in O(code_dir) (a setuid
        file, for example) that a user could later use to gain root on the host.
    type: bool
    default: false
  root_without_userns:
    description:
      - Accept O(run_as_root) on an engine without userns-remap, and the risk described
        there.
    type: bool
    default: false
  user:
    description:
      - A login name or numeric C(UID:GID) the command runs as, instead of the user
        running the module. When the module runs as root (C(become)), set this or
        O(run_as_root).
      - Files the command creates in O(code_dir) belong to this user.
    type: str
  labels:
    description:
      - Extra labels for the container. The product's own labels cannot be replaced.
    type: dict
    default: {}
  env:
    description:
      - Environment variables for the container. Names must match
        C(^[A-Za-z_][A-Za-z0-9_]*$); reserved names (C(PATH), C(HOME), C(LD_PRELOAD),
        C(INFISICAL_*) and others) are refused. Values must be strings.
      - Values are treated as secrets - hidden from the output. Ansible masks every
        occurrence of them in returned text, so avoid very short values. Values may hold
        newlines (PEM keys, JSON documents); only NUL is refused, and each value is at most
        64 KiB.
    type: dict
    default: {}
  secrets:
    description:
      - Secret environment variables for the container, validated like O(env). Values
        are never returned or logged.
    type: dict
    default: {}
  infisical:
    description:
      - Fetch secrets on the target host with C(infisical export --format json) and give
        them to the container's environment. Merged with O(secrets); a name given twice
        is an error.
      - Omit to fetch nothing.
    type: dict
    suboptions:
      project_id:
        description: Infisical project id.
        type: str
        required: true
      environment:
        description: Infisical environment slug.
        type: str
        default: dev
      path:
        description: Folder path of the secrets.
        type: str
        default: /
      domain:
        description: URL of a self-hosted Infisical instance.
        type: str
      timeout:
        description: Seconds the C(infisical) command may take.
        type: int
        default: 30
      allow_empty:
        description: Accept an empty set of secrets instead of failing.
        type: bool
        default: false
      binary:
        description: Name or path of the C(infisical) program.
        type: str
        default: infisical
      token:
        description:
          - Infisical access token (a machine identity's access token or a service
            token). It is handed to the C(infisical) process through its environment
            only, never on a command line.
          - The Infisical CLI reads E(INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN) before
            E(INFISICAL_TOKEN). The token is put in both, so a token already in the
            module's environment can never take its place.
          - Without it, the C(infisical) process uses the module's environment (first
            E(INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN), then E(INFISICAL_TOKEN)) or its own
            login (C(infisical login)) on the target host.
        type: str
  expected_rc:
    description:
      - Exit statuses that count as success.
    type: list
    elements: int
    default: [0]
  output_limit:
    description:
      - Bytes of stdout and of stderr kept (each); the rest is dropped and
        RV(stdout_truncated) or RV(stderr_truncated) set.
    type: int
    default: 1048576
  timeout:
    description:
      - Seconds the command may run; then the container is killed (and removed) and the
        module fails.
    type: int
    default: 3600
  docker_host:
    description:
      - The engine's address (C(unix:///var/run/docker.sock), C(tcp://...)). Defaults to
        E(DOCKER_HOST) or the local socket; E(DOCKER_TLS_VERIFY) and E(DOCKER_CERT_PATH)
        are read as the docker CLI reads them.
    type: str
  private_dir:
    description:
      - The directory in which the module makes the private directory of a run (mode
        C(0700), removed afterwards) - the container's generated C(/etc/passwd) and
        C(/etc/group) and, without O(code_dir), the fresh code directory. The system's
        temporary directory by default.
      - With O(docker_host) naming an engine that does not share this host's files (one in
        a container, on another machine), a directory that engine sees at the same path,
        as for every mount source.
    type: path
notes:
  - Without pipelining, Ansible writes every module argument, O(secrets), O(env) and
    O(infisical.token) included, into a temporary file on the target (in a private
    directory, removed after the task). Enable pipelining (E(ANSIBLE_PIPELINING)) so they
    reach the module on its standard input only, or let the C(infisical) program use its
    own login on the host instead of O(infisical.token).
  - Environment variables are visible to the container's processes and to anyone who can
    inspect the container through the Docker socket (which is root-equivalent anyway).
  - O(command) runs as a non-root user with C(no-new-privileges), so C(sudo) inside the
    container does not work. The user exists in the container (a generated, read-only
    C(/etc/passwd) and C(/etc/group)), so C(whoami) and ssh find it.
seealso:
  - module: community.docker.docker_container
    description: General container management, without the run specification's fixed isolation.
  - name: Docker run reference
    description: What each isolation setting of a run means to the engine.
    link: https://docs.docker.com/reference/cli/docker/container/run/
  - name: infisical export
    description: The Infisical CLI command the O(infisical) option runs, with C(--format json).
    link: https://infisical.com/docs/cli/commands/export
"""

EXAMPLES = r"""
- name: Verify that the agents in the image start
  kuatecno.devenv.secure_run:
    image: devenv:1.2.0
    command: [claude, --version]
    # The module runs as root here (become): run the command as an unprivileged user.
    user: "65534:65534"
  register: claude_version

- name: Run a task on a checkout with limits and secrets from Infisical
  kuatecno.devenv.secure_run:
    image: devenv:1.2.0
    code_dir: /srv/alice/code/project
    user: "1000:1000"
    command: [make, test]
    memory: 2g
    cpus: 1
    pids_limit: 200
    infisical:
      project_id: 6f0c1d2e-0000-4000-8000-000000000000
      environment: dev
      token: "{{ vault_infisical_token }}"
    expected_rc: [0, 2]
    timeout: 900

- name: Run a command given as one string (split like a shell, not on commas)
  kuatecno.devenv.secure_run:
    image: devenv:1.2.0
    code_dir: /srv/alice/code/project
    user: "1000:1000"
    command: "git log -1 --format='%an, %s'"
  register: last_commit
  changed_when: false

- name: Show what would run, without running it
  kuatecno.devenv.secure_run:
    image: devenv:1.2.0
    command: [gemini, --version]
  check_mode: true
  register: planned
"""

RETURN = r"""
ran:
  description: Whether the command was run (false in check mode).
  returned: always
  type: bool
  sample: true
rc:
  description: Exit status of the command (137 when killed, for example by the memory limit).
  returned: when the command ran
  type: int
  sample: 0
stdout:
  description: Standard output of the command, at most O(output_limit) bytes, decoded as
    UTF-8 (invalid bytes replaced).
  returned: when the command ran
  type: str
  sample: "2.0.76 (Claude Code)"
stderr:
  description: Standard error of the command, bounded like RV(stdout).
  returned: when the command ran
  type: str
  sample: ""
stdout_lines:
  description: RV(stdout) split into lines, as M(ansible.builtin.command) returns it.
  returned: when the command ran
  type: list
  elements: str
  sample: ["2.0.76 (Claude Code)"]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran
  type: list
  elements: str
  sample: []
stdout_truncated:
  description: Whether stdout was longer than O(output_limit) and cut.
  returned: when the command ran
  type: bool
  sample: false
stderr_truncated:
  description: Whether stderr was longer than O(output_limit) and cut.
  returned: when the command ran
  type: bool
  sample: false
oom_killed:
  description: Whether the engine killed the command for reaching the memory limit.
  returned: when the command ran
  type: bool
  sample: false
timed_out:
  description: Whether the command was killed at O(timeout).
  returned: when the command ran
  type: bool
  sample: false
removed:
  description: Whether the engine reported the container removed before the module returned.
  returned: when the command ran
  type: bool
  sample: true
container:
  description:
    - The container's effective settings as read back from the engine after creation,
      with the values of O(env), O(secrets) and fetched secrets redacted.
    - C(config) and C(host_config) use the Docker Engine API's names.
  returned: when the command ran
  type: dict
  contains:
    id:
      description: Container id.
      type: str
      returned: always
    name:
      description: Container name.
      type: str
      returned: always
    image_id:
      description: Id of the image the container ran.
      type: str
      returned: always
    config:
      description: C(Image), C(Cmd), C(Entrypoint), C(WorkingDir), C(User), C(Labels),
        C(Tty), C(OpenStdin) and C(Env) (values of secret and O(env) names redacted).
      type: dict
      returned: always
    host_config:
      description: The engine's C(HostConfig) (limits, capabilities, security options,
        namespaces, mounts, auto-removal).
      type: dict
      returned: always
    mounts:
      description: The engine's C(Mounts) list (type, source, destination, mode, propagation).
      type: list
      elements: dict
      returned: always
  sample:
    id: 0f4d2c...
    name: devenv-7c1e2a9b
    config:
      User: "1000:1000"
      Env: ["HOME=/home/dev", "API_KEY=**REDACTED**"]
    host_config:
      CapDrop: [ALL]
      SecurityOpt: [no-new-privileges]
      Memory: 4294967296
      MemorySwap: 4294967296
      AutoRemove: true
spec:
  description:
    - The planned Docker Engine API create body (C(Image), C(Cmd), C(Env) with values
      redacted, C(HostConfig)) and the container name.
  returned: always
  type: dict
  sample:
    name: devenv-7c1e2a9b
    body:
      Image: devenv:1.2.0
      Cmd: [claude, --version]
      HostConfig:
        CapDrop: [ALL]
        ReadonlyRootfs: true
network_refused:
  description:
    - With O(network=allowlist), the destinations (C(HOST:PORT)) the egress proxy refused
      for this run, and how often; read from the proxy's log, which holds no request
      contents.
  returned: when the command ran with O(network=allowlist)
  type: list
  elements: dict
  sample: [{destination: "example.org:443", count: 2}]
proxy_stopped:
  description: Why the egress proxy stopped or restarted while the command ran (its
    requests through the proxy then failed), or null.
  returned: when the command ran with O(network=allowlist)
  type: str
  sample: null
msg:
  description: What happened, or why the module failed (C(memory limit reached), timeout,
    unexpected exit status), and the destinations the network policy refused.
  returned: always
  type: str
  sample: command exited with 0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kuatecno.devenv.plugins.module_utils import _secure_run

# Generated from the collection's settings table, so the module and the launcher share
# every setting's name and rules; DOCUMENTATION is held equal to it by the unit tests.
ARGUMENT_SPEC = _secure_run.argument_spec()


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    _secure_run.execute(module)


if __name__ == "__main__":
    main()
