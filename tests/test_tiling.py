"""Large photos in tiles: instance-norm statistics shared by every tile, and no seam."""

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from export.pipeline import export_model
from runtime import ModelError, Stylizer
from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from runtime.tiling import RECEPTIVE_MARGIN, TiledBackend, stats_graph, stats_layout, tile_graph
from tests.helpers import assert_one_line_error, nchw_model, photo_like
from tests.test_export import trained_model
from toolkit.cli import app


@pytest.fixture(scope="module", params=["johnson", "texture"])
def model(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"tiles-{request.param}")
    path, _ = trained_model(root / "run", request.param, "instance")
    export_model(path, root, name="m", check=False, engine=False)
    return request.param, root / "m.onnx"


def test_the_derived_graphs_are_valid_and_the_stats_match_the_layers(model):
    _, path = model
    data = path.read_bytes()
    for derived in (stats_graph(data), tile_graph(data)):
        onnx.checker.check_model(onnx.load_from_string(derived), full_check=True)
    channels = stats_layout(onnx.load(str(path)))
    inner = OnnxRuntimeBackend(path, "cpu")
    stats = TiledBackend.wrap(inner).stats(photo_like((70, 90), 1)[None])
    assert stats.shape == (1, 2 * sum(channels))
    first_mean, first_var = stats[0, : channels[0]], stats[0, channels[0] : 2 * channels[0]]
    assert np.all(first_var > 0) and np.any(np.abs(first_mean) > 1e-3)


def test_tiles_with_the_images_own_statistics_give_the_models_output(model):
    arch, path = model
    inner = OnnxRuntimeBackend(path, "cpu")
    tiled = TiledBackend(inner, arch, tile=64, tile_above=0)
    tiled.stats_pixels = 10**9  # "thumbnail" = the image itself: the statistics are exact
    batch = np.stack([photo_like((150, 230), 2), photo_like((150, 230), 3)])
    expected = inner.run(batch)
    out = tiled.run(batch)
    assert out.shape == batch.shape
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_no_seam_tiled_equals_one_tile_with_the_same_statistics(model):
    arch, path = model
    inner = OnnxRuntimeBackend(path, "cpu")
    image = photo_like((197, 262), 4)[None]  # sides that are not multiples of the tile or of 4
    small = TiledBackend(inner, arch, tile=64, tile_above=0)
    stats = small.stats(image)
    tiled = small.run_tiles(image, stats)
    whole = TiledBackend(inner, arch, tile=4096, tile_above=0).run_tiles(image, stats)
    diff = np.abs(tiled.astype(int) - whole)
    assert diff.max() <= 1
    for border in (64, 128, 192):  # the columns and rows on either side of each tile border
        assert diff[:, :, border - 1 : border + 1].max() <= 1 and diff[:, border - 1 : border + 1].max() <= 1


def test_the_margin_covers_the_receptive_field(model):
    arch, path = model
    inner = OnnxRuntimeBackend(path, "cpu")
    tiled = TiledBackend(inner, arch, tile=4096, tile_above=0)
    image = photo_like((2 * RECEPTIVE_MARGIN[arch] + 40, 2 * RECEPTIVE_MARGIN[arch] + 40), 6)[None]
    stats = tiled.stats(image)
    changed = image.copy()
    centre = image.shape[1] // 2
    changed[0, centre, centre] = 255 - changed[0, centre, centre]
    moved = np.argwhere(np.abs(tiled.run_tiles(changed, stats).astype(int) - tiled.run_tiles(image, stats)) > 1)
    assert len(moved)  # the pixel matters …
    reach = np.abs(moved[:, 1:3] - centre).max()
    assert reach <= RECEPTIVE_MARGIN[arch]  # … only within the margin


