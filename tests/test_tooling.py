"""The strict tooling is part of the suite: lint, format, types and import contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_lint_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "analyzer", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(
        sys.executable, "-m", "ruff", "format", "--check", "analyzer", "tests", "benchmarks"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("lint-imports (import-linter) not installed: pip install -e '.[test]'")
    result = _run(lint_imports)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dpkt_is_imported_by_the_decoding_module_only() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "analyzer").rglob("*.py")
        if any(
            line.strip().startswith(("import dpkt", "from dpkt"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importers == ["analyzer/read/packet.py"]
