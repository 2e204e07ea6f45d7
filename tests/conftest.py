"""Shared fixtures: the real shared data folder, and tiny hand-made pair records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from workbench import io  # noqa: E402

HH_FILES = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data; fails (does not skip) with the resolver's clear message when it is missing."""
    return io.shared_data_dir()


@pytest.fixture
def hh_record() -> dict:
    return {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: Yes, 2+2 = 4.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: No, it is 5.",
    }
