"""FF++, Celeb-DF v2 and folder manifests built from small fake download trees."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from deepfake_attention.data.manifest import ManifestError, ManifestRow, label_counts, read_manifest
from deepfake_attention.data.protocols import build_manifest, celebdf_manifest, ffpp_manifest, folder_rows

FFPP_SPLITS = {"train": [["000", "001"], ["002", "003"], ["004", "005"]], "val": [["006", "007"]], "test": [["009", "008"]]}


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_ffpp(root: Path, methods: tuple[str, ...] = ("Deepfakes", "Face2Face"), splits: dict | None = None) -> Path:
    for split, pairs in (splits or FFPP_SPLITS).items():
        touch(root / f"{split}.json", json.dumps(pairs).encode())
    for k in range(10):
        touch(root / "original_sequences/youtube/c23/videos" / f"{k:03d}.mp4")
    touch(root / "original_sequences/youtube/c23/videos/notes.txt")  # not a video: ignored
    for method in methods:
        for a, b in [p for pairs in FFPP_SPLITS.values() for p in pairs]:
            for target, source in ((a, b), (b, a)):
                touch(root / "manipulated_sequences" / method / "c23/videos" / f"{target}_{source}.mp4")
                if method == "Deepfakes":
                    touch(root / "manipulated_sequences" / method / "masks/videos" / f"{target}_{source}.mp4")
    return root


def identity_splits(rows: list[ManifestRow]) -> dict[str, set[str]]:
    found = defaultdict(set)
    for row in rows:
        for identity in row.identities:
            found[identity].add(row.split)
    return found


def test_ffpp_official_splits(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path / "ffpp")
    rows = ffpp_manifest(root)
    assert label_counts(rows) == {"train": {"real": 6, "fake": 12}, "val": {"real": 2, "fake": 4}, "test": {"real": 2, "fake": 4}}
    by_video = {row.video_id: row for row in rows}
    assert by_video["original/008"] == ManifestRow(str(root / "original_sequences/youtube/c23/videos/008.mp4"), "real",
                                                   video_id="original/008", source_id="008", split="test")
    assert by_video["Deepfakes/007_006"] == ManifestRow(
        str(root / "manipulated_sequences/Deepfakes/c23/videos/007_006.mp4"), "fake",
        mask=str(root / "manipulated_sequences/Deepfakes/masks/videos/007_006.mp4"),
        video_id="Deepfakes/007_006", source_id="007+006", split="val")
    assert by_video["Face2Face/000_001"].mask == ""  # no mask folder for this method in the tree
    assert all(len(splits) == 1 for splits in identity_splits(rows).values())  # pairs with their originals
    originals = {row.source_id: row.split for row in rows if row.label == "real"}
    assert all(originals[a] == originals[b] == row.split for row in rows if row.label == "fake" for a, b in [row.identities])
    assert all(row.frame is None for row in rows)
    # written inside the dataset: relative paths, and the round trip is exact
    out = build_manifest("ffpp", root, root / "manifest.csv", methods=["Face2Face"])
    assert (root / "manifest.csv").read_text().splitlines()[1] == "original_sequences/youtube/c23/videos/000.mp4,real,,original/000,000,,train"
    assert read_manifest(root / "manifest.csv") == out and Counter(r.label for r in out) == {"real": 10, "fake": 10}


def test_ffpp_options_and_errors(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path / "ffpp", methods=("Deepfakes",))
    with pytest.raises(ManifestError, match=r"manipulated_sequences/FaceSwap/c23/videos: folder of FF\+\+ FaceSwap not found"):
        ffpp_manifest(root, methods=["FaceSwap"])
    with pytest.raises(ValueError, match=r"unknown FF\+\+ methods \['DeepFake'\]"):
        ffpp_manifest(root, methods=["DeepFake"])
    with pytest.raises(ValueError, match="compression must be one of raw, c23, c40"):
        ffpp_manifest(root, compression="c0")
    with pytest.raises(ManifestError, match="c40/videos: folder of FF\\+\\+ originals not found"):
        ffpp_manifest(root, compression="c40")
    (root / "val.json").write_text(json.dumps([["006", "007"], ["003", "010"]]))
    with pytest.raises(ManifestError, match=r"val.json: id '003' is also in train.json"):
        ffpp_manifest(root)
    (root / "val.json").write_text(json.dumps([["006"]]))
    with pytest.raises(ManifestError, match=r"expected a list of id pairs"):
        ffpp_manifest(root)
    (root / "val.json").write_text(json.dumps([["006", "007"]]))
    touch(root / "manipulated_sequences/Deepfakes/c23/videos/000_006.mp4")
    with pytest.raises(ManifestError, match=r"000_006.mp4: pair 000/006 has splits train/val"):
        ffpp_manifest(root)
    (root / "test.json").unlink()
    with pytest.raises(ManifestError, match=r"test.json: split file not found"):
        ffpp_manifest(root)


def test_ffpp_deepfakedetection_is_unassigned(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path / "ffpp", methods=())
    touch(root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4")
    touch(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    rows = ffpp_manifest(root, methods=["DeepFakeDetection"])
    dfd = [row for row in rows if row.split == ""]
    assert [(r.label, r.source_id, r.video_id) for r in dfd] == [
        ("real", "actor01", "actors/01__exit_phone_room"),
        ("fake", "actor01+actor02", "DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK"),
    ]
    assert len(ffpp_manifest(root)) == 10  # methods=None: present pair methods only, no DFD


CELEB_TEST = [
    "1 YouTube-real/00000.mp4",
    "1 Celeb-real/id0_0000.mp4",
    "1 Celeb-real/id1_0000.mp4",
    "0 Celeb-synthesis/id0_id1_0000.mp4",
    "0 Celeb-synthesis/id1_id2_0000.mp4",
]


def make_celebdf(root: Path, listed: list[str] = CELEB_TEST) -> Path:
    for i in range(12):
        for n in range(2):
            touch(root / "Celeb-real" / f"id{i}_{n:04d}.mp4")
            touch(root / "Celeb-synthesis" / f"id{i}_id{(i + 1) % 12}_{n:04d}.mp4")
            touch(root / "Celeb-synthesis" / f"id{i}_id{(i + 5) % 12}_{n:04d}.mp4")
    for k in range(6):
        touch(root / "YouTube-real" / f"{k:05d}.mp4")
    touch(root / "List_of_testing_videos.txt", ("\n".join(listed) + "\n").encode())
    return root


def test_celebdf_test_list_and_identity_split(tmp_path: Path) -> None:
    root = make_celebdf(tmp_path / "cdf")
    rows = celebdf_manifest(root, val_fraction=0.25, seed=0)
    test = {f"{Path(r.path).parent.name}/{Path(r.path).name}": r.label for r in rows if r.split == "test"}
    assert test == {line.split()[1]: "real" if line[0] == "1" else "fake" for line in CELEB_TEST}  # 1 = real, 0 = fake
    by_video = {row.video_id: row for row in rows}
    assert by_video["Celeb-synthesis/id1_id2_0000"] == ManifestRow(str(root / "Celeb-synthesis/id1_id2_0000.mp4"), "fake",
                                                                  video_id="Celeb-synthesis/id1_id2_0000", source_id="id1+id2", split="test")
    assert by_video["YouTube-real/00003"].source_id == "youtube-00003"
    others = [row for row in rows if row.split != "test"]
    assert {row.split for row in others} == {"train", "val"}
    assert len(rows) == 12 * 2 * 3 + 6  # linked="target": every video kept
    target_splits = defaultdict(set)
    for row in others:
        target_splits[row.identities[0]].add(row.split)
    assert all(len(splits) == 1 for splits in target_splits.values())  # a swap goes with its target's real videos
    assert 0.1 < sum(r.split == "val" for r in others) / len(others) < 0.4
    assert celebdf_manifest(root, val_fraction=0.25, seed=0) == rows
    assert celebdf_manifest(root, val_fraction=0.25, seed=1) != rows
    strict = celebdf_manifest(root, val_fraction=0.25, seed=0, linked="drop")
    train_val = identity_splits([row for row in strict if row.split != "test"])
    assert all(len(splits) == 1 for splits in train_val.values())  # no identity in both train and val
    assert 0 < len(rows) - len(strict) < 46  # swaps across train/val are left out, never single-identity videos
    assert sum(r.label == "real" for r in strict) == 12 * 2 + 6
    disjoint = celebdf_manifest(root, val_fraction=0.25, seed=0, disjoint_identities=True)
    in_test = {identity for row in disjoint if row.split == "test" for identity in row.identities}
    assert in_test == {"youtube-00000", "id0", "id1", "id2"}
    assert not any(in_test.intersection(r.identities) for r in disjoint if r.split != "test")
    fully = celebdf_manifest(root, val_fraction=0.25, seed=0, disjoint_identities=True, linked="drop")
    assert all(len(splits) == 1 for splits in identity_splits(fully).values())  # no identity in two splits at all


@pytest.mark.parametrize(
    "listed, message",
    [
        (["0 YouTube-real/00000.mp4"], r"line 1: YouTube-real/00000.mp4 is labelled 0 \(fake\) but YouTube-real/ holds real"),
        (["1 Celeb-real/id0_0000.mp4", "1 Celeb-synthesis/id0_id1_0000.mp4"], r"line 2: .* labelled 1 \(real\) but Celeb-synthesis/ holds fake"),
        (["1 Celeb-real/id0_0000.mp4", "", "1 Celeb-real/id0_0000.mp4"], r"line 3: Celeb-real/id0_0000.mp4 is listed twice"),
        (["real Celeb-real/id0_0000.mp4"], r"line 1: expected '<1 \(real\) or 0 \(fake\)>"),
        (["1 Celeb-real/id99_0000.mp4"], r"1 listed videos are not on disk, e.g. Celeb-real/id99_0000.mp4"),
        ([], r"lists no videos"),
    ],
)
def test_celebdf_list_errors(tmp_path: Path, listed: list[str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        celebdf_manifest(make_celebdf(tmp_path / "cdf", listed))


def test_celebdf_layout_errors(tmp_path: Path) -> None:
    root = make_celebdf(tmp_path / "cdf")
    touch(root / "Celeb-real" / "person_a.mp4")
    with pytest.raises(ManifestError, match=r"Celeb-real/person_a.mp4: expected a name like id0_0000.mp4"):
        celebdf_manifest(root)
    with pytest.raises(ManifestError, match=r"List_of_testing_videos.txt: not found"):
        celebdf_manifest(tmp_path)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        celebdf_manifest(root, val_fraction=1.0)
    with pytest.raises(ValueError, match=r"linked must be 'target' or 'drop' for Celeb-DF"):
        celebdf_manifest(root, linked="merge")


def test_folder_rows_with_masks(tmp_path: Path) -> None:
    for name in ("real/a.png", "real/sub/b.jpg", "real/.hidden.png", "real/readme.txt", "fake/x.jpg", "fake/sub/y.png", "masks/sub/y.png", "fake/clip.mp4"):
        touch(tmp_path / name)
    rows = folder_rows(tmp_path)
    assert rows == [
        ManifestRow(str(tmp_path / "real/a.png"), "real"),
        ManifestRow(str(tmp_path / "real/sub/b.jpg"), "real"),
        ManifestRow(str(tmp_path / "fake/sub/y.png"), "fake", mask=str(tmp_path / "masks/sub/y.png")),
        ManifestRow(str(tmp_path / "fake/x.jpg"), "fake"),
    ]
    assert str(tmp_path / "fake/clip.mp4") in [r.path for r in folder_rows(tmp_path, videos=True)]
    touch(tmp_path / "masks/z.png")
    with pytest.raises(ManifestError, match=r"masks/z.png: mask matches no fake \(expected fake/z.<ext>\)"):
        folder_rows(tmp_path)
    with pytest.raises(ManifestError, match=r"no 'real/' or 'fake/' folder"):
        folder_rows(tmp_path / "masks")
    with pytest.raises(ValueError, match=r"unknown dataset kind 'dfdc'"):
        build_manifest("dfdc", tmp_path, tmp_path / "m.csv")
