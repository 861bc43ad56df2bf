"""Uploads: limits, unreadable files named by their uploaded name, the same pixels as ``load_image``."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import write_png

from medpeft.data.images import load_image
from medpeft.errors import ConfigError, DataError
from medpeft.serve.limits import UploadLimits
from medpeft.serve.uploads import check_count, display_names, read_upload, read_uploads


def test_good_files_read_as_load_image_reads_them(uploads):
    read = read_uploads([uploads["png"], uploads["dicom"], uploads["rgb"]], UploadLimits())
    assert read.rejected == []
    assert [u.name for u in read.images] == ["chest.png", "scan.dcm", "slide.png"]
    for upload, key in zip(read.images, ["png", "dicom", "rgb"], strict=True):
        expected = load_image(uploads[key])
        assert upload.image.mode == expected.mode
        np.testing.assert_array_equal(np.asarray(upload.image), np.asarray(expected))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("text", "notes.png: not a PNG, JPEG or DICOM file"),
        ("empty", "empty.png: the file is empty (0 bytes)"),
        ("no_pixels", "header_only.dcm: the file has no pixel data"),
    ],
)
def test_bad_file_rejected_by_name_and_the_rest_read(uploads, key, message):
    read = read_uploads([uploads["png"], uploads[key], uploads["dicom"]], UploadLimits())
    assert [u.name for u in read.images] == ["chest.png", "scan.dcm"]
    assert len(read.rejected) == 1
    assert message in read.rejected[0]
    assert str(uploads[key].parent) not in read.rejected[0]  # the server's temporary path is not shown


def test_size_and_pixel_limits(tmp_path):
    big = write_png(tmp_path / "big.png", seed=0, size=300, mode="RGB")  # ~270 kB of noise
    with pytest.raises(DataError, match=r"big\.png: 0\.\d MB is over this server's limit of 0\.1 MB"):
        read_upload(big, "big.png", UploadLimits(max_file_mb=0.1))
    with pytest.raises(DataError, match=r"big\.png: 300x300 pixels is over the limit of 0\.01 megapixels"):
        read_upload(big, "big.png", UploadLimits(max_pixels=10_000))
    assert read_upload(big, "big.png", UploadLimits(max_file_mb=1)).size == (300, 300)


def test_count_limit_and_no_files():
    with pytest.raises(ConfigError, match="no images uploaded"):
        check_count([], UploadLimits())
    with pytest.raises(
        ConfigError, match=r"3 files uploaded but this server scores at most 2 .*--max-images"
    ):
        check_count(["a.png", "b.png", "c.png"], UploadLimits(max_images=2))
    check_count(["a.png", "b.png"], UploadLimits(max_images=2))


def test_limits_validated():
    with pytest.raises(ConfigError, match="--max-file-mb must be positive"):
        UploadLimits(max_file_mb=0)
    with pytest.raises(ConfigError, match="--max-images must be at least 1"):
        UploadLimits(max_images=0)
    assert UploadLimits(max_file_mb=2).max_file_bytes == 2 * 1024 * 1024


def test_repeated_names_made_distinct():
    assert display_names(["/t/1/a.png", "/t/2/a.png", "/t/3/b.dcm", "/t/4/a.png"]) == [
        "a.png",
        "a.png (2)",
        "b.dcm",
        "a.png (3)",
    ]
