"""Writing a turn into a notebook file keeps what Jupyter's own save keeps (SPEC 6): a symlink stays a
symlink and its target gets the turn; the file keeps its inode (so file-ID tracking follows it), its
permissions and its owner; a crash in the middle of the write leaves the previous version where
Jupyter's own contents manager finds and restores it, as with its ``atomic_writing``; and a notebook
under a ContentsManager without local files goes through that manager's ``save``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager
from jupyter_server.services.contents.manager import ContentsManager
from jupyter_server_fileid.manager import LocalFileIdManager
from traitlets.config import Config

from harness.upstream import Script
from tests.helpers import chat, service_of, wait_finished


def write_notebook(path: Path, source: str = "1 + 1") -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)


def recorded_runs(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    conversations = notebook.metadata.get("streamchat", {}).get("conversations", {})
    return [turn["run"] for conversation in conversations.values() for turn in conversation["turns"]]


async def run_into(client, upstream, jp_serverapp, notebook: str, model: str = "link") -> str:
    """A completed run naming ``notebook``; returns its id once it is recorded (by the file writer)."""
    upstream.script(model, Script.reply(["recorded"]))
    started = await client.start_run(chat(f"openai:{model}", notebook=notebook))
    assert (await wait_finished(client, started["id"]))["status"] == "completed"
    service = service_of(jp_serverapp)
    await service.runs.get(started["id"]).wait_recorded()
    assert service.recorded_via[started["id"]] == "file"
    return started["id"]


@pytest.mark.parametrize(
    ("link", "target"),
    [("alias.ipynb", "real.ipynb"), ("notes/alias.ipynb", "../real.ipynb")],
    ids=["same-folder", "from-a-subfolder"],
)
async def test_a_symlinked_notebook_stays_a_symlink(
    streamchat_client, upstream, jp_root_dir, jp_serverapp, link, target
):
    # Given real.ipynb, and a (relative) symlink to it that the user opens
    real = jp_root_dir / "real.ipynb"
    write_notebook(real, "the user's cell")
    alias = jp_root_dir / link
    alias.parent.mkdir(exist_ok=True)
    alias.symlink_to(target)
    # When a run naming the symlink is recorded
    run_id = await run_into(streamchat_client, upstream, jp_serverapp, link)
    # Then the symlink is still that symlink, and the turn is in the file it points to
    assert alias.is_symlink() and os.readlink(alias) == target
    assert recorded_runs(real) == [run_id]
    assert nbformat.read(real, as_version=4).cells[0].source == "the user's cell"
    # And an edit saved through the symlink still reaches real.ipynb (what the user loses otherwise)
    notebook = nbformat.read(alias, as_version=4)
    notebook.cells[0].source = "edited"
    nbformat.write(notebook, alias)
    assert nbformat.read(real, as_version=4).cells[0].source == "edited"
    # And nothing was left behind next to either of them
    assert sorted(p.name for p in real.parent.iterdir() if p.name.startswith(".")) == []


async def test_the_file_keeps_its_inode_mode_and_file_id(
    streamchat_client, upstream, jp_root_dir, jp_serverapp, tmp_path
):
    # Given a notebook readable by its group only, tracked by jupyter_server_fileid, and held open by a
    # reader (which also keeps its inode number from being reused by another file)
    path = jp_root_dir / "tracked.ipynb"
    write_notebook(path)
    path.chmod(0o640)
    before = path.stat()
    file_ids = LocalFileIdManager(root_dir=str(jp_root_dir), db_path=str(tmp_path / "file_id.db"))
    file_id = file_ids.index("tracked.ipynb")
    with path.open("rb") as reader:
        for model in ("one", "two"):
            # When a run is recorded into it
            run_id = await run_into(streamchat_client, upstream, jp_serverapp, "tracked.ipynb", model)
            # Then it is the same file: inode, permissions and owner; the open reader sees the turn
            after = path.stat()
            assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev)
            assert stat.S_IMODE(after.st_mode) == 0o640
            assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
            reader.seek(0)
            assert run_id in reader.read().decode()
            # And its file id still finds it
            assert file_ids.get_path(file_id) == "tracked.ipynb"
            assert file_ids.get_id("tracked.ipynb") == file_id
    assert len(recorded_runs(path)) == 2


# A process that merges one turn into a notebook and dies in the middle of writing it: the file size
# limit (RLIMIT_FSIZE) lets the kernel write the notebook's first bytes past its old size, then kills
# the process with SIGXFSZ (which Python ignores unless told otherwise: then the write fails with EFBIG,
# as on a full disk), as a crash or a power cut could stop a save half-way.
LIMITED_WRITER = """
import json, resource, signal, sys
from jupyter_streamchat.persistence._writers import _merge_into_local_file
path, root, limit, die = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "die"
turn = json.loads(sys.stdin.read())
if die:
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
_merge_into_local_file(path, root, "c", turn, None)
"""


def write_beyond_the_limit(path: Path, root: Path, die: bool) -> subprocess.CompletedProcess:
    """Merge a turn too large for the file size limit (the old file plus 100 bytes) into ``path``."""
    limit = path.stat().st_size + 100
    return subprocess.run(
        [sys.executable, "-c", LIMITED_WRITER, str(path), str(root), str(limit), "die" if die else "fail"],
        input=json.dumps(a_turn("run-1", "x" * 20_000)).encode(),
        capture_output=True,
        check=False,
    )


def a_turn(run_id: str, text: str) -> dict:
    from jupyter_streamchat.persistence._schema import make_turn

    record = {
        "id": run_id, "model": "demo:chat", "mode": "detached", "status": "completed", "text": text,
        "reasoning": "", "usage": {}, "finish_reason": "stop", "error": None,
        "created": "2026-11-21T00:00:00.000Z", "finished": "2026-11-21T00:00:01.000Z",
    }  # fmt: skip
    return make_turn(record, {"role": "user", "content": "q"})


def test_a_crash_mid_write_leaves_what_jupyter_restores(tmp_path: Path) -> None:
    # Given a notebook with the user's work in it
    root = tmp_path / "root"
    root.mkdir()
    path = root / "work.ipynb"
    write_notebook(path, "precious = 42")
    original = path.read_bytes()
    # When the process recording a (large) turn dies half-way through writing the file
    crashed = write_beyond_the_limit(path, root, die=True)
    assert crashed.returncode == -25, crashed.stderr.decode()  # SIGXFSZ: killed mid-write
    # Then the file itself is torn (the crash did hit the write) ...
    with pytest.raises(ValueError):
        json.loads(path.read_bytes())
    # ... and the previous version waits next to it under the name Jupyter's atomic_writing uses
    assert (root / ".~work.ipynb").read_bytes() == original
    # So Jupyter's own contents manager, opening the notebook, restores the user's work
    model = FileContentsManager(root_dir=str(root)).get("work.ipynb")
    assert model["content"].cells[0].source == "precious = 42"
    assert path.read_bytes() == original


def test_a_failed_write_puts_the_old_bytes_back(tmp_path: Path) -> None:
    # Given a notebook
    root = tmp_path / "root"
    root.mkdir()
    path = root / "work.ipynb"
    write_notebook(path, "precious = 42")
    original, inode = path.read_bytes(), path.stat().st_ino
    # When writing a turn into it fails half-way (EFBIG here; a full disk or quota alike)
    failed = write_beyond_the_limit(path, root, die=False)
    assert failed.returncode == 1 and "File too large" in failed.stderr.decode()
    # Then the same file holds exactly what it held, and no copy is left behind
    assert path.read_bytes() == original and path.stat().st_ino == inode
    assert [p.name for p in root.iterdir()] == ["work.ipynb"]


class RemoteContents(ContentsManager):
    """A ContentsManager with no local files, as S3 or database stores are: the extension only gets its API.
    (It keeps the notebooks in the server root through Jupyter's own FileContentsManager, out of sight.)"""

    saved: list[str] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store = FileContentsManager(root_dir=self.parent.root_dir)

    def dir_exists(self, path: str) -> bool:
        return self._store.dir_exists(path)

    def is_hidden(self, path: str) -> bool:
        return self._store.is_hidden(path)

    def file_exists(self, path: str = "") -> bool:
        return self._store.file_exists(path)

    def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None, **kw: Any):
        return self._store.get(path, content=content, type=type, format=format, **kw)

    def save(self, model: dict[str, Any], path: str) -> dict[str, Any]:
        RemoteContents.saved.append(path)
        return self._store.save(model, path)

    def delete_file(self, path: str) -> None:
        self._store.delete_file(path)

    def rename_file(self, old_path: str, new_path: str) -> None:
        self._store.rename_file(old_path, new_path)