def test_small_images_run_whole_and_large_ones_in_tiles(model, monkeypatch):
    _, path = model
    with Stylizer.load(path, backend="onnxruntime", device="cpu") as stylizer:
        assert isinstance(stylizer.backend, TiledBackend)
        calls = []
        monkeypatch.setattr(stylizer.backend, "run_tiles", lambda b, s: calls.append(b.shape) or b)
        stylizer(photo_like((70, 90), 1))
        assert calls == []
        stylizer.backend.tile_above = 70 * 90 - 1
        stylizer(photo_like((70, 90), 1))
        assert calls == [(1, 70, 90, 3)]


def test_tile_option_is_checked(model, tmp_path):
    arch, path = model
    with Stylizer.load(path, device="cpu", tile="off") as stylizer:  # never tiles; still takes cut-out statistics
        assert stylizer.backend.tile_above == float("inf")
    with Stylizer.load(path, device="cpu", tile="128") as stylizer:
        assert (stylizer.backend.tile, stylizer.backend.tile_above) == (128, 128 * 128)
    if arch == "texture":  # 32× average pooling: tiles must start on its grid
        with pytest.raises(ModelError, match="--tile 100: the tile side must be a multiple of 32"):
            Stylizer.load(path, device="cpu", tile="100")
    else:
        Stylizer.load(path, device="cpu", tile="100").close()
    from PIL import Image

    Image.fromarray(photo_like((20, 20), 1)).save(tmp_path / "x.png")
    for bad in ("big", "30", "66"):
        with pytest.raises(ModelError, match=f"--tile {bad}|tile must be"):
            Stylizer.load(path, device="cpu", tile=bad)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(path), "--tile", "big"])  # fmt: skip
    assert result.exit_code != 0


def test_toolkit_run_in_tiles_matches_whole_runs(model, tmp_path):
    from PIL import Image

    _, path = model
    Image.fromarray(photo_like((300, 260), 7)).save(tmp_path / "p.png")
    for tile in ("off", "128"):
        result = CliRunner().invoke(app, ["run", str(tmp_path / "p.png"), "-o", str(tmp_path / tile), "--model",
                                          str(path), "--tile", tile, "--quiet"])  # fmt: skip
        assert result.exit_code == 0, result.output
    whole = np.asarray(Image.open(tmp_path / "off" / "p.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "128" / "p.png")).astype(int)
    assert np.abs(whole - tiled).mean() < 3  # close: statistics from a thumbnail of the 78 kpx image (it fits)


def test_a_fixed_size_foreign_model_cannot_be_tiled(tmp_path):
    import onnx.helper as h

    nchw_model(tmp_path / "f.onnx", [h.make_node("Identity", ["x"], ["y"])], shape=(1, 3, 8, 8), out_shape=(1, 3, 8, 8))
    from PIL import Image

    Image.fromarray(photo_like((20, 20), 1)).save(tmp_path / "x.png")
    with Stylizer.load(tmp_path / "f.onnx", device="cpu") as stylizer:  # auto: runs whole
        assert not isinstance(stylizer.backend, TiledBackend)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(tmp_path / "f.onnx"), "--tile", "64"])  # fmt: skip
    assert_one_line_error(result, "--tile 64: only models with uint8")


def test_masked_statistics_are_the_whole_images_when_all_is_opaque_and_the_subjects_otherwise(model):
    arch, path = model
    data = path.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(stats_graph(data, masked=True)), full_check=True)
    tiled = TiledBackend(OnnxRuntimeBackend(path, "cpu"), arch, tile=4096, tile_above=0)
    image = photo_like((96, 160), 5)[None]
    whole = tiled.stats(image)
    # equal up to rounding: the masked graph normalizes with its own ops where the plain one has InstanceNormalization
    assert np.allclose(tiled.stats(image, np.ones((1, 96, 160), np.float32)), whole, rtol=1e-4, atol=1e-4)
    left = np.zeros((1, 96, 160), np.float32)
    left[:, :, :80] = 1  # only the left half is opaque
    masked = tiled.stats(image, left)
    crop = tiled.stats(np.ascontiguousarray(image[:, :, :80]))  # the left half as a picture of its own
    scale = np.abs(crop).mean()
    assert np.abs(masked - crop).mean() < 0.05 * scale  # the convolutions still see across the cut: not exact
    assert np.abs(whole - crop).mean() > 2 * np.abs(masked - crop).mean()


