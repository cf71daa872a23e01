"""The grid e-map (网格电子地图): every grid of the registry, coloured by a measure, with area outlines,
hotspot alerts, the houses, and each grid's 1+1+N roster and open petitions.

Who sees what follows the platform's one rule (`Staff.covers`): the county roles the county, a town
supervisor their town, a village cadre their village, a grid leader their own grids. The measures
and alerts come from stats with the staff member's own token, so stats applies the same rule again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, abort, current_app, g, render_template, request

from petition_common.auth import Staff
from petition_kernel.access import may_read
from services.web import mappng
from services.web.backends import current_backends
from services.web.geodata import CountyMap, Houses, MapCache
from services.web.staff import staff_required

bp = Blueprint("emap", __name__, url_prefix="/staff/map")
OPEN = ("assigned", "in_progress", "reopened", "replied")
HOUSES_LIMIT = 20_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _counts_open(c: dict[str, Any], _pop: int) -> float | None:
    return max(0, c["accepted"] - c["closed"] - c["withdrawn"])


def _counts_overdue(c: dict[str, Any], _pop: int) -> float | None:
    return c["sla"]["breached"]


def _counts_satisfaction(c: dict[str, Any], _pop: int) -> float | None:
    return c["rates"]["satisfaction_rate"]


def _counts_per_1000(c: dict[str, Any], pop: int) -> float | None:
    return round(c["accepted"] * 1000 / pop, 2) if pop else None


# measure -> (label, unit, from the stats Counts of a grid and its population); docs/web.md defines them
MEASURES: dict[str, tuple[str, str, Callable[[dict[str, Any], int], float | None]]] = {
    "open": ("未办结诉求", "件", _counts_open),
    "overdue": ("超期诉求", "件", _counts_overdue),
    "satisfaction": ("满意率", "%", _counts_satisfaction),
    "per_1000": ("每千人诉求", "件/千人", _counts_per_1000),
}


def period_args() -> dict[str, str]:
    """The page's period: `from`/`to` as given (stats checks them), by default this year so far."""
    args = {k: request.args[k].strip() for k in ("from", "to") if request.args.get(k, "").strip()}
    if not args:
        today = date.today()
        args = {"from": f"{today.year}-01-01", "to": f"{today.year + 1}-01-01"}
    return args


def period_label(period: dict[str, str]) -> str:
    return f"{period.get('from', '最早')} 至 {period.get('to', '最新')}（不含）"


def county_map() -> CountyMap:
    found = current_app.extensions["county_map"].get(g.me.token)
    if found is None:
        abort(503)
    return found


def principal(cmap: CountyMap) -> Staff:
    me = g.me
    return cmap.principal(me.staff_id, me.role, me.town_id)


def _geojson(body: bytes) -> Response:
    return Response(body, mimetype="application/geo+json", headers={"Cache-Control": "private, max-age=60"})


@bp.get("")
@staff_required()
def page() -> Any:
    cmap = county_map()
    staff = principal(cmap)
    settings = current_app.extensions["settings"].extra
    measure = request.args.get("measure", "open")
    tiles = settings.get("WEB_MAP_TILES_URL", "")
    page = render_template(
        "map.html",
        measures=MEASURES,
        measure=measure if measure in MEASURES else "open",
        period=period_args(),
        bounds=cmap.bounds(staff),
        grids=len(cmap.visible(staff)),
        tiles=tiles,
        tiles_attribution=settings.get("WEB_MAP_TILES_ATTRIBUTION", ""),
        houses=current_app.extensions["houses"] is not None,
    )
    return page, 200, ({"Content-Security-Policy": tiles_csp(tiles)} if tiles else {})


def tiles_csp(tiles: str) -> str:
    """The pages' policy with images also from the configured tile server (and nothing else)."""
    from services.web.app import PAGE_CSP  # the app module imports this one

    host = urlsplit(tiles).netloc
    if "{" in host:  # a subdomain template such as t{s}.tianditu.gov.cn
        host = "*." + host.split(".", 1)[1]
    scheme = urlsplit(tiles).scheme or "https"
    return PAGE_CSP.replace("img-src 'self' data:", f"img-src 'self' data: {scheme}://{host}")


@bp.get("/grids.geojson")
@staff_required()
def grids() -> Response:
    cmap = county_map()
    return _geojson(cmap.grids_geojson(principal(cmap)))


@bp.get("/outlines.geojson")
@staff_required()
def outlines() -> Response:
    cmap = county_map()
    return _geojson(cmap.outlines_geojson(principal(cmap)))


