"""Run LibreOffice headless: recalculate workbooks, or print them to PDF."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# LibreOffice trusts the values stored in an .xlsx unless told to recalculate
# on load; the workbook stores values, so a check must make it compute them.
_ALWAYS_RECALCULATE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
           xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def find_soffice():
    """Path of the LibreOffice binary, or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert(path, to, outdir, timeout=180):
    """soffice --convert-to `to` (e.g. "xlsx", "pdf"); returns the converted file's path.

    LibreOffice recalculates every formula on load, whatever values the file stores.
    """
    return convert_all([path], to, outdir, timeout)[0]


def convert_all(paths, to, outdir, timeout=180):
    """convert() for several files with one start of LibreOffice; returns their paths.

    The files must have different names. Each call gets its own throwaway
    profile, so two runs never fight over LibreOffice's profile lock.
    """
    soffice = find_soffice()
    if soffice is None:
        raise FileNotFoundError("LibreOffice (soffice) is not on PATH")
    paths, outdir = [Path(p) for p in paths], Path(outdir)
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        user = Path(profile) / "user"
        user.mkdir()
        (user / "registrymodifications.xcu").write_text(_ALWAYS_RECALCULATE)
        result = subprocess.run(
            [soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless",
             "--norestore", "--convert-to", to, "--outdir", str(outdir), *map(str, paths)],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "HOME": profile})
    converted = [outdir / (path.stem + "." + to.split(":")[0]) for path in paths]
    missing = [path for path, out in zip(paths, converted) if not out.exists()]
    if result.returncode != 0 or missing:
        raise RuntimeError(f"LibreOffice could not convert {', '.join(map(str, missing or paths))} "
                           f"to {to}: {(result.stderr or result.stdout).strip()}")
    return converted
