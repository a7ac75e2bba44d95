"""The config models read no file: the loader (carpd.config.load) reads every file a
document names for validation (passfiles, the ifstated file), looks up which extras are
installed, and hands both in through validation context; the errors still name the
file, key, value and reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from carpd.config import ConfigError, extras, load_config
from carpd.config.document import ConfigFile
from carpd.config.load import read_files
from carpd.config.tables.ifstated import IfstatedConfig

CONFIG = Path(__file__).resolve().parents[2] / "carpd" / "config"
# The models: value types, file inputs, tables and the document.
MODELS = [
    CONFIG / "values.py",
    CONFIG / "files.py",
    CONFIG / "document.py",
    *sorted((CONFIG / "tables").glob("*.py")),
]
# Calls that read a file, the environment or the installed packages.
READS = {
    "open", "read_bytes", "read_text", "getenv", "environ", "scandir", "listdir", "find_spec",
}  # fmt: skip
# The modules that do it for them.
READERS = {"os", "importlib", "carpd.config.extras", "carpd.config.load"}

CARP = '[[carp]]\nname = "lan"\nvhid = 7\ncarpdev = "eth0"\naddresses = ["192.0.2.100"]\n'
PROGRAM = 'init-state a\nstate a {\n\tif lan.link.up\n\t\trun "true"\n}\n'


def names(tree: ast.AST) -> set[str]:
    """Every name and attribute the module uses, and every module it imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_models_read_no_file_and_no_environment() -> None:
    assert len(MODELS) > 5
    for path in MODELS:
        used = names(ast.parse(path.read_text())) & (READS | READERS)
        assert not used, f"{path.relative_to(CONFIG)} uses {used}"


def test_validation_takes_the_files_from_the_loader_not_the_disk(tmp_path: Path) -> None:
    """Neither file exists: the contents come from the context alone."""
    passfile, program = tmp_path / "lan.pass", tmp_path / "ifstated.conf"
    data = {
        "ifstated": {"file": "ifstated.conf"},
        "carp": [{"name": "lan", "vhid": 7, "carpdev": "eth0", "passfile": "lan.pass",
                  "addresses": ["192.0.2.100"]}],
    }  # fmt: skip
    files = {("bytes", passfile): b"s3cret\nnot this\n", ("text", program): PROGRAM}
    context = {"base_dir": tmp_path, "files": files}
    doc = ConfigFile.model_validate(data, context=context)
    assert doc.carp[0].password == b"s3cret"
    assert doc.ifstated.file == program


def test_the_loader_reads_each_file_a_document_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[[carp]] and [[pool]] passfiles (a systemd credential too) and the ifstated file,
    as bytes or text; a file it cannot read is kept with what reading it raised."""
    (tmp_path / "lan.pass").write_bytes(b"lan\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "pool").write_bytes(b"pool\n")
    (tmp_path / "ifstated.conf").write_text(PROGRAM)
    data = {
        "ifstated": {"file": "ifstated.conf"},
        "carp": [{"passfile": "lan.pass"}, {"passfile": "absent"}, {"passfile": ""}, "x"],
        "pool": [{"passfile": "%d/pool"}],
        "sync": {"files": [{"path": "lan.pass"}]},  # a path, not a file read at load time
    }
    files = read_files(ConfigFile, data, tmp_path, str(tmp_path / "creds"))
    assert set(files) == {
        ("text", tmp_path / "ifstated.conf"),
        ("bytes", tmp_path / "lan.pass"),
        ("bytes", tmp_path / "absent"),
        ("bytes", tmp_path / "creds" / "pool"),
    }
    assert files["bytes", tmp_path / "lan.pass"] == b"lan\n"
    assert files["text", tmp_path / "ifstated.conf"] == PROGRAM
    assert isinstance(files["bytes", tmp_path / "absent"], FileNotFoundError)


def test_a_file_problem_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    """The files are read before validation, so an unreadable passfile or a bad ifstated
    file is one more line of the same message, not a second round after the rest is fixed."""
    (tmp_path / "ifstated.conf").write_text("state a {\n\tif lan.link.up\n\t\tset-state b\n}\n")
    text = '[ifstated]\nfile = "ifstated.conf"\n' + CARP.replace("vhid = 7", "vhid = 300")
    path = tmp_path / "carpd.toml"
    path.write_text(text + 'passfile = "absent"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f'{path}: ifstated.file = "ifstated.conf": {tmp_path}/ifstated.conf:3:3: '
        "state 'b' not declared",
        f'{path}: carp "lan".vhid = 300: allowed range is 1-255',
        f'{path}: carp "lan".passfile = "absent": cannot read it: No such file or directory',
    ]


def test_a_missing_extra_is_named_as_the_loader_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[web] on and an [ifstated] file need libraries that are extras: without them the
    config is refused at load time, naming the key and the extra to install."""
    monkeypatch.setattr(extras, "find_spec", lambda name: None)  # nothing installed
    (tmp_path / "ifstated.conf").write_text(PROGRAM)
    path = tmp_path / "carpd.toml"
    path.write_text(
        '[web]\nenabled = true\n[ifstated]\nfile = "ifstated.conf"\n' + CARP + 'pass = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: web.enabled = true: needs aiohttp, prometheus_client, not installed: "
        "install carpd with its 'web' extra (pip install 'carpd[web]'; the Debian package "
        "has every extra)",
        f'{path}: ifstated.file = "ifstated.conf": needs lark, not installed: install carpd '
        "with its 'ifstated' extra (pip install 'carpd[ifstated]'; the Debian package has "
        "every extra)",
    ]


def test_an_ifstated_table_built_in_code_is_not_checked_against_the_disk(
    tmp_path: Path,
) -> None:
    """Without the loader there is no text to parse: the daemon reads the file when it
    starts it, and says then if it cannot."""
    assert IfstatedConfig(file=tmp_path / "later.conf").file == tmp_path / "later.conf"
