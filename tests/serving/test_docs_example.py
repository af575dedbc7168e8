"""The README's curl example sends docs/examples/score-request.json: a valid request."""

from __future__ import annotations

import json
from pathlib import Path

from serving.request_models import ScoreRequest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_request_is_valid_and_matches_the_api_doc() -> None:
    example = json.loads((ROOT / "docs/examples/score-request.json").read_text())
    request = ScoreRequest.model_validate(example)
    assert [p.project_id for p in request.projects] == ["P-0042"]
    api_doc = (ROOT / "docs/api.md").read_text()
    curl_body = api_doc.split("-d '", 1)[1].split("}'\n", 1)[0] + "}"
    assert json.loads(curl_body) == example, "docs/api.md and docs/examples differ"
    assert "docs/examples/score-request.json" in (ROOT / "README.md").read_text()
