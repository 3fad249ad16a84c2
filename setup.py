"""Build the optional C hot loop of the fast path (analyzer/read/_fastscan.c).

Everything else is configured in pyproject.toml. The extension is optional: without a C
compiler the package installs all the same and `analyze` uses the pure-Python reader.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "analyzer.read._fastscan",
            sources=["analyzer/read/_fastscan.c"],
            libraries=["dl"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
