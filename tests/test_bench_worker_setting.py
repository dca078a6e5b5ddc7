"""``bench.e2e --worker-setting NAME=VALUE``: a setting is checked against the service's own, and reaches
the workers' environment, which a deployment otherwise keeps free of the caller's ``PATENTMATCH_*``."""

from __future__ import annotations

import pytest

from bench.e2e import worker_env
from streams.settings import Settings
from streams.supervision import Deployment


def test_a_worker_setting_reaches_the_workers_environment_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATENTMATCH_BATCH_INTERVAL_S", "0.5")  # the caller's: not the workers'
    env = worker_env(["producer_linger_s=0", " batch_idle_s = 0.001 "])
    assert env == {"PATENTMATCH_PRODUCER_LINGER_S": "0", "PATENTMATCH_BATCH_IDLE_S": "0.001"}
    with Deployment("127.0.0.1:9", extra_env=env) as deployment:
        workers = deployment.env(web_port=1)
    assert workers["PATENTMATCH_PRODUCER_LINGER_S"] == "0" and "PATENTMATCH_BATCH_INTERVAL_S" not in workers
    monkeypatch.delenv("PATENTMATCH_BATCH_INTERVAL_S")
    for name, value in workers.items():
        if name.startswith("PATENTMATCH_"):
            monkeypatch.setenv(name, value)
    worker = Settings()  # as the worker reads its environment
    default_interval = Settings.model_fields["batch_interval_s"].default
    assert (worker.producer_linger_s, worker.batch_idle_s, worker.batch_interval_s) == (0, 0.001, default_interval)


@pytest.mark.parametrize("pair", ["no_such_setting=1", "producer_linger_s=soon", "producer_linger_s", "=0"])
def test_a_bad_worker_setting_is_refused_with_the_reason(pair: str) -> None:
    with pytest.raises(ValueError, match=r"producer_linger_s|Settings"):
        worker_env([pair])
