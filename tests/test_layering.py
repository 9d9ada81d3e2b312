"""Imports point one way (ARCHITECTURE.md): a test walking every import of the package.

Lazy imports inside functions count too: an import anywhere in a module is a
dependency of that module.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"

#: maximum likelihood: must never import the Bayesian half
EM = {"em", "_em_core", "_kernels", "_kernels_md", "selection", "_fastmath", "data"}
#: the Bayesian model, its densities and its samplers
BAYES = {"model", "inference", "_logdensity", "_pair_coords", "_nutpie_model", "_logp_op",
         "_mixture_kernels", "_transforms"}
#: take a finished DataTree; they never build or sample a model
READERS = {"posterior", "diagnostics", "_mixture_checks", "_verdict", "_rank", "_stored",
           "plots", "report"}
#: the command line is the one place that imports everything
CLI = {"cli", "cli_fit", "__main__"}


def package_imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bayesgmm."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("bayesgmm."))
    return found - {"__version__"}


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_the_walker_sees_imports():
    # a check that cannot fail is no check: the walker finds known edges, lazy ones too
    assert "inference" in package_imports("cli_fit")  # inside a function
    assert {"_kernels", "_em_core"} <= package_imports("em")
    assert "_fastmath" in package_imports("_mixture_kernels")
    assert set(EM | BAYES | READERS | CLI) <= set(MODULES)


@pytest.mark.parametrize("module", sorted(EM))
def test_em_never_imports_the_bayesian_half(module):
    assert not package_imports(module) & (BAYES | READERS | CLI)


@pytest.mark.parametrize("module", sorted(READERS))
def test_readers_never_build_or_sample_models(module):
    # posterior, diagnostics, plots and report take a DataTree; selection (EM fits) and
    # the model/sampler modules are not theirs to call
    assert not package_imports(module) & (BAYES | {"em", "selection", "_em_core"} | CLI)


@pytest.mark.parametrize("module", [m for m in MODULES if m not in CLI | {"__init__"}])
def test_only_the_cli_imports_the_cli_and_the_fit(module):
    imported = package_imports(module)
    assert not imported & CLI
    if module != "inference":  # fit is called by the command line, not by library code
        assert "inference" not in imported


def test_fastmath_is_a_leaf():
    assert package_imports("_fastmath") == set()
