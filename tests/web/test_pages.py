"""The pages are served by the app itself, with their scripts, and nothing loads from elsewhere."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("path", ["/", "/label", "/dashboard", "/dashboard/projects/7"])
def test_pages_are_served_with_only_local_assets_and_a_strict_policy(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    policy = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert assets and all(a.startswith("/") for a in assets), assets  # no CDN
    for asset in assets:
        with client.get(asset) as served:
            assert served.status_code == 200 and served.get_data(), asset
    assert "<script>" not in html  # no inline script: the policy would block it


def test_a_project_id_beyond_bigint_is_a_plain_404(client) -> None:
    assert client.get(f"/dashboard/projects/{2**63}").status_code == 404


def test_the_landing_page_links_the_labelling_page_the_dashboard_and_the_api(client) -> None:
    html = client.get("/").get_data(as_text=True)
    links = re.findall(r'<a class="choice" href="([^"]+)"', html)
    assert links == ["/label", "/dashboard", "/openapi.json"]
    for link in links:
        assert client.get(link).status_code == 200, link
