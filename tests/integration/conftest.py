"""Fixtures shared by the integration tests."""

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
from agent_image import NAME, ensure_agent_image, unpin


@pytest.fixture(scope="session")
def agent_image(tmp_path_factory):
    """The real agent image (Claude Code, Gemini CLI), built once by the image role, under
    a tag of this session's own (a suite of another checkout may rebuild the shared tag
    meanwhile)."""
    pin = f"{NAME}:session-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ref = ensure_agent_image(tmp_path_factory.mktemp("agent-image"), pin=pin)
    try:
        yield ref
    finally:
        unpin(pin)


@pytest.fixture(scope="session")
def model_api():
    """The model API stand-ins (Anthropic Messages, Gemini), one container on the default
    bridge for the session, reached at its address (`model_api.url`). Tests tell their
    requests apart by the `standin-tag:` in their prompts (see tests/support/model_api.py)."""
    from model_api import ModelAPI

    api = ModelAPI.start(network="bridge")
    try:
        yield api
    finally:
        api.stop()
