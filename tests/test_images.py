import io
import re

import numpy as np
import pytest
from PIL import Image, ImageCms

from runtime.atomic import write_atomic
from runtime.images import ImageError, Photo, decode, encode, read_photo


def test_exif_orientation_is_applied_and_not_written_again(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :10] = 255
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"  # make: kept
    image.save(tmp_path / "r.jpg", exif=exif, quality=95)
    photo = read_photo(tmp_path / "r.jpg")
    assert photo.rgb.shape == (40, 20, 3) and photo.rgb[:10].mean() > 200
    again = Image.open(io.BytesIO(encode(photo, "JPEG")))
    assert again.size == (20, 40) and 0x0112 not in again.getexif() and again.getexif()[0x010F] == "TestCam"


def test_alpha_grey_palette_and_16_bit(tmp_path):
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:, :4, 3] = 128
    rgba[:, 4:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    photo = read_photo(tmp_path / "a.png")
    assert (photo.alpha[:, :4] == 128).all() and (photo.rgb[..., 1] == 200).all()
    assert np.asarray(Image.open(io.BytesIO(encode(photo, "PNG"))))[..., 3].tolist() == rgba[..., 3].tolist()
    Image.fromarray(np.full((5, 5), 40000, np.uint16)).save(tmp_path / "deep.png")
    assert read_photo(tmp_path / "deep.png").rgb[0, 0].tolist() == [156, 156, 156]
    Image.fromarray(np.full((5, 5), 9, np.uint8), "L").convert("P").save(tmp_path / "p.gif")
    assert read_photo(tmp_path / "p.gif").rgb.shape == (5, 5, 3)


def test_icc_profile_is_kept(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "icc.png", icc_profile=profile)
    photo = read_photo(tmp_path / "icc.png")
    assert photo.icc_profile == profile
    assert Image.open(io.BytesIO(encode(photo, "JPEG"))).info["icc_profile"] == profile


def test_bad_files_give_one_clear_message(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:600])
    Image.new("RGB", (50, 50)).save(tmp_path / "big.png")
    cases = {
        "empty.jpg": "empty file (0 bytes)",
        "text.jpg": "not an image Pillow can read",
        "cut.jpg": "cannot decode image",
        "missing.jpg": "cannot read",
    }
    for name, message in cases.items():
        with pytest.raises(ImageError, match=re.escape(message)) as info:
            read_photo(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImageError, match=r"too large .* decompression bomb"):
        read_photo(tmp_path / "big.png", max_pixels=2000)
    with pytest.raises(ImageError, match="<stdin>: not an image"):
        decode(b"nope", "<stdin>")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_max_pixels_above_pillows_own_limit_is_honoured(tmp_path, monkeypatch):
    import struct
    import zlib

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    width, height = 20_000, 10_000  # 200 Mpx: over Pillow's 179 Mpx refusal; only the header is real

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                                        chunk(b"IDAT", zlib.compress(bytes(1000))))  # fmt: skip
    with pytest.raises(ImageError, match="too large"):
        read_photo(tmp_path / "huge.png")
    with pytest.raises(ImageError, match="cannot decode image"):  # past both size checks, to the missing pixels
        read_photo(tmp_path / "huge.png", max_pixels=width * height)
    with pytest.raises(ImageError, match="too large"):  # Pillow's limit stays lifted, but the default still holds
        read_photo(tmp_path / "huge.png")


def test_write_atomic_leaves_no_partial_file_when_it_fails(tmp_path):
    target = tmp_path / "out.png"
    write_atomic(b"123", target)
    assert target.read_bytes() == b"123"
    with pytest.raises(IsADirectoryError):
        write_atomic(b"456", tmp_path)  # the rename onto a folder fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert encode(Photo(np.zeros((2, 3, 3), np.uint8)), "BMP")[:2] == b"BM"


def test_malformed_exif_drops_the_metadata_not_the_photo(tmp_path, monkeypatch):
    import struct

    from PIL import ImageOps

    Image.new("RGB", (6, 4), (1, 2, 3)).save(tmp_path / "x.jpg")

    def broken(image):
        raise struct.error("bad EXIF")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    photo = read_photo(tmp_path / "x.jpg")
    assert photo.rgb.shape == (4, 6, 3) and photo.exif is None
