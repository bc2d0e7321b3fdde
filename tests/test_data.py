"""Tests of :mod:`tfpcourse.data`: the real files through the local mirror, the two caches, and
every way a file can be missing, wrong or damaged.

Each test gets its own empty cache folder (``TFPCOURSE_DATA_DIR``), no mirror unless it asks
for one, and no download retries (so a failure never waits on back-off). Nothing here reaches
the internet: tests that must fail to download point the dataset at a closed local port.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from tfpcourse import data

DATA_DIR_ENV = "TFPCOURSE_DATA_DIR"
MIRROR_ENV = "TFPCOURSE_DATA_MIRROR"


def _configured_mirror() -> Path:
    """The mirror folder the real-file tests use: TFPCOURSE_DATA_MIRROR when it names a folder
    (read once, at import, before the fixtures below clear it for each test), else the shared
    folder beside the repository, where CI puts it (<parent>/main and <parent>/shared)."""
    configured = os.environ.get(MIRROR_ENV, "").strip()
    if configured and "://" not in configured and Path(configured).expanduser().is_dir():
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


MIRROR = _configured_mirror()
REPO = Path(__file__).resolve().parents[1]

# The discard port on the loopback interface: nothing listens, so a connection is refused at
# once, without DNS and without touching the internet.
UNREACHABLE = "http://127.0.0.1:9/"

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh, empty cache folder for every test; no mirror; no retry back-off."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(data, "RETRIES", 0)
    return folder


def require_mirror(name: str | None = None, *keys: str) -> Path:
    """Skip unless the shared mirror (and, if named, these files of a dataset) is present."""
    if not MIRROR.is_dir():
        pytest.skip(
            f"no data mirror folder: {MIRROR} is missing. The real-file tests need one: set "
            "TFPCOURSE_DATA_MIRROR to a folder holding <dataset>/<file> (CI uses the shared "
            "data beside the repository)"
        )
    for key in keys:
        path = MIRROR / name / data.DATASETS[name].files[key].filename
        if not path.is_file():
            pytest.skip(f"the shared data mirror does not hold {path}")
    return MIRROR


@pytest.fixture
def mirror(monkeypatch):
    """The shared mirror folder, set as TFPCOURSE_DATA_MIRROR."""
    folder = require_mirror()
    monkeypatch.setenv(MIRROR_ENV, str(folder))
    return folder


def offline(monkeypatch, name: str) -> None:
    """Replace a dataset's download sites with an unreachable local address."""
    info = dataclasses.replace(data.DATASETS[name], urls=(UNREACHABLE,))
    monkeypatch.setitem(data.DATASETS, name, info)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def flip_bytes(path: Path, offset: int, count: int = 16) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def idx_bytes(array: np.ndarray, *, type_code: int = 0x08) -> bytes:
    """An IDX file: magic (0, 0, type, ndim), big-endian sizes, then the data."""
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def npy_name(name: str, key: str) -> str:
    spec = data.DATASETS[name].files[key]
    return f"{spec.filename.removesuffix('.gz')}.{spec.sha256[:12]}.npy"


def fake_mnist(monkeypatch, mirror_folder: Path, files: dict[str, bytes], n: int) -> None:
    """Pin 'mnist' test files to the given bytes (served from ``mirror_folder``), n examples."""
    info = data.DATASETS["mnist"]
    pinned = dict(info.files)
    (mirror_folder / "mnist").mkdir(parents=True, exist_ok=True)
    for key, raw in files.items():
        spec = info.files[key]
        (mirror_folder / "mnist" / spec.filename).write_bytes(raw)
        pinned[key] = data.FileInfo(spec.filename, hashlib.sha256(raw).hexdigest(), len(raw))
    fake = dataclasses.replace(
        info, urls=(UNREACHABLE,), files=pinned, sizes={"train": 60000, "test": n}
    )
    monkeypatch.setitem(data.DATASETS, "mnist", fake)
    monkeypatch.setenv(MIRROR_ENV, str(mirror_folder))


# --------------------------------------------------------------------------------------------
# The real files, loaded once per module into the module's own cache folder

