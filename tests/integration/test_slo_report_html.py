"""The HTML report rendered by a real browser (Debian `chromium`, headless): the plots are drawn.

`--dump-dom` gives the DOM after layout: every SLO section carries its four charts, and each line
chart has series paths with real coordinates. `--screenshot` gives the pixels: the PNG is decoded
here (zlib + PNG filters, no imaging library) and must show many colours, the plot lines' blue and
the alert red among them, not a blank page.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import subprocess
import zlib

import pytest
from helpers import require_binary
from hpcwatch.slo.history.synthetic import Incident, synthetic_jobs, to_sacct

from hpcwatch.cli import main

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo_history")
T0 = 1767225600
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit truecolour PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r) for r in rows], bpp


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    df = synthetic_jobs(6000, T0, 7, seed=2, incidents=(Incident(3 * 86400, 4 * 3600, node_fail=0.3),))
    jobs = tmp / "sacct.txt"
    jobs.write_text(to_sacct(df))
    out = tmp / "report.html"
    assert main(["slo", "report", "--spec", os.path.join(FIX, "catalogue.yaml"), "--jobs", str(jobs),
                 "--format", "html", "-o", str(out)]) == 0
    return out


# Added to a copy of the report only (the report itself has no script): after layout, every pair of
# text boxes in one chart that intersect, and every text box cut off by its chart's edge, as JSON.
OVERLAP_PROBE = """<script>
const found = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const name = svg.querySelector('title').textContent, frame = svg.getBoundingClientRect();
  const boxes = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
  boxes.forEach(([a, r], i) => {
    if (r.left < frame.left - 0.5 || r.right > frame.right + 0.5 || r.top < frame.top - 0.5
        || r.bottom > frame.bottom + 0.5) found.push(`${name}: '${a}' is cut off`);
    for (const [b, q] of boxes.slice(i + 1))
      if (r.left < q.right - 0.5 && q.left < r.right - 0.5 && r.top < q.bottom - 0.5 && q.top < r.bottom - 0.5)
        found.push(`${name}: '${a}' overlaps '${b}'`);
  });
}
const pre = document.createElement('pre');
pre.id = 'overlaps';
pre.textContent = JSON.stringify({charts: document.querySelectorAll('svg.chart').length, found});
document.body.appendChild(pre);
</script>"""


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    binary = require_binary("chromium")
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_dom_has_drawn_charts(report_html, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", report_html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    sections = re.findall(r'<section id="hpc-[^"]+">', dom)
    assert len(sections) == 3                               # node availability is skipped, and says so
    assert "not computable from job records" in dom
    assert dom.count('<svg class="chart') == 3 * 4
    paths = re.findall(r'<path class="series" d="([^"]*)"', dom)
    assert len(paths) >= 3 * 6
    for d in paths:
        coords = re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", d)
        assert len(coords) >= 2 and len({y for _, y in coords}) > 1, d[:80]
    assert re.search(r'<rect class="episode"', dom), "the incident's alerts are on the timeline"


def test_screenshot_is_not_blank(report_html, tmp_path):
    png = tmp_path / "shot.png"
    proc = _chromium(tmp_path, "--window-size=1000,1600", f"--screenshot={png}", report_html.as_uri())
    assert png.exists(), proc.stderr[-2000:]
    width, height, rows, bpp = decode_png(png.read_bytes())
    assert (width, height) == (1000, 1600)
    colours: dict[bytes, int] = {}
    for row in rows[::2]:
        for x in range(0, width * bpp, bpp * 2):
            px = row[x:x + 3]
            colours[px] = colours.get(px, 0) + 1
    background = max(colours.values()) / sum(colours.values())
    assert len(colours) > 200 and background < 0.8, (len(colours), background)

    def near(rgb: tuple[int, int, int]) -> int:
        return sum(n for px, n in colours.items() if all(abs(p - q) < 40 for p, q in zip(px, rgb)))

    assert near((0x2f, 0x6f, 0xdf)) > 50, "SLI line (blue) drawn"
    assert near((0xd6, 0x45, 0x45)) > 20, "objective / page threshold (red) drawn"


def _report(tmp, spec: str, df, *extra: str) -> str:
    jobs = tmp / "sacct.txt"
    jobs.write_text(to_sacct(df))
    out = tmp / "report.html"
    assert main(["slo", "report", "--spec", os.path.join(FIX, spec), "--jobs", str(jobs), "--format", "html",
                 "-o", str(out), *extra]) == 0
    return out.read_text()


@pytest.mark.parametrize("case", ["week", "two-days", "strict-objective", "synthetic-60d"])
def test_chart_labels_do_not_overlap(case, tmp_path):
    """Tick, threshold, warm-up and lane labels: laid out by a real browser, no two boxes intersect and
    none runs off its chart, for ranges from two days to two months and thresholds a few pixels apart."""
    if case == "week":
        page = _report(tmp_path, "catalogue.yaml", synthetic_jobs(
            6000, T0, 7, seed=2, incidents=(Incident(3 * 86400, 4 * 3600, node_fail=0.3),)))
    elif case == "two-days":
        page = _report(tmp_path, "catalogue.yaml", synthetic_jobs(
            3000, T0, 2, seed=4, incidents=(Incident(86400, 3 * 3600, node_fail=0.4),)))
    elif case == "strict-objective":
        page = _report(tmp_path, "tight.yaml", synthetic_jobs(
            8000, T0, 10, seed=5, queues=("batch",), incidents=(Incident(5 * 86400, 6 * 3600, node_fail=0.95),)))
    else:
        out = tmp_path / "report.html"
        assert main(["slo", "report", "--spec", os.path.join(FIX, "catalogue.yaml"), "--synthetic", "--from",
                     "2026-01-01", "--to", "2026-03-02", "--format", "html", "-o", str(out)]) == 0
        page = out.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</main></body>", "</main>" + OVERLAP_PROBE + "</body>"))
    proc = _chromium(tmp_path, "--window-size=1000,1600", "--dump-dom", probe.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="overlaps">(.*?)</pre>', proc.stdout, re.S)
    assert m, "the probe ran"
    result = json.loads(html.unescape(m.group(1)))
    assert result["charts"] >= 4
    assert result["found"] == [], "\n".join(result["found"])
