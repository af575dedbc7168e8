"""The registry's two kinds of "no": the store answered that there is no such model or alias
(train one), or the store did not answer at all (training would not help).

The unreachable store is a loopback port nothing listens on (no network); the reachable one
a sqlite file under tmp_path.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import mlflow
import pytest
from mlflow import MlflowClient

from training import tracking


@pytest.fixture(autouse=True)
def _restore_tracking_uri() -> Iterator[None]:
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


def _nowhere(monkeypatch: pytest.MonkeyPatch) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # One refused connection, not MLflow's default seven retries with backoff.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_store_is_not_a_missing_champion(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = _nowhere(monkeypatch)
    with pytest.raises(tracking.TrackingStoreUnavailableError) as raised:
        tracking.load_model("delay", tracking.CHAMPION, tracking_uri=nowhere)
    message = str(raised.value)
    assert "unreachable" in message and nowhere in message, message
    assert "train" not in message  # training against a store that is down cannot help
    # Every registry read says the same, not "none there".
    with pytest.raises(tracking.TrackingStoreUnavailableError):
        tracking.alias_version("overrun", tracking.CHALLENGER)
    with pytest.raises(tracking.TrackingStoreUnavailableError):
        tracking.version_info("delay", "1")
    with pytest.raises(tracking.TrackingStoreUnavailableError):
        tracking.list_versions("delay")


def test_configure_against_an_unreachable_store_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = _nowhere(monkeypatch)
    with pytest.raises(tracking.TrackingStoreUnavailableError, match="unreachable"):
        tracking.configure(nowhere)


def test_a_store_that_answers_no_is_a_missing_champion(mlflow_store: dict[str, str]) -> None:
    tracking.configure(mlflow_store["tracking_uri"], mlflow_store["artifact_root"])
    # No registered model at all (the registry says RESOURCE_DOES_NOT_EXIST) ...
    assert tracking.alias_version("delay", tracking.CHAMPION) is None
    assert tracking.version_info("delay", "1") is None
    assert tracking.list_versions("delay") == []
    with pytest.raises(LookupError, match="train one first"):
        tracking.load_model("delay")
    # ... and a registered model without that alias (INVALID_PARAMETER_VALUE).
    MlflowClient().create_registered_model(tracking.REGISTERED_NAMES["delay"])
    assert tracking.alias_version("delay", tracking.CHAMPION) is None
    with pytest.raises(LookupError, match="train one first"):
        tracking.load_model("delay")


def test_redacted_hides_only_the_password() -> None:
    assert tracking.redacted("postgresql://pmo:s3cret@db:5432/mlflow") == (
        "postgresql://pmo:***@db:5432/mlflow"
    )
    assert tracking.redacted("sqlite:///models/mlflow.db") == "sqlite:///models/mlflow.db"
