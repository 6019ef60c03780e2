"""docs/CLIENT.md's Python examples run, in order, as one script against the live service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "CLIENT.md"


def test_the_client_examples_in_the_docs_run(
    live_url: str,
    requester: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.setenv("CROWD_URL", live_url)
    monkeypatch.setenv("CROWD_TOKEN", requester)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "4 new tasks, 0 already there" in out
    assert "404 not_found" in out
    labels = {
        row["external_id"]: row["label"] for row in namespace["requester"].results(namespace["pid"])
    }
    assert labels == {"review-0": "pos", "review-1": "neg", "review-2": "pos", "review-3": "neg"}
    assert out.count("changed: review-") == 4  # the first pass of the stream: every row