def measures_for(cmap: CountyMap, staff: Staff, period: dict[str, str]) -> dict[str, Any]:
    """Every measure per visible grid for the period, and the period's hotspot alerts with a place."""
    token = g.me.token
    backends = current_backends()
    breakdown = backends.get("stats", "/v1/stats/breakdown", token=token, params={"by": "grid", **period})
    if breakdown.status == 400:
        return {"errors": breakdown.fields}
    visible = {gi.grid_id: gi for gi in cmap.visible(staff)}
    values: dict[str, dict[str, Any]] = {}
    for item in breakdown.body.get("items", []) if breakdown.ok else []:
        grid = visible.get(item.get("key") or "")
        if grid is None:
            continue
        values[grid.grid_id] = {
            "accepted": item["accepted"],
            **{m: fn(item, grid.population) for m, (_, _, fn) in MEASURES.items()},
        }
    alerts = backends.get("stats", "/v1/alerts", token=token, params={**period, "limit": 200})
    categories = current_app.extensions["categories"]
    placed = []
    for a in named_alerts(cmap, alerts.body.get("items", []) if alerts.ok else []):
        point = cmap.area_point(a["area"]["level"], a["area"]["id"], a.get("town"))
        if point is not None:
            placed.append(
                {
                    "alert_id": a["alert_id"],
                    "kind": a["kind"],
                    "area": a["area"],
                    "category": categories[a["category"]].name if a["category"] in categories else a["category"],
                    "count": a["count"],
                    "window_start": a["window_start"],
                    "window_end": a["window_end"],
                    "point": point,
                }
            )
    return {"period": period, "grids": values, "alerts": placed}


def named_alerts(cmap: CountyMap, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts with a grid's registry name (the events carry only its id; villages and towns have names)."""
    out = []
    for a in alerts:
        grid = cmap.grids.get(a["area"]["id"]) if a["area"]["level"] == "grid" else None
        out.append({**a, "area": {**a["area"], "name": f"{grid.village}{grid.name.removeprefix(grid.village)}"}}
                   if grid else a)  # fmt: skip
    return out


@bp.get("/measures")
@staff_required()
def measures() -> Any:
    cmap = county_map()
    found = measures_for(cmap, principal(cmap), period_args())
    if "errors" in found:
        return {"error": {"code": "invalid_query", "message": "invalid period", "fields": found["errors"]}}, 400
    return found


@bp.get("/grids/<grid_id>")
@staff_required()
def grid_detail(grid_id: str) -> Any:
    cmap = county_map()
    grid = cmap.grids.get(grid_id)
    if grid is None or not may_read(principal(cmap), grid.area):
        abort(404)
    orders = current_backends().get(
        "routing", "/v1/workorders", token=g.me.token, params={"grid_id": grid_id, "limit": 200}
    )
    open_orders = [
        {
            "petition_id": o["petition_id"],
            "status": o["status"],
            "category": o.get("category"),
            "url": f"/staff/orders/{quote(o['petition_id'], safe='')}" if g.me.can("queue") else None,
        }
        for o in (orders.body.get("workorders", []) if orders.ok else [])
        if o["status"] in OPEN
    ]
    return {
        "grid_id": grid.grid_id,
        "name": grid.name,
        "village": grid.village,
        "town": grid.town,
        "households": grid.households,
        "population": grid.population,
        "leader": grid.leader,
        "cadre": grid.cadre,
        "helpers": list(grid.helpers),
        "open_petitions": open_orders,
    }


@bp.get("/houses")
@staff_required()
def houses() -> Any:
    layer: Houses | None = current_app.extensions["houses"]
    try:
        west, south, east, north = (float(v) for v in request.args.get("bbox", "").split(","))
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ValueError
    except ValueError:
        message = "must be west,south,east,north in degrees, west < east and south < north"
        return {"error": {"code": "invalid_query", "message": "invalid bbox", "fields": {"bbox": message}}}, 400
    if layer is None:
        return {"points": [], "total": 0, "available": False}
    cmap = county_map()
    staff = principal(cmap)
    allowed = None if staff.role in ("county_dispatcher", "auditor") else {gi.grid_id for gi in cmap.visible(staff)}
    points, total = layer.within((west, south, east, north), allowed, HOUSES_LIMIT)
    return {"points": points, "total": total, "available": True}


@bp.get("/export.png")
@staff_required()
def export_png() -> Response:
    cmap = county_map()
    staff = principal(cmap)
    measure = request.args.get("measure", "open")
    if measure not in MEASURES:
        abort(400)
    found = measures_for(cmap, staff, period_args())
    if "errors" in found:
        abort(400)
    label, unit, _ = MEASURES[measure]
    png = mappng.render(
        [(cmap.shapes[gi.grid_id], found["grids"].get(gi.grid_id, {}).get(measure)) for gi in cmap.visible(staff)],
        [tuple(a["point"]) for a in found["alerts"]],
        title=f"{label}（{period_label(found['period'])}）",
        percent=unit == "%",
    )
    name = f"grid-map-{measure}.png"
    return Response(png, mimetype="image/png", headers={"Content-Disposition": f'attachment; filename="{name}"'})


def install(app: Any) -> None:
    """The map's blueprint and its caches (called by create_app)."""
    houses_file = app.extensions["settings"].extra.get("WEB_HOUSES_FILE")
    app.extensions.update(
        county_map=MapCache(app.extensions["backends"]),
        houses=Houses.load(Path(houses_file)) if houses_file and Path(houses_file).exists() else None,
    )
    app.register_blueprint(bp)
