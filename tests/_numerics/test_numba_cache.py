"""numba's cache follows every numba module of the package, not only the defining file."""

import shutil

from bayesgmm._numerics import numba_cache as _numba_cache

#: the package's files copied under the flat names these tests use
SRC = {"_mixture_kernels.py": "bayes/likelihood.py",
       "_logdensity.py": "bayes/reparam/pymc_space.py",
       "_pair_coords.py": "bayes/reparam/pair.py", "errors.py": "errors.py"}


def test_cached_functions_use_the_package_stamp():
    from bayesgmm.bayes import density, target
    from bayesgmm.bayes import likelihood as _mixture_kernels
    from bayesgmm.bayes.reparam import pair as _pair_coords
    from bayesgmm.bayes.reparam import pymc_space as _logdensity
    from bayesgmm.bayes.samplers import nutpie_native as _nutpie_model

    for fn in (_logdensity.logp_and_grad, _mixture_kernels._fused,
               _pair_coords.logp_and_grad, _nutpie_model._c_logp, _nutpie_model._c_expand,
               density.log_density, target.logp_and_grad):
        locator = fn._cache._impl._locator
        assert getattr(locator, "_bayesgmm", False), type(locator).__name__
        assert locator.get_source_stamp() == _numba_cache.package_stamp()


def test_a_change_in_a_callee_changes_every_stamp(tmp_path):
    # _logdensity's cached code links _mixture_kernels' kernel: editing only the
    # kernel's file must invalidate the caller's cache too
    for name in ("_mixture_kernels.py", "_logdensity.py", "errors.py"):
        shutil.copy(_numba_cache._PACKAGE / SRC[name], tmp_path / name)
    before = _numba_cache.sources_stamp(tmp_path)
    (tmp_path / "errors.py").write_text("# not numba code\n")
    assert _numba_cache.sources_stamp(tmp_path) == before  # only numba modules count
    with open(tmp_path / "_mixture_kernels.py", "a") as f:
        f.write("\n# edited\n")
    assert _numba_cache.sources_stamp(tmp_path) != before


def test_subpackages_are_stamped_and_located(tmp_path):
    # the layout moves kernels into subpackages (bayesgmm/em/, bayesgmm/bayes/): an edit
    # of a callee there must change the stamp, and its files must get the stamped locator
    for name in ("_mixture_kernels.py", "_logdensity.py"):
        shutil.copy(_numba_cache._PACKAGE / SRC[name], tmp_path / name)
    sub = tmp_path / "bayes"
    sub.mkdir()
    shutil.copy(_numba_cache._PACKAGE / SRC["_pair_coords.py"], sub / "_pair_coords.py")
    before = _numba_cache.sources_stamp(tmp_path)
    with open(sub / "_pair_coords.py", "a") as f:
        f.write("\n# edited\n")
    assert _numba_cache.sources_stamp(tmp_path) != before
    # the same file at another depth is another module: the stamp tells them apart
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    shutil.move(moved / "bayes" / "_pair_coords.py", moved / "_pair_coords.py")
    assert _numba_cache.sources_stamp(moved) != _numba_cache.sources_stamp(tmp_path)
    assert _numba_cache._ours(str(_numba_cache._PACKAGE / "em" / "kernels.py"))
    assert not _numba_cache._ours(str(tmp_path / "_logdensity.py"))


def test_top_level_files_are_stamped_as_before(tmp_path):
    # top-level files are named as before the subpackage walk, so caches written by the
    # previous version of this module stay valid
    import hashlib

    for name in ("_mixture_kernels.py", "_logdensity.py", "errors.py"):
        shutil.copy(_numba_cache._PACKAGE / SRC[name], tmp_path / name)
    digest = hashlib.sha256()
    for name in ("_logdensity.py", "_mixture_kernels.py"):  # sorted; errors.py: no numba
        digest.update(name.encode() + b"\0" + (tmp_path / name).read_bytes() + b"\0")
    assert _numba_cache.sources_stamp(tmp_path) == digest.hexdigest()


def test_numba_cache_dir_is_honoured(tmp_path, monkeypatch):
    # a user who sets NUMBA_CACHE_DIR (a read-only site-packages, a shared cluster home)
    # gets the package's caches there, stamped as everywhere else; unset, __pycache__
    from numba.core import config

    from bayesgmm.bayes import likelihood

    py_func, py_file = likelihood._fused.py_func, likelihood.__file__
    impl = type(likelihood._fused._cache._impl)
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    locator = next(loc for cls in impl._locator_classes
                   if (loc := cls.from_function(py_func, py_file)) is not None)
    assert getattr(locator, "_bayesgmm", False)
    assert locator.get_cache_path().startswith(str(tmp_path))
    assert locator.get_source_stamp() == _numba_cache.package_stamp()
    monkeypatch.setattr(config, "CACHE_DIR", "")
    locator = next(loc for cls in impl._locator_classes
                   if (loc := cls.from_function(py_func, py_file)) is not None)
    assert getattr(locator, "_bayesgmm", False)
    assert not locator.get_cache_path().startswith(str(tmp_path))
