"""Every Python code block of the README runs as written, each on its own.

A user copies one block into a fresh interpreter; so each block is executed in a fresh
namespace (no names carried over from the block before), in a temporary directory (the
blocks may write files such as ``posterior.nc``).
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    # the quick start (EM) and the Bayesian snippet at least
    assert len(BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[i], f"README.md python block {i}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - the README's own code
