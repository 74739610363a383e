"""Live streams in and out (issue 16): a pipe, a paced HTTP source on 127.0.0.1, a TCP output URL, stdout; frames
dropped (and counted) rather than queued when the model is slower than a live source."""

import http.server
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import assert_one_line_error, photo_like
from toolkit.cli import app

av = pytest.importorskip("av")
runner = CliRunner()
FPS = 20


def mpegts_chunks(frames: int, size=(64, 96)) -> list[bytes]:
    """An MPEG-TS clip of a moving pattern, as the bytes written after each frame (so that a server can pace it)."""
    buffer = io.BytesIO()
    chunks, done = [], 0
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"tune": "zerolatency", "preset": "ultrafast"}
        base = photo_like((size[0], size[1] * 2), seed=4)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 2 * t : 2 * t + size[1]]), format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
            chunks.append(buffer.getvalue()[done:])
            done = len(buffer.getvalue())
        for packet in stream.encode(None):
            container.mux(packet)
    chunks.append(buffer.getvalue()[done:])
    return chunks


def count_frames(data_or_path) -> int:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(source, format="mpegts" if isinstance(data_or_path, bytes) else None) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def paced_server():
    """An HTTP server on 127.0.0.1 that sends an MPEG-TS clip in real time (one frame's bytes every 1/FPS s), as a
    camera or a live encoder would."""
    chunks = mpegts_chunks(40)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(1 / FPS)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    server.shutdown()


def test_a_pipe_is_read_at_the_models_pace_and_every_frame_written(exported_style, tmp_path):
    _, model = exported_style
    data = b"".join(mpegts_chunks(12))
    result = runner.invoke(app, ["run", "-", "-o", str(tmp_path / "out.mp4"), "--model", str(model),
                                 "--input-format", "mpegts", "--json"], input=data)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames_in"] == summary["frames_out"] == 12 and summary["dropped"] == 0
    assert count_frames(tmp_path / "out.mp4") == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_live_source_faster_than_the_model_drops_frames_and_counts_them(exported_style, tmp_path, paced_server,
                                                                          monkeypatch):  # fmt: skip
    from runtime.stylizer import Stylizer

    _, model = exported_style
    slow = Stylizer.stylize_arrays

    def slower(self, images, *args, **kwargs):
        time.sleep(3 / FPS)  # a model at a third of the source's frame rate
        return slow(self, images, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize_arrays", slower)
    result = runner.invoke(app, ["run", paced_server, "-o", str(tmp_path / "out.mp4"), "--model", str(model),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames_in"] == 40
    assert summary["dropped"] >= 15 and summary["frames_out"] + summary["dropped"] == 40
    assert count_frames(tmp_path / "out.mp4") == summary["frames_out"]
    assert summary["latency_ms_p90"] < 1000  # no queue builds up: each written frame is recent


def test_the_output_can_be_a_stream_url_or_stdout(exported_style, tmp_path):
    _, model = exported_style
    data = b"".join(mpegts_chunks(8))
    listener = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def receive():
        connection, _ = listener.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    result = runner.invoke(app, ["run", "-", "-o", url, "--model", str(model), "--input-format", "mpegts"],
                           input=data)  # fmt: skip
    assert result.exit_code == 0, result.output
    thread.join(timeout=10)
    listener.close()
    assert count_frames(bytes(received)) == 8
    result = runner.invoke(app, ["run", "-", "-o", "-", "--model", str(model), "--input-format", "mpegts"],
                           input=data)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert count_frames(result.stdout_bytes) == 8


def test_a_stream_that_cannot_be_opened_is_a_one_line_error(exported_style, tmp_path):
    _, model = exported_style
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = runner.invoke(app, ["run", f"http://127.0.0.1:{port}/none.ts", "-o", str(tmp_path / "o.mp4"),
                                 "--model", str(model)])  # fmt: skip
    assert result.exit_code != 0
    assert f"127.0.0.1:{port}/none.ts: cannot open the stream" in result.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_a_stream_is_written_to_one_new_file(exported_style, tmp_path):
    _, model = exported_style
    data = b"".join(mpegts_chunks(3))
    base = ["run", "-", "--model", str(model), "--input-format", "mpegts"]
    result = runner.invoke(app, [*base, "-o", str(tmp_path)], input=data)
    assert result.exit_code == 2
    assert_one_line_error(result, "a stream is written to one file; give a file name such as")
    (tmp_path / "kept.mp4").write_bytes(b"earlier recording")
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "kept.mp4")], input=data)
    assert result.exit_code == 2
    assert_one_line_error(result, "the file exists; pass --overwrite to replace it")
    assert (tmp_path / "kept.mp4").read_bytes() == b"earlier recording"
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "kept.mp4"), "--overwrite"], input=data)
    assert result.exit_code == 0, result.output
    assert count_frames(tmp_path / "kept.mp4") == 3
