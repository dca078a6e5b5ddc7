"""``patentmatch worker``: create the public topics if needed, then run the faust worker until stopped.

SIGTERM and Ctrl-C stop it gracefully (faust commits what it has processed); a SIGKILL loses nothing
either, since what was not committed is read again.
"""

from __future__ import annotations

import asyncio

import faust

from streams.kafka_io import ensure_topics
from streams.service import build_app, public_topics
from streams.settings import Settings

__all__ = ["run_worker"]


def run_worker(settings: Settings, bootstrap: str) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(bootstrap, public_topics(settings)))
    app = build_app(settings, bootstrap)
    worker = faust.Worker(app, loop=loop, loglevel="info", quiet=True)
    worker.execute_from_commandline()
