"""The Debian package scripts/package builds, installed with apt into a clean Debian 12 root
made by debootstrap (a chroot, not this machine), checked there, and its carpd run in a
namespace lab against a carpd from the checkout: each takes over from the other's crash.

CARPD_DEB=path/carpd_X_ARCH.deb tests a package already built; otherwise the module builds
one, while debootstrap makes the root (both mostly wait on the network). Every command in
the root runs in a mount namespace of its own (unshare, or the lab's ip netns exec), so its
mounts (/proc, /sys, the lab's folder) vanish with it and never reach this machine; the
root is removed at the end, after checking that nothing is mounted in it.

The tests share one root and run in the file's order; the last one purges the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from carpd_lab import bounds
from carpd_lab.booted import Booted, booted
from carpd_lab.cluster import Node, VhidSpec, line_time, render_config, start_master_first
from carpd_lab.netlab import Lab, LogWatch

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "carpd.toml"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
MAN_PAGES = (("8", "carpd"), ("8", "carpctl"), ("5", "carpd.toml"))
# The packages the checks need besides the package's own dependencies: man pages rendered,
# and a systemd to boot the root with (systemd-nspawn) and run the unit under.
INCLUDE = ("man-db", "systemd", "systemd-sysv", "dbus")
# The environment of every command in the root: nothing of this machine's (no pyenv, no
# virtual environment), as systemd or a login shell would give.
ROOT_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "DEBIAN_FRONTEND=noninteractive",
    "PYTHONUNBUFFERED=1",
    "MANWIDTH=80",
)

# Wait limits (never measured claims), each for what it covers:
# scripts/package: a virtual environment, some 20 libraries from PyPI, 50 MB into a .deb.
# About 100 s here.
BUILD_LIMIT = 900
# debootstrap --variant=minbase: some 100 packages from the mirror, unpacked and set up.
# About 45 s here.
DEBOOTSTRAP_LIMIT = 600
# apt-get install of the package and its dependencies (Python) from the mirror, or apt's
# removal. About 15 s here.
APT_LIMIT = 300
# One command in the root: an interpreter starting cold (pydantic imported), man and groff.
RUN_LIMIT = 60
# The root booted by systemd-nspawn until its boot ends (carpd's unit started and READY
# included), or powered off. About 5 s here.
BOOT_LIMIT = 120
# systemd-analyze security's exposure score for the unit (0 safest, 10 least): 5.5 before
# issue 26's sandbox, 2.8 after (systemd 252). It is computed from the unit, not measured.
EXPOSURE_LIMIT = 3.0

# The first test pays for the build, debootstrap and the install (its fixtures): pytest's
# 120 s per test (pyproject.toml) would cut it short on a cold machine with an empty pip
# cache, so every test here may take as long as those limits together.
pytestmark = pytest.mark.timeout(BUILD_LIMIT + APT_LIMIT + RUN_LIMIT)


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def show(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal at once, past pytest's capture (the phases' timings)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[deb] {line}", flush=True)


def mirror() -> str:
    """The Debian mirror this machine's apt uses for bookworm (deb822 sources)."""
    for stanza in SOURCES.read_text().split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
            return fields["uris"].split()[0]
    raise AssertionError(f"{SOURCES}: no deb source for {SUITE}")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def remove_root(root: Path) -> None:
    """Remove a root that nothing may be mounted in (unmount what is, and say so)."""
    left = mounts_under(root)
    for point in sorted(left, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)
    assert not mounts_under(root), f"still mounted under {root}: {mounts_under(root)}"
    shutil.rmtree(root)
    assert not left, f"left mounted under {root} (now unmounted): {left}"


