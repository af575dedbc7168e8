"""Schemathesis hook for the fuzz test: a schema-valid request refused with 400 must have
broken one of contract v1's cross-field rules, which JSON Schema cannot state.

Loaded by schemathesis through SCHEMATHESIS_HOOKS (tests/serving/test_service.py); the stock
positive_data_acceptance check is off for /score and /explain (schemathesis.toml), and
this one takes its place there.
"""

from __future__ import annotations

from typing import Any

import schemathesis

# pydantic's code for a model validator's ValueError (status reports or changes naming
# another project), and intake's for the rules across rows.
CROSS_FIELD_RULES = {"contract_rule", "value_error"}


@schemathesis.check
def refused_only_by_contract_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if case.operation.path not in ("/score", "/explain"):
        raise AssertionError(f"schema-valid request to {case.operation.path} got 400")
    kinds = {d.get("type") for d in response.json().get("detail", [])}
    if not kinds or not kinds <= CROSS_FIELD_RULES:
        raise AssertionError(
            f"schema-valid request refused by a rule the schema could state: {sorted(kinds)}"
        )
    return None
