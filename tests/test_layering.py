"""Imports point one way (ARCHITECTURE.md): a test walking every import of the package.

Lazy imports inside functions count too: an import anywhere in a module is a
dependency of that module. Modules are named by their dotted path under ``bayesgmm``
(``em.estimator``, ``bayes.reparam.pair``); a subpackage's ``__init__`` is its own name.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, level: int, target: str | None) -> str:
    """The absolute dotted name (under bayesgmm) of a relative import's module."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([target] if target else [])])


def package_imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve(module, node.level, node.module)
            elif (node.module or "").startswith("bayesgmm"):
                target = node.module.removeprefix("bayesgmm").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import kernels`: the submodule itself
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in MODULES else target or "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("bayesgmm.") for a in node.names
                         if a.name.startswith("bayesgmm."))
    return found - {module}


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_walker_sees_imports():
    # a check that cannot fail is no check: the walker finds known edges, lazy ones too
    assert "bayes.inference" in package_imports("cli.fit")  # inside a function
    assert {"em.kernels", "em.iteration"} <= package_imports("em.estimator")
    assert "_numerics.fastmath" in package_imports("bayes.likelihood")
    assert "bayes.reparam.pair" in package_imports("bayes.target")
    assert "em.estimator" in package_imports("em")  # a subpackage's __init__


def test_every_module_is_in_a_layer():
    # a new module must be placed: in a subpackage, or listed here with its rule
    top = {"__init__", "__main__", "errors", "validation", "io", "_renamed", "_stored",
           "datasets", "report", "explorer"}
    homes = ("_numerics", "em", "bayes", "selection", "posterior", "diagnostics", "plots",
             "cli")
    assert all(m in top or _in(m, *homes) for m in MODULES), sorted(MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, "_numerics")))
def test_numerics_is_a_leaf(module):
    # fast maths, the standardizer and the cache stamp serve both halves, import neither
    assert {m for m in package_imports(module) if not _in(m, "_numerics", "errors")} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, "em", "selection")))
def test_em_never_imports_the_bayesian_half(module):
    bad = {m for m in package_imports(module)
           if _in(m, "bayes", "posterior", "diagnostics", "plots", "report", "cli")}
    assert bad == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, "em")))
def test_em_does_not_import_selection(module):
    # selection sits on top of EM (it fits several); the estimator never needs it
    assert not {m for m in package_imports(module) if _in(m, "selection")}


READERS = ("posterior", "diagnostics", "plots", "report", "explorer", "_stored")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, *READERS)))
def test_readers_never_build_or_sample_models(module):
    # posterior, diagnostics, plots and report take a DataTree; EM fits, the model and
    # the samplers are not theirs to call
    bad = {m for m in package_imports(module) if _in(m, "bayes", "em", "selection", "cli")}
    assert bad == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _in(m, "cli", "__main__")))
def test_only_the_cli_imports_the_cli(module):
    assert not {m for m in package_imports(module) if _in(m, "cli")}


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if not _in(m, "cli", "__main__", "bayes")))
def test_only_the_cli_calls_fit(module):
    # fit is called by the command line, not by library code
    assert not {m for m in package_imports(module) if _in(m, "bayes.inference")}


@pytest.mark.parametrize("module", ["errors", "validation", "io", "_renamed"])
def test_boundary_modules_are_leaves(module):
    # errors' one exception: NotFittedError resolves on first use to em's (a subclass of
    # scikit-learn's), so `import bayesgmm` does not load scikit-learn; validation may use
    # _numerics' compiled small-matrix checks, a leaf itself (test_numerics_is_a_leaf)
    allowed = {"errors", "em.estimator"} if module == "errors" else {"errors"}
    if module == "validation":
        allowed |= {"_numerics.linalg"}
    assert package_imports(module) - allowed == set()


def test_model_never_samples():
    # build_model builds; samplers and fit import the model, never the other way round
    assert not {m for m in package_imports("bayes.model")
                if _in(m, "bayes.samplers", "bayes.inference")}


@pytest.mark.parametrize("module", ["bayes.samplers.nutpie", "bayes.samplers.nutpie_native",
                                    "bayes.samplers.nutpie_native_md"])
def test_nutpie_drivers_see_only_a_target(module):
    # the log-density, its coordinates and its start come in a bayes.target.Target: a
    # driver that reached past it for a reparametrisation or a density would be a second
    # description of the model
    assert not {m for m in package_imports(module)
                if _in(m, "bayes.reparam", "bayes.density", "bayes.likelihood", "bayes.priors",
                       "bayes.model")}



def test_architecture_lists_every_module_once():
    # ARCHITECTURE.md's module map is kept true: each module of the package has one row
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    named = [cell.strip("`") for line in rows
             for cell in line.split("|")[1].strip().split(", ")]
    files = {MODULES[m].relative_to(PACKAGE).as_posix() for m in MODULES}
    missing = sorted(f for f in files if f not in named)
    assert not missing, f"ARCHITECTURE.md's module map lacks {missing}"
    assert len(named) == len(set(named)), "a module is listed twice"
    assert set(named) <= files, sorted(set(named) - files)


def test_subpackages_are_attributes_after_a_plain_import():
    # the README writes bayesgmm.plots.plot_pairs(dt) after `import bayesgmm`; in a fresh
    # interpreter nothing else has imported the subpackage (in the suite something has)
    import subprocess
    import sys

    code = ("import bayesgmm; assert callable(bayesgmm.plots.plot_pairs); "
            "assert callable(bayesgmm.datasets.load_example)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
