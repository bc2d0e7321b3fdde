"""The MNIST-family datasets: fetched once, verified always, loaded fast.

Three datasets of 28x28 grey-scale images in ten classes, each in its original IDX format:

MNIST
    Handwritten digits. Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
    handwritten digits" (1998). Licence: CC BY-SA 3.0.
Fashion-MNIST
    Zalando article images. H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image
    dataset for benchmarking machine learning algorithms", arXiv:1708.07747 (2017). Licence: MIT.
Kuzushiji-MNIST (KMNIST)
    Cursive Japanese (kuzushiji) characters. T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb,
    K. Yamamoto and D. Ha, "Deep learning for classical Japanese literature", arXiv:1812.01718
    (2018). Licence: CC BY-SA 4.0.

How a file is obtained
----------------------
Every file is pinned by its SHA-256. :func:`fetch` looks for it, in order:

1. in the cache folder (``TFPCOURSE_DATA_DIR``, default: the user cache folder), where it is
   used only if its checksum still matches;
2. in the mirror, if ``TFPCOURSE_DATA_MIRROR`` names a folder or base URL laid out as
   ``<mirror>/<dataset>/<file>`` (the cache folder itself has that layout, so a class can share
   one teacher's cache as its mirror);
3. at the dataset's own download sites, in the order listed.

Downloads and copies go through `pooch <https://www.fatiando.org/pooch/>`_: into a temporary file
first, checked against the pinned checksum, and only then moved into place, so a partial or wrong
file never passes as valid and never poisons the cache. When every source fails, one
:class:`DataUnavailableError` says what was tried and how to fix it.

Decoded arrays are cached next to the ``.gz`` files as ``.npy`` (named with the source's
checksum), so a second load takes milliseconds instead of a gzip decompression.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfpcourse._validate import check_choice
from tfpcourse.config import get_config

__all__ = [
    "DATASETS",
    "CorruptDataError",
    "DataError",
    "DataUnavailableError",
    "DatasetInfo",
    "FileInfo",
    "ImageDataset",
    "Split",
    "cache_dir",
    "cache_status",
    "fashion_mnist",
    "fetch",
    "kmnist",
    "load",
    "mnist",
    "read_idx",
]

RETRIES = 2
"""How many times a failed download is retried (with pooch's growing back-off)."""

TIMEOUT_SECONDS = 60.0
"""Network timeout of one download request."""

SPLITS = ("train", "test")


# --------------------------------------------------------------------------------------------
# Errors


class DataError(RuntimeError):
    """Base class of the errors this module raises about data files."""


class DataUnavailableError(DataError):
    """No source could provide a verified copy of a file."""


class CorruptDataError(DataError, ValueError):
    """A file is not a valid IDX file (truncated, corrupted, or the wrong kind)."""


# --------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class FileInfo:
    """One pinned file of a dataset."""

    filename: str
    sha256: str
    size: int  # bytes, for display


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset lives, what its files are, and how to cite it."""

    name: str
    title: str
    urls: tuple[str, ...]  # base URLs, tried in order
    files: dict[str, FileInfo]  # keys: train_images, train_labels, test_images, test_labels
    sizes: dict[str, int]  # examples per split
    class_names: tuple[str, ...]
    citation: str
    licence: str


_IDX = "idx3-ubyte.gz"

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        # The canonical home is Yann LeCun's site; it often refuses automated downloads, so the
        # byte-identical copies that PyTorch and TensorFlow's tooling use are tried first.
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files={
            "train_images": FileInfo(
                "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                9912422,
            ),
            "train_labels": FileInfo(
                "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                28881,
            ),
            "test_images": FileInfo(
                "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                1648877,
            ),
            "test_labels": FileInfo(
                "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                4542,
            ),
        },
        sizes={"train": 60000, "test": 10000},
        class_names=tuple(str(d) for d in range(10)),
        citation=(
            "Y. LeCun, C. Cortes and C. J. C. Burges. The MNIST database of handwritten digits, "
            "1998."
        ),
        licence="CC BY-SA 3.0",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        title="Fashion-MNIST",
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files={
            "train_images": FileInfo(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                26421880,
            ),
            "train_labels": FileInfo(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                29515,
            ),
            "test_images": FileInfo(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                4422102,
            ),
            "test_labels": FileInfo(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                5148,
            ),
        },
        sizes={"train": 60000, "test": 10000},
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        citation=(
            "H. Xiao, K. Rasul and R. Vollgraf. Fashion-MNIST: a novel image dataset for "
            "benchmarking machine learning algorithms. arXiv:1708.07747, 2017."
        ),
        licence="MIT",
    ),
    "kmnist": DatasetInfo(
        name="kmnist",
        title="Kuzushiji-MNIST",
        urls=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files={
            "train_images": FileInfo(
                "train-images-idx3-ubyte.gz",
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                18165135,
            ),
            "train_labels": FileInfo(
                "train-labels-idx1-ubyte.gz",
                "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                29497,
            ),
            "test_images": FileInfo(
                "t10k-images-idx3-ubyte.gz",
                "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                3041136,
            ),
            "test_labels": FileInfo(
                "t10k-labels-idx1-ubyte.gz",
                "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
                5120,
            ),
        },
        sizes={"train": 60000, "test": 10000},
        # Romanised names of the ten hiragana classes, in label order.
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        citation=(
            "T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb, K. Yamamoto and D. Ha. Deep "
            "learning for classical Japanese literature. arXiv:1812.01718, 2018."
        ),
        licence="CC BY-SA 4.0",
    ),
}


def _dataset(name: str) -> DatasetInfo:
    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (str), got {type(name).__name__}")
    check_choice("name", name, DATASETS)
    return DATASETS[name]


# --------------------------------------------------------------------------------------------
# Cache folder


def cache_dir() -> Path:
    """The folder where dataset files are cached: ``TFPCOURSE_DATA_DIR`` or the user cache."""
    configured = get_config().data_dir
    if configured is not None:
        return configured
    import platformdirs

    return Path(platformdirs.user_cache_dir("tfpcourse")) / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _share(path: Path) -> None:
    """Make a cached file readable by others (temporary files are created private), so that a
    teacher's cache folder can serve a class as a mirror."""
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o644 & ~umask)
    except OSError:
        pass


