"""The public surface is what ``eventvault.__all__`` says, and nothing else (after
httpx's ``test_all_imports_are_exported``); internal modules' ``__all__`` are honest."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import warnings

import pytest

import eventvault
from eventvault import errors

#: Dunder names that are part of the public surface.
PUBLIC_DUNDERS = {"__version__"}


def _public(module: types.ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in PUBLIC_DUNDERS)
        # ``from __future__ import annotations`` binds a name; it is not an export.
        and not (name == "annotations" and value.__class__.__name__ == "_Feature")
    ]


def _order(name: str) -> tuple[bool, str]:
    """Constants (ANY, NO_STREAM, …) first, then the rest in code-point order — the
    order of ruff's RUF022 and of ``tests/test_model.py``."""
    return (not name.isupper(), name)


def test_all_is_sorted_and_has_no_duplicates() -> None:
    assert eventvault.__all__ == sorted(set(eventvault.__all__), key=_order)


def test_all_names_exactly_the_public_names_of_the_package() -> None:
    public = set(_public(eventvault))
    # Submodules bound by importing them (eventvault.store, …) are not exports; the
    # ``errors`` module is (``eventvault.errors.StoreError``).
    public -= {n for n in public if inspect.ismodule(getattr(eventvault, n)) and n != "errors"}
    assert sorted(public, key=_order) == eventvault.__all__


def test_every_error_class_is_exported() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if not name.startswith("_")
        and inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }
    assert defined  # (the walk found them)
    assert defined <= set(eventvault.__all__)
    assert defined == set(errors.__all__)
    for name in defined:
        assert getattr(eventvault, name) is getattr(errors, name)


def test_the_copy_api_is_exported() -> None:
    from eventvault import copy

    assert set(copy.__all__) <= set(eventvault.__all__)


@pytest.mark.parametrize("name", eventvault.__all__)
def test_every_export_comes_from_an_eventvault_module(name: str) -> None:
    value = getattr(eventvault, name)
    if isinstance(value, str):  # (__version__, RECEIPT_TYPE)
        return
    if inspect.ismodule(value):
        assert value.__name__.startswith("eventvault."), name
        return
    assert value.__module__.split(".")[0] == "eventvault", (name, value.__module__)


def test_one_name_per_class() -> None:
    seen: dict[int, str] = {}
    for name in eventvault.__all__:
        value = getattr(eventvault, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert id(value) not in seen, f"{name} is {seen[id(value)]} again"
            seen[id(value)] = name


@pytest.mark.parametrize("module", [eventvault, errors], ids=["eventvault", "errors"])
def test_the_old_revision_error_name_is_a_deprecated_alias(module: types.ModuleType) -> None:
    assert "WrongExpectedRevision" not in module.__all__
    with pytest.warns(DeprecationWarning, match="use WrongExpectedRevisionError"):
        alias = module.WrongExpectedRevision
    assert alias is errors.WrongExpectedRevisionError
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = module.NoSuchName


def test_the_alias_still_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="WrongExpectedRevision is deprecated"):
        from eventvault import WrongExpectedRevision
    assert WrongExpectedRevision is eventvault.WrongExpectedRevisionError


def _resolves(module: types.ModuleType, name: str) -> bool:
    try:
        getattr(module, name)
    except ImportError:  # an optional extra: the name is honest, its dependency missing
        return True
    except AttributeError:
        return False
    return True


def _all_modules() -> list[str]:
    names = ["eventvault"]
    for info in pkgutil.walk_packages(eventvault.__path__, "eventvault."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # (importing it runs the CLI)
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _all_modules())
def test_every_modules_all_is_honest(name: str) -> None:
    """A module's ``__all__`` (if it has one) names only what the module holds —
    defined there or imported there to be re-exported — once each."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(f"{name}: {exc}")
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert isinstance(exported, list | tuple), name
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    lazy = "__getattr__" in vars(module)  # (names imported on first use: PEP 562)
    missing = [n for n in exported if n not in vars(module) and not (lazy and _resolves(module, n))]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
