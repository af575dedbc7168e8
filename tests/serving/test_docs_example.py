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


def _python_blocks(text: str) -> list[str]:
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]


def test_api_doc_python_example_defines_every_name_it_uses() -> None:
    import ast
    import builtins

    [example] = _python_blocks((ROOT / "docs/api.md").read_text())
    tree = ast.parse(example)
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            defined.add(node.optional_vars.id)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used <= defined, f"undefined in the example: {sorted(used - defined)}"


def test_api_doc_lists_every_refusal_the_schema_declares() -> None:
    from serving.openapi import REFUSALS

    errors = (ROOT / "docs/api.md").read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("|")[1].strip() for line in errors.splitlines() if line.startswith("| 4")}
    listed |= {line.split("|")[1].strip() for line in errors.splitlines() if line.startswith("| 5")}
    assert listed == set(REFUSALS)
    settings = (ROOT / "docs/api.md").read_text().split("FOREWARN_MAX_CONCURRENCY` | 64 |", 1)[1]
    assert settings.split("\n", 1)[0].strip().endswith("before 429 |")  # what the server says