def _ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove that a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise DataError(
            f"The data cache folder {folder} cannot be written to ({err.strerror or err}).\n"
            "To fix: set TFPCOURSE_DATA_DIR to a folder you can write to, e.g.\n"
            "    export TFPCOURSE_DATA_DIR=$HOME/tfpcourse-data"
        ) from err


# --------------------------------------------------------------------------------------------
# Fetching


def _copy_from_folder(url: str, output_file: Any, pooch: Any, check_only: bool = False) -> Any:
    """A pooch downloader that copies a file from a local folder (``url`` is a path)."""
    source = Path(url)
    if check_only:
        return source.is_file()
    if not source.is_file():
        raise FileNotFoundError(f"not in the mirror folder ({source})")
    if hasattr(output_file, "write"):
        with open(source, "rb") as f:
            shutil.copyfileobj(f, output_file)
    else:
        shutil.copyfile(source, output_file)
    return None


def _sources(info: DatasetInfo, filename: str) -> list[tuple[str, str]]:
    """(label, location) pairs to try, mirror first."""
    sources: list[tuple[str, str]] = []
    mirror = get_config().data_mirror
    if mirror:
        if "://" in mirror:
            sources.append((f"mirror {mirror}", f"{mirror.rstrip('/')}/{info.name}/{filename}"))
        else:
            folder = Path(mirror).expanduser()
            sources.append((f"mirror folder {folder}", str(folder / info.name / filename)))
    for base in info.urls:
        sources.append((base, base + filename))
    return sources


