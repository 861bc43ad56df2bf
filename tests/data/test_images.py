"""load_image / resize_shorter_side: pixels hand-checked, every failure names the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from prepare_fixtures import write_dicom, write_jpeg, write_png

from medpeft.data import images
from medpeft.data.images import image_size, load_image, resize_shorter_side
from medpeft.errors import DataError


def test_grey_png_roundtrip(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(arr, mode="L").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.mode == "L" and np.array_equal(np.asarray(img), arr)
    assert image_size(tmp_path / "a.png") == (4, 3)


def test_colour_stays_rgb_and_grey_rgb_becomes_l(tmp_path):
    assert load_image(write_jpeg(tmp_path / "c.jpg", mode="RGB")).mode == "RGB"
    grey = np.stack([np.full((5, 6), 77, np.uint8)] * 3, axis=-1)
    Image.fromarray(grey, mode="RGB").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.mode == "L" and np.all(np.asarray(img) == 77)


def test_16bit_png_is_minmax_scaled(tmp_path):
    arr = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "a16.png")
    out = np.asarray(load_image(tmp_path / "a16.png"))
    assert out.tolist() == [[0, 64], [128, 255]]


def test_dicom_window_is_applied(tmp_path):
    arr = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    out = np.asarray(load_image(write_dicom(tmp_path / "w.dcm", arr, window=(2000, 2000))))
    # DICOM linear window: ((x - (c - 0.5)) / (w - 1) + 0.5) clipped, times 255
    assert out.tolist() == [[0, 0], [128, 255]]


def test_dicom_modality_lut_before_window(tmp_path):
    arr = np.array([[0, 50], [100, 20]], dtype=np.uint16)
    # rescaled values 0, 500, 1000, 200; a window in rescaled units only works if the LUT was applied
    out = np.asarray(load_image(write_dicom(tmp_path / "r.dcm", arr, window=(500, 1001), rescale=(10, 0))))
    assert out[0, 1] == 128 and out[1, 0] == 255 and out[0, 0] == 0


def test_dicom_minmax_without_window_and_monochrome1_inverted(tmp_path):
    arr = np.array([[100, 200], [400, 1120]], dtype=np.uint16)  # (x - 100) * 255 / 1020
    m2 = np.asarray(load_image(write_dicom(tmp_path / "m2.dcm", arr)))
    m1 = np.asarray(load_image(write_dicom(tmp_path / "m1.dcm", arr, photometric="MONOCHROME1")))
    assert m2.tolist() == [[0, 25], [75, 255]]
    assert (m1 == 255 - m2).all()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"image file not found: .*nope\.png"):
        load_image(tmp_path / "nope.png")


def test_truncated_jpeg_and_png(tmp_path):
    for name, writer in (("t.jpg", write_jpeg), ("t.png", write_png)):
        path = writer(tmp_path / name, size=(64, 64))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(DataError, match=rf"cannot read image .*{name}: corrupt or truncated"):
            load_image(path)


def test_corrupt_png_bad_chunk(tmp_path):
    path = write_png(tmp_path / "bad.png", size=(32, 32))
    data = bytearray(path.read_bytes())
    data[40:60] = b"\x00" * 20  # inside IHDR/IDAT: CRC or zlib error
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.png"):
        load_image(path)


def test_garbage_file(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"this is not an image at all")
    with pytest.raises(DataError, match=r"x\.jpg: not a PNG, JPEG or DICOM"):
        load_image(tmp_path / "x.jpg")


def test_dicom_without_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "np.dcm", np.zeros((4, 4), np.uint16), with_pixels=False)
    with pytest.raises(DataError, match=r"np\.dcm: the file has no pixel data"):
        load_image(path)


def test_jpeg_ls_without_decoder_names_syntax_and_packages(tmp_path):
    from pydicom.uid import JPEGLSLossless

    if images.missing_decoder_packages(JPEGLSLossless) is None:
        pytest.skip("a JPEG-LS decoder is installed here")
    path = write_dicom(
        tmp_path / "ls.dcm", np.zeros((4, 4), np.uint16), transfer_syntax=JPEGLSLossless, encapsulated=b"xx"
    )
    with pytest.raises(
        DataError, match=r"ls\.dcm: .*'JPEG-LS Lossless Image Compression'.*pip install pyjpegls"
    ):
        load_image(path)


def test_jpeg2000_without_decoder(tmp_path, monkeypatch):
    """Simulate an environment without openjpeg/gdcm (Pillow may decode JPEG 2000 here)."""
    from pydicom.uid import JPEG2000Lossless

    real = images.missing_decoder_packages
    monkeypatch.setattr(
        images,
        "missing_decoder_packages",
        lambda uid: ["pip install pylibjpeg pylibjpeg-openjpeg"] if uid == JPEG2000Lossless else real(uid),
    )
    path = write_dicom(
        tmp_path / "j2k.dcm",
        np.zeros((4, 4), np.uint16),
        transfer_syntax=JPEG2000Lossless,
        encapsulated=b"xx",
    )
    with pytest.raises(DataError, match=r"j2k\.dcm: .*JPEG 2000.*pylibjpeg-openjpeg"):
        load_image(path)


def test_truncated_dicom(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"t\.dcm"):
        load_image(path)


def test_resize_shorter_side():
    img = Image.new("L", (40, 30))
    assert resize_shorter_side(img, 15).size == (20, 15)
    assert resize_shorter_side(Image.new("L", (30, 40)), 15).size == (15, 20)
    mask = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8))
    up = np.asarray(resize_shorter_side(mask, 4, Image.Resampling.NEAREST))
    assert set(np.unique(up)) == {0, 255}
