"""The grid map as a PNG, drawn on the server with Pillow from the same polygons and values as the page
(so an export needs no browser, and a test can check its pixels)."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont

# the page's legend (static/map.js CLASSES): light to dark; no data is grey
COLOURS = ("#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704")
NO_DATA = "#e5e7eb"
FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
WIDTH, MAP_HEIGHT, HEAD, LEGEND = 1200, 1000, 50, 60


def breaks(values: Sequence[float]) -> list[float]:
    """Four class boundaries (quintiles of the values); the page computes the same (map.js)."""
    if not values:
        return []
    qs = np.quantile(np.array(values, dtype=float), [0.2, 0.4, 0.6, 0.8])
    return [float(q) for q in qs]


def colour_of(value: float | None, bounds: list[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_DATA
    return COLOURS[sum(value > b for b in bounds)]


def _font(size: int) -> Any:
    for path in FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def render(
    grids: Sequence[tuple[Any, float | None]],
    alerts: Sequence[tuple[float, float]],
    title: str,
    percent: bool = False,
) -> bytes:
    """`grids`: (shapely polygon, value or None); `alerts`: (lon, lat). A PNG of WIDTH px."""
    image = Image.new("RGB", (WIDTH, HEAD + MAP_HEIGHT + LEGEND), "white")
    draw = ImageDraw.Draw(image)
    draw.text((16, 12), title, fill="#111827", font=_font(22))
    if not grids:
        draw.text((16, HEAD + 20), "无可显示的网格", fill="#374151", font=_font(18))
        return _png(image)
    west, south, east, north = shapely.total_bounds([p for p, _ in grids])
    # an equirectangular view with the longitude shrunk by cos(latitude), as the eye expects
    squeeze = math.cos(math.radians((south + north) / 2))
    scale = min((WIDTH - 20) / ((east - west) * squeeze), (MAP_HEIGHT - 20) / (north - south))

    def px(lon: float, lat: float) -> tuple[float, float]:
        return 10 + (lon - west) * squeeze * scale, HEAD + 10 + (north - lat) * scale

    bounds = breaks([v for _, v in grids if v is not None])
    for polygon, value in grids:
        ring = [px(x, y) for x, y in polygon.exterior.coords]
        draw.polygon(ring, fill=colour_of(value, bounds), outline="#9ca3af")
    for lon, lat in alerts:
        x, y = px(lon, lat)
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline="#b91c1c", width=4)
    _legend(draw, bounds, percent)
    return _png(image)


def _legend(draw: ImageDraw.ImageDraw, bounds: list[float], percent: bool) -> None:
    def fmt(v: float) -> str:
        return f"{v * 100:.0f}%" if percent else f"{v:g}"

    y = HEAD + MAP_HEIGHT + 15
    labels = ["无数据"]
    edges = [None, *bounds, None]
    for lo, hi in itertools.pairwise(edges):
        labels.append(f"≤{fmt(hi)}" if lo is None else (f">{fmt(lo)}" if hi is None else f"{fmt(lo)}–{fmt(hi)}"))
    font = _font(16)
    x = 16
    for colour, label in zip((NO_DATA, *COLOURS), labels if bounds else labels[:1], strict=False):
        draw.rectangle((x, y, x + 24, y + 24), fill=colour, outline="#6b7280")
        draw.text((x + 30, y + 2), label, fill="#111827", font=font)
        x += 40 + int(draw.textlength(label, font=font))
    draw.ellipse((x + 4, y + 3, x + 22, y + 21), outline="#b91c1c", width=4)
    draw.text((x + 30, y + 2), "热点预警", fill="#111827", font=font)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