def _explain(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    lowered = text.lower()
    if "hash" in lowered and "does not match" in lowered:
        return (
            "its checksum did not match the pinned SHA-256 (a corrupted or different file); "
            "discarded"
        )
    if any(k in lowered for k in ("resolve", "name or service", "connection", "max retries")):
        return f"no connection ({type(err).__name__})"
    return text


def fetch(name: str, key: str, *, progress: bool = True) -> Path:
    """Return the path of a verified copy of one file of a dataset, obtaining it if needed.

    Parameters
    ----------
    name:
        ``"mnist"``, ``"fashion_mnist"`` or ``"kmnist"``.
    key:
        ``"train_images"``, ``"train_labels"``, ``"test_images"`` or ``"test_labels"``.
    progress:
        Show a progress bar while downloading over the network.

    Raises
    ------
    DataUnavailableError
        If neither the cache, the mirror nor the download sites give a file with the pinned
        checksum. The message lists each source with its reason and how to fix it.
    DataError
        If the cache folder cannot be written to when a file must be stored.
    """
    info = _dataset(name)
    check_choice("key", key, info.files)
    spec = info.files[key]
    folder = cache_dir() / info.name
    target = folder / spec.filename
    if target.is_file() and _sha256(target) == spec.sha256:
        return target

    import pooch  # only now: it imports requests and tqdm, which a cached load does not need

    _ensure_writable(folder)
    pooch.get_logger().setLevel(logging.WARNING)
    failures: list[str] = []
    for label, location in _sources(info, spec.filename):
        is_folder = "://" not in location
        fetcher = pooch.create(
            path=folder,
            base_url="",
            registry={spec.filename: f"sha256:{spec.sha256}"},
            urls={spec.filename: location},
            retry_if_failed=0 if is_folder else RETRIES,
        )
        if is_folder:
            downloader = _copy_from_folder
        else:
            downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT_SECONDS)
            print(f"Downloading {info.name}/{spec.filename} from {label}", file=sys.stderr)
        try:
            path = Path(fetcher.fetch(spec.filename, downloader=downloader))
        except Exception as err:  # pooch/requests raise many kinds; each becomes a reason
            failures.append(f"  - {label}: {_explain(err)}")
            continue
        _share(path)
        return path

    tried = "\n".join(failures)
    raise DataUnavailableError(
        f"Could not obtain {info.name}/{spec.filename} ({info.title}).\n"
        f"Tried:\n{tried}\n"
        "To fix, do one of:\n"
        "  1. connect to the internet and run this again (the file is downloaded once);\n"
        f"  2. on a machine with internet run `tfpcourse data download {info.name}`, then copy\n"
        f"     its cache folder ({cache_dir()}) here and point TFPCOURSE_DATA_DIR at it;\n"
        "  3. set TFPCOURSE_DATA_MIRROR to a folder or URL that holds "
        f"{info.name}/{spec.filename}\n"
        "     (for example a classroom share made from a teacher's cache folder)."
    )


# --------------------------------------------------------------------------------------------
# IDX parsing

_IDX_TYPES = {0x08: np.uint8}


