"""What the end-to-end tests know of the stack `scripts/test` starts: its variables, the
worker's URL. A missing variable fails the test with instructions; nothing is skipped."""

from __future__ import annotations

import os

import pytest


def stack_var(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: these tests need the local stack; run scripts/test")
    return value


def base_url() -> str:
    return stack_var("ZEC_BASE_URL")