def test_a_cut_out_is_normalized_by_its_subject_whatever_lies_under_the_transparency(model):
    _, path = model
    from PIL import Image

    rgb = photo_like((96, 128), 9)
    alpha = np.zeros((96, 128), np.uint8)
    alpha[20:80, 30:100] = 255
    alpha[18:20, 30:100] = 128  # a soft edge
    other = rgb.copy()
    other[alpha == 0] = np.random.default_rng(0).integers(0, 256, (int((alpha == 0).sum()), 3))
    with Stylizer.load(path, device="cpu") as stylizer:
        black = rgb.copy()
        black[alpha == 0] = 0
        a = stylizer(np.dstack([black, alpha]))
        b = stylizer(np.dstack([other, alpha]))
        assert a.shape == (96, 128, 4) and np.array_equal(a[..., 3], alpha)
        assert np.array_equal(a, b)  # hidden pixels do not count
        old = stylizer(black)  # the black under the transparency entering the statistics, as before
        opaque = alpha == 255
        assert np.abs(old[opaque].astype(int) - a[..., :3][opaque]).mean() > 2
        pil = stylizer(Image.fromarray(np.dstack([black, alpha]), "RGBA"))
        assert pil.mode == "RGBA" and np.array_equal(np.asarray(pil), a)
        full = np.full((96, 128), 255, np.uint8)  # an alpha that is all opaque changes nothing
        assert np.array_equal(stylizer(np.dstack([rgb, full]))[..., :3], stylizer(rgb))


def test_torch_normalizes_a_cut_out_by_its_subject_as_onnx_runtime_does(model):
    """The run's model.safetensors on torch and its export on ONNX Runtime give a cut-out the same picture, up to the
    opacity's antialiased resize to each layer's size (torch's and ONNX Runtime's differ a little at the borders,
    which the texture net's 1/32-scale layers feel: large enough a picture that those have 8×12 pixels)."""
    _, path = model
    rgb = photo_like((256, 384), 12)
    alpha = np.zeros((256, 384), np.uint8)
    alpha[30:200, 60:330] = 255
    alpha[200:206, 60:330] = 100  # a soft edge
    rgb[alpha == 0] = 0
    cutout = np.dstack([rgb, alpha])
    with (Stylizer.load(path.parent / "run" / "model.safetensors", backend="torch", device="cpu") as on_torch,
          Stylizer.load(path, backend="onnxruntime", device="cpu") as on_onnxruntime):  # fmt: skip
        got, expected = on_torch(cutout).astype(int), on_onnxruntime(cutout).astype(int)
        whole_frame = on_torch(np.ascontiguousarray(cutout[..., :3])).astype(int)  # the black counted, as before
    assert np.array_equal(got[..., 3], alpha)
    seen = alpha > 0
    gap = np.abs(got - expected)[seen].mean()
    assert gap < 1.0, gap
    assert np.abs(whole_frame - expected[..., :3])[seen].mean() > 10 * max(gap, 0.5)


