# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/oss.py end to end against the emulator's OSS (a separate process, unmodified oss2).

* an upload killed halfway (SIGKILL inside the uploading process) is resumed by the next run, which
  re-sends at most 60% of the bytes; the object's CRC-64 and content match the file;
* the streaming writer stores a generated 50 MiB stream with bounded memory (tracemalloc peak and
  the writer's own count of buffered parts), with matching CRC-64 and content;
* a failing or aborted writer leaves no multipart upload behind; a killed stream resumes by key;
* injected faults (dropped connections, 503s) on UploadPart are retried and the object is intact.

Run from the collection root ($COLL):
    python -m pytest -q -p no:cacheprovider --ansible-unit-inject-only tests/oss
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import random
import subprocess
import sys
import tracemalloc

import pytest

oss2 = pytest.importorskip("oss2")

from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy  # noqa: E402  pylint: disable=wrong-import-position

from sandbox.alicloud.testing import EmulatorProcess  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with EmulatorProcess(state_dir=str(tmp_path_factory.mktemp("oss-emulator"))) as process:
        yield process


@pytest.fixture
def bucket(emu, request):
    ak, sk = emu.static_key
    name = "resume-%s" % hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    client = oss2.Bucket(oss2.AuthV4(ak, sk), emu.oss_endpoint, name, region=emu.region)
    client.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    emu.clear_faults()
    yield client
    emu.clear_faults()
    oss.empty_bucket(CALL, client)
    client.delete_bucket()


CALL = oss.retry_call(RetryPolicy(max_attempts=8, base=0.05, cap=0.5))


def _load_driver():
    spec = importlib.util.spec_from_file_location("oss_upload_driver", os.path.join(HERE, "upload_driver.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the same deterministic stream as the killed driver process produces
generated_stream = _load_driver().stream_chunks


def sha256_object(client, key):
    digest = hashlib.sha256()
    stream = client.get_object(key)
    while True:
        block = stream.read(MIB)
        if not block:
            return digest.hexdigest()
        digest.update(block)


def part_uploads_since(emu, count_before):
    log = emu.requests()[count_before:]
    return [r for r in log if r["action"] == "UploadPart" and r["status"] == 200]


def run_driver(emu, tmp_path, **cfg):
    ak, sk = emu.static_key
    cfg.update(endpoint=emu.oss_endpoint, region=emu.region, access_key=ak, secret_key=sk)
    path = tmp_path / "driver.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, os.path.join(HERE, "upload_driver.py"), str(path)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_killed_upload_resumes_and_resends_at_most_60_percent(emu, bucket, tmp_path):
    size, part_size = 40 * MIB + 12345, MIB
    path = tmp_path / "weights.bin"
    path.write_bytes(random.Random(5).randbytes(size))
    parts_total = len(oss.split_parts(size, part_size))

    before = len(emu.requests())
    proc = run_driver(emu, tmp_path, bucket=bucket.bucket_name, key="m/weights.bin", file=str(path),
                      part_size=part_size, workers=2, kill_after_parts=parts_total // 2)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # killed, not finished
    first_run = part_uploads_since(emu, before)
    assert len(first_run) >= parts_total // 2
    assert not oss.head_object(CALL, bucket, "m/weights.bin")  # nothing completed
    assert len(oss.list_uploads(CALL, bucket, "m/")) == 1

    before = len(emu.requests())
    result = oss.upload_file(bucket, "m/weights.bin", str(path), call=CALL, part_size=part_size, workers=2)
    second_run = part_uploads_since(emu, before)

    assert result["resumed"]
    assert result["bytes_sent"] + result["bytes_reused"] == size
    assert result["bytes_sent"] <= 0.6 * size, result
    assert len(second_run) == result["parts_sent"] <= 0.6 * parts_total
    local_crc = oss.file_crc64(str(path))
    assert result["crc64"] == local_crc
    assert oss.head_object(CALL, bucket, "m/weights.bin")["crc64"] == local_crc
    assert sha256_object(bucket, "m/weights.bin") == hashlib.sha256(path.read_bytes()).hexdigest()
    assert oss.list_uploads(CALL, bucket, "") == []
    assert bucket.get_object_acl("m/weights.bin").acl == "private"


def test_changed_file_does_not_reuse_stale_parts(emu, bucket, tmp_path):
    size, part_size = 6 * MIB, MIB
    path = tmp_path / "w.bin"
    path.write_bytes(random.Random(1).randbytes(size))
    proc = run_driver(emu, tmp_path, bucket=bucket.bucket_name, key="w.bin", file=str(path),
                      part_size=part_size, workers=1, kill_after_parts=3)
    assert proc.returncode == -9
    data = bytearray(path.read_bytes())
    data[MIB + 7] ^= 0xFF  # part 2 differs now; parts 1 and 3 are unchanged
    path.write_bytes(bytes(data))
    result = oss.upload_file(bucket, "w.bin", str(path), call=CALL, part_size=part_size, workers=2)
    assert result["parts_reused"] == 2 and result["parts_sent"] == 4
    assert result["crc64"] == oss.crc64(bytes(data))
    assert sha256_object(bucket, "w.bin") == hashlib.sha256(bytes(data)).hexdigest()


def test_streaming_writer_50_mib_bounded_memory(emu, bucket):
    size, part_size, workers = 50 * MIB, MIB, 2
    expected = hashlib.sha256()
    expected_crc = 0
    writer = oss.MultipartStreamWriter(bucket, "stream/model.bin", call=CALL, part_size=part_size, workers=workers)
    chunks = generated_stream(11, size, part_size)
    first = next(chunks)  # the generator's random pool is made here, before the measurement
    tracemalloc.start()
    try:
        with writer:
            for chunk in itertools.chain([first], chunks):
                expected.update(chunk)
                expected_crc = oss.crc64(chunk, expected_crc)
                writer.write(chunk)
        dummy_current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = writer.result
    # parts held: one being filled and max_pending (= workers) waiting or in flight, nothing else
    assert result["peak_pending_parts"] <= workers
    assert peak < (workers + 1) * part_size + 512 * 1024, "peak %d bytes" % peak
    assert result["size"] == size and result["parts"] == 50 and result["bytes_sent"] == size
    assert result["crc64"] == expected_crc
    assert oss.head_object(CALL, bucket, "stream/model.bin")["crc64"] == expected_crc
    assert sha256_object(bucket, "stream/model.bin") == expected.hexdigest()
    assert oss.list_uploads(CALL, bucket, "") == []


def test_small_and_empty_streams_are_single_puts(emu, bucket):
    before = len(emu.requests())
    for key, data in (("s/empty", b""), ("s/small", b"hello world")):
        with oss.MultipartStreamWriter(bucket, key, call=CALL, part_size=oss.MIN_PART_SIZE) as writer:
            writer.write(data)
        assert writer.result["crc64"] == oss.crc64(data)
        assert bucket.get_object(key).read() == data
    actions = [r["action"] for r in emu.requests()[before:] if r["mutating"]]
    assert actions == ["PutObject", "PutObject"]


def test_exact_multiple_of_part_size(emu, bucket):
    data = random.Random(2).randbytes(3 * oss.MIN_PART_SIZE)
    with oss.MultipartStreamWriter(bucket, "exact", call=CALL, part_size=oss.MIN_PART_SIZE) as writer:
        writer.write(data)
    assert writer.result["parts"] == 3
    assert bucket.get_object("exact").read() == data


def test_exception_in_the_producer_aborts_the_upload(emu, bucket):
    with pytest.raises(RuntimeError):
        with oss.MultipartStreamWriter(bucket, "abort/me", call=CALL, part_size=oss.MIN_PART_SIZE, workers=2) as writer:
            for chunk in generated_stream(3, 2 * MIB, oss.MIN_PART_SIZE):
                writer.write(chunk)
            raise RuntimeError("the encryptor failed")
    assert writer.upload_id is None
    assert oss.list_uploads(CALL, bucket, "") == []
    assert oss.head_object(CALL, bucket, "abort/me") is None


def test_failing_part_aborts_the_upload(emu, bucket):
    def call(func, *args, **kwargs):
        if getattr(func, "__name__", "") == "upload_part" and args[2] == 4:
            raise AlicloudError("refused", code="AccessDenied", http_status=403)
        return CALL(func, *args, **kwargs)

    writer = oss.MultipartStreamWriter(bucket, "fail/part", call=call, part_size=oss.MIN_PART_SIZE, workers=2)
    with pytest.raises(AlicloudError) as info:
        with writer:
            for chunk in generated_stream(4, 2 * MIB, oss.MIN_PART_SIZE):
                writer.write(chunk)
    assert info.value.code == "AccessDenied"
    assert oss.list_uploads(CALL, bucket, "") == []
    assert oss.head_object(CALL, bucket, "fail/part") is None


def test_crc_mismatch_deletes_the_object(emu, bucket):
    """A part whose recorded CRC-64 is off (as if a byte flipped between the CRC and the wire): the
    completed object's CRC differs from the combined one, so the object is deleted and close() raises."""
    data = random.Random(9).randbytes(2 * oss.MIN_PART_SIZE)
    writer = oss.MultipartStreamWriter(bucket, "crc/bad", call=CALL, part_size=oss.MIN_PART_SIZE, workers=1)
    writer.start()
    writer.write(data)
    writer._wait()  # pylint: disable=protected-access
    etag, size, crc = writer._parts[2]  # pylint: disable=protected-access
    writer._parts[2] = (etag, size, crc ^ 1)  # pylint: disable=protected-access
    with pytest.raises(AlicloudError) as info:
        writer.close()
    assert info.value.code == "InconsistentCRC"
    assert oss.head_object(CALL, bucket, "crc/bad") is None
    assert oss.list_uploads(CALL, bucket, "") == []


def test_killed_stream_resumes_by_key_with_skip(emu, bucket, tmp_path):
    size, part_size = 12 * MIB + 5, MIB
    proc = run_driver(emu, tmp_path, bucket=bucket.bucket_name, key="stream/resume.bin", stream_size=size, seed=21,
                      part_size=part_size, workers=2, kill_after_parts=7)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    full = b"".join(bytes(c) for c in generated_stream(21, size, part_size))

    writer = oss.MultipartStreamWriter(bucket, "stream/resume.bin", call=CALL, part_size=part_size, workers=2, resume=True)
    with writer:
        offset = writer.stored_prefix
        assert offset >= 5 * part_size  # parts in flight at the kill may be lost, the rest is stored
        writer.skip(offset)
        writer.write(full[offset:])
    result = writer.result
    assert result["bytes_reused"] == offset and result["bytes_sent"] == size - offset
    assert result["bytes_sent"] <= 0.6 * size
    assert result["crc64"] == oss.crc64(full)
    assert sha256_object(bucket, "stream/resume.bin") == hashlib.sha256(full).hexdigest()
    assert oss.list_uploads(CALL, bucket, "") == []


def test_killed_stream_resumes_by_key_verifying_parts(emu, bucket, tmp_path):
    size, part_size = 8 * MIB, MIB
    proc = run_driver(emu, tmp_path, bucket=bucket.bucket_name, key="stream/verify.bin", stream_size=size, seed=8,
                      part_size=part_size, workers=1, kill_after_parts=5)
    assert proc.returncode == -9
    writer = oss.MultipartStreamWriter(bucket, "stream/verify.bin", call=CALL, part_size=part_size, workers=2, resume=True)
    with writer:
        for chunk in generated_stream(8, size, part_size):  # the whole, identical stream again
            writer.write(chunk)
    assert writer.result["parts_reused"] == 5 and writer.result["parts_sent"] == 3
    assert writer.result["crc64"] == oss.crc64(b"".join(bytes(c) for c in generated_stream(8, size, part_size)))


def test_resume_of_a_stream_that_became_small_uses_one_put(emu, bucket):
    leftover = bucket.init_multipart_upload("small/again").upload_id
    bucket.upload_part("small/again", leftover, 1, b"x" * oss.MIN_PART_SIZE)
    older = bucket.init_multipart_upload("small/again").upload_id
    with oss.MultipartStreamWriter(bucket, "small/again", call=CALL, part_size=oss.MIN_PART_SIZE, resume=True) as writer:
        writer.write(b"tiny")
    assert writer.result["parts"] == 1 and writer.result["upload_id"] is None
    assert bucket.get_object("small/again").read() == b"tiny"
    assert oss.list_uploads(CALL, bucket, "") == []  # both leftovers aborted
    assert older != leftover


def test_faults_on_upload_part_are_retried(emu, bucket, tmp_path):
    size = 12 * MIB + 1
    path = tmp_path / "f.bin"
    path.write_bytes(random.Random(13).randbytes(size))
    emu.set_faults(rates={"oss:UploadPart": {"drop": 0.2, "http503": 0.1}}, seed=3)
    before = len(emu.requests())
    result = oss.upload_file(bucket, "faulty.bin", str(path), call=CALL, part_size=MIB, workers=3)
    emu.clear_faults()
    faults = [r for r in emu.requests()[before:] if r.get("fault")]
    assert faults, "no fault was injected"
    assert result["crc64"] == oss.file_crc64(str(path))
    assert oss.head_object(CALL, bucket, "faulty.bin")["crc64"] == result["crc64"]


def test_download_round_trip(emu, bucket, tmp_path):
    data = random.Random(17).randbytes(5 * MIB + 3)
    with oss.MultipartStreamWriter(bucket, "d/x.bin", call=CALL, part_size=MIB) as writer:
        writer.write(data)
    dest = tmp_path / "out" / "x.bin"
    result = oss.download_file(bucket, "d/x.bin", str(dest), call=CALL, part_size=MIB, workers=3)
    assert dest.read_bytes() == data
    assert result["crc64"] == oss.crc64(data)
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in dest.parent.iterdir()] == ["x.bin"]  # no temporary file left
