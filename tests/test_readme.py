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


#: blocks that another test runs as written and checks the results of: run once, there
#: (the galaxy block: tests/bayes/test_modes.py, against an exact reference)
RUN_ELSEWHERE = {"galaxy": lambda b: 'sampler="smc"' in b and "galaxy" in b}


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(i, tmp_path, monkeypatch):
    for name, match in RUN_ELSEWHERE.items():
        if match(BLOCKS[i]):
            pytest.skip(f"the {name} block runs in the test named beside RUN_ELSEWHERE")
    if "posterior_k(" in BLOCKS[i]:
        # a third of p(K | data)'s default work (500 particles x 2 runs, 50,000 importance
        # draws): this checks that the block runs; the accuracy of the default is
        # tested in tests/bayes/test_posterior_k.py
        import functools

        import bayesgmm

        monkeypatch.setattr(bayesgmm, "posterior_k", functools.partial(
            bayesgmm.posterior_k, n_particles=500, n_runs=2, n_importance=50_000))
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[i], f"README.md python block {i}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - the README's own code
