"""The docker-compose stack, checked without Docker (no engine here): structure, mounted files, the
Prometheus targets, and that the dashboard asks only for metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from streams.metrics import ServiceMetrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_kraft_kafka_two_workers_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "worker", "prometheus", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    worker = services["worker"]
    assert worker["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert worker["deploy"]["replicas"] == 2
    assert worker["environment"]["PATENTMATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker["environment"]["PATENTMATCH_WEB_HOST"] == "0.0.0.0"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_mounted_file_exists() -> None:
    mounts = [v for s in compose()["services"].values() for v in s.get("volumes", []) if v.startswith("./")]
    assert mounts
    for mount in mounts:
        source = mount.split(":", 1)[0]
        assert (ROOT / source).exists(), source


def test_the_dockerfile_copies_what_exists_and_runs_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert 'CMD ["patentmatch", "worker"]' in dockerfile
    assert 'patentmatch = "streams.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_prometheus_scrapes_every_worker_on_the_metrics_port() -> None:
    services = compose()["services"]
    port = int(services["worker"]["environment"]["PATENTMATCH_WEB_PORT"])
    assert port == Settings().web_port
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["port"] == port


def test_grafana_is_provisioned_with_the_datasource_and_dashboard() -> None:
    services = compose()["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/patentmatch.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/patentmatch.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}


def test_the_dashboard_uses_only_exported_metrics_and_shows_what_operators_need() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/patentmatch.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in expressions for name in re.findall(r"\b(?:patentmatch|process)_[a-z_]+", e)}
    exported = ServiceMetrics().names()
    assert used <= exported, used - exported
    for needed in ("events_total", "event_to_match_seconds_bucket", "book_entries", "dead_letters_total",
                   "consumer_lag", "matches_total", "ready", "broker_up", "records_read_back_total",
                   "shard_log_records_let_go_total"):  # fmt: skip
        assert f"patentmatch_{needed}" in used, needed
    assert "process_cpu_seconds_total" in used, "a saturated worker is seen before its latency grows"
