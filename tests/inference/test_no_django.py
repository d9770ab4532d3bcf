"""Every module of ``inference/`` imports without Django, each in a fresh interpreter.

The modules are found, not listed, so a module added later is covered too; each imports
alone, so one that pulls Django in is named, not hidden by another that imported it first.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import inference

ROOT = Path(__file__).resolve().parents[2]
FOUND = pkgutil.walk_packages(inference.__path__, prefix="inference.")
MODULES = ["inference", *sorted(module.name for module in FOUND)]
# Prints what of Django the import brought in; nothing when the rule holds.
PROBE = (
    "import importlib, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(sorted(name for name in sys.modules if name.split('.')[0] == 'django'))\n"
)


def test_the_modules_are_found():
    assert {"inference.engine", "inference.loader", "inference.remote"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_the_module_imports_without_django(module):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {module} imported {result.stdout.strip()}"
