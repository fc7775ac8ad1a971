# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of module_utils/oss.py: CRC-64 and its combination, sizes, part splitting, names,
the sync plan, the local scan and the writer's resume bookkeeping (no network)."""

from __future__ import annotations

import os
import random

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils import oss


# -- CRC-64/XZ ----------------------------------------------------------------------------------------
def test_crc64_check_values():
    # check values from the wire reference (10.7) and the CRC catalogue
    assert oss.crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert oss.crc64(b"hello world") == 5981764153023615706
    assert oss.crc64(b"") == 0


def test_crc64_continues_from_a_finalized_value():
    assert oss.crc64(b"world", oss.crc64(b"hello ")) == oss.crc64(b"hello world")


def test_crc64_matches_oss2_implementation():
    oss2_utils = pytest.importorskip("oss2.utils")
    data = random.Random(1).randbytes(100000)
    reference = oss2_utils.Crc64(0)
    reference.update(data)
    assert oss.crc64(data) == reference.crc


@pytest.mark.parametrize("len_a,len_b", [(0, 0), (0, 5), (5, 0), (1, 1), (1000, 777), (4096, 65536), (3, 1 << 17)])
def test_crc64_combine(len_a, len_b):
    rng = random.Random(len_a * 7 + len_b)
    a, b = rng.randbytes(len_a), rng.randbytes(len_b)
    assert oss.crc64_combine(oss.crc64(a), oss.crc64(b), len(b)) == oss.crc64(a + b)


def test_combine_parts_many():
    rng = random.Random(3)
    chunks = [rng.randbytes(rng.randrange(0, 5000)) for dummy in range(20)]
    assert oss.combine_parts([(oss.crc64(c), len(c)) for c in chunks]) == oss.crc64(b"".join(chunks))


def test_crc64_combine_agrees_with_oss2_for_a_large_length():
    crc_combine = pytest.importorskip("oss2.crc64_combine")
    fun = crc_combine.mkCombineFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    for length in (1, 100 << 10, 8 << 20, 5 << 30, 123456789012):
        assert oss.crc64_combine(0x1234567890ABCDEF, 0xFEDCBA0987654321, length) == fun(0x1234567890ABCDEF, 0xFEDCBA0987654321, length)


def test_file_crc64(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert oss.file_crc64(str(path), chunk=1024 * 1024) == oss.crc64(data)


# -- sizes, parts, names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    (8388608, 8388608), ("8388608", 8388608), ("8MiB", 8 << 20), ("8M", 8 << 20), ("100 KiB", 100 << 10),
    ("1g", 1 << 30), ("1.5KiB", 1536), (16.0, 16),
])
def test_parse_size(value, expected):
    assert oss.parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "eight", "8 parsecs", "1.3B", True, "-5"])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError):
        oss.parse_size(value)


def test_part_size_limits():
    assert oss.part_size_error(100 * 1024) is None
    assert "100 KiB" in oss.part_size_error(100 * 1024 - 1)
    assert oss.part_size_error(5 << 30) is None
    assert "5 GiB" in oss.part_size_error((5 << 30) + 1)


def test_split_parts():
    assert oss.split_parts(0, 10) == [(1, 0, 0)]
    assert oss.split_parts(10, 4) == [(1, 0, 4), (2, 4, 4), (3, 8, 2)]
    assert oss.split_parts(8, 4) == [(1, 0, 4), (2, 4, 4)]
    parts = oss.split_parts(10 ** 9 + 1, 1 << 20)
    assert sum(p[2] for p in parts) == 10 ** 9 + 1
    assert all(p[1] == (p[0] - 1) * (1 << 20) for p in parts)
    with pytest.raises(ValueError):
        oss.split_parts(10001, 1)


