"""Descriptive download names, and the bounded folders of download copies and run zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

from flux_playground.history_files import (
    MAX_DOWNLOAD_COPIES,
    MAX_DOWNLOAD_ZIPS,
    download_copy,
    download_name,
    download_zip,
)

NOON = 1_764_590_400.0  # 2025-12-01 12:00 UTC


def test_the_name_says_when_where_which_seed_and_what() -> None:
    name = download_name(
        created_at=NOON, provider="deepinfra", seed=42, prompt="A red tram in Lisbon, rainy evening!", index=0
    )
    assert name == "flux-20251201-1200-deepinfra-seed42-a-red-tram-in-lisbon-rainy.png"


def test_the_name_is_safe_for_any_prompt_and_counts_images() -> None:
    name = download_name(created_at=NOON, provider="my_server", seed=None, prompt='../../"é<>|', index=2)
    assert name == "flux-20251201-1200-my-server-noseed-3.png"
    long = download_name(created_at=NOON, provider="fal", seed=1, prompt="x" * 500, index=0)
    assert long == f"flux-20251201-1200-fal-seed1-{'x' * 60}.png"


def test_a_copy_is_the_image_under_its_name_and_the_folder_stays_bounded(tmp_path: Path) -> None:
    image = tmp_path / "abc.png"
    image.write_bytes(b"png bytes")
    folder = tmp_path / "downloads"
    copies = [download_copy(image, f"n{i}.png", folder) for i in range(MAX_DOWNLOAD_COPIES + 5)]
    assert copies[-1].name == f"n{MAX_DOWNLOAD_COPIES + 4}.png"
    assert copies[-1].read_bytes() == b"png bytes"
    assert len(list(folder.iterdir())) == MAX_DOWNLOAD_COPIES


def test_a_run_zip_holds_each_image_under_its_name_and_few_are_kept(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"A")
    b.write_bytes(b"BB")
    folder = tmp_path / "runs"
    for i in range(MAX_DOWNLOAD_ZIPS + 3):
        path = download_zip([(a, "one.png"), (b, "two.png")], f"run{i}.zip", folder)
    with zipfile.ZipFile(path) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == {"one.png": b"A", "two.png": b"BB"}
    assert len(list(folder.iterdir())) == MAX_DOWNLOAD_ZIPS
