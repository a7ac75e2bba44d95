"""packaging/carpd-drill.service and carpd-drill.timer: `systemd-analyze verify` accepts
both (with carpd.service beside them, which the drill requires, and every Exec binary
pointed at one that exists here), a broken copy of the timer is refused by the same
command (so its silence means something), the units say what the drill needs (a oneshot
of `carpctl drill`, only while carpd runs, monthly, persistent, spread), and the Debian
package ships them where nothing enables or starts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGING = ROOT / "packaging"
SERVICE = PACKAGING / "carpd-drill.service"
TIMER = PACKAGING / "carpd-drill.timer"
EXEC_START = '/usr/bin/carpctl drill --config /etc/carpd/carpd.toml -m "scheduled drill"'


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found is not None, "needs systemd-analyze (Debian package systemd; scripts/setup)"
    return found


def verify(tmp_path: Path, timer: str | None = None) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of both units copied to tmp_path, with carpd.service from
    packaging/ beside them (verify looks for a unit's dependencies in its directory too)
    and the binaries, which are not installed here, replaced by true(1): verify refuses
    an ExecStart= whose file does not exist. --man=no: the Documentation= man page is
    built by the Debian package, not installed here."""
    true = shutil.which("true")
    assert true is not None
    units = {
        "carpd.service": (PACKAGING / "carpd.service").read_text(),
        SERVICE.name: SERVICE.read_text(),
        TIMER.name: timer if timer is not None else TIMER.read_text(),
    }
    for name, text in units.items():
        text = text.replace("/usr/local/bin/carpd", true).replace("/usr/bin/carpctl", true)
        execs = re.findall(r"^Exec\w*=(\S+)", text, re.M)
        assert set(execs) <= {true, "/bin/kill"}, (name, execs)  # the timer has none
        (tmp_path / name).write_text(text)
    return subprocess.run(
        [analyze(), "verify", "--man=no", str(tmp_path / SERVICE.name), str(tmp_path / TIMER.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_analyze_verify_accepts_both_units_without_a_word(tmp_path: Path) -> None:
    r = verify(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout + r.stderr == ""  # not even a warning (an unknown key is only one)


def test_systemd_analyze_verify_refuses_a_timer_with_a_bad_calendar(tmp_path: Path) -> None:
    text = TIMER.read_text()
    assert "\nOnCalendar=monthly\n" in text
    r = verify(tmp_path, text.replace("\nOnCalendar=monthly\n", "\nOnCalendar=monthy\n"))
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Failed to parse calendar specification" in r.stderr


def test_systemd_analyze_verify_warns_of_an_unknown_key(tmp_path: Path) -> None:
    text = TIMER.read_text().replace("[Timer]\n", "[Timer]\nPersistant=true\n")
    r = verify(tmp_path, text)
    assert "Unknown key 'Persistant'" in r.stderr, r.stderr


def settings(text: str) -> dict[str, dict[str, list[str]]]:
    """Each section's keys and their values, in order (comments and blank lines out)."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = out.setdefault(m.group(1), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return out


def test_the_service_runs_one_drill_and_only_while_carpd_runs() -> None:
    s = settings(SERVICE.read_text())
    assert s["Service"]["Type"] == ["oneshot"]
    assert s["Service"]["ExecStart"] == [EXEC_START]
    # Requisite=: fails at once without carpd rather than starting one that was stopped.
    assert s["Unit"]["Requisite"] == ["carpd.service"]
    assert s["Unit"]["After"] == ["carpd.service"]
    assert "Requires" not in s["Unit"]
    # Started by the timer only: no [Install], so it is a static unit that neither
    # `systemctl enable` nor a package's postinst starts.
    assert "Install" not in s
    # The credential the [[cluster.peer]] passfile may be: shown, commented out.
    assert re.search(r"^#LoadCredential=\S+:/etc/carpd/\S+$", SERVICE.read_text(), re.M)


def test_the_timer_is_monthly_persistent_and_spread() -> None:
    s = settings(TIMER.read_text())
    assert s["Timer"]["OnCalendar"] == ["monthly"]
    assert s["Timer"]["Persistent"] == ["true"]
    assert s["Timer"]["RandomizedDelaySec"] == ["1h"]
    assert s["Install"]["WantedBy"] == ["timers.target"]
    # The default unit is carpd-drill.service (the timer's name): no Unit= to go stale.
    assert "Unit" not in s["Timer"]
    # How to choose another schedule, in the file itself.
    assert "systemctl edit carpd-drill.timer" in TIMER.read_text()


def test_the_debian_package_ships_the_units_where_nothing_enables_them() -> None:
    """dh_installsystemd (debian/rules, with no unit named) enables and starts every
    unit the package has in lib/systemd/system: the drill's go to /usr/share/carpd/
    instead, for the administrator to link and enable on one node."""
    install = (ROOT / "debian" / "carpd.install").read_text()
    lines = [line.split() for line in install.splitlines() if line and not line.startswith("#")]
    shipped = {src: dest for src, dest in lines}
    assert shipped["packaging/carpd-drill.service"] == "usr/share/carpd/systemd/"
    assert shipped["packaging/carpd-drill.timer"] == "usr/share/carpd/systemd/"
    assert not any("systemd/system" in dest for dest in shipped.values())
    debian = {p.name for p in (ROOT / "debian").iterdir()}
    assert not {n for n in debian if "drill" in n}  # no debian/carpd.carpd-drill.timer
    assert "drill" not in (ROOT / "debian" / "rules").read_text()