class TestAContentsManagerWithoutLocalFiles:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config: dict[str, Any]) -> Config:
        server_app = {**streamchat_server_config["ServerApp"], "contents_manager_class": RemoteContents}
        return Config({**streamchat_server_config, "ServerApp": server_app})

    async def test_a_turn_goes_through_its_save(self, streamchat_client, upstream, jp_root_dir, jp_serverapp):
        assert isinstance(jp_serverapp.contents_manager, RemoteContents)
        RemoteContents.saved.clear()
        write_notebook(jp_root_dir / "remote.ipynb", "the user's cell")
        run_id = await run_into(streamchat_client, upstream, jp_serverapp, "remote.ipynb")
        assert RemoteContents.saved == ["remote.ipynb"]
        assert recorded_runs(jp_root_dir / "remote.ipynb") == [run_id]
        assert nbformat.read(jp_root_dir / "remote.ipynb", as_version=4).cells[0].source == "the user's cell"

    async def test_what_is_no_notebook_is_refused_and_never_saved(self, streamchat_client, jp_root_dir):
        RemoteContents.saved.clear()
        (jp_root_dir / "pkg.json").write_text('{"name": "pkg"}')
        (jp_root_dir / "data.ipynb").write_text('{"name": "not a notebook"}')
        for path, status in [("missing.ipynb", 404), ("pkg.json", 400), ("data.ipynb", 400)]:
            response = await streamchat_client._http.post("runs", json=chat("demo:fast", notebook=path))
            assert response.status_code == status, path
        assert await streamchat_client.list_runs() == []
        assert RemoteContents.saved == []
