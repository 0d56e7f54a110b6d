"""setuptools hook: stamp the git revision into a built package, for hpcwatch_build_info{revision}.

Everything else about the build is in pyproject.toml. Editable installs are not stamped: they read
the checkout's current HEAD at run time (hpcwatch/buildinfo.py).
"""

import os
import runpy

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithRevision(build_py):
    """build_py, then write hpcwatch/REVISION when the source is a git checkout."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        buildinfo = runpy.run_path(os.path.join(HERE, "hpcwatch", "buildinfo.py"))
        rev = buildinfo["git_revision"](HERE)
        if rev:
            target = os.path.join(self.build_lib, "hpcwatch", buildinfo["REVISION_FILE"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(rev + "\n")


setup(cmdclass={"build_py": BuildPyWithRevision})
