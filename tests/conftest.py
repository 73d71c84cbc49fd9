from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inputs" / "example.xlsx"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A private copy of the example, so tests may break it freely."""
    dst = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, dst)
    return dst


def edit_workbook(src: Path, dst: Path, edit) -> Path:
    """Open ``src`` with openpyxl, apply ``edit(wb)``, save as ``dst`` (as an analyst editing in Excel would)."""
    import openpyxl

    wb = openpyxl.load_workbook(src)
    edit(wb)
    wb.save(dst)
    return dst


def find_row(ws, column_name: str, value) -> int:
    """1-based row of the first cell under header ``column_name`` equal to ``value``."""
    header = [c.value for c in ws[1]]
    col = header.index(column_name) + 1
    for r in range(2, ws.max_row + 1):
        if ws.cell(r, col).value == value:
            return r
    raise KeyError(value)


def col_of(ws, column_name: str) -> int:
    return [c.value for c in ws[1]].index(column_name) + 1
