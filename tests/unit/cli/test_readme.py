"""Every command in the README's shell blocks is one the checkout supports, pasted as is into a
new shell: `make <target>` of the Makefile, `source env.sh` (first in every block that runs
anything else), or a program env.sh puts on PATH whose arguments parse (`prefect-mlops` ones are
parsed by the CLI itself here; tests/integration/test_readme_shell.py runs the cheap ones)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer._click.exceptions import UsageError  # Typer's own (vendored) click
from typer.core import TyperGroup
from typer.main import get_command

from prefect_mlops.cli.app import app

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
#: Programs a README block may run after `source env.sh` (.venv/bin or the base system).
PROGRAMS = {"prefect-mlops", "prefect", "mlflow", "bentoml", "curl", "until", "kill"}


def shell_blocks(text: str) -> list[list[str]]:
    """The README's ```bash blocks, each as its commands (continuation lines and multi-line
    quoted arguments joined; comments dropped)."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        commands, pending = [], ""
        for line in body.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            if pending.rstrip().endswith("\\"):
                continue
            if words:
                commands.append(pending)
            pending = ""
        assert not pending, f"unterminated command in the README: {pending!r}"
        blocks.append(commands)
    return blocks


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, flags=re.M))


BLOCKS = shell_blocks(README.read_text())
COMMANDS = [(i, c) for i, block in enumerate(BLOCKS) for c in block]


def test_the_readme_has_shell_blocks() -> None:
    assert len(BLOCKS) >= 6 and len(COMMANDS) >= 20


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_block_that_runs_programs_starts_with_source_env_sh(index: int) -> None:
    block = BLOCKS[index]
    words = [shlex.split(c, comments=True) for c in block]
    if all(w[0] == "make" for w in words):
        return  # make sets its own environment
    assert block[0].split("#")[0].strip() == "source env.sh", block


@pytest.mark.parametrize(("index", "command"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_each_command_is_a_supported_form(index: int, command: str) -> None:
    words = shlex.split(command, comments=True)
    if words[-1] == "&":
        words = words[:-1]
    program = words[0]
    if program == "source":
        assert words == ["source", "env.sh"]
    elif program == "make":
        assert set(words[1:]) <= make_targets(), words
    else:
        assert program in PROGRAMS, f"{program!r}: not on the PATH that env.sh sets up"
    if program == "prefect-mlops":
        _parses(words[1:])


def _parses(args: list[str]) -> None:
    """``args`` name a prefect-mlops command and only options it has (values type-checked)."""
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands[args[0]]
    with command.make_context(f"prefect-mlops {args[0]}", args[1:]) as ctx:
        assert ctx.params is not None


def test_a_wrong_command_is_refused() -> None:
    """The parse check can fail: an unknown option or command is an error."""
    with pytest.raises(UsageError):
        _parses(["train", "--config", "x.yaml", "--no-such-option"])
    with pytest.raises(KeyError):
        _parses(["trian"])
    assert "nonexistent" not in make_targets()