def test_choose_part_size_fits_10000_parts():
    assert oss.choose_part_size(100, 8 << 20) == 8 << 20
    size = 65 * 10 ** 9 * 2
    chosen = oss.choose_part_size(size, 8 << 20)
    assert chosen >= 8 << 20 and len(oss.split_parts(size, chosen)) <= 10000
    assert size > (chosen // 2) * 10000
    with pytest.raises(ValueError):
        oss.split_parts(size, chosen // 2)
    with pytest.raises(ValueError):
        oss.choose_part_size(10001 * (5 << 30), 8 << 20)


@pytest.mark.parametrize("name", ["abc", "my-models-01", "a" * 63, "0ab"])
def test_bucket_name_valid(name):
    assert oss.bucket_name_error(name) is None


@pytest.mark.parametrize("name,word", [
    ("ab", "3 to 63"), ("a" * 64, "3 to 63"), ("Models", "lowercase"), ("my_models", "lowercase"),
    ("-abc", "start and end"), ("abc-", "start and end"), ("", "non-empty"), ("mod\u00e9ls", "lowercase"),
])
def test_bucket_name_invalid(name, word):
    assert word in oss.bucket_name_error(name)


def test_normalize_prefix():
    assert oss.normalize_prefix("") == ""
    assert oss.normalize_prefix(None) == ""
    assert oss.normalize_prefix("/") == ""
    assert oss.normalize_prefix("models/qwen") == "models/qwen/"
    assert oss.normalize_prefix("/models/qwen/") == "models/qwen/"
    for bad in ("a//b", "a/../b", "./a"):
        with pytest.raises(ValueError):
            oss.normalize_prefix(bad)


def test_is_excluded():
    patterns = ["*.tmp", ".git", "cache/*"]
    assert oss.is_excluded("a/b.tmp", patterns)
    assert oss.is_excluded(".git/config", patterns)
    assert oss.is_excluded("x/.git/HEAD", patterns)
    assert oss.is_excluded("cache/blob", patterns)
    assert not oss.is_excluded("model.safetensors", patterns)
    assert not oss.is_excluded("tmp/file", patterns)
    assert not oss.is_excluded("anything", [])


def test_safe_relative_name():
    assert oss.safe_relative_name("a/b.bin") is None
    for bad in ("", "/etc/passwd", "a/../../etc", "a//b", "./a", "a\\b", "a/."):
        assert oss.safe_relative_name(bad), bad


# -- sync plan -----------------------------------------------------------------------------------------
class Counter:
    def __init__(self, values):
        self.values = values
        self.asked = []

    def __call__(self, name):
        self.asked.append(name)
        return self.values.get(name)


def test_plan_sync_new_size_crc_skip_delete():
    source = {"a": 1, "b": 2, "c": 3, "d": 4}
    dest = {"b": 5, "c": 3, "d": 4, "x": 9}
    source_crc = Counter({"c": 111, "d": 222})
    dest_crc = Counter({"c": 111, "d": 999})
    plan = oss.plan_sync(source, dest, source_crc, dest_crc, delete=True)
    assert plan["transfer"] == [("a", "new"), ("b", "size"), ("d", "crc")]
    assert plan["skip"] == ["c"]
    assert plan["delete"] == ["x"]
    # sizes differ or the object is new: no CRC is computed or fetched
    assert sorted(source_crc.asked) == ["c", "d"] and sorted(dest_crc.asked) == ["c", "d"]


def test_plan_sync_without_delete_keeps_extras():
    plan = oss.plan_sync({"a": 1}, {"a": 1, "x": 2}, lambda n: 5, lambda n: 5)
    assert plan == {"transfer": [], "skip": ["a"], "delete": []}


def test_plan_sync_unknown_crc_transfers():
    plan = oss.plan_sync({"a": 1}, {"a": 1}, lambda n: 5, lambda n: None)
    assert plan["transfer"] == [("a", "unknown")]


def test_plan_sync_empty_sides():
    assert oss.plan_sync({}, {}, None, None, delete=True) == {"transfer": [], "skip": [], "delete": []}
    assert oss.plan_sync({}, {"x": 1}, None, None, delete=True)["delete"] == ["x"]


# -- local scan ----------------------------------------------------------------------------------------
def test_scan_local_symlinks_and_excludes(tmp_path):
    root = tmp_path / "m"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"aaa")
    (root / "sub" / "b.json").write_bytes(b"{}")
    (root / "skip.tmp").write_bytes(b"x")
    (root / "link.bin").symlink_to(root / "a.bin")
    (root / "broken").symlink_to(tmp_path / "nowhere")
    (root / "sub" / "loop").symlink_to(root)
    os.mkfifo(str(root / "fifo"))

    files, skipped = oss.scan_local(str(root), exclude=["*.tmp"], symlinks="follow")
    assert sorted(files) == ["a.bin", "link.bin", "sub/b.json"]
    assert files["a.bin"]["size"] == 3
    reasons = {s["name"]: s["reason"] for s in skipped}
    assert reasons == {"broken": "broken symlink", "fifo": "not a regular file", "sub/loop": "directory loop"}

    files, skipped = oss.scan_local(str(root), exclude=["*.tmp"], symlinks="skip")
    assert sorted(files) == ["a.bin", "sub/b.json"]
    assert {s["name"] for s in skipped if s["reason"] == "symlink"} == {"link.bin", "broken", "sub/loop"}


# -- writer bookkeeping (no requests are made) -------------------------------------------------------------
class NoBucket:
    enable_crc = True


def test_writer_stored_prefix_and_skip():
    writer = oss.MultipartStreamWriter(NoBucket(), "k", call=lambda *a, **k: None, part_size=100 * 1024)
    writer._started = True  # pylint: disable=protected-access
    writer.remote_parts = {1: {"size": 100 * 1024, "etag": "A"}, 2: {"size": 100 * 1024, "etag": "B"},
                           3: {"size": 10, "etag": "C"}, 5: {"size": 100 * 1024, "etag": "E"}}
    assert writer.stored_prefix == 200 * 1024
    with pytest.raises(ValueError):
        writer.skip(100 * 1024 + 1)
    with pytest.raises(ValueError):
        writer.skip(300 * 1024)
    writer.skip(200 * 1024)
    assert writer.bytes_reused == 200 * 1024 and writer.parts_reused == 2


def test_writer_rejects_bad_settings():
    with pytest.raises(ValueError):
        oss.MultipartStreamWriter(NoBucket(), "k", part_size=1000)
    with pytest.raises(ValueError):
        oss.MultipartStreamWriter(NoBucket(), "k", workers=0)
    writer = oss.MultipartStreamWriter(NoBucket(), "k")
    assert writer.bucket.enable_crc is False  # a copy: the caller's client keeps its setting
    assert writer.headers["x-oss-object-acl"] == "private"


def test_nocrc_clone_is_made_once_and_sized_for_the_workers():
    bucket = NoBucket()
    first = oss._nocrc(bucket, 4)  # pylint: disable=protected-access
    assert first is oss._nocrc(bucket, 8)  # pylint: disable=protected-access
    assert bucket.enable_crc is True and first.enable_crc is False
    bigger = oss._nocrc(bucket, 32)  # pylint: disable=protected-access
    assert bigger is not first
    if oss.HAS_OSS2:
        assert isinstance(bigger.session, oss.OssSession)
    assert oss._nocrc(bucket, 16) is bigger  # pylint: disable=protected-access
