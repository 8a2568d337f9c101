"""The other workers of the group and one request to each: what a cluster-wide answer merges.

A worker answers for the partitions it holds. The other workers' web addresses come from Faust's
partition assignor (the customer table's host map, the one `/customers/{id}` routing uses), so a
route can ask each of them for its part (`scope=local`) and merge. A worker that does not
answer makes the whole answer fail: an audience or a figure silently missing a part of the store
would be acted on as if it were whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from streams.app import app
from streams.tables import customers as customer_table

SCOPE = "scope"  # `local`: this worker's partitions only (what a peer is asked for)
LOCAL = "local"
TIMEOUT_S = 10.0


class PeerError(Exception):
    """A worker of the group did not give its part; the message names it."""


def _peers() -> dict[str, list[int]]:
    """The group's other workers' web addresses and the customer partitions each holds."""
    me = str(app.conf.canonical_url).rstrip("/")
    hosts = app.router.table_metadata(customer_table.customers.name)
    return {
        url.rstrip("/"): [p for parts in topics.values() for p in parts]
        for url, topics in hosts.items()
        if url.rstrip("/") != me
    }


def peer_urls() -> list[str]:
    """The web addresses of the group's other workers that hold customer partitions."""
    return sorted(url for url, parts in _peers().items() if parts)


def peer_partitions() -> list[int]:
    """The customer partitions the group's other workers hold (from the same host map)."""
    return sorted({p for parts in _peers().values() for p in parts})


def scope_error(scope: str) -> str | None:
    """Why a `scope` parameter cannot be used (None: absent, the whole store, or `local`)."""
    if scope in ("", LOCAL):
        return None
    return f"scope must be {LOCAL} or absent (every worker)"


async def ask_peers(path: str, params: Mapping[str, str], authorization: str | None) -> list[bytes]:
    """Each other worker's answer to `path?params&scope=local` (same token), in URL order."""
    urls = peer_urls()
    if not urls:
        return []
    headers = {"Authorization": authorization} if authorization else {}
    query = {**params, SCOPE: LOCAL}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(url: str) -> bytes:
            try:
                async with session.get(f"{url}{path}", params=query, headers=headers) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        detail = body[:200].decode("utf-8", "replace")
                        raise PeerError(f"worker {url} answered {resp.status}: {detail}")
                    return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise PeerError(f"worker {url} did not answer: {type(exc).__name__}") from exc

        return list(await asyncio.gather(*(one(url) for url in urls)))
