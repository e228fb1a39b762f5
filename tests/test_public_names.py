"""The public surface is documented: every exported name appears in docs/, and the
examples of the reference page run."""

from __future__ import annotations

import importlib
import re
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

PUBLIC_PACKAGES = [
    "garrison",
    "garrison.testing",
    "garrison.persistence",
    "garrison.cluster",
    "garrison.observe",
    "garrison.supervision",
    "garrison.actors",
    "garrison.mailbox",
    "garrison.cluster",
]
"""``garrison`` and the subpackages whose ``__all__`` is public (see docs/reference.md)."""


def _docs_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in sorted(DOCS.glob("*.md")))


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_name_is_mentioned_in_the_docs(package: str) -> None:
    text = _docs_text()
    exported = importlib.import_module(package).__all__
    missing = [name for name in exported if not _mentions(text, name)]
    assert not missing, f"{package} exports names that no page of docs/ mentions: {missing}"


def test_the_word_match_does_not_accept_a_longer_name() -> None:
    assert _mentions("use `ActorRef.tell`", "ActorRef")
    assert _mentions("ctx.send_later(1, m)", "send_later")
    assert not _mentions("an ActorRefs list", "ActorRef")
    assert not _mentions("MyActorRef", "ActorRef")
    assert not _mentions(_docs_text(), "NoSuchPublicName")


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


REFERENCE_BLOCKS = _python_blocks(DOCS / "reference.md")


@pytest.mark.parametrize("block", REFERENCE_BLOCKS, ids=[f"block-{n}" for n in range(len(REFERENCE_BLOCKS))])
def test_the_examples_of_the_reference_page_run(block: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
