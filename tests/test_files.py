"""The one atomic-write helper: complete files or none, nothing left behind on failure."""

import json

import pytest

from algospace.files import atomic_dir, write_json, write_text


def test_write_text_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"x": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_json(target, {"x": Unserialisable()})
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "folder"
    atomic_dir(target, lambda d: (d / "one").write_text("1"))

    def broken(d):
        (d / "two").write_text("2")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_dir(target, broken)
    assert [p.name for p in target.iterdir()] == ["one"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    atomic_dir(target, lambda d: (d / "two").write_text("2"))
    assert [p.name for p in target.iterdir()] == ["two"]


def test_publish_dir_keeps_the_first_writers_folder(tmp_path):
    from algospace.files import publish_dir

    target = tmp_path / "entry"
    assert publish_dir(target, lambda d: (d / "a").write_text("first"), prefix=".tmp-entry-")
    assert not publish_dir(target, lambda d: (d / "a").write_text("second"))
    assert (target / "a").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_publish_numbered_takes_the_first_free_name_and_leaves_nothing_on_failure(tmp_path):
    from algospace.files import publish_numbered

    base = tmp_path / "evaluation-test"
    assert publish_numbered(base, lambda d: (d / "a").write_text("1")) == base
    assert publish_numbered(base, lambda d: (d / "a").write_text("2")) == tmp_path / (
        "evaluation-test-2")
    assert (base / "a").read_text() == "1"

    def broken(d):
        (d / "a").write_text("3")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_numbered(base, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation-test",
                                                          "evaluation-test-2"]
