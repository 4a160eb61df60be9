"""Build glue for aioguest: compiles the Go core (./capi) into a shared library.

Metadata lives in pyproject.toml; this file only adds the build steps that
declarative configuration cannot express:

* ``build_ext`` runs ``go build -buildmode=c-shared`` and puts the library
  inside the ``aioguest`` package of the build tree (or next to the sources
  for in-place / editable builds).
* The distribution claims to have extension modules, so the wheel is a
  platform wheel.  The library is loaded with ctypes and does not depend on
  the Python ABI, so the tag is ``py3-none-<platform>``: one wheel serves every
  supported CPython on that platform.
* ``build_py`` and ``sdist`` never pick up a library that ``make lib`` left in
  the source tree; ``sdist`` ships the Go sources so that it can be rebuilt.

Set ``AIOGUEST_GO`` to the ``go`` executable to use a toolchain that is not on
PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import ExecError, PlatformError

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "aioguest"
PACKAGE_SRC = os.path.join("python", PACKAGE)
GO_PACKAGE = "./capi"

# Files that make up the Go module, shipped in the sdist.
GO_SOURCE_SUFFIXES = (".go", ".c", ".h", ".s", ".S")
GO_MODULE_FILES = ("go.mod", "go.sum", "go.work", "go.work.sum")
# Directories never searched for Go sources (build output, venvs, caches).
SKIP_DIRS = {"build", "dist"}


def library_name() -> str:
    """File name of the shared library on this platform (what the loader expects)."""
    if sys.platform == "win32":
        return "aioguest.dll"
    if sys.platform == "darwin":
        return "libaioguest.dylib"
    return "libaioguest.so"


def _is_library_artifact(path: str) -> bool:
    """True for a built library (or its generated cgo header) in the package dir."""
    head, base = os.path.split(os.path.normpath(path))
    if os.path.basename(head) != PACKAGE:
        return False
    return base.startswith("libaioguest.") or base in ("aioguest.dll", "aioguest.h")


def find_go() -> str:
    requested = os.environ.get("AIOGUEST_GO")
    go = shutil.which(requested or "go")
    if go:
        return go
    if requested:
        raise PlatformError(f"AIOGUEST_GO={requested!r} is not an executable (or not on PATH)")
    raise PlatformError(
        "aioguest needs the Go toolchain to build its core library, but `go` "
        "was not found on PATH.  Install Go (https://go.dev/dl/) and make sure "
        "`go` is on PATH, or set AIOGUEST_GO=/path/to/go."
    )


def build_go_library(dest_dir: str) -> str:
    """Run ``go build -buildmode=c-shared`` and put the library into dest_dir."""
    go = find_go()
    name = library_name()
    os.makedirs(dest_dir, exist_ok=True)
    env = dict(os.environ)
    # c-shared always needs cgo; an inherited CGO_ENABLED=0 would give an
    # obscure error.
    env["CGO_ENABLED"] = "1"
    # Build into a scratch directory: go also writes a generated C header
    # next to the library, which does not belong in the package.
    with tempfile.TemporaryDirectory(prefix="aioguest-go-") as tmp:
        out = os.path.join(tmp, name)
        cmd = [
            go,
            "build",
            "-buildmode=c-shared",
            "-trimpath",
            # Don't stamp VCS info: it needs a working `git` and a repository
            # owned by the current user, and it makes builds irreproducible.
            "-buildvcs=false",
            "-ldflags",
            "-s -w",
            "-o",
            out,
            GO_PACKAGE,
        ]
        print("running " + " ".join(cmd), flush=True)
        try:
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        except subprocess.CalledProcessError as exc:
            raise ExecError(
                f"building the aioguest Go library failed ({' '.join(cmd)} "
                f"exited with status {exc.returncode})"
            ) from exc
        target = os.path.join(dest_dir, name)
        shutil.copyfile(out, target)
        shutil.copymode(out, target)
    return target


class BinaryDistribution(Distribution):
    """The package carries a native library, so wheels are platform wheels."""

    def has_ext_modules(self) -> bool:
        return True


class BuildGoLibrary(build_ext):
    """Build the Go shared library instead of C extension modules."""

    def _target_dir(self) -> str:
        if self.inplace or self.editable_mode:
            return os.path.join(ROOT, PACKAGE_SRC)
        return os.path.join(self.build_lib, PACKAGE)

    def run(self) -> None:
        if self.editable_mode:
            self.inplace = True
        build_go_library(self._target_dir())

    def get_outputs(self) -> list[str]:
        if self.inplace or self.editable_mode:
            return []
        return [os.path.join(self.build_lib, PACKAGE, library_name())]

    def get_output_mapping(self) -> dict[str, str]:
        return {}

    def get_source_files(self) -> list[str]:
        return []


class BuildPyWithoutLibrary(build_py):
    """Copy the Python sources, but never a library from the source tree."""

    def find_data_files(self, package: str, src_dir: str) -> list[str]:
        files = super().find_data_files(package, src_dir)
        return [f for f in files if not _is_library_artifact(f)]


class SdistWithGoSources(sdist):
    """Ship the Go module (so the sdist can be built) but no prebuilt library."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        files = list(files) + [f for f in go_source_files() if f not in files]
        files = [f for f in files if not _is_library_artifact(f)]
        super().make_release_tree(base_dir, files)


class PlatformWheel(bdist_wheel):
    """Tag wheels py3-none-<platform>: ctypes loads the library, so it works
    with any CPython 3 on the platform it was built for."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


def go_source_files() -> list[str]:
    found = [f for f in GO_MODULE_FILES if os.path.isfile(os.path.join(ROOT, f))]
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith((".", "_"))
            and d != "testdata"
            and not (rel == "." and d in SKIP_DIRS)
        )
        found.extend(
            os.path.normpath(os.path.join(rel, name))
            for name in sorted(filenames)
            if name.endswith(GO_SOURCE_SUFFIXES)
        )
    return found


setup(
    distclass=BinaryDistribution,
    cmdclass={
        "build_ext": BuildGoLibrary,
        "build_py": BuildPyWithoutLibrary,
        "sdist": SdistWithGoSources,
        "bdist_wheel": PlatformWheel,
    },
)
