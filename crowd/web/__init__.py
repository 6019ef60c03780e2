"""Browser pages served by the app: a landing page at ``/``, the worker's labelling page and
the requester dashboard.

The pages are static HTML shells; their vanilla JavaScript (``static/``, no build step, no CDN)
calls the JSON API with a token held in the tab's ``sessionStorage``. A token arrives in the
URL fragment (``#token=...``, which browsers never send to a server) or through the page's
sign-in form, and is removed from the address bar at once.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)

# Scripts and styles only from this server, no inline code; task images may come from anywhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' https: http: data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def home() -> ResponseReturnValue:
    """Where to go from here: the labelling page, the dashboard and the API's description."""
    return render_template("home.html")


@bp.get("/label")
def label() -> ResponseReturnValue:
    """The worker's labelling page."""
    return render_template("label.html")


@bp.get("/dashboard")
def dashboard() -> ResponseReturnValue:
    """The requester's project list."""
    return render_template("dashboard.html")


@bp.get("/dashboard/projects/<int:project_id>")
def project(project_id: int) -> ResponseReturnValue:
    """One project's dashboard."""
    return render_template("project.html", project_id=project_id)
