"""Manifest CSV: round trip, validation errors that name line and column, group splits."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from deepfake_attention.data.manifest import COLUMNS, ManifestError, ManifestRow, filter_split, format_summary, label_counts, read_manifest, split_by_group, write_manifest

HEADER = ",".join(COLUMNS)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip_relative_inside_absolute_outside(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    outside = tmp_path / "elsewhere" / "x.png"
    rows = [
        ManifestRow(str(folder / "faces" / "a.png"), "real", video_id="v1", source_id="004", frame=0, split="train"),
        ManifestRow(str(folder / "faces" / "a.png"), "real", video_id="v1", source_id="004", frame=7, split="train"),
        ManifestRow(str(folder / "fake, with comma.png"), "fake", mask=str(folder / "masks" / "b.png"), source_id="004+982", split="val"),
        ManifestRow(str(outside), "fake"),
    ]
    out = write_manifest(rows, folder / "manifest.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[1] == "faces/a.png,real,,v1,004,0,train"
    assert lines[3] == '"fake, with comma.png",fake,masks/b.png,,004+982,,val'
    assert lines[4] == f"{outside},fake,,,,,"
    assert read_manifest(out) == rows
    assert rows[2].identities == ("004", "982") and rows[3].identities == ()


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write_csv(tmp_path / "sub" / "m.csv", "label,path\nfake,../img/x.png\n")
    (row,) = read_manifest(path)
    assert row.path == os.path.normpath(tmp_path / "img" / "x.png")
    assert (row.mask, row.video_id, row.source_id, row.frame, row.split) == ("", "", "", None, "")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"line 1: empty; expected a header"),
        ("label,mask\nreal,\n", r"line 1: missing required column 'path'"),
        ("path,label,path\na.png,real,b.png\n", r"line 1: column 'path' appears twice"),
        ("path,label,lable\na.png,real,x\n", r"line 1: unknown column 'lable'"),
        (f"{HEADER}\na.png,real,,,,,\nb.png,Fake,,,,,\n", r"line 3: column 'label': 'Fake' is not 'real' or 'fake'"),
        (f"{HEADER}\na.png,real,,,,-1,\n", r"line 2: column 'frame': '-1' is not a frame index"),
        (f"{HEADER}\na.png,real,,,,,training\n", r"line 2: column 'split': 'training'"),
        (f"{HEADER}\n,real,,,,,\n", r"line 2: column 'path': empty"),
        (f"{HEADER}\na.png,real,,,004++1,,\n", r"line 2: column 'source_id': '004\+\+1' has an empty id"),
        (f"{HEADER}\na.png,real,,,\n", r"line 2: 5 fields, but the header has 7"),
        ('path,label\n"a.png"x,real\n', r"line 2: malformed CSV"),
        (f"{HEADER}\na.png,real,,,,3,\n\nb.png,real,,,,,\na.png,fake,,,,3,\n", r"line 5: column 'path': 'a.png' \(frame 3\) repeats line 2"),
    ],
)
def test_validation_errors_name_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        read_manifest(write_csv(tmp_path / "m.csv", text))


def test_missing_file_and_bad_rows_on_write(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="appears twice"):
        write_manifest([ManifestRow("a.png", "real"), ManifestRow(str(tmp_path / "a.png"), "fake")], tmp_path / "m.csv")
    with pytest.raises(TypeError, match="expected a ManifestRow"):
        write_manifest([{"path": "a.png"}], tmp_path / "m.csv")  # type: ignore[list-item]
    assert not (tmp_path / "m.csv").exists()  # nothing half-written
    with pytest.raises(ManifestError, match="column 'frame'"):
        ManifestRow("a.png", "real", frame=True)  # type: ignore[arg-type]


def test_counts_filter_and_summary() -> None:
    rows = [ManifestRow(f"{i}.png", "fake" if i % 3 else "real", split=("train", "val", "")[i % 2 + (i > 8)]) for i in range(10)]
    counts = label_counts(rows)
    assert counts == {"train": {"real": 2, "fake": 3}, "val": {"real": 1, "fake": 3}, "": {"real": 1, "fake": 0}}
    assert [r.path for r in filter_split(rows, "val", "")] == ["1.png", "3.png", "5.png", "7.png", "9.png"]
    assert format_summary(rows).splitlines()[-1].split() == ["all", "4", "6", "10"]
    with pytest.raises(ValueError, match="give one or more splits"):
        filter_split(rows, "validation")


def ffpp_like_rows(pairs: int = 20) -> list[ManifestRow]:
    """Originals 2k, 2k+1 and their manipulations in both directions, with 3 frames each."""
    rows = []
    for k in range(pairs):
        a, b = f"{2 * k:03d}", f"{2 * k + 1:03d}"
        for frame in range(3):
            rows.append(ManifestRow(f"orig/{a}.png", "real", video_id=f"orig/{a}", source_id=a, frame=frame))
            rows.append(ManifestRow(f"orig/{b}.png", "real", video_id=f"orig/{b}", source_id=b, frame=frame))
            for method in ("DF", "F2F"):
                rows.append(ManifestRow(f"{method}/{a}_{b}.png", "fake", video_id=f"{method}/{a}_{b}", source_id=f"{a}+{b}", frame=frame))
                rows.append(ManifestRow(f"{method}/{b}_{a}.png", "fake", video_id=f"{method}/{b}_{a}", source_id=f"{b}+{a}", frame=frame))
    return rows


def splits_of(rows: list[ManifestRow], attribute: str) -> dict[str, set[str]]:
    found = defaultdict(set)
    for row in rows:
        for value in (row.identities if attribute == "identities" else (getattr(row, attribute),)):
            found[value].add(row.split)
    return found


def test_split_by_identity_merge_keeps_pairs_with_their_originals() -> None:
    rows = ffpp_like_rows()
    result = split_by_group(rows, seed=3)
    assert len(result) == len(rows)  # merge never drops
    assert all(len(s) == 1 for s in splits_of(result, "identities").values())  # no identity in two splits
    assert all(len(s) == 1 for s in splits_of(result, "video_id").values())  # frames of a video together
    counts = {split: sum(r.split == split for r in result) for split in ("train", "val", "test")}
    assert counts == {"train": 16 * 18, "val": 2 * 18, "test": 2 * 18}  # 20 equal groups cut 16/2/2
    assert split_by_group(list(reversed(rows)), seed=3) == list(reversed(result))  # independent of row order
    assert split_by_group(rows, seed=4) != result


def test_split_by_identity_drop_and_by_video() -> None:
    rows = [ManifestRow(f"{i}.png", "real", source_id=f"p{i}") for i in range(30)]
    rows += [ManifestRow(f"swap{i}.png", "fake", source_id=f"p{i}+p{(i + 1) % 30}") for i in range(30)]
    result = split_by_group(rows, {"train": 0.5, "val": 0.5}, linked="drop", seed=1)
    split_of = {r.source_id: r.split for r in result if "+" not in r.source_id}
    assert len(split_of) == 30  # every single-identity row kept
    kept = [r for r in result if "+" in r.source_id]
    assert kept and len(kept) < 30  # swaps across splits dropped, others kept
    assert all(split_of[a] == split_of[b] == r.split for r in kept for a, b in [r.identities])
    targets = split_by_group(rows, {"train": 0.5, "val": 0.5}, linked="target", seed=1)
    assert len(targets) == 60 and all(r.split == split_of[r.identities[0]] for r in targets)  # same identity placement
    by_video = split_by_group(ffpp_like_rows(5), key="video_id", seed=0)
    assert all(len(s) == 1 for s in splits_of(by_video, "video_id").values())
    assert len(splits_of(by_video, "identities")["000"]) > 1  # video grouping alone may split an identity


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"fractions": {"train": 0.8, "val": 0.3}}, ValueError, "sum to 1"),
        ({"fractions": {"train": 0.9, "holdout": 0.1}}, ValueError, r"unknown splits \['holdout'\]"),
        ({"key": "frame"}, ValueError, "key must be 'source_id' or 'video_id'"),
        ({"linked": "ignore"}, ValueError, "linked must be 'merge', 'drop' or 'target'"),
    ],
)
def test_split_by_group_argument_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        split_by_group([ManifestRow("a.png", "real", source_id="a")], **kwargs)


def test_split_by_identity_needs_identities() -> None:
    with pytest.raises(ManifestError, match=r"row 1 \(b.png\) has no source_id"):
        split_by_group([ManifestRow("a.png", "real", source_id="a"), ManifestRow("b.png", "real")])
