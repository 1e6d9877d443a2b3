# SPDX-License-Identifier: MIT
"""Builds the extension module pimoe._cpimoe: SWIG generates it from the shared interface ../pimoe.i (with
pimoe_python.i), and it links against the libpimoe that `pkg-config pimoe` names (README.md, "Where libpimoe is
found"). The version is libpimoe's, from the same pkg-config file."""
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.dirname(HERE)  # pimoe.i and pimoe_headers.i, shared with the other languages
INTERFACE = os.path.join(BINDINGS, "pimoe.i")
# Directories the dynamic loader searches anyway: no RPATH is recorded for them.
SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")


def pkg_config(*args):
    tool = os.environ.get("PKG_CONFIG", "pkg-config")
    try:
        done = subprocess.run([tool, *args, "pimoe"], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"pimoe: {tool} not found (Debian: pkg-config); it locates libpimoe")
    except subprocess.CalledProcessError as e:
        sys.exit("pimoe: `pkg-config pimoe` failed: " + e.stderr.strip() + "\n"
                 "Install libpimoe (cmake --install) and set PKG_CONFIG_PATH=<prefix>/lib/pkgconfig, or point it at "
                 "a build tree's <build>/bindings/python/pkgconfig (bindings/python/README.md).")
    return done.stdout.strip()


def library_flags():
    """(include_dirs, library_dirs, libraries, other flags) of `pkg-config --cflags --libs pimoe`."""
    include_dirs, library_dirs, libraries, other = [], [], [], []
    for flag in shlex.split(pkg_config("--cflags", "--libs")):
        if flag.startswith("-I"):
            include_dirs.append(os.path.normpath(flag[2:]))
        elif flag.startswith("-L"):
            library_dirs.append(os.path.normpath(flag[2:]))  # normalised: it becomes the RPATH
        elif flag.startswith("-l"):
            libraries.append(flag[2:])
        else:
            other.append(flag)
    return include_dirs, library_dirs, libraries, other


class SwigBuildExt(build_ext):
    """Runs SWIG (into the build tree) before compiling: the generated pimoe/cpimoe.py goes where build_ext puts the
    package's modules, pimoe_wrap.c into the temporary build folder."""

    def run(self):
        package_dir = os.path.join(HERE, "src", "pimoe") if self.inplace else os.path.join(self.build_lib, "pimoe")
        os.makedirs(package_dir, exist_ok=True)
        os.makedirs(self.build_temp, exist_ok=True)
        wrapper = os.path.join(self.build_temp, "pimoe_wrap.c")
        command = [os.environ.get("SWIG", "swig"), "-python", "-threads", "-module", "cpimoe", "-Wall", "-Werror",
                   "-I" + BINDINGS, *("-I" + d for d in INCLUDE_DIRS), "-outdir", package_dir, "-o", wrapper,
                   INTERFACE]
        print(" ".join(shlex.quote(c) for c in command))
        try:
            subprocess.run(command, check=True)
        except FileNotFoundError:
            sys.exit("pimoe: swig not found (Debian: swig)")
        for ext in self.extensions:
            ext.sources = [wrapper]
        super().run()


INCLUDE_DIRS, library_dirs, libraries, other_flags = library_flags()
EXTENSION = Extension(
    "pimoe._cpimoe",
    # setuptools wants paths relative to setup.py here; the sources are replaced by the wrapper in SwigBuildExt
    sources=["../pimoe.i"],
    include_dirs=INCLUDE_DIRS,
    library_dirs=library_dirs,
    libraries=libraries,
    runtime_library_dirs=[d for d in library_dirs if os.path.realpath(d) not in SYSTEM_LIB_DIRS],
    extra_compile_args=[f for f in other_flags if not f.startswith("-Wl,")],
    extra_link_args=[f for f in other_flags if f.startswith("-Wl,")],
    depends=["../pimoe.i", "../pimoe_headers.i", "pimoe_python.i"],
)


if __name__ == "__main__":
    setup(
        version=pkg_config("--modversion"),
        ext_modules=[EXTENSION],
        cmdclass={"build_ext": SwigBuildExt},
    )
