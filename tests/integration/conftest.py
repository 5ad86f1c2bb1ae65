"""Fixtures shared by the integration tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
from agent_image import ensure_agent_image


@pytest.fixture(scope="session")
def agent_image(tmp_path_factory):
    """The real agent image (Claude Code, Gemini CLI), built once by the image role."""
    return ensure_agent_image(tmp_path_factory.mktemp("agent-image"))
