"""Identity splits of the real-face corpus: people never cross splits, groups are stratified."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from deepfake_attention.recipe.corpus import CorpusFile, identity_sets, read_corpus, split_by_identity, split_summary

SHARED_CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-faces"


def _write(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "kind", "group", "people", "identities", "license"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _corpus(n_people: int = 200) -> list[CorpusFile]:
    files = []
    for k in range(n_people):
        group = ("photo", "low_res", "video", "old_or_degraded")[k % 4]
        files.append(CorpusFile(f"f{k}.jpg", "video" if group == "video" else "image", group, 1, (f"p{k}",)))
    # a group photo of three people who also appear alone, and a chain p0-p1 through another file
    files.append(CorpusFile("group.jpg", "image", "group_photo", 3, ("p0", "p5", "p9")))
    files.append(CorpusFile("pair.jpg", "image", "photo", 2, ("p9", "p13")))
    return files


def test_identity_sets_join_files_transitively() -> None:
    files = _corpus(20)
    sets = identity_sets(files)
    joined = next(s for s in sets if 0 in s)
    assert sorted(files[k].file for k in joined) == sorted(["f0.jpg", "f5.jpg", "f9.jpg", "f13.jpg", "group.jpg", "pair.jpg"])
    assert sum(len(s) for s in sets) == len(files) and len(sets) == 20 - 3


def test_no_identity_crosses_splits_and_groups_are_stratified() -> None:
    files = _corpus()
    split = split_by_identity(files, seed=7)
    where = defaultdict(set)
    for item, name in zip(files, split):
        for identity in item.identities:
            where[identity].add(name)
    assert all(len(names) == 1 for names in where.values())
    for group in ("photo", "low_res", "video", "old_or_degraded"):
        counts = Counter(name for item, name in zip(files, split) if item.group == group)
        total = sum(counts.values())
        assert abs(counts["train"] / total - 0.6) <= 0.05 and abs(counts["test"] / total - 0.2) <= 0.05, (group, counts)


def test_split_is_a_pure_function_of_the_seed() -> None:
    files = _corpus()
    assert split_by_identity(files, seed=3) == split_by_identity(list(files), seed=3)
    assert split_by_identity(files, seed=3) != split_by_identity(files, seed=4)


def test_summary_counts_files_faces_and_people(tmp_path: Path) -> None:
    files = read_corpus(_write(tmp_path / "c", [
        {"file": "a.jpg", "kind": "image", "group": "photo", "people": "2", "identities": "x;y", "license": "MIT"},
        {"file": "b.mp4", "kind": "video", "group": "video", "people": "1", "identities": "x", "license": "MIT"},
    ]))
    assert files[0].identities == ("x", "y") and files[1].kind == "video"
    split = split_by_identity(files, seed=0, fractions={"train": 1.0, "calibration": 0.0, "test": 0.0})
    assert split == ["train", "train"]
    assert split_summary(files, split)["train"] == {"photo": {"files": 1, "faces": 2, "identities": 2}, "video": {"files": 1, "faces": 1, "identities": 1}}


def test_bad_corpora_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="real-face corpus"):
        read_corpus(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.csv").write_text("file,kind\na.jpg,image\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        read_corpus(tmp_path / "bad")
    _write(tmp_path / "noid", [{"file": "a.jpg", "kind": "image", "group": "photo", "people": "1", "identities": "", "license": ""}])
    with pytest.raises(ValueError, match="at least one identity"):
        read_corpus(tmp_path / "noid")
    with pytest.raises(ValueError, match="fractions"):
        split_by_identity(_corpus(4), seed=0, fractions={"train": 0.5, "calibration": 0.5, "test": 0.5})


@pytest.mark.skipif(not (SHARED_CORPUS / "manifest.csv").is_file(), reason="the shared real-face corpus is not beside this checkout")
def test_shared_corpus_split_has_ten_test_faces_per_group() -> None:
    files = read_corpus(SHARED_CORPUS)
    summary = split_summary(files, split_by_identity(files, seed=0))
    assert all(entry["faces"] >= 10 for entry in summary["test"].values()), summary["test"]
