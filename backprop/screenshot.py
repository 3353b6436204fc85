"""python -m backprop.screenshot: a PNG of the workbook, rendered from the file.

LibreOffice prints one sheet's top-left corner to PDF, pdftoppm turns the page
into pixels, and the white margin is cropped off. Needs soffice and pdftoppm.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openpyxl import load_workbook
from PIL import Image, ImageChops

from cli import FAILURE, ArgumentParser, positive_int, save_atomically

from .libreoffice import convert
from .workbook import sheet_name
from .network import RATES


def render(workbook, png, sheet, cells, dpi=110):
    """Render `cells` (e.g. "A1:T24") of `sheet` in `workbook` to `png`."""
    if shutil.which("pdftoppm") is None:
        raise FileNotFoundError("pdftoppm (poppler-utils) is not on PATH")
    with tempfile.TemporaryDirectory(prefix="backprop-screenshot-") as scratch:
        scratch = Path(scratch)
        # A copy with only this sheet visible and only these cells printed;
        # LibreOffice recalculates it on load, so the numbers are the formulas'.
        wb = load_workbook(workbook)
        wb.active = wb.sheetnames.index(sheet)
        for ws in wb.worksheets:
            if ws.title != sheet:
                ws.sheet_state = "hidden"
        ws = wb[sheet]
        ws.print_area = cells
        ws.print_title_rows = None
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 1
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = True
        copy = scratch / "screenshot.xlsx"
        wb.save(copy)
        pdf = convert(copy, "pdf", scratch)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                        str(pdf), str(scratch / "page")], check=True, capture_output=True)
        page = Image.open(scratch / "page.png").convert("RGB")
        background = Image.new("RGB", page.size, (255, 255, 255))
        left, top, right, bottom = ImageChops.difference(page, background).getbbox()
        margin = 12
        cropped = page.crop((max(left - margin, 0), max(top - margin, 0),
                             min(right + margin, page.width), min(bottom + margin, page.height)))
        save_atomically(png, lambda temporary: cropped.save(temporary, optimize=True))


def main(argv=None):
    parser = ArgumentParser(prog="python -m backprop.screenshot", description=__doc__)
    parser.add_argument("workbook", help="the .xlsx written by python -m backprop")
    parser.add_argument("png", help="where to write the image")
    parser.add_argument("--sheet", default=sheet_name(RATES[0]),
                        help=f"sheet to render (default: {sheet_name(RATES[0])!r})")
    parser.add_argument("--cells", default="A1:T24", help="cell range to render (default: A1:T24)")
    parser.add_argument("--dpi", type=positive_int, default=110, help="resolution (default: 110)")
    args = parser.parse_args(argv)
    try:
        render(args.workbook, args.png, args.sheet, args.cells, args.dpi)
    except (OSError, RuntimeError, KeyError, ValueError, subprocess.CalledProcessError) as error:
        print(f"python -m backprop.screenshot: error: {error}", file=sys.stderr)
        return FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
