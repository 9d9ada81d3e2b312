"""numba's cache follows every numba module of the package, not only the defining file."""

import shutil

from bayesgmm import _numba_cache


def test_cached_functions_use_the_package_stamp():
    from bayesgmm import _logdensity, _mixture_kernels, _nutpie_model, _pair_coords

    for fn in (_logdensity.logp_and_grad, _mixture_kernels._fused,
               _pair_coords.logp_and_grad, _nutpie_model._c_logp, _nutpie_model._c_expand):
        locator = fn._cache._impl._locator
        assert getattr(locator, "_bayesgmm", False), type(locator).__name__
        assert locator.get_source_stamp() == _numba_cache.package_stamp()


def test_a_change_in_a_callee_changes_every_stamp(tmp_path):
    # _logdensity's cached code links _mixture_kernels' kernel: editing only the
    # kernel's file must invalidate the caller's cache too
    for name in ("_mixture_kernels.py", "_logdensity.py", "errors.py"):
        shutil.copy(_numba_cache._PACKAGE / name, tmp_path / name)
    before = _numba_cache.sources_stamp(tmp_path)
    (tmp_path / "errors.py").write_text("# not numba code\n")
    assert _numba_cache.sources_stamp(tmp_path) == before  # only numba modules count
    with open(tmp_path / "_mixture_kernels.py", "a") as f:
        f.write("\n# edited\n")
    assert _numba_cache.sources_stamp(tmp_path) != before
