"""The README stays whole: its tables are not broken by prose, and the pictures it shows exist."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def tables(text: str) -> dict[str, list[str]]:
    """Each table's header line -> its rows (a table is a run of lines starting with '|')."""
    out, header = {}, None
    for line in text.splitlines():
        if line.startswith("|"):
            if header is None:
                header = line
                out[header] = []
            else:
                out[header].append(line)
        else:
            header = None
    return out


def test_the_configuration_table_is_whole():
    rows = tables(README.read_text())["| option | backend | meaning |"]
    names = " ".join(r.split("|")[1] for r in rows)
    for option in ("regions_datatype", "quantize_regions", "shard_number", "timeout", "max_search_threads"):
        assert f"`{option}`" in names, option


def test_pictures_exist_and_stay_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert "docs/serve-page.png" in pictures
    for name in pictures:
        path = README.parent / name
        assert path.is_file() and path.stat().st_size < 300_000, name


def test_every_setting_is_in_the_settings_table():
    from vitr_qdrant.settings import Settings

    rows = tables(README.read_text())["| setting | default | meaning |"]
    names = " ".join(r.split("|")[1] for r in rows)
    for field in Settings.model_fields:
        assert f"`{field}`" in names, field


def test_one_table_says_what_ids_mean():
    rows = tables(README.read_text())["| the item | what is stored under its id | result, in the report |"]
    results = " ".join(r.split("|")[3] for r in rows)
    for outcome in ("`added`", "`replaced_items`", "`skipped_items`", "`failed`"):
        assert outcome in results, outcome
