"""What a small ifstated.conf may cost (issue 26, item 12): macros that double each other
(exponential time), conditions nested thousands deep (RecursionError), and the parse
kept off the daemon's event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import carpd.daemon.observers.ifstated as runner
from carpd.config.model import IfstatedConfig
from carpd.ifstated import Engine, IfstatedError, parse
from carpd.ifstated.parse import MAX_DEPTH, MAX_EXPANDED, Not


def doubling(levels: int) -> str:
    """The review's shape: each macro is the one before it twice."""
    lines = ["m0 = x"] + [f"m{i} = $m{i - 1} $m{i - 1}" for i in range(1, levels)]
    return "\n".join([*lines, "state a {", '\trun "true"', "}", ""])


def test_macros_that_double_each_other_are_refused() -> None:
    # Unbounded, 20 levels lex some 2 million characters (seconds; 30 levels: hours).
    with pytest.raises(IfstatedError) as caught:
        parse(doubling(20), "/etc/ifstated.conf")
    assert caught.value.message == (
        f"macros expand to more than {MAX_EXPANDED // 1024} KiB in all (at '$m15')"
    )
    assert caught.value.line == 17


def test_a_macro_longer_than_64_kib_is_refused() -> None:
    text = "m = " + "x" * (64 * 1024 + 1) + '\nstate a {\n\trun "true"\n}\n'
    with pytest.raises(IfstatedError) as caught:
        parse(text, "/etc/ifstated.conf")
    assert str(caught.value) == (
        "/etc/ifstated.conf:1:1: macro 'm' is 65537 characters long, at most 64 KiB"
    )


def test_macros_of_a_real_file_still_expand() -> None:
    program = parse(doubling(8))  # 255 characters
    assert program.init_state == "a"


@pytest.mark.parametrize(
    "condition",
    [
        "!" * 3000 + "em0.link.up",  # the review's
        " && ".join(["em0.link.up"] * 3000),
        "(" * 100 + "!" * 100 + "em0.link.up" + ")" * 100,
    ],
)
def test_conditions_nested_thousands_deep_are_refused(condition: str) -> None:
    """They parsed, and then the engine (and every walk of the program) raised
    RecursionError."""
    text = f'state a {{\n\tif {condition}\n\t\trun "true"\n}}\n'
    with pytest.raises(IfstatedError) as caught:
        parse(text)
    assert caught.value.message == f"nested more than {MAX_DEPTH} deep (`!`, `&&`, `||` and `if`)"
    assert caught.value.line == 2


def test_ifs_nested_thousands_deep_are_refused() -> None:
    text = "state a {\n" + "\tif em0.link.up\n" * 3000 + '\trun "true"\n}\n'
    with pytest.raises(IfstatedError, match=f"nested more than {MAX_DEPTH} deep"):
        parse(text)


def test_the_deepest_allowed_condition_runs() -> None:
    text = f'state a {{\n\tif {"!" * (MAX_DEPTH - 1)}em0.link.up\n\t\trun "true"\n}}\n'
    program = parse(text)
    engine = Engine(program)
    engine.start()
    assert isinstance(program.states[0].body[0].test, Not)  # type: ignore[union-attr]
    assert engine.link_names() == {"em0"}


def test_the_runner_parses_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parse in the loop holds up every advert for as long as it takes."""
    conf = tmp_path / "ifstated.conf"
    conf.write_text('state a {\n\trun "true"\n}\n')
    threads = []

    def watched_parse(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return parse(*args)

    monkeypatch.setattr(runner, "parse", watched_parse)

    async def scenario() -> runner.Ifstated:
        return await runner.Ifstated.open(IfstatedConfig(file=conf), lambda event: None)

    ifstated = asyncio.run(scenario())
    assert ifstated.engine.link_names() == frozenset()
    assert threads and threads[0] is not threading.main_thread()
