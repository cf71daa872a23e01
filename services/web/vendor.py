"""The pages' third-party libraries, from npm (services/web/package.json, `npm ci`), served by this
service itself: county networks are intranets, and no page loads code from a CDN.

Only the distribution folders named here are served, nothing else of node_modules.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, send_from_directory

bp = Blueprint("vendor", __name__, url_prefix="/vendor")
HERE = Path(__file__).resolve().parent
# library -> its distribution folder inside node_modules
LIBRARIES = {"leaflet": "leaflet/dist", "echarts": "echarts/dist"}


def assets_dir() -> Path:
    """WEB_ASSETS_DIR (an image copies node_modules there), by default the package's node_modules."""
    return Path(current_app.extensions["settings"].extra.get("WEB_ASSETS_DIR") or HERE / "node_modules")


@bp.get("/<library>/<path:filename>")
def asset(library: str, filename: str) -> Response:
    if library not in LIBRARIES:
        abort(404)
    # send_from_directory refuses paths that leave the folder (.., absolute paths)
    return send_from_directory(assets_dir() / LIBRARIES[library], filename, max_age=3600)