def read_idx(
    path: str | os.PathLike[str],
    *,
    expected_shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array, validating it.

    The IDX format is a 4-byte magic number (two zero bytes, a type code, the number of
    dimensions), one big-endian 32-bit size per dimension, then the data.

    Parameters
    ----------
    path:
        The ``.gz`` or uncompressed IDX file.
    expected_shape:
        If given, the shape the array must have; ``None`` entries match any size.

    Raises
    ------
    CorruptDataError
        If the file is truncated, fails gzip's integrity check, has a wrong magic number or type,
        or its sizes do not match the data or ``expected_shape``. The message names the file and
        what to do. A damaged file never comes back as an array.
    """
    path = Path(path)
    fix = (
        "Delete it and load again (a fresh, verified copy is fetched), or run "
        "`tfpcourse data download`."
    )
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptDataError(
            f"{path} is not a readable gzip file ({type(err).__name__}: {err}). {fix}"
        ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise CorruptDataError(f"{path} does not start with an IDX magic number. {fix}")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _IDX_TYPES:
        raise CorruptDataError(
            f"{path} has IDX type code 0x{dtype_code:02x}; only unsigned bytes (0x08) are "
            f"expected here. {fix}"
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise CorruptDataError(f"{path} has a truncated IDX header. {fix}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(shape)  # exact: np.prod would wrap around in int64 for huge headers
    if len(raw) - header != count:
        raise CorruptDataError(
            f"{path} declares shape {shape} ({count} values) but holds {len(raw) - header} "
            f"bytes of data. {fix}"
        )
    if expected_shape is not None:
        expected = tuple(expected_shape)
        if len(expected) != ndim or any(e is not None and e != s for e, s in zip(expected, shape)):
            raise CorruptDataError(
                f"{path} has shape {shape}, expected {expected} (None = any). {fix}"
            )
    return np.frombuffer(raw, dtype=_IDX_TYPES[dtype_code], offset=header).reshape(shape).copy()


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Split:
    """Images and labels of one split: ``images`` is ``uint8 (n, 28, 28)``, ``labels`` is
    ``uint8 (n,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class ImageDataset:
    """A loaded dataset: ``train`` and ``test`` splits (``None`` when not requested)."""

    info: DatasetInfo
    train: Split | None
    test: Split | None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names


def _decoded_cache_path(gz: Path, sha256: str) -> Path:
    stem = gz.name.removesuffix(".gz")
    return gz.with_name(f"{stem}.{sha256[:12]}.npy")


def _load_array(info: DatasetInfo, key: str, expected_shape: tuple[int, ...]) -> np.ndarray:
    spec = info.files[key]
    npy = _decoded_cache_path(cache_dir() / info.name / spec.filename, spec.sha256)
    if npy.is_file():
        try:
            array = np.load(npy, allow_pickle=False)
            if array.dtype == np.uint8 and array.shape == expected_shape:
                return array
        except (OSError, ValueError, EOFError):
            pass  # damaged decoded cache: rebuild it below from the verified source
    gz = fetch(info.name, key)
    array = read_idx(gz, expected_shape=expected_shape)
    tmp = None
    try:  # best effort: a read-only cache still loads, just more slowly
        fd, tmp = tempfile.mkstemp(dir=npy.parent, prefix=".tmp-", suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, npy)
        _share(npy)
    except OSError:
        if tmp is not None and os.path.exists(tmp):  # e.g. a disk that filled up mid-write
            try:
                os.remove(tmp)
            except OSError:
                pass
    return array


def load(name: str, *, splits: Iterable[str] = SPLITS) -> ImageDataset:
    """Load a dataset as ``uint8`` NumPy arrays, fetching and verifying its files if needed.

    Parameters
    ----------
    name:
        ``"mnist"``, ``"fashion_mnist"`` or ``"kmnist"``.
    splits:
        Which splits to load: ``("train", "test")`` (default), ``("train",)`` or ``("test",)``.

    Returns
    -------
    ImageDataset
        With ``train`` / ``test`` :class:`Split` objects (``None`` for a split not asked for).

    Examples
    --------
    >>> mnist = load("mnist")                                        # doctest: +SKIP
    >>> mnist.train.images.shape, mnist.train.labels[:5]            # doctest: +SKIP
    ((60000, 28, 28), array([5, 0, 4, 1, 9], dtype=uint8))
    """
    info = _dataset(name)
    if isinstance(splits, str):
        splits = (splits,)
    splits = tuple(splits)
    if not splits:
        raise ValueError("splits must name at least one of 'train', 'test'; got ()")
    for split in splits:
        check_choice("splits", split, SPLITS)
    loaded: dict[str, Split | None] = {"train": None, "test": None}
    for split in splits:
        n = info.sizes[split]
        images = _load_array(info, f"{split}_images", (n, 28, 28))
        labels = _load_array(info, f"{split}_labels", (n,))
        if labels.max() >= len(info.class_names):
            raise CorruptDataError(
                f"{info.name} {split} labels go up to {labels.max()}, but there are only "
                f"{len(info.class_names)} classes."
            )
        loaded[split] = Split(images=images, labels=labels)
    return ImageDataset(info=info, train=loaded["train"], test=loaded["test"])


def mnist(*, splits: Iterable[str] = SPLITS) -> ImageDataset:
    """Load MNIST (LeCun, Cortes and Burges, 1998; CC BY-SA 3.0). See :func:`load`."""
    return load("mnist", splits=splits)


def fashion_mnist(*, splits: Iterable[str] = SPLITS) -> ImageDataset:
    """Load Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence). See :func:`load`."""
    return load("fashion_mnist", splits=splits)


def kmnist(*, splits: Iterable[str] = SPLITS) -> ImageDataset:
    """Load Kuzushiji-MNIST (Clanuwat et al., 2018; CC BY-SA 4.0). See :func:`load`."""
    return load("kmnist", splits=splits)


# --------------------------------------------------------------------------------------------
# Cache state, for the command line


@dataclass(frozen=True)
class FileStatus:
    """The cache state of one file: ``"ok"``, ``"missing"`` or ``"corrupt"``; and whether the
    mirror folder holds it (``None`` when there is no folder mirror)."""

    dataset: str
    key: str
    filename: str
    size: int
    state: str
    in_mirror: bool | None


def cache_status(names: Iterable[str] | None = None) -> list[FileStatus]:
    """Check every file of the given datasets (all by default) in the cache, by checksum."""
    names = list(DATASETS) if names is None else [_dataset(n).name for n in names]
    mirror = get_config().data_mirror
    mirror_folder = Path(mirror).expanduser() if mirror and "://" not in mirror else None
    rows = []
    for name in names:
        info = DATASETS[name]
        for key, spec in info.files.items():
            path = cache_dir() / name / spec.filename
            if not path.is_file():
                state = "missing"
            else:
                state = "ok" if _sha256(path) == spec.sha256 else "corrupt"
            in_mirror = None
            if mirror_folder is not None:
                in_mirror = (mirror_folder / name / spec.filename).is_file()
            rows.append(FileStatus(name, key, spec.filename, spec.size, state, in_mirror))
    return rows