EXPECTED = {
    # (dataset, split): (pixel sum of all images, examples per class)
    ("mnist", "train"): (
        1567298545,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ),
    ("mnist", "test"): (264923200, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    ("fashion_mnist", "train"): (3431114169, [6000] * 10),
    ("fashion_mnist", "test"): (573469082, [1000] * 10),
    ("kmnist", "test"): (368966405, [1000] * 10),
}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """``real(name, split)`` -> the Split, loaded through the mirror once per module."""
    folder = tmp_path_factory.mktemp("real-cache")
    loaded: dict[tuple[str, str], data.Split] = {}

    def get(name: str, split: str) -> data.Split:
        if (name, split) not in loaded:
            require_mirror(name, f"{split}_images", f"{split}_labels")
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv(DATA_DIR_ENV, str(folder))
                mp.setenv(MIRROR_ENV, str(MIRROR))
                mp.setattr(data, "RETRIES", 0)
                loaded[name, split] = getattr(data.load(name, splits=split), split)
        return loaded[name, split]

    return get


@pytest.mark.network
@pytest.mark.parametrize(("name", "split"), list(EXPECTED))
def test_real_split_has_documented_shape_labels_balance_and_pixel_sum(real, name, split):
    part = real(name, split)
    n = data.DATASETS[name].sizes[split]
    pixel_sum, counts = EXPECTED[name, split]
    assert part.images.shape == (n, 28, 28)
    assert part.images.dtype == np.uint8
    assert part.labels.shape == (n,)
    assert part.labels.dtype == np.uint8
    assert len(part) == n
    assert part.labels.min() == 0
    assert part.labels.max() == 9
    assert np.bincount(part.labels, minlength=10).tolist() == counts
    assert int(part.images.sum(dtype=np.int64)) == pixel_sum
    assert part.images.max() == 255  # full intensity range, not a rescaled copy


@pytest.mark.network
def test_mnist_first_examples_are_the_known_ones(real):
    train = real("mnist", "train")
    test = real("mnist", "test")
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(train.images[0].sum(dtype=np.int64)) == 27525
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.network
def test_loaded_arrays_equal_a_direct_read_of_the_mirror_file(real):
    test = real("mnist", "test")
    direct = data.read_idx(MIRROR / "mnist" / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(test.images, direct)


@pytest.mark.network
def test_load_returns_only_the_requested_split_and_class_names(mirror):
    ds = data.fashion_mnist(splits="test")
    assert ds.train is None
    assert len(ds.test) == 10000
    assert ds.info.name == "fashion_mnist"
    assert ds.class_names[0] == "T-shirt/top"
    assert ds.class_names[9] == "Ankle boot"
    assert len(ds.class_names) == 10


@pytest.mark.network
def test_kmnist_train_loads_when_obtainable(mirror):
    try:
        ds = data.kmnist(splits="train")
    except data.DataUnavailableError as err:
        tried = str(err).split("Tried:\n")[1].split("\nTo fix")[0]
        pytest.skip(
            "KMNIST training images are not in the shared mirror and cannot be downloaded "
            "from this machine: " + "; ".join(line.strip(" -") for line in tried.splitlines())
        )
    assert ds.train.images.shape == (60000, 28, 28)
    assert ds.train.images.dtype == np.uint8
    assert np.bincount(ds.train.labels, minlength=10).tolist() == [6000] * 10


@pytest.mark.network
def test_kmnist_train_unavailable_error_names_mirror_site_and_fix(mirror, cache, monkeypatch):
    if (mirror / "kmnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("this mirror holds the KMNIST training images, so there is no error to see")
    # Every HTTP request goes to a closed local proxy, so the real site is tried (and listed)
    # but cannot answer, even on a machine with internet.
    for var in PROXY_VARS:
        monkeypatch.setenv(var, UNREACHABLE)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(data.DataUnavailableError) as caught:
        data.load("kmnist", splits="train")
    message = str(caught.value)
    assert "kmnist/train-images-idx3-ubyte.gz" in message
    assert f"mirror folder {mirror}" in message
    assert "not in the mirror folder" in message
    assert "http://codh.rois.ac.jp/kmnist/dataset/kmnist/" in message
    assert "no connection" in message
    assert "tfpcourse data download kmnist" in message
    assert "TFPCOURSE_DATA_MIRROR" in message
    assert "TFPCOURSE_DATA_DIR" in message
    assert listing(cache / "kmnist") == []


# --------------------------------------------------------------------------------------------
# Caching


@pytest.mark.network
def test_second_load_comes_from_decoded_cache_without_fetching(mirror, cache, monkeypatch):
    first = data.load("mnist", splits="test")
    assert listing(cache / "mnist") == sorted(
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            npy_name("mnist", "test_images"),
            npy_name("mnist", "test_labels"),
        ]
    )
    monkeypatch.delenv(MIRROR_ENV)
    offline(monkeypatch, "mnist")

    def must_not_fetch(*args, **kwargs):
        raise AssertionError(f"fetch{args} was called although the decoded cache is complete")

    monkeypatch.setattr(data, "fetch", must_not_fetch)
    second = data.load("mnist", splits="test")
    np.testing.assert_array_equal(second.test.images, first.test.images)
    np.testing.assert_array_equal(second.test.labels, first.test.labels)
    assert int(second.test.images.sum(dtype=np.int64)) == EXPECTED["mnist", "test"][0]


@pytest.mark.network
def test_verified_gz_cache_loads_offline_and_rebuilds_decoded_arrays(mirror, cache, monkeypatch):
    data.load("mnist", splits="test")
    for npy in (cache / "mnist").glob("*.npy"):
        npy.unlink()
    monkeypatch.delenv(MIRROR_ENV)
    offline(monkeypatch, "mnist")
    ds = data.load("mnist", splits="test")
    assert int(ds.test.images.sum(dtype=np.int64)) == EXPECTED["mnist", "test"][0]
    rebuilt = np.load(cache / "mnist" / npy_name("mnist", "test_images"))
    np.testing.assert_array_equal(rebuilt, ds.test.images)


@pytest.mark.network
def test_a_cache_folder_can_serve_as_mirror_for_another(mirror, cache, tmp_path, monkeypatch):
    data.fetch("mnist", "test_labels")
    second_cache = tmp_path / "student-cache"
    monkeypatch.setenv(DATA_DIR_ENV, str(second_cache))
    monkeypatch.setenv(MIRROR_ENV, str(cache))
    offline(monkeypatch, "mnist")
    path = data.fetch("mnist", "test_labels")
    assert path == second_cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert sha256(path) == data.DATASETS["mnist"].files["test_labels"].sha256


# --------------------------------------------------------------------------------------------
# Damaged, wrong and missing files


@pytest.mark.network
def test_corrupted_cached_file_is_refetched_from_mirror_and_verified(mirror, cache):
    gz = data.fetch("mnist", "test_images")
    flip_bytes(gz, offset=50_000)
    assert sha256(gz) != data.DATASETS["mnist"].files["test_images"].sha256
    assert {s.key: s.state for s in data.cache_status(["mnist"])}["test_images"] == "corrupt"

    ds = data.load("mnist", splits="test")
    assert int(ds.test.images.sum(dtype=np.int64)) == EXPECTED["mnist", "test"][0]
    assert sha256(gz) == data.DATASETS["mnist"].files["test_images"].sha256
    assert not [n for n in listing(cache / "mnist") if n.startswith(".") or "tmp" in n]


@pytest.mark.network
def test_corrupted_cached_file_with_no_source_is_an_error_not_an_array(mirror, cache, monkeypatch):
    gz = data.fetch("mnist", "test_labels")
    data.fetch("mnist", "test_images")
    flip_bytes(gz, offset=1_000)
    monkeypatch.delenv(MIRROR_ENV)
    offline(monkeypatch, "mnist")
    with pytest.raises(data.DataUnavailableError, match=r"t10k-labels-idx1-ubyte\.gz"):
        data.load("mnist", splits="test")
    assert not (cache / "mnist" / npy_name("mnist", "test_labels")).exists()


def test_mirror_file_with_wrong_checksum_is_rejected_and_leaves_cache_clean(
    cache, tmp_path, monkeypatch
):
    # A well-formed IDX file of the right shape, but not the pinned one: the dangerous case.
    impostor = tmp_path / "bad-mirror" / "mnist" / "t10k-images-idx3-ubyte.gz"
    impostor.parent.mkdir(parents=True)
    impostor.write_bytes(gzip.compress(idx_bytes(np.zeros((10000, 28, 28), np.uint8))))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "bad-mirror"))
    offline(monkeypatch, "mnist")

    with pytest.raises(data.DataUnavailableError) as caught:
        data.load("mnist", splits="test")
    message = str(caught.value)
    assert "checksum did not match" in message
    assert "mnist/t10k-images-idx3-ubyte.gz" in message
    # No partial download, temporary file, poisoned .gz or decoded array is left behind.
    assert listing(cache / "mnist") == []
    assert {s.key: s.state for s in data.cache_status(["mnist"])}["test_images"] == "missing"


