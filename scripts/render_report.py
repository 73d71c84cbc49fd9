"""Render a report workbook to PNG pages (LibreOffice → PDF → pdftoppm) so a person can look at the charts.

Usage: python scripts/render_report.py inputs/example-report.xlsx [OUTDIR] [--dpi 70]
Needs LibreOffice (soffice) and poppler-utils (pdftoppm): apt-get install libreoffice-calc poppler-utils.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def render(report: Path, outdir: Path, dpi: int = 70) -> list[Path]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if not soffice or not pdftoppm:
        sys.exit("needs soffice and pdftoppm: apt-get install libreoffice-calc poppler-utils")
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile"
        subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", tmp, str(report)], check=True, capture_output=True, timeout=300)
        pdf = Path(tmp) / (report.stem + ".pdf")
        subprocess.run([pdftoppm, "-r", str(dpi), "-png", str(pdf), str(outdir / report.stem)], check=True,
                       timeout=300)
    return sorted(outdir.glob(f"{report.stem}*.png"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("outdir", type=Path, nargs="?", default=Path("report-pages"))
    ap.add_argument("--dpi", type=int, default=70)
    a = ap.parse_args()
    for p in render(a.report, a.outdir, a.dpi):
        print(p)
