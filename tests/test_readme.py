"""The README's embedding example runs as written (with the bundled default style, on a photo made here)."""

import os
import re
from pathlib import Path

from PIL import Image

from tests.helpers import photo_like

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_embedding_example_runs(tmp_path):
    block = re.search(r"### Embedding\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    Image.fromarray(photo_like((30, 45), 1)).save(tmp_path / "photo.jpg")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert Image.open(tmp_path / "photo_styled.png").size == (45, 30)


def test_ci_runs_exactly_the_readmes_test_command():
    command = re.search(r"# Tests[^\n]*\n(pip install [^\n]+)\n", README.read_text()).group(1)
    assert "mypy" in command and "pytest" in command
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    # the command as it stands, its exit status kept for the post-mortem of a crash (.ci/post_mortem) and returned
    assert [line for line in ci if "pytest" in line and not line.startswith("#")] == [f"{command} || status=$?"]
    assert ci[-1] == 'exit "$status"'