def in_root(
    root: Path, *argv: str, check: bool = True, timeout: float = RUN_LIMIT
) -> subprocess.CompletedProcess[str]:
    """Run a command chrooted in ``root``, with /proc, in a mount namespace of its own."""
    script = 'root=$1; shift; mount -t proc proc "$root/proc" && exec chroot "$root" "$@"'
    argv_ = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    result = subprocess.run(
        [*argv_, str(root), "env", "-i", *ROOT_ENV, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"in the root: {' '.join(argv)}: exit {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@contextlib.contextmanager
def spawned(argv: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A command in its own process group, killed (the group, by its id) if still
    running when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def build_package(out: Path) -> Path:
    result = subprocess.run(
        [str(ROOT / "scripts" / "package"), str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_LIMIT,
    )
    assert result.returncode == 0, f"scripts/package failed:\n{result.stdout}\n{result.stderr}"
    (deb,) = out.glob(f"carpd_{version()}_*.deb")
    return deb


@pytest.fixture(scope="module")
def root(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A clean Debian 12 root with the package installed by apt-get (its path here)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, chroot, mount namespaces")
    for tool in ("debootstrap", "dpkg-buildpackage", "dh_virtualenv", "unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (scripts/setup installs it)")
    work = Path(tempfile.mkdtemp(prefix="carpd-deb-", dir="/var/tmp"))
    target = work / "root"
    try:
        given = os.environ.get("CARPD_DEB")
        start, started = time.monotonic(), time.time()
        # debootstrap mounts /proc and /sys in the root while it works: in a mount
        # namespace of its own, they go with it however it ends.
        bootstrap = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(INCLUDE)}",
            SUITE,
            str(target),
            mirror(),
        ]
        with spawned(bootstrap, work / "debootstrap.log") as proc:
            if given:
                deb = Path(given).resolve()
                show(request, f"package: {deb} (CARPD_DEB)")
            else:
                deb = build_package(work)
                show(request, f"package: built in {time.monotonic() - start:.0f} s")
            try:
                rc = proc.wait(timeout=DEBOOTSTRAP_LIMIT - (time.monotonic() - start))
            except subprocess.TimeoutExpired:
                rc = None
            log = (work / "debootstrap.log").read_text(errors="replace")
            assert rc == 0, f"debootstrap: exit {rc}:\n{log[-3000:]}"
        # Its log's last line is its last act.
        took = (work / "debootstrap.log").stat().st_mtime - started
        show(request, f"debootstrap (alongside): {took:.0f} s")
        # No service starts in the root (there is no systemd in it anyway).
        policy = target / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy(deb, target / "tmp" / deb.name)
        t = time.monotonic()
        # As the docs say: apt-get install ./carpd_*.deb, with what the package depends on
        # from the mirror (debootstrap left its package lists).
        in_root(
            target, "sh", "-c", f"cd /tmp && apt-get install -y ./{deb.name}", timeout=APT_LIMIT
        )
        show(request, f"apt-get install: {time.monotonic() - t:.0f} s")
        yield target
    finally:
        try:
            if target.exists():
                remove_root(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def test_the_package_is_named_and_versioned_as_carpd_says(root: Path) -> None:
    arch = in_root(root, "dpkg", "--print-architecture").stdout.strip()
    status = in_root(
        root, "dpkg-query", "-W", "-f", "${Status} ${Version} ${Architecture}", "carpd"
    )
    assert status.stdout == f"install ok installed {version()} {arch}"
    assert in_root(root, "carpd", "--version").stdout.strip() == f"carpd {version()}"


def test_carpd_and_carpctl_are_on_the_path_from_the_packaged_environment(root: Path) -> None:
    assert os.readlink(root / "usr/sbin/carpd") == "/opt/venvs/carpd/bin/carpd"
    assert os.readlink(root / "usr/bin/carpctl") == "/opt/venvs/carpd/bin/carpctl"
    # Made with Debian's python3, which the root got from the package's dependencies.
    assert os.readlink(root / "opt/venvs/carpd/bin/python3.11") == "/usr/bin/python3.11"
    where = in_root(
        root, "/opt/venvs/carpd/bin/python", "-c", "import carpd, sys; print(carpd.__file__)"
    )
    assert where.stdout.startswith("/opt/venvs/carpd/lib/python3.11/site-packages/carpd/")
    ctl = in_root(root, "carpctl", "--help")
    assert ctl.stdout.startswith("usage: carpctl")
    assert re.search(r"^\s+status\s", ctl.stdout, re.M)


def test_the_shipped_example_checks_and_a_broken_one_is_refused(root: Path) -> None:
    example = "/usr/share/doc/carpd/examples/carpd.toml"
    assert (root / example.lstrip("/")).read_text() == EXAMPLE.read_text()
    vhids = len(re.findall(r"^\[\[carp\]\]", EXAMPLE.read_text(), re.M))
    # The example is meant for no node in particular: checked as a file for another node.
    ok = in_root(root, "carpd", "--config", example, "--check", "--other-node")
    assert ok.stdout.strip() == (
        f"carpd: {example}: configuration OK ({vhids} vhid(s)), as a file for another node "
        "(this node not checked)"
    )
    # On this node (the clean root), --check also looks for what the file names: the
    # example's hooks are not there.
    here = in_root(root, "carpd", "--config", example, "--check", check=False)
    assert here.returncode == 2
    assert 'carp "carp1".up = "/etc/carpd/vip-up.sh": no such file' in here.stderr
    # A bad value is refused in either mode: the packaged validation at work.
    bad = root / "tmp" / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("vhid = 1\n", "vhid = 300\n", 1))
    for mode in ((), ("--other-node",)):
        refused = in_root(root, "carpd", "--config", "/tmp/bad.toml", "--check", *mode, check=False)
        assert refused.returncode == 2
        assert 'carp "carp1".vhid = 300: allowed range is 1-255' in refused.stderr


def test_the_alerting_rules_and_the_dashboard_are_shipped_as_in_packaging(root: Path) -> None:
    """docs/status-page.md loads them from /usr/share/carpd (debian/carpd.install)."""
    for shipped, source in (
        ("usr/share/carpd/prometheus/carpd-alerts.yml", "packaging/prometheus/carpd-alerts.yml"),
        ("usr/share/carpd/grafana/carpd-dashboard.json", "packaging/grafana/carpd-dashboard.json"),
    ):
        assert (root / shipped).read_bytes() == (ROOT / source).read_bytes(), shipped


def test_the_package_has_every_extra_the_status_page_and_ifstated(root: Path) -> None:
    (root / "tmp" / "ifstated.conf").write_text('init-state one\nstate one {\n\trun "true"\n}\n')
    (root / "tmp" / "extras.toml").write_text(
        EXAMPLE.read_text() + '\n[web]\nenabled = true\n\n[ifstated]\nfile = "ifstated.conf"\n'
    )
    checked = in_root(
        root, "carpd", "--config", "/tmp/extras.toml", "--check", "--other-node", check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stdout


def test_the_unit_is_installed_enabled_and_waits_for_a_configuration(root: Path) -> None:
    unit = (root / "lib/systemd/system/carpd.service").read_text()
    assert "\nExecStartPre=/usr/sbin/carpd --config /etc/carpd/carpd.toml --check\n" in unit
    assert "\nExecStart=/usr/sbin/carpd --config /etc/carpd/carpd.toml\n" in unit
    assert "\nConditionFileNotEmpty=/etc/carpd/carpd.toml\n" in unit
    assert "/usr/local" not in unit
    # The rest is packaging/carpd.service as it is.
    source = (ROOT / "packaging" / "carpd.service").read_text()
    assert unit.split("[Unit]", 1)[1] == source.split("[Unit]", 1)[1].replace(
        "=/usr/local/bin/carpd ", "=/usr/sbin/carpd "
    )
    wants = root / "etc/systemd/system/multi-user.target.wants/carpd.service"
    assert os.readlink(wants) == "/lib/systemd/system/carpd.service"
    assert not (root / "etc/carpd/carpd.toml").exists()


def test_an_upgrade_restarts_carpd_after_and_only_a_removal_stops_it(root: Path) -> None:
    """The maintainer scripts (dh_installsystemd's restart-after-upgrade): no stop before an
    upgrade (the old carpd keeps its role while files are replaced), one restart after
    it, a start on installation (skipped by the unit while unconfigured), a stop on
    removal. There is no systemd in the root to run them: what they would run is read."""
    info = root / "var/lib/dpkg/info"
    prerm = (info / "carpd.prerm").read_text()
    stops = [line for line in prerm.splitlines() if "deb-systemd-invoke stop" in line]
    assert stops == ["\tdeb-systemd-invoke stop 'carpd.service' >/dev/null || true"]
    guard = prerm[: prerm.index(stops[0])].rsplit("\n", 2)[-2]
    assert '[ "$1" = remove ]' in guard, guard
    postinst = (info / "carpd.postinst").read_text()
    assert "\t\t\t_dh_action=restart\n\t\telse\n\t\t\t_dh_action=start\n" in postinst
    assert "deb-systemd-invoke $_dh_action 'carpd.service'" in postinst
    assert "deb-systemd-helper enable 'carpd.service'" in postinst


def group_id(root: Path, name: str) -> int | None:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    return None


def test_etc_carpd_belongs_to_root_and_the_group_carpd(root: Path) -> None:
    gid = group_id(root, "carpd")
    assert gid is not None and gid < 1000  # a system group
    st = (root / "etc/carpd").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, 0o750)


def test_each_man_page_renders_without_a_warning(root: Path) -> None:
    for section, page in MAN_PAGES:
        assert (root / f"usr/share/man/man{section}/{page}.{section}.gz").is_file(), page
        shown = in_root(root, "man", "--warnings", section, page, check=False)
        assert shown.returncode == 0, f"{page}({section}): {shown.stderr}"
        assert shown.stderr == "", f"{page}({section}) warns: {shown.stderr}"
        assert page.upper() in shown.stdout.splitlines()[0].upper()


@dataclass
class PackagedNode(Node):
    """A node whose carpd is the root's /usr/sbin/carpd, chrooted in its namespace.

    ip netns exec gives the command a mount namespace of its own with / made a slave: the
    lab's folder bound at the same path inside the root (config, socket and state where
    the lab expects them), /proc and the namespace's /sys there, then chroot execs
    carpd, so the pid stays carpd's and the mounts go when it does.
    """

    root: Path = Path("/nonexistent")

    def start(
        self,
        echo: bool = False,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        self.write_config()
        script = (
            'set -e; root=$1 tmp=$2; shift 2; mkdir -p "$root$tmp"; '
            'mount --bind "$tmp" "$root$tmp"; mount -t proc proc "$root/proc"; '
            'mount --bind /sys "$root/sys"; exec chroot "$root" "$@"'
        )
        argv = ["sh", "-c", script, "sh", str(self.root), str(self.lab.tmp)]
        argv += ["env", "-i", *ROOT_ENV, "/usr/sbin/carpd", "--config", str(self.config)]
        self.proc = self.host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout, sys.stdout if echo else None, f"  [{self.name}] ")


VIP = "192.0.2.100"


def test_the_packaged_carpd_and_one_from_the_checkout_take_over_from_each_other(
    root: Path,
) -> None:
    with Lab("deb") as lab:
        pkg_host = lab.add_host("pkg", "192.0.2.1/24")
        src_host = lab.add_host("src", "192.0.2.2/24")
        # The packaged carpd names the group the package made (this machine has none).
        packaged = PackagedNode(
            lab,
            pkg_host,
            [VhidSpec(addresses=(f"{VIP}/24",))],
            global_={"control_group": "carpd"},
            root=root,
        )
        checkout = Node(lab, src_host, [VhidSpec(addresses=(f"{VIP}/24",), advskew=100)])

        # The packaged carpd is MASTER, and the checkout's BACKUP hears its adverts.
        start_master_first(packaged, checkout)
        assert packaged.proc is not None
        pid = packaged.proc.pid
        assert os.readlink(f"/proc/{pid}/root") == str(root)
        assert "/usr/sbin/carpd" in Path(f"/proc/{pid}/cmdline").read_text()
        pkg_host.wait_address(VIP)
        assert not src_host.has_address(VIP)
        gid = group_id(root, "carpd")
        assert packaged.socket.stat().st_gid == gid
        assert packaged.states() == {"carp1": "MASTER"}
        # Its mounts (as it sees them, from its root) are in its own namespace only.
        theirs = [
            line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        ]
        assert {"/proc", "/sys", str(lab.tmp)} <= set(theirs)
        assert mounts_under(root) == []

        # A crash (every process of its box stopped, cables pulled, killed): the checkout's
        # carpd takes over within its master-down interval.
        mark = checkout.mark()
        lab.crash(pkg_host)
        checkout.wait_state("MASTER", timeout=bounds.takeover(checkout.master_down), start=mark)
        src_host.wait_address(VIP)
        assert packaged.proc.wait(timeout=bounds.COMMAND) == -signal.SIGKILL
        assert not Path(f"/proc/{pid}").exists()

        # The packaged carpd again, as BACKUP (no preemption): it hears the checkout's
        # adverts, and takes over when that one crashes in turn.
        lab.cut(pkg_host, on=False)
        packaged.start()
        packaged.wait_state("BACKUP", timeout=bounds.START_UP)
        packaged.wait_ready()
        packaged.wait_counter(
            "adverts_received", 1, timeout=checkout.vhids[0].advert_interval + bounds.REACTION
        )
        assert not pkg_host.has_address(VIP)
        lab.crash(src_host)
        packaged.wait_state("MASTER", timeout=bounds.takeover(packaged.master_down))
        pkg_host.wait_address(VIP)
    assert mounts_under(root) == []


def newer_package(root: Path) -> str:
    """The package in the root's /tmp again as version X+1 (the same files, as a newer
    build of the same version would have): its name there."""
    (deb,) = (root / "tmp").glob(f"carpd_{version()}_*.deb")
    arch = deb.name.rsplit("_", 1)[1].removesuffix(".deb")
    newer = f"carpd_{version()}+1_{arch}.deb"
    tree = root / "tmp" / "newer"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, timeout=RUN_LIMIT)
    control = tree / "DEBIAN" / "control"
    control.write_text(
        control.read_text().replace(f"\nVersion: {version()}\n", f"\nVersion: {version()}+1\n")
    )
    subprocess.run(
        ["dpkg-deb", "-Znone", "-b", str(tree), str(root / "tmp" / newer)],
        check=True,
        capture_output=True,
        timeout=RUN_LIMIT,
    )
    shutil.rmtree(tree)
    return newer


def test_an_upgrade_under_a_running_master_then_its_restart_hands_over(root: Path) -> None:
    """What apt install ./carpd_newer.deb does on a node (dh_installsystemd's
    restart-after-upgrade): the running carpd's files are replaced under it, then systemd
    restarts it: SIGTERM (the MASTER hands over to its peer and removes its addresses),
    then the new carpd, which comes up BACKUP. No systemd in a chroot: the test signals and
    starts carpd as the unit would."""
    newer = newer_package(root)
    with Lab("upg") as lab:
        pkg_host = lab.add_host("pkg", "192.0.2.1/24")
        src_host = lab.add_host("src", "192.0.2.2/24")
        packaged = PackagedNode(lab, pkg_host, [VhidSpec(addresses=(f"{VIP}/24",))], root=root)
        checkout = Node(lab, src_host, [VhidSpec(addresses=(f"{VIP}/24",), advskew=100)])
        start_master_first(packaged, checkout)

        in_root(root, "sh", "-c", f"cd /tmp && apt-get install -y ./{newer}", timeout=APT_LIMIT)
        status = in_root(root, "dpkg-query", "-W", "-f", "${Version}", "carpd")
        assert status.stdout == f"{version()}+1"
        # The old carpd, its files replaced, still runs and answers.
        assert packaged.states() == {"carp1": "MASTER"}
        assert pkg_host.has_address(VIP)

        mark = checkout.mark()
        stopped = time.time()
        assert packaged.proc is not None
        packaged.signal(signal.SIGTERM)
        _, line = checkout.wait_state("MASTER", timeout=checkout.master_down, start=mark)
        assert packaged.proc.wait(timeout=bounds.COMMAND) == 0
        # A handover, not a timeout: after its last advert (at most one advert interval
        # before the signal) the backup would wait its whole master-down interval.
        by_timeout = checkout.master_down - packaged.vhids[0].advert_interval
        took = line_time(line) - stopped
        assert took < by_timeout, f"MASTER {took:.3f} s after SIGTERM: not handed over"
        assert not pkg_host.has_address(VIP)  # the stopped carpd left no address
        src_host.wait_address(VIP)

        packaged.start()  # the new carpd
        packaged.wait_state("BACKUP", timeout=bounds.START_UP)
        packaged.wait_ready()
        packaged.wait_counter(
            "adverts_received", 1, timeout=checkout.vhids[0].advert_interval + bounds.REACTION
        )
        assert not pkg_host.has_address(VIP)
    assert mounts_under(root) == []


def carpd_status(box: Booted) -> dict[str, str]:
    """carpctl in the container: each vhid's state."""
    out = box.run("carpctl", "--json", "status").stdout
    return {v["name"]: v["state"] for v in json.loads(out)["vhosts"]}


def main_pid(box: Booted) -> int:
    return int(box.show("carpd.service", "MainPID")["MainPID"])


def wait_restarted(box: Booted, restarts: int, timeout: float) -> dict[str, str]:
    """Until systemd has restarted carpd ``restarts`` times and the unit is active again."""
    deadline = time.monotonic() + timeout
    while True:
        unit = box.show("carpd.service", "ActiveState", "NRestarts", "MainPID")
        if unit["ActiveState"] == "active" and int(unit["NRestarts"]) >= restarts:
            return unit
        if time.monotonic() > deadline:
            raise TimeoutError(f"carpd.service not restarted within {timeout} s: {unit}")
        time.sleep(0.05)


def test_the_enabled_unit_runs_carpd_at_boot_in_its_sandbox_and_systemd_restarts_it(
    root: Path, tmp_path: Path
) -> None:
    """The packaged unit under a real systemd (the root booted by systemd-nspawn in a lab
    namespace): configured, the enabled unit starts carpd at boot, READY comes, carpd runs
    inside the unit's sandbox (seccomp, no new privileges, three capabilities) and becomes
    MASTER; a crash is restarted by systemd and the restarted carpd comes up BACKUP of the
    checkout's carpd, which took over; systemctl stop ends it cleanly."""
    config = root / "etc/carpd/carpd.toml"
    nspawn_run = Path("/run/systemd/nspawn")  # nspawn's folders on this machine
    had_nspawn_run = nspawn_run.exists()
    spec = VhidSpec(addresses=(f"{VIP}/24",))
    config.write_text(render_config(Path("/run/carpd/carpd.sock"), [spec], control_group="carpd"))
    try:
        with Lab("sd") as lab:
            pkg_host = lab.add_host("pkg", "192.0.2.1/24")
            src_host = lab.add_host("src", "192.0.2.2/24")
            checkout = Node(lab, src_host, [VhidSpec(addresses=(f"{VIP}/24",), advskew=100)])
            with booted(root, pkg_host.ns, tmp_path / "boot.log", BOOT_LIMIT) as box:
                unit = box.show("carpd.service", "ActiveState", "SubState", "NRestarts")
                assert unit == {"ActiveState": "active", "SubState": "running", "NRestarts": "0"}
                # Alone on its segment, it takes the vhid after its master-down interval.
                box.run("carpctl", "--json", "status")  # READY came: the socket answers
                pkg_host.wait_address(VIP, timeout=bounds.first_master(spec.master_down))
                assert carpd_status(box) == {"carp1": "MASTER"}

                # The sandbox: what the kernel says of the running carpd.
                pid = box.host_pid(main_pid(box))
                status = dict(
                    line.split(":\t", 1)
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ":\t" in line
                )
                assert status["Seccomp"] == "2"  # SystemCallFilter= (a filter, mode 2)
                assert status["NoNewPrivs"] == "1"
                chown_net_admin_and_raw = (1 << 0) | (1 << 12) | (1 << 13)
                assert int(status["CapEff"], 16) == chown_net_admin_and_raw
                assert int(status["CapBnd"], 16) == chown_net_admin_and_raw
                exposure = box.run("systemd-analyze", "security", "carpd.service").stdout
                score = float(
                    re.findall(r"exposure level for carpd.service: ([0-9.]+)", exposure)[0]
                )
                assert score <= EXPOSURE_LIMIT, exposure[-2000:]

                # The checkout's carpd joins as BACKUP and hears the packaged one.
                checkout.start()
                checkout.wait_state("BACKUP", timeout=bounds.START_UP)
                checkout.wait_ready()
                checkout.wait_counter(
                    "adverts_received", 1, timeout=spec.advert_interval + bounds.REACTION
                )

                # A crash: the checkout takes over, systemd restarts carpd (Restart=on-failure),
                # which comes up BACKUP and hears the new MASTER.
                mark = checkout.mark()
                before = main_pid(box)
                box.run("systemctl", "kill", "--kill-whom=main", "--signal=SEGV", "carpd.service")
                checkout.wait_state(
                    "MASTER", timeout=bounds.takeover(checkout.master_down), start=mark
                )
                restart_sec = int(
                    box.show("carpd.service", "RestartUSec")["RestartUSec"].rstrip("s")
                )
                unit = wait_restarted(box, 1, timeout=restart_sec + bounds.START_UP)
                assert unit["NRestarts"] == "1" and int(unit["MainPID"]) != before
                assert carpd_status(box) == {"carp1": "BACKUP"}
                assert not pkg_host.has_address(VIP)

                # systemctl stop: SIGTERM, a clean exit, the unit inactive, not failed.
                box.run("systemctl", "stop", "carpd.service", timeout=BOOT_LIMIT)
                unit = box.show("carpd.service", "ActiveState", "Result")
                assert unit == {"ActiveState": "inactive", "Result": "success"}
            checkout.stop()
    finally:
        config.unlink()
    assert mounts_under(root) == []
    assert nspawn_run.exists() == had_nspawn_run  # nothing of the boot left behind


def test_remove_keeps_the_group_and_purge_removes_state_and_group(root: Path) -> None:
    """Last: it takes the package away."""
    for made in ("var/lib/carpd/maintenance", "run/carpd/carpd.sock"):
        (root / made).parent.mkdir(parents=True, exist_ok=True)
        (root / made).write_text("")
    (root / "etc/carpd/carpd.toml").write_text(EXAMPLE.read_text())
    in_root(root, "apt-get", "remove", "-y", "carpd", timeout=APT_LIMIT)
    assert not (root / "usr/sbin/carpd").exists() and not (root / "opt/venvs/carpd").exists()
    assert group_id(root, "carpd") is not None
    assert (root / "var/lib/carpd/maintenance").exists()  # state kept until a purge
    in_root(root, "apt-get", "purge", "-y", "carpd", timeout=APT_LIMIT)
    assert group_id(root, "carpd") is None
    assert not (root / "var/lib/carpd").exists() and not (root / "run/carpd").exists()
    # The administrator's configuration stays, no longer in a group that is gone.
    st = (root / "etc/carpd").stat()
    assert (root / "etc/carpd/carpd.toml").exists() and st.st_gid == 0
    assert not (root / "etc/systemd/system/multi-user.target.wants/carpd.service").exists()
