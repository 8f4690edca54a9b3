"""Networks from the user's own code: `[model] arch = "package.module:factory"`.

The module is found on sys.path (PYTHONPATH, the installed packages, and the working directory,
appended when it is not there yet), the factory is called as the registered ones are (keyword
arguments in_channels, num_classes, image_size) and must return an nn.Module.

The module's own file is part of the model's identity: `source_digest` (its sha256) goes into the
stage hashes, and the module is executed from exactly the bytes that were hashed, re-executed when
they change, so an edited model file makes dense.pt stale instead of loading its weights into a
changed network. Modules it imports in turn are not hashed.

Every problem is an ArchError whose text follows `<config>: model.arch: ` in the error line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch.nn as nn

IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
# What every factory is called with (keyword arguments), here as example values for the signature check.
FACTORY_ARGUMENTS = {"in_channels": 1, "num_classes": 10, "image_size": 28}

# Module name -> sha256 of the source bytes this process executed it from.
_EXECUTED: dict[str, str] = {}


class ArchError(ValueError):
    """What is wrong with an import-path arch, one line."""


def is_import_path(arch: str) -> bool:
    return ":" in arch


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error.msg if isinstance(error, SyntaxError) else error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _split(arch: str) -> tuple[str, str]:
    if not IMPORT_PATH.match(arch):
        raise ArchError(f"{arch!r} is not an import path of the form package.module:factory")
    module, name = arch.split(":")
    return module, name


def _put_working_directory_on_path() -> None:
    """The working directory, last (after the installed packages, so a file there never shadows a
    library the run imports later), unless sys.path already has it ('' is the working directory)."""
    here = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == here for entry in sys.path):
        sys.path.append(here)


def _spec(module: str) -> ModuleSpec:
    """The module's spec as a fresh import would find it now: asked of the finders directly, not
    sys.modules, whose copy may be another directory's module of that name or an older text."""
    _put_working_directory_on_path()
    importlib.invalidate_caches()  # a file written since the last look (seconds ago, in tests)
    parts, search, spec = module.split("."), None, None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if depth > 1 and search is None:
            raise ArchError(f"{'.'.join(parts[:depth - 1])!r} is not a package, so it has no module {name!r}")
        spec = next((found for finder in sys.meta_path if hasattr(finder, "find_spec")
                     and (found := finder.find_spec(name, search)) is not None), None)
        if spec is None:
            raise ArchError(f"no module named {name!r} in the working directory ({os.getcwd()}) or on "
                            "PYTHONPATH")
        search = spec.submodule_search_locations
    return spec


def _source(spec: ModuleSpec) -> bytes | None:
    """The bytes of a module's Python source file, or None (a compiled extension, a built-in)."""
    if not (spec.has_location and str(spec.origin).endswith(".py") and hasattr(spec.loader, "get_data")):
        return None
    try:
        return spec.loader.get_data(spec.origin)
    except OSError as error:
        raise ArchError(f"cannot read {spec.origin}: {error.strerror or error}") from None


def source_digest(arch: str) -> str | None:
    """sha256 of the factory's module file (None where it has no source file)."""
    module, _ = _split(arch)
    source = _source(_spec(module))
    return None if source is None else hashlib.sha256(source).hexdigest()


def _failed(name: str, origin: str | None, error: BaseException) -> ArchError:
    """Importing `name` raised `error`: the line of its file that raised it, where there is one."""
    where = origin or name
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == origin:
            line = lineno
    at = f"{where} line {line}" if line else where
    return ArchError(f"importing {name} failed at {at}: {_one_line(error)}")


def _module(name: str) -> ModuleType:
    """The module, executed from the bytes its file holds now."""
    spec = _spec(name)
    source = _source(spec)
    if "." in name:  # parent packages: the ordinary import (their files are not hashed)
        try:
            importlib.import_module(name.rpartition(".")[0])
        except Exception as error:
            raise _failed(name.rpartition(".")[0], None, error) from None
    if source is None:  # no Python source to execute: the ordinary import
        try:
            return importlib.import_module(name)
        except Exception as error:
            raise _failed(name, spec.origin, error) from None
    digest = hashlib.sha256(source).hexdigest()
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == spec.origin and _EXECUTED.get(name) == digest:
        return module
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as the import system does: the module may import itself
    try:
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    except Exception as error:
        del sys.modules[name]
        _EXECUTED.pop(name, None)
        raise _failed(name, spec.origin, error) from None
    _EXECUTED[name] = digest
    return module


def factory(arch: str) -> Callable[..., nn.Module]:
    """The factory an import path names, checked to take the keyword arguments every factory gets."""
    module_name, name = _split(arch)
    module = _module(module_name)
    if not hasattr(module, name):
        raise ArchError(f"module {module_name} ({module.__file__}) has no {name!r}")
    found = getattr(module, name)
    if not callable(found):
        raise ArchError(f"{arch} is an object of type {type(found).__name__}, not a callable factory")
    try:
        signature = inspect.signature(found)
    except (TypeError, ValueError):  # no signature to read (some built-ins): the call will tell
        return found
    try:
        signature.bind(**FACTORY_ARGUMENTS)
    except TypeError:
        raise ArchError(f"{arch}{signature} must take keyword arguments {', '.join(FACTORY_ARGUMENTS)} "
                        "(prunelab calls factory(in_channels=..., num_classes=..., image_size=...))") from None
    return found


def build(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    make = factory(arch)
    try:
        model = make(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    except Exception as error:
        # Where it raised: the last line of the factory's own file on the way (else the innermost).
        frames = list(traceback.walk_tb(error.__traceback__))[1:]  # past this call
        mine = getattr(sys.modules.get(_split(arch)[0]), "__file__", None)
        frames = [item for item in frames if item[0].f_code.co_filename == mine] or frames
        at = f" at {Path(frames[-1][0].f_code.co_filename).name} line {frames[-1][1]}" if frames else ""
        raise ArchError(f"{arch}(in_channels={in_channels}, num_classes={num_classes}, image_size={image_size}) "
                        f"raised {_one_line(error)}{at}") from None
    if not isinstance(model, nn.Module):
        raise ArchError(f"{arch} returned a value of type {type(model).__name__}, not a torch.nn.Module")
    return model
