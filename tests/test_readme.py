"""The README promises what the code does: its schema tables are generated, its commands exist."""

from __future__ import annotations

from _paths import REPO

from ouro_ray.cli import build_parser
from ouro_ray.cli.data import schema_markdown
from ouro_ray.data import SHARDS

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_schema_tables_match_the_schema_module() -> None:
    assert schema_markdown(list(SHARDS.values())) in README, "regenerate with: ouro schema --markdown"


def test_readme_documents_every_cli_command() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"ouro {name}" in README, f"README does not document `ouro {name}`"


def test_readme_names_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
