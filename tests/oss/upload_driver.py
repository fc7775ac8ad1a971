# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process that uploads through module_utils/oss.py and kills itself with SIGKILL after N parts.

    python tests/oss/upload_driver.py CONFIG.json

CONFIG (0600, it holds the sandbox key): endpoint, region, access_key, secret_key, bucket, key, and
either ``file`` (upload_file) or ``stream_size`` + ``seed`` (MultipartStreamWriter fed a generated
stream), plus part_size, workers and kill_after_parts. The kill happens inside the process, right after
the N-th UploadPart answer, so the interruption is at a known place but is a real kill: no abort, no
cleanup, parts in flight are lost.
"""

import json
import os
import random
import signal
import sys
import threading


def stream_chunks(seed, size, part_size):
    """A deterministic stream of ``size`` bytes in chunks of random sizes (1 byte to 1.5 parts).

    The chunks are views into one random pool of 2.5 parts made up front, so producing the stream
    allocates nothing per chunk (memory measurements then see the writer, not the generator).
    """
    rng = random.Random(seed)
    pool = memoryview(rng.randbytes(5 * part_size // 2 + 1))
    left = size
    while left:
        n = min(left, rng.randrange(1, 3 * part_size // 2))
        offset = rng.randrange(0, part_size)
        yield pool[offset:offset + n]
        left -= n


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    import oss2  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy  # pylint: disable=import-outside-toplevel

    bucket = oss2.Bucket(oss2.AuthV4(cfg["access_key"], cfg["secret_key"]), cfg["endpoint"], cfg["bucket"], region=cfg["region"])
    inner = oss.retry_call(RetryPolicy(max_attempts=5, base=0.05))
    lock = threading.Lock()
    done = [0]

    def call(func, *args, **kwargs):
        result = inner(func, *args, **kwargs)
        if getattr(func, "__name__", "") == "upload_part":
            with lock:
                done[0] += 1
                if done[0] >= cfg["kill_after_parts"]:
                    os.kill(os.getpid(), signal.SIGKILL)
        return result

    if "file" in cfg:
        oss.upload_file(bucket, cfg["key"], cfg["file"], call=call, part_size=cfg["part_size"], workers=cfg["workers"])
    else:
        writer = oss.MultipartStreamWriter(bucket, cfg["key"], call=call, part_size=cfg["part_size"], workers=cfg["workers"],
                                           abort_on_error=False)
        with writer:
            for chunk in stream_chunks(cfg["seed"], cfg["stream_size"], cfg["part_size"]):
                writer.write(chunk)
    print("finished without being killed")


if __name__ == "__main__":
    main()