def test_missing_mirror_file_and_no_network_explains_how_to_fix(cache, tmp_path, monkeypatch):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    monkeypatch.setenv(MIRROR_ENV, str(empty_mirror))
    offline(monkeypatch, "mnist")
    with pytest.raises(data.DataUnavailableError) as caught:
        data.fetch("mnist", "test_labels")
    message = str(caught.value)
    assert "Could not obtain mnist/t10k-labels-idx1-ubyte.gz" in message
    assert f"mirror folder {empty_mirror}" in message
    assert "not in the mirror folder" in message
    assert f"{UNREACHABLE}: no connection" in message
    assert "tfpcourse data download mnist" in message
    assert "TFPCOURSE_DATA_MIRROR" in message
    assert "TFPCOURSE_DATA_DIR" in message
    assert listing(cache / "mnist") == []


def test_no_network_and_no_mirror_gives_one_clear_error(cache, monkeypatch):
    requests = pytest.importorskip("requests")
    offline(monkeypatch, "fashion_mnist")
    with pytest.raises(data.DataUnavailableError) as caught:
        data.load("fashion_mnist", splits="test")
    err = caught.value
    assert not isinstance(err, requests.RequestException)
    # Raised on its own, not while handling the connection error: no chained traceback.
    assert err.__cause__ is None
    assert err.__context__ is None
    message = str(err)
    assert "Tried:\n" in message
    assert f"  - {UNREACHABLE}: no connection" in message
    assert "mirror" not in message.split("To fix")[0]  # no mirror was configured
    assert "Traceback" not in message
    assert listing(cache / "fashion_mnist") == []


