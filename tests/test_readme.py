"""Every ```python block in README.md runs (examples cannot rot)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i, capsys):
    exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), {})


def test_readme_quickstart_has_exactly_two_commands():
    text = README.read_text()
    quick = text[text.index("## Quickstart"): text.index("## Composing")]
    assert quick.count("```bash") == 2