def test_a_cut_out_is_stylized_as_the_subject_alone_would_be(model):
    """Every layer's statistics come from the subject, measured on features already normalized by the subject's
    statistics of the layers before: away from the cut, the output is the subject's own picture stylized alone."""
    arch, path = model
    if arch != "johnson":
        pytest.skip("the texture net sees ~256 px around each pixel: no part of this picture is away from the cut")
    rgb = photo_like((128, 256), 11)
    alpha = np.zeros((128, 256), np.uint8)
    alpha[:, :160] = 255  # the subject: the left 160 columns; the rest transparent (black under it)
    black = rgb.copy()
    black[alpha == 0] = 0
    with Stylizer.load(path, device="cpu") as stylizer:
        masked = stylizer(np.dstack([black, alpha]))[..., :3].astype(int)
        alone = stylizer(np.ascontiguousarray(rgb[:, :160])).astype(int)
        pasted = stylizer(black).astype(int)  # the transparent area counted, for scale
    far = slice(0, 160 - RECEPTIVE_MARGIN[arch] // 2)  # columns the cut hardly reaches
    gap = np.abs(masked[:, far] - alone[:, far]).mean()
    assert gap < 0.25 * np.abs(pasted[:, far] - alone[:, far]).mean()
    assert gap < 4, gap


def test_on_grey_cut_outs_are_the_subject_pasted_on_grey_the_same_on_every_backend(model, tmp_path):
    """`cutouts="on-grey"`: the subject as it comes out pasted on a mid-grey photo, its alpha put back; a backend
    that cannot take statistics from outside gives that picture too, and says so once."""
    _, path = model
    rgb = photo_like((96, 128), 4)
    alpha = np.zeros((96, 128), np.uint8)
    alpha[10:90, 20:110] = 255
    alpha[8:10, 20:110] = 90  # a soft edge
    weight = alpha.astype(np.float32)[..., None] / 255.0  # in float32, as the runtime composites
    pasted = np.clip(np.rint(rgb * weight + 128.0 * (1.0 - weight)), 0, 255).astype(np.uint8)
    opaque = alpha == 255
    with (Stylizer.load(path, device="cpu", cutouts="on-grey") as on_grey,
          Stylizer.load(path, device="cpu") as alone):  # fmt: skip
        got = on_grey(np.dstack([rgb, alpha]))
        assert np.array_equal(got[..., 3], alpha)
        assert np.array_equal(got[..., :3], on_grey(pasted))
        subject_alone = alone(np.dstack([rgb, alpha]))[..., :3]
        assert np.abs(subject_alone[opaque].astype(int) - got[..., :3][opaque]).mean() > 2
        assert not any("cut-outs" in note for note in on_grey.notes + alone.notes)
    plain = Stylizer(OnnxRuntimeBackend(path, "cpu"))  # no statistics from outside: falls back to on-grey
    with plain:
        assert np.array_equal(plain(np.dstack([rgb, alpha])), got)
        plain(np.dstack([rgb, alpha]))
        notes = [note for note in plain.fresh_notes() if "cut-outs" in note]
    assert notes == ["cut-outs ran pasted on mid-grey (--cutouts on-grey): onnxruntime cannot run this model with "
                     "statistics from the opaque pixels; ONNX Runtime, OpenVINO or torch with our exports stylize "
                     "the subject alone"]  # fmt: skip
    with pytest.raises(ModelError, match="cutouts must be alone or on-grey, not 'grey'"):
        Stylizer.load(path, device="cpu", cutouts="grey")
    from PIL import Image

    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "cut.png")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(path), "--cutouts", "grey"])  # fmt: skip
    assert_one_line_error(result, "--cutouts must be alone or on-grey, not 'grey'")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(path), "--cutouts", "on-grey", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "cut.png")), got)


def test_a_texture_net_with_noise_runs_whole_since_tiles_would_restart_its_noise(tmp_path):
    path, _ = trained_model(tmp_path / "run", "texture", "instance", noise_channels=2)
    export_model(path, tmp_path, name="m", check=False, engine=False)
    with pytest.raises(ModelError, match="--tile 128: this texture net draws its noise from each pixel's position"):
        Stylizer.load(tmp_path / "m.onnx", device="cpu", tile="128")
    photo = photo_like((200, 900), 7)  # wider than the default tile
    with Stylizer.load(tmp_path / "m.onnx", backend="onnxruntime", device="cpu") as stylizer:
        whole = stylizer(photo)
        assert any("runs every photo whole" in note for note in stylizer.notes)
        stylizer.backend.tile_above = 1  # as if the photo were above the auto threshold: still one tile
        tiled = stylizer.backend.run(photo[None])[0]
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