def test_unwritable_cache_folder_is_a_clear_error(tmp_path, monkeypatch):
    # Running as root, permissions do not stop writes; a folder below a regular file cannot
    # exist for anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(DATA_DIR_ENV, str(blocker / "cache"))
    with pytest.raises(data.DataError) as caught:
        data.load("mnist", splits="test")
    assert not isinstance(caught.value, data.DataUnavailableError)
    message = str(caught.value)
    assert str(blocker / "cache" / "mnist") in message
    assert "TFPCOURSE_DATA_DIR" in message


@pytest.mark.network
@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong-shape", "wrong-dtype"])
def test_damaged_decoded_cache_is_rebuilt_not_returned(mirror, cache, monkeypatch, damage):
    data.load("mnist", splits="test")
    npy = cache / "mnist" / npy_name("mnist", "test_images")
    if damage == "truncated":
        npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    elif damage == "garbage":
        npy.write_bytes(b"\x00garbage" * 1000)
    elif damage == "wrong-shape":
        np.save(npy, np.zeros((5, 28, 28), np.uint8))
    else:
        np.save(npy, np.zeros((10000, 28, 28), np.float32))
    monkeypatch.delenv(MIRROR_ENV)
    offline(monkeypatch, "mnist")

    ds = data.load("mnist", splits="test")
    assert ds.test.images.shape == (10000, 28, 28)
    assert ds.test.images.dtype == np.uint8
    assert int(ds.test.images.sum(dtype=np.int64)) == EXPECTED["mnist", "test"][0]
    np.testing.assert_array_equal(np.load(npy), ds.test.images)


