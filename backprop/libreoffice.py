"""Run LibreOffice headless: recalculate a workbook, or print it to PDF."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_soffice():
    """Path of the LibreOffice binary, or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert(path, to, outdir, timeout=180):
    """soffice --convert-to `to` (e.g. "xlsx", "pdf"); returns the converted file's path.

    Each call gets its own throwaway profile, so two runs never fight over
    LibreOffice's profile lock.
    """
    soffice = find_soffice()
    if soffice is None:
        raise FileNotFoundError("LibreOffice (soffice) is not on PATH")
    path, outdir = Path(path), Path(outdir)
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        result = subprocess.run(
            [soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless",
             "--norestore", "--convert-to", to, "--outdir", str(outdir), str(path)],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "HOME": profile})
    converted = outdir / (path.stem + "." + to.split(":")[0])
    if result.returncode != 0 or not converted.exists():
        raise RuntimeError(f"LibreOffice could not convert {path} to {to}: "
                           f"{(result.stderr or result.stdout).strip()}")
    return converted
