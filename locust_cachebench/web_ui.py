"""The web UI's "Cache hits" tab next to Locust's own, fed with its /stats/requests answers."""

import json

from flask import Response, request
from locust.web import WebUI

from locust_cachebench.hits import HitCounter

WEB_UI_TAB = {"title": "Cache hits", "key": "cache-hits"}
WEB_UI_TABLE = {
    "key": "cache-hits",
    "structure": [
        {"key": "scenario", "title": "Scenario"},
        {"key": "gets", "title": "# GETs"},
        {"key": "hits", "title": "# HITs"},
        {"key": "rate", "title": "Hit rate"},
    ],
}


def web_ui_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows as the web UI's extra table shows them (the rate in percent)."""
    return [{**row, "rate": "-" if row["rate"] is None else f"{row['rate']:.1%}"} for row in rows]


def extend_web_ui(web_ui: WebUI, hits: HitCounter) -> None:
    """Add the tab, showing the rows of `hits`, to `web_ui`."""
    web_ui.template_args["extended_tabs"] = [WEB_UI_TAB]
    web_ui.template_args["extended_tables"] = [WEB_UI_TABLE]

    def add_hit_rates(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            body["extended_stats"] = [{"key": WEB_UI_TAB["key"], "data": web_ui_rows(hits.rows())}]
            response.set_data(json.dumps(body))
        return response

    web_ui.app.after_request(add_hit_rates)
