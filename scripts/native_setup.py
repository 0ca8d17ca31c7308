"""The setuptools script of the compiled build (run by scripts/build_native.sh in its copy).

``python native_setup.py MODULE_PATH... -- build_ext --inplace``: mypyc compiles the
given modules (``mypyc.build.mypycify``, the mypy configuration of the copied
pyproject.toml) into one shared library, written as one C file per module and
compiled in parallel, one compiler per CPU: on the 2-core machine the sim set built
in 100 s instead of 160 s, and ran 0.3 % more instructions per simulated call than
the one-file build, which lets the C compiler inline across modules (callgrind,
docs/native.md). ``NATIVE_MULTI_FILE=0`` makes the one-file build.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mypyc.build import mypycify
from setuptools import setup  # type: ignore[import-untyped]
from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]


class ParallelBuildExt(build_ext):  # type: ignore[misc]
    """``build_ext`` that compiles an extension's C files side by side."""

    def build_extensions(self) -> None:
        compile_some = self.compiler.compile

        def compile_all(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                done = pool.map(lambda s: compile_some([s], *args, **kwargs), sources)
                return [obj for objs in done for obj in objs]

        self.compiler.compile = compile_all
        super().build_extensions()


def main() -> None:
    split = sys.argv.index("--")
    modules, sys.argv[1:] = sys.argv[1:split], sys.argv[split + 1 :]
    multi = os.environ.get("NATIVE_MULTI_FILE", "1") != "0"
    setup(
        name="huntgroup-native",
        ext_modules=mypycify(modules, opt_level="3", multi_file=multi),
        cmdclass={"build_ext": ParallelBuildExt},
    )


if __name__ == "__main__":
    main()
