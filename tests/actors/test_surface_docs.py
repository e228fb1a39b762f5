"""The runnable examples of docs/timers.md, docs/stash.md and docs/pubsub.md run as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def runnable_example(page: str) -> str:
    """The first python block after the page's "A runnable example" heading."""
    text = (DOCS / page).read_text()
    section = text.split("## A runnable example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"{page} has no python block under 'A runnable example'"
    return match.group(1)


@pytest.mark.parametrize("page", ["timers.md", "stash.md", "pubsub.md"])
def test_the_runnable_example_of_the_page_runs(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = runnable_example(page)
    assert "asyncio.run(main())" in code
    exec(compile(code, f"docs/{page}", "exec"), {"__name__": f"docs_{page.removesuffix('.md')}"})
    assert capsys.readouterr().out.strip()
