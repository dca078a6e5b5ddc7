"""Configuration by environment (``PATENTMATCH_*``): the one place where the service's defaults live.

Nested groups use ``__``: ``PATENTMATCH_TOPICS__OFFERS=my.offers``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matcher import MatchingConfig

__all__ = ["PLAINTEXT", "KafkaSecurity", "Settings", "Topics"]


class Topics(BaseModel):
    model_config = ConfigDict(frozen=True)

    offers: str = "patent.offers"
    demands: str = "patent.demands"
    financing: str = "patent.financing"
    matches: str = "patent.matches"
    deadletter: str = "patent.deadletter"
    shard_log: str = "patentmatch.shard-log"
    """Internal: valid events routed to the shards (one partition per shard)."""
    answers: str = "patentmatch.answers"
    """Internal: each shard's local top K for a seeker, keyed to the seeker's merger partition."""


class KafkaSecurity(BaseModel):
    """How every client of the project (worker, CLI, tests, benchmarks) authenticates to Kafka.

    ``PATENTMATCH_SECURITY__PROTOCOL=SASL_PLAINTEXT``, ``…__USERNAME``, ``…__PASSWORD`` (and
    ``…__SSL_CAFILE`` with ``SASL_SSL`` or ``SSL``). The password is a ``SecretStr``: it prints as
    ``**********`` in reprs, logs and errors, and is revealed only when a client is built.
    """

    model_config = ConfigDict(frozen=True)

    protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None
    """CA bundle that signs the brokers' certificates (TLS); unset: the system's."""

    @model_validator(mode="after")
    def _credentials_with_sasl(self) -> KafkaSecurity:
        if self.protocol.startswith("SASL") and (self.username is None or self.password is None):
            raise ValueError(f"{self.protocol} needs a username and a password")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")


PLAINTEXT = KafkaSecurity()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATENTMATCH_", env_nested_delimiter="__", frozen=True)

    kafka_bootstrap: str | None = None
    """Bootstrap servers of an existing cluster; unset means: start the local broker."""
    security: KafkaSecurity = PLAINTEXT
    kafka_version: str = "4.1.1"
    """Apache Kafka release the local broker runs (``org.apache.kafka:kafka_2.13``)."""
    cache_dir: Path = Path.home() / ".cache" / "patentmatch"
    """Where the broker jars are kept between runs."""
    data_dir: Path = Path(tempfile.gettempdir()) / "patentmatch"
    """Faust's data folder (one per app id below it). The tables live in memory and are recovered from
    their changelogs, so nothing here needs to survive a restart."""
    topics: Topics = Topics()
    max_record_bytes: int = 1024 * 1024
    dead_letter_value_cap: int = 64 * 1024

    matching: MatchingConfig = MatchingConfig()
    """Weights, thresholds, top K, FX table, tombstone retention: ``PATENTMATCH_MATCHING__TOP_K=5``,
    ``PATENTMATCH_MATCHING__WEIGHTS__TEXT=0.4``, ``PATENTMATCH_MATCHING__TOMBSTONE_RETENTION_DAYS=7``."""

    app_id: str = "patentmatch"
    """The Faust app (and consumer group) id: workers with the same id share the work."""
    shards: int = 2
    """How many parts the offer book is split into (partitions of the shard log): the most workers that
    can share the matching, fixed when the shard log is created. A worker holding several shards ranks
    every demand and financing request once per shard: a single worker should run 1 (1.56× the events/s
    of 2 at a 20k backlog, bench/JOURNAL.md); 2, the default, lets a second worker take half. With one
    shard the service is :attr:`direct`."""
    input_partitions: int = 4
    """Partitions of the public input topics when the service creates them."""
    merge_partitions: int = 4
    """Partitions of the merger (and of ``patent.matches``): seekers are spread over them."""
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    commit_interval_s: float = 1.0
    batch_interval_s: float = 0.02
    """How long a shard holds the changes of the events it applies before answering the merger, and the
    merger the changes of the answers it takes before announcing them (:mod:`streams.batching`). A
    seeker touched many times within it gets one answer and one set of match events, its net change."""
    batch_full_seekers: int = Field(32, ge=1)
    """A shard answers at once, without waiting for ``batch_interval_s``, when the events it holds
    changed this many seekers: an offer that enters a hundred seekers' top K would otherwise wait for
    the records behind it, and such offers make most of the latency's tail (each of their match
    events counts). Ordinary events change one to a few seekers and still share a batch."""
    batch_idle_s: float = 0.002
    """How long a stage waits for its next record before it answers or announces what it holds: at a
    trickle of events a batch leaves after this, not after ``batch_interval_s``."""
    producer_linger_s: float = 0.005
    """How long the worker's producer holds a record for others to join its batch: faust's own sends
    (tables, the shard log). Match events leave at once (:func:`streams.kafka_io.send_batched` closes
    its batches). Before that, 0 took ~8 ms off the latency's p50 (three back-to-back pairs of
    ``bench.e2e`` runs at 10k and 20k); the backlog's rate
    moved within the runs' noise, 6% lower on average. Under load aiokafka batches anyway: it keeps one
    request in flight per broker and gathers the rest meanwhile."""
    broker_probe_interval_s: float = 2.0
    """How often the worker asks the brokers for metadata; while they do not answer it is not ready."""
    session_timeout_s: float = 60.0
    """How long the group waits for a worker that stopped answering (killed, partitioned) before its
    partitions move to the others: the failover time after a crash. Heartbeats come from a thread of
    their own, so a busy event loop does not count as silence; the broker allows 6–300 s by default."""
    log_level: str = "INFO"
    """INFO logs rebuilds, dead letters and faust's own life cycle; DEBUG adds a line per event and per
    match event (keys and ids only)."""

    @property
    def direct(self) -> bool:
        """One shard holds the whole book, so its local top K is the global one: the worker that owns it
        announces its matches itself, without the answers topic, its table and the merge agent
        (DESIGN.md, "direct when one shard suffices")."""
        return self.shards == 1
