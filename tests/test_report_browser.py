"""The HTML reports in a real browser: Debian's headless chromium, file:// pages only.

The screenshot is decoded with the standard library (zlib and PNG filter reversal) to
check it is a real picture, not a blank page; ``--dump-dom`` shows the DOM after the
page's script ran.
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
import zlib
from pathlib import Path
from types import ModuleType

import pytest

from pytest_containers import reportdata
from pytest_containers.reporthtml import render_report

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not installed (apt-get install chromium; scripts/install does it)",
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_screenshot", DOCS / "make_screenshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def sample(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The JSON reports of two real runs of the sample catalogue."""
    paths: list[Path] = script.sample_reports(tmp_path_factory.mktemp("sample"))
    return paths


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit, non-interlaced truecolour PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length :][:4])[0]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) in ((8, 2, 0), (8, 6, 0)), header
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    assert len(raw) == height * (stride + 1)
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind in (3, 4):
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 3:
                    line[x] = (line[x] + (a + b) // 2) & 0xFF
                    continue
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def assert_real_picture(png: Path, size: tuple[int, int] = (1280, 1600)) -> None:
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == size
    bpp = len(rows[0]) // width
    pixels = [row[x : x + 3] for row in rows[::4] for x in range(0, len(row), 4 * bpp)]
    colours = set(pixels)
    background = {b"\xff\xff\xff", b"\xf6\xf8\xfa"}
    ink = sum(p not in background for p in pixels) / len(pixels)
    assert len(colours) > 20, f"only {len(colours)} colours: a blank page?"
    assert ink > 0.02, f"only {ink:.1%} of the page is not background"


def test_report_page_in_chromium(script: ModuleType, sample: list[Path], tmp_path: Path) -> None:
    report = reportdata.load(sample[1])
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(render_report(report))
    script.screenshot(page, png)
    assert_real_picture(png)
    dom = script.dump_dom(page)
    assert (
        '<p class="verdict v-not-conformant" id="verdict"><strong>Not conformant.</strong>' in dom
    )
    for requirement in report.requirements:
        assert f'<tr id="req-{requirement.id}"' in dom
    assert '<div id="filters">' in dom  # the script ran and showed the filters
    assert "a 512 MiB allocation succeeded" in dom and "mib=" in dom


def test_matrix_screenshot_script(script: ModuleType, sample: list[Path], tmp_path: Path) -> None:
    png, page = tmp_path / "matrix.png", tmp_path / "matrix.html"
    assert script.main([*map(str, sample), "-o", str(png), "--html", str(page)]) == 0
    assert_real_picture(png)
    dom = script.dump_dom(page)
    for label in ("runtime-a 1.0", "runtime-b 2.1"):
        assert f'<th scope="col">{label}</th>' in dom
    for rid, *_ in script.SAMPLE_CATALOGUE:
        assert f'<tr id="req-{rid}"' in dom
    assert "Conformant." in dom and "Not conformant." in dom


def test_script_errors_are_one_line(script: ModuleType, tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.json").write_text("{}")
    assert script.main([str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a pytest-containers report" in err


def test_a_blank_page_is_caught(script: ModuleType, tmp_path: Path) -> None:
    page, png = tmp_path / "blank.html", tmp_path / "blank.png"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    script.screenshot(page, png)
    with pytest.raises(AssertionError, match="a blank page"):
        assert_real_picture(png)