@pytest.mark.network
def test_failed_decoded_cache_write_leaves_no_temporary_file(mirror, cache, monkeypatch):
    def disk_full(file, array, allow_pickle=True):
        file.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.np, "save", disk_full)
    ds = data.load("mnist", splits="test")
    assert int(ds.test.images.sum(dtype=np.int64)) == EXPECTED["mnist", "test"][0]
    assert listing(cache / "mnist") == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_labels_out_of_range_in_a_pinned_file_are_an_error(tmp_path, monkeypatch):
    images = np.zeros((3, 28, 28), np.uint8)
    labels = np.array([1, 12, 3], np.uint8)
    fake_mnist(
        monkeypatch,
        tmp_path / "mirror",
        {
            "test_images": gzip.compress(idx_bytes(images)),
            "test_labels": gzip.compress(idx_bytes(labels)),
        },
        n=3,
    )
    with pytest.raises(data.CorruptDataError, match="labels go up to 12"):
        data.load("mnist", splits="test")


def test_pinned_but_truncated_file_is_an_error_and_not_cached_as_array(
    cache, tmp_path, monkeypatch
):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    whole = gzip.compress(idx_bytes(images))
    fake_mnist(
        monkeypatch,
        tmp_path / "mirror",
        {
            "test_images": whole[: len(whole) // 2],
            "test_labels": gzip.compress(idx_bytes(np.array([0, 1, 2], np.uint8))),
        },
        n=3,
    )
    with pytest.raises(data.CorruptDataError, match=r"t10k-images-idx3-ubyte\.gz"):
        data.load("mnist", splits="test")
    assert not list((cache / "mnist").glob("*.npy"))


def test_fake_dataset_helper_loads_exactly_what_it_pins(tmp_path, monkeypatch):
    # The helper used above works: well-formed pinned files load to exactly their contents.
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([4, 0, 9], np.uint8)
    fake_mnist(
        monkeypatch,
        tmp_path / "mirror",
        {
            "test_images": gzip.compress(idx_bytes(images)),
            "test_labels": gzip.compress(idx_bytes(labels)),
        },
        n=3,
    )
    ds = data.load("mnist", splits="test")
    np.testing.assert_array_equal(ds.test.images, images)
    np.testing.assert_array_equal(ds.test.labels, labels)


# --------------------------------------------------------------------------------------------
# A mirror given as a base URL (served from a local folder)


@pytest.fixture
def http_mirror(tmp_path):
    """(folder, base URL) of a local HTTP server serving that folder."""
    root = tmp_path / "http-root"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/courses/data"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_mirror_is_downloaded_and_verified(http_mirror, cache, monkeypatch):
    root, base = http_mirror
    labels = np.array([0, 1, 2, 3], np.uint8)
    raw = gzip.compress(idx_bytes(labels))
    fake_mnist(monkeypatch, root / "courses" / "data", {"test_labels": raw}, n=4)
    monkeypatch.setenv(MIRROR_ENV, base + "/")
    path = data.fetch("mnist", "test_labels", progress=False)
    assert path == cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert path.read_bytes() == raw
    np.testing.assert_array_equal(data.read_idx(path), labels)


def test_url_mirror_with_wrong_file_is_rejected(http_mirror, cache, monkeypatch):
    root, base = http_mirror
    served = root / "courses" / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    served.parent.mkdir(parents=True)
    served.write_bytes(gzip.compress(idx_bytes(np.zeros(10000, np.uint8))))
    monkeypatch.setenv(MIRROR_ENV, base)
    offline(monkeypatch, "mnist")
    with pytest.raises(data.DataUnavailableError) as caught:
        data.fetch("mnist", "test_labels", progress=False)
    message = str(caught.value)
    assert f"mirror {base}: its checksum did not match" in message
    assert listing(cache / "mnist") == []


def test_url_mirror_without_the_file_is_reported(http_mirror, cache, monkeypatch):
    _, base = http_mirror
    monkeypatch.setenv(MIRROR_ENV, base)
    offline(monkeypatch, "mnist")
    with pytest.raises(data.DataUnavailableError) as caught:
        data.fetch("mnist", "test_labels", progress=False)
    message = str(caught.value)
    assert f"mirror {base}: 404" in message
    assert listing(cache / "mnist") == []


# --------------------------------------------------------------------------------------------
# read_idx


def test_read_idx_reads_gzipped_and_plain_files(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    plain = tmp_path / "a.idx"
    plain.write_bytes(idx_bytes(array))
    packed = tmp_path / "a.idx.gz"
    packed.write_bytes(gzip.compress(idx_bytes(array)))
    for path in (plain, packed):
        read = data.read_idx(path, expected_shape=(7, None, 3))
        assert read.dtype == np.uint8
        np.testing.assert_array_equal(read, array)
        assert read.flags.writeable


@pytest.fixture
def idx_gz(tmp_path):
    """A valid gzipped IDX file of random bytes (so the compressed stream is long)."""
    array = np.random.default_rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


def test_read_idx_rejects_truncated_gzip_naming_the_file(idx_gz):
    idx_gz.write_bytes(idx_gz.read_bytes()[:-2000])
    with pytest.raises(data.CorruptDataError) as caught:
        data.read_idx(idx_gz)
    message = str(caught.value)
    assert str(idx_gz) in message
    assert "not a readable gzip file" in message
    assert "Delete it" in message


def test_read_idx_rejects_gzip_with_failed_integrity_check(idx_gz):
    flip_bytes(idx_gz, offset=idx_gz.stat().st_size - 8, count=4)  # the CRC-32 of the trailer
    with pytest.raises(data.CorruptDataError, match="not a readable gzip file"):
        data.read_idx(idx_gz)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "does not start with an IDX magic number"),
        (b"PK\x03\x04 a zip file, not IDX", "does not start with an IDX magic number"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\x00" * 4, "type code 0x0d"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "truncated IDX header"),
        (bytes([0, 0, 8, 0]), "truncated IDX header"),
    ],
    ids=["empty", "bad-magic", "float-type", "short-header", "zero-dims"],
)
def test_read_idx_rejects_malformed_headers(tmp_path, raw, reason):
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(data.CorruptDataError, match=reason) as caught:
        data.read_idx(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("extra", [-1, -784, 1])
def test_read_idx_rejects_data_length_that_disagrees_with_header(tmp_path, extra):
    raw = idx_bytes(np.ones((10, 28, 28), np.uint8))
    raw = raw[:extra] if extra < 0 else raw + b"\x00" * extra
    path = tmp_path / "images.idx"
    path.write_bytes(raw)
    with pytest.raises(data.CorruptDataError, match=r"declares shape \(10, 28, 28\)") as caught:
        data.read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_rejects_a_header_whose_size_overflows_int64(tmp_path):
    # 65536**4 == 2**64, which wraps to 0 in 64-bit arithmetic: it must not match 0 data bytes.
    path = tmp_path / "huge.idx"
    path.write_bytes(bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4)
    with pytest.raises(data.CorruptDataError, match="declares shape") as caught:
        data.read_idx(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("expected", [(10, 28), (10, 28, 27), (9, None, None), (10, 28, 28, 1)])
def test_read_idx_rejects_unexpected_shape(tmp_path, expected):
    path = tmp_path / "images.idx"
    path.write_bytes(idx_bytes(np.ones((10, 28, 28), np.uint8)))
    with pytest.raises(data.CorruptDataError, match="has shape") as caught:
        data.read_idx(path, expected_shape=expected)
    assert str(path) in str(caught.value)


def test_read_idx_of_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "nowhere.gz")


# --------------------------------------------------------------------------------------------
# Two processes filling one empty cache at the same time

CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from pathlib import Path

    from tfpcourse import data

    barrier, me = Path(sys.argv[1]), sys.argv[2]
    (barrier / me).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    ds = data.load("mnist")
    result = {}
    for split in ("train", "test"):
        part = getattr(ds, split)
        result[split] = {
            "images": hashlib.sha256(part.images.tobytes()).hexdigest(),
            "labels": hashlib.sha256(part.labels.tobytes()).hexdigest(),
            "pixel_sum": int(part.images.sum(dtype="int64")),
        }
    print(json.dumps(result))
    """
)


@pytest.mark.network
def test_two_processes_filling_one_empty_cache_both_succeed(mirror, cache, tmp_path):
    require_mirror("mnist", *data.DATASETS["mnist"].files)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, DATA_DIR_ENV: str(cache), MIRROR_ENV: str(mirror)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(barrier), str(i)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))

    assert outputs[0] == outputs[1]
    assert outputs[0]["train"]["pixel_sum"] == EXPECTED["mnist", "train"][0]
    assert outputs[0]["test"]["pixel_sum"] == EXPECTED["mnist", "test"][0]
    files = data.DATASETS["mnist"].files
    assert listing(cache / "mnist") == sorted(
        [spec.filename for spec in files.values()] + [npy_name("mnist", key) for key in files]
    )
    for key, spec in files.items():
        assert sha256(cache / "mnist" / spec.filename) == spec.sha256
        decoded = np.load(cache / "mnist" / npy_name("mnist", key))
        assert decoded.dtype == np.uint8
        assert decoded.shape[0] == data.DATASETS["mnist"].sizes[key.split("_")[0]]


# --------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: data.load("mnist_digits"), ValueError, "'mnist', 'fashion_mnist', 'kmnist'"),
        (lambda: data.load(7), TypeError, "name must be a dataset name"),
        (lambda: data.load(None), TypeError, "name must be a dataset name"),
        (lambda: data.load("mnist", splits="validation"), ValueError, "splits must be one of"),
        (lambda: data.load("mnist", splits=("train", "dev")), ValueError, "'dev'"),
        (lambda: data.load("mnist", splits=()), ValueError, "at least one"),
        (lambda: data.fetch("mnist", "train"), ValueError, "key must be one of"),
        (lambda: data.fetch("emnist", "train_images"), ValueError, "name must be one of"),
        (lambda: data.cache_status(["mnist", "nope"]), ValueError, "'nope'"),
    ],
    ids=[
        "unknown-name",
        "int-name",
        "none-name",
        "bad-split",
        "bad-split-in-tuple",
        "no-splits",
        "bad-key",
        "fetch-unknown-name",
        "status-unknown-name",
    ],
)
def test_invalid_arguments_are_rejected_before_any_work(cache, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
    assert not cache.exists()


# --------------------------------------------------------------------------------------------
# cache_status


def test_cache_status_reports_missing_ok_and_corrupt(cache, tmp_path, monkeypatch):
    labels = np.array([0, 1, 2, 3], np.uint8)
    fake_mnist(
        monkeypatch, tmp_path / "mirror", {"test_labels": gzip.compress(idx_bytes(labels))}, n=4
    )
    states = {s.key: s for s in data.cache_status(["mnist"])}
    assert set(states) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert {k: s.state for k, s in states.items()} == dict.fromkeys(states, "missing")
    assert states["test_labels"].in_mirror is True
    assert states["train_images"].in_mirror is False

    path = data.fetch("mnist", "test_labels")
    assert {s.key: s.state for s in data.cache_status(["mnist"])}["test_labels"] == "ok"

    path.write_bytes(path.read_bytes() + b"\x00")
    status = {s.key: s for s in data.cache_status(["mnist"])}["test_labels"]
    assert status.state == "corrupt"
    assert status.dataset == "mnist"
    assert status.filename == "t10k-labels-idx1-ubyte.gz"


def test_cache_status_without_folder_mirror_has_no_mirror_column(monkeypatch):
    rows = data.cache_status()
    assert len(rows) == 12
    assert {r.dataset for r in rows} == {"mnist", "fashion_mnist", "kmnist"}
    assert all(r.in_mirror is None and r.state == "missing" for r in rows)
    monkeypatch.setenv(MIRROR_ENV, "https://example.invalid/data")
    assert all(r.in_mirror is None for r in data.cache_status(["kmnist"]))


@pytest.mark.network
def test_cache_status_sees_the_shared_mirror(mirror):
    states = {(s.dataset, s.key): s.in_mirror for s in data.cache_status()}
    assert states["mnist", "train_images"] is True
    assert states["fashion_mnist", "test_labels"] is True
    assert states["kmnist", "test_images"] is True
    assert (
        states["kmnist", "train_images"]
        is (mirror / "kmnist" / "train-images-idx3-ubyte.gz").is_file()
    )
