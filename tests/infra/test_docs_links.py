"""The documentation's relative links resolve, and the reference data is described in one document.

The Bicep type-check page was folded into docs/reference-data.md: nothing may still point at the old file, and the
merged page must cover both checks and the three location variables. Links are checked as GitHub renders them:
a relative file must exist, and a `#fragment` must be the slug of a heading in that file.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.infra_model import REPO

OLD_DOC = "reference-data-" + "bicep.md"  # split so this file does not name it
DOCS = ("README.md", "docs", "infra/README.md", "rtj-relay/README.md", "devtools", "provisioning")
SKIP_DIRS = {".git", ".venv", ".venv-checkov", "node_modules", ".ruff_cache", ".mypy_cache", ".pytest_cache"}
TEXT_SUFFIXES = {".md", ".py", ".sh", ".bicep", ".json", ".yaml", ".yml", ".toml", ".txt", ".cs", ".csproj"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REFERENCE_DATA_TERMS = (
    "CHANNEL_REFERENCE_DATA",
    "CHANNEL_BICEP_TYPES",
    "CHANNEL_DATAVERSE_METADATA",
    "python -m devtools.bicep_typecheck infra",
    "## The Dataverse emulator: what it checks",
    "## The Bicep type check: `infra/` against the ARM type definitions",
)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            out.add(f"{base}-{seen[base]}" if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    return out


def markdown_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for entry in DOCS:
        path = root / entry
        files += sorted(path.rglob("*.md")) if path.is_dir() else [path] if path.is_file() else []
    return files


def broken_links(root: Path) -> list[str]:
    out = []
    for doc in markdown_files(root):
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, fragment = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{doc.relative_to(root)} -> {target}"
            if not dest.exists():
                out.append(f"{where}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                out.append(f"{where}: no such heading")
    return out


def old_doc_mentions(root: Path) -> list[str]:
    out = [f"{OLD_DOC} still exists"] if (root / "docs" / OLD_DOC).exists() else []
    for path in sorted(root.rglob("*")):
        parts = set(path.relative_to(root).parts)
        if parts & SKIP_DIRS or not path.is_file() or path.suffix not in TEXT_SUFFIXES:
            continue
        if OLD_DOC in path.read_text(encoding="utf-8", errors="replace"):
            out.append(f"{path.relative_to(root)} names {OLD_DOC}")
    return out


def test_every_relative_link_resolves() -> None:
    assert broken_links(REPO) == []


def test_reference_data_is_one_document() -> None:
    assert old_doc_mentions(REPO) == []
    text = (REPO / "docs" / "reference-data.md").read_text(encoding="utf-8")
    assert [term for term in REFERENCE_DATA_TERMS if term not in text] == []


def test_the_checks_catch_a_broken_link_and_a_stale_mention(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "infra.md").write_text(
        f"# Infra\n## The Bicep type check: `infra/` (ARM)\nsee [old]({OLD_DOC}) and [ok](#infra) and"
        " [anchor](#the-bicep-type-check-infra-arm) and [bad](#the-bicep-type-check) and [web](https://x.y/z)\n"
    )
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "check.sh").write_text(f"# see docs/{OLD_DOC}\n")
    assert broken_links(tmp_path) == [
        f"docs/infra.md -> {OLD_DOC}: no such file",
        "docs/infra.md -> #the-bicep-type-check: no such heading",
    ]
    assert old_doc_mentions(tmp_path) == [f"docs/infra.md names {OLD_DOC}", f"scripts/check.sh names {OLD_DOC}"]
    (tmp_path / "docs" / OLD_DOC).write_text("old\n")
    assert old_doc_mentions(tmp_path)[0] == f"{OLD_DOC} still exists"


def test_slug_matches_github() -> None:
    assert slug("The relay settings in azd") == "the-relay-settings-in-azd"
    assert slug("Relay authentication (real-time journeys)") == "relay-authentication-real-time-journeys"
    assert slug("Dataverse setup: `channel provision --rtj`") == "dataverse-setup-channel-provision---rtj"
