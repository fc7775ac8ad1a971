"""Throughput benchmark of the OSS emulator through the unmodified oss2 client.

    python benchmarks/oss_upload/bench.py [--size-mib 1024] [--threads 2] [--part-size-mib 10] [--runs 1]

Run it from the repository root. It

1. writes a file of random bytes to a temporary directory,
2. starts the emulator (``sandbox.alicloud.oss``) in a separate Python process on 127.0.0.1, with its
   state in the same temporary directory,
3. uploads the file with ``oss2.resumable_upload`` (multipart, CRC checking on, the oss2 defaults
   apart from part size and thread count) and reports MB/s (1 MB = 10^6 bytes) and MiB/s,
4. downloads it again with ``oss2.resumable_download`` (ranged GETs, CRC check on), checks that the
   result is byte-identical (SHA-256) and reports that throughput too,
5. stops the emulator and removes every temporary file.

The emulator runs in its own process so that the client and the server do not share one GIL, as
they would not against the real service.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def serve(state_dir, ready_file):
    """Child process: run the emulator until stdin closes."""
    sys.path.insert(0, REPO)
    from sandbox.alicloud.oss_testing import OssEmulator  # pylint: disable=import-outside-toplevel
    from sandbox.alicloud import oss_crc  # pylint: disable=import-outside-toplevel
    emu = OssEmulator(state_dir).start()
    tmp = ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"endpoint": emu.endpoint, "crc_backend": oss_crc.BACKEND}, f)
    os.replace(tmp, ready_file)
    sys.stdin.read()
    emu.stop()


def make_file(path, size):
    block = 64 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(8 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def _proc_cpu(pid):
    """User+system CPU seconds of process ``pid`` (from /proc; 0 when unavailable)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part-size-mib", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-client-crc", action="store_true",
                        help="create the oss2.Bucket with enable_crc=False (the emulator still computes and sends CRC-64)")
    parser.add_argument("--serve", nargs=2, metavar=("STATE_DIR", "READY_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return 0

    import oss2  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, REPO)
    from sandbox.alicloud.core import CredentialStore  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="oss-bench-")
    proc = None
    try:
        state = os.path.join(work, "state")
        os.makedirs(state)
        src = os.path.join(work, "model.bin")
        size = args.size_mib << 20
        t0 = time.time()
        make_file(src, size)
        print("generated %d MiB of random data in %.1f s" % (args.size_mib, time.time() - t0))
        src_sha = sha256_file(src)

        ready = os.path.join(work, "ready.json")
        # pylint: disable-next=consider-using-with
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", state, ready], stdin=subprocess.PIPE, cwd=REPO)
        deadline = time.time() + 30
        while not os.path.exists(ready):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as f:
            info = json.load(f)
        ak, sk = CredentialStore(os.path.join(state, "credentials.json")).static_key()
        bucket = oss2.Bucket(oss2.Auth(ak, sk), info["endpoint"], "bench", enable_crc=not args.no_client_crc)
        bucket.create_bucket(oss2.BUCKET_ACL_PRIVATE)
        print("emulator at %s (server CRC backend: %s); oss2 %s, client CRC via crcmod" % (info["endpoint"], info["crc_backend"], oss2.__version__))

        results = []
        for run in range(args.runs):
            key = "models/run-%d.bin" % run
            store = oss2.ResumableStore(root=os.path.join(work, "ckpt"))
            t0 = time.time()
            c0, s0 = os.times(), _proc_cpu(proc.pid)
            result = oss2.resumable_upload(bucket, key, src, store=store, part_size=args.part_size_mib << 20,
                                           num_threads=args.threads)
            up = time.time() - t0
            c1, s1 = os.times(), _proc_cpu(proc.pid)
            emu_cpu = s1 - s0
            print("  CPU seconds during upload: client %.2f, emulator %.2f (emulator cost: %.2f ms per MiB, i.e. %.0f MB/s per busy core)"
                  % (c1.user + c1.system - c0.user - c0.system, emu_cpu, emu_cpu * 1000 / args.size_mib,
                     size / emu_cpu / 1e6 if emu_cpu else float("inf")))
            head = bucket.head_object(key)
            if head.content_length != size or head.object_type != "Multipart":
                raise RuntimeError("unexpected object after upload: %r %r" % (head.content_length, head.object_type))

            dst = os.path.join(work, "download-%d.bin" % run)
            t0 = time.time()
            oss2.resumable_download(bucket, key, dst, store=oss2.ResumableDownloadStore(root=os.path.join(work, "dckpt")),
                                    multiget_threshold=1, part_size=args.part_size_mib << 20, num_threads=args.threads)
            down = time.time() - t0
            same = sha256_file(dst) == src_sha
            os.unlink(dst)
            results.append((up, down, same))
            print("run %d: upload %.2f s = %.1f MB/s (%.1f MiB/s), etag %s; ranged download %.2f s = %.1f MB/s, byte-identical: %s"
                  % (run + 1, up, size / up / 1e6, size / up / 2 ** 20, result.etag, down, size / down / 1e6, same))
            bucket.delete_object(key)
        best = min(r[0] for r in results)
        print("machine: %s, %d CPUs, Python %s" % (platform.platform(), os.cpu_count(), platform.python_version()))
        print("best upload: %.1f MB/s over %d run(s), threads=%d, part size %d MiB, client CRC %s"
              % (size / best / 1e6, args.runs, args.threads, args.part_size_mib, "off" if args.no_client_crc else "on"))
        return 0 if all(r[2] for r in results) else 1
    finally:
        if proc is not None:
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
