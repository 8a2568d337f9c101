"""`GET /audience`: the customers of a group across every worker (journey.audience).

The worker asked answers for the partitions whose databases it holds, asks every other worker of
the group for the same page of theirs (`scope=local`, evaluated at its own time `at`, see
`streams.cluster`) and merges the pages by key; `scope=local` answers for this worker alone.
`journeystream audience` gives the same list from the changelog, without workers. Behind the
bearer token like every data route (`streams.web.require_token`).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from faust import web

from journey.audience import AudienceError, AudiencePage, merge_pages, parse_query, select
from journey.audience_export import csv_lines, jsonl, row_dict, row_from_dict
from journey.stages import format_time
from streams import cluster
from streams.agents.customers import journey_config
from streams.app import app
from streams.tables import customers as customer_table
from streams.web import UNAUTHORIZED, authorized, processing_now

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FORMATS = ("json", "jsonl", "csv")
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
NEXT_HEADER = "Audience-Next"  # jsonl and csv: the `after` of the next page, percent-encoded
PARTITIONS_HEADER = "Audience-Partitions"  # jsonl and csv: the partitions that answered


@app.page("/audience")
class Audience(web.View):
    """The customers of a segment, stage, tag, ... held by this worker, by key, paged."""

    async def get(self, request: web.Request) -> web.Response:
        """`?segment=&stage=&tag=&seen_from=&seen_to=&bought=&abandoned_cart_from=&...`."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        if len(set(request.query.keys())) != len(request.query):  # len counts repeats
            return self.error(400, "a parameter is given more than once")
        params = dict(request.query)
        fmt = params.pop("format", "json")
        if fmt not in FORMATS:
            return self.error(400, f"format must be one of {', '.join(FORMATS)}")
        scope = params.pop(cluster.SCOPE, "")
        if (wrong := cluster.scope_error(scope)) is not None:
            return self.error(400, wrong)
        if not params.get("limit"):
            params["limit"] = str(DEFAULT_LIMIT)
        try:
            now = float(params.pop("at")) if "at" in params else processing_now()
            query = parse_query(params, max_limit=MAX_LIMIT)
        except (AudienceError, ValueError) as exc:
            return self.error(400, str(exc))
        partitions = customer_table.local_partitions()
        page = select(customer_table.local_items(), query, now, journey_config)
        if scope != cluster.LOCAL:
            asked = {**params, "format": "json", "at": repr(now)}
            try:
                answers = await cluster.ask_peers(
                    "/audience", asked, request.headers.get("Authorization")
                )
            except cluster.PeerError as exc:
                return self.error(502, f"the audience is incomplete: {exc}")
            pages = [page]
            for raw in answers:
                body = orjson.loads(raw)
                partitions = sorted({*partitions, *body["partitions"]})
                rows = tuple(row_from_dict(row) for row in body["customers"])
                pages.append(AudiencePage(rows, body["next"]))
            page = merge_pages(pages, query.limit)
        if fmt == "json":
            body = {
                "partitions": partitions,
                "now": format_time(now),  # the time the segments are evaluated at
                "count": len(page.rows),
                "next": page.next_after,
                "customers": [row_dict(row) for row in page.rows],
            }
            return self.bytes(orjson.dumps(body), content_type=CONTENT_TYPES[fmt])
        # in a header: aiohttp takes no charset in `content_type`
        headers = {
            "Content-Type": CONTENT_TYPES[fmt],
            PARTITIONS_HEADER: ",".join(map(str, partitions)),
        }
        if page.next_after is not None:
            headers[NEXT_HEADER] = quote(page.next_after, safe="")
        if fmt == "jsonl":
            data = b"".join(jsonl(page.rows))
        else:
            data = "".join(csv_lines(page.rows)).encode("utf-8")
        return self.bytes(data, headers=headers)
