"""Throughput and memory of oss_sync's uploader and of the streaming multipart writer, against the
emulator's OSS on loopback.

    python benchmarks/oss_sync/bench.py [--files 4] [--file-mib 256] [--part-mib 8] [--workers 4] [--runs 2]
                                        [--playbook]

Run it from the collection root ($COLL), with the collection venv. It

1. writes ``files`` files of random bytes (default 4 x 256 MiB = 1 GiB) to a temporary directory,
2. starts the emulator (``python -m sandbox.alicloud serve``) as a separate process on 127.0.0.1,
3. runs each measurement in a fresh child process (so that its peak RSS is its own), interleaved,
   ``runs`` times:

   * ``baseline``: ``oss2.resumable_upload`` of each file with the oss2 defaults (client CRC on),
     ``num_threads=workers``, the same part size: what one gets without this collection;
   * ``sync``: oss_sync's own upload path (``scan_local`` -> ``plan_sync`` -> ``oss_sync.upload``);
   * ``noop``: the same sync again: nothing to send, every file read for its CRC-64, one HEAD per object;
   * ``stream``: ``MultipartStreamWriter`` fed the same number of bytes from a generator, in 1 MiB chunks;
   * ``download``: oss_sync's download path (parallel ranged GETs, CRC-64 checked), then SHA-256 compared;

4. optionally (``--playbook``) runs the real module once through ansible-playbook and reports its result,
5. prints a table (1 MB = 10^6 bytes; MiB/s also given) and removes everything.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MIB = 1 << 20


def vm_status(field):
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- child side -------------------------------------------------------------------------------------
class Params:
    """What oss_sync's upload/download helpers read from the module: params and call."""

    def __init__(self, workers, path, call):
        self.params = {"workers": workers, "path": path}
        self.call = call


def child(task, cfg_path):
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("no_fastcrc"):
        sys.modules["fastcrc"] = None  # the import fails: module_utils/oss.py falls back to crcmod
    import oss2  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.modules import oss_sync  # pylint: disable=import-outside-toplevel

    call = oss.retry_call(RetryPolicy(max_attempts=8))
    bucket = oss2.Bucket(oss2.AuthV4(cfg["ak"], cfg["sk"]), cfg["endpoint"], cfg["bucket"], region=cfg["region"])
    part_size, workers, prefix = cfg["part_size"], cfg["workers"], cfg["prefix"]
    rss_before = vm_status("VmRSS")
    cpu0 = os.times()
    t0 = time.monotonic()
    out = {}
    if task == "baseline":
        store = oss2.ResumableStore(root=os.path.join(cfg["work"], "ckpt"))
        sent = 0
        for name in sorted(os.listdir(cfg["src"])):
            path = os.path.join(cfg["src"], name)
            oss2.resumable_upload(bucket, prefix + name, path, store=store, part_size=part_size, num_threads=workers,
                                  multipart_threshold=part_size)
            sent += os.path.getsize(path)
        out["bytes"] = sent
    elif task in ("sync", "noop"):
        local, dummy_ignored = oss.scan_local(cfg["src"])
        remote = oss_sync.remote_listing(Params(workers, cfg["src"], call), bucket, prefix)
        plan = oss.plan_sync({n: e["size"] for n, e in local.items()}, remote, lambda n: oss.file_crc64(local[n]["path"]),
                             lambda n: oss.head_object(call, bucket, prefix + n)["crc64"])
        sent, dummy_resumed, dummy_names = oss_sync.upload(Params(workers, cfg["src"], call), bucket, prefix, part_size, local, plan)
        out.update(bytes=sent, files_sent=len(plan["transfer"]), files_skipped=len(plan["skip"]))
    elif task == "stream":
        rng = random.Random(1)
        pool = memoryview(rng.randbytes(3 * MIB))
        writer = oss.MultipartStreamWriter(bucket, prefix + "stream.bin", call=call, part_size=part_size, workers=workers)
        with writer:
            left = cfg["total"]
            while left:
                n = min(left, MIB)
                offset = rng.randrange(0, 2 * MIB)
                writer.write(pool[offset:offset + n])
                left -= n
        out.update(bytes=writer.result["size"], peak_pending_parts=writer.result["peak_pending_parts"])
    elif task == "download":
        remote = oss_sync.remote_listing(Params(workers, cfg["dst"], call), bucket, prefix)
        plan = oss.plan_sync(remote, {}, None, None)
        out["bytes"] = oss_sync.download(Params(workers, cfg["dst"], call), bucket, prefix, part_size, remote, plan)
    out["seconds"] = time.monotonic() - t0
    out["crc_backend"] = oss.CRC_BACKEND
    cpu1 = os.times()
    out["cpu"] = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    out["rss_before_mib"] = rss_before / 1024.0
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter keeps the parent's peak across fork + exec
    out["peak_rss_mib"] = vm_status("VmHWM") / 1024.0
    print(json.dumps(out))


# -- parent side ------------------------------------------------------------------------------------
def make_files(directory, count, size):
    os.makedirs(directory)
    for i in range(count):
        with open(os.path.join(directory, "model-%05d-of-%05d.safetensors" % (i + 1, count)), "wb") as f:
            left = size
            while left:
                n = min(left, 64 * MIB)
                f.write(os.urandom(n))
                left -= n


def sha256_tree(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        digest = hashlib.sha256()
        with open(os.path.join(directory, name), "rb") as f:
            for block in iter(lambda: f.read(8 * MIB), b""):
                digest.update(block)
        out[name] = digest.hexdigest()
    return out


def run_child(task, cfg, work, emu_pid):
    path = os.path.join(work, "cfg-%s.json" % task)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    emu0 = proc_cpu(emu_pid)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", task, path], capture_output=True, text=True,
                          check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    if proc.returncode:
        raise RuntimeError("%s failed:\n%s" % (task, proc.stderr[-3000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["emulator_cpu"] = proc_cpu(emu_pid) - emu0
    return result


def run_playbook(emu, work, src, args):
    ak, sk = emu.static_key
    variables = {"conn": {"access_key": ak, "secret_key": sk, "region": emu.region, "protocol": "http",
                          "endpoints": {"oss": emu.oss_endpoint}}}
    vars_path = os.path.join(work, "pb-vars.json")
    fd = os.open(vars_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(variables, f)
    playbook = os.path.join(work, "pb.yml")
    with open(playbook, "w", encoding="utf-8") as f:
        f.write("""- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [%s]
  tasks:
    - confidential_ai.ack.oss_sync:
        bucket: bench
        prefix: playbook
        path: %s
        part_size: %d
        workers: %d
        access_key: "{{ conn.access_key }}"
        secret_key: "{{ conn.secret_key }}"
        region: "{{ conn.region }}"
        protocol: "{{ conn.protocol }}"
        endpoints: "{{ conn.endpoints }}"
""" % (vars_path, src, args.part_mib * MIB, args.workers))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    t0 = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", playbook],
                          capture_output=True, text=True, env=env, cwd=work, check=False)
    wall = time.monotonic() - t0
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    sync = report["plays"][0]["tasks"][0]["hosts"]["localhost"].get("sync")
    if proc.returncode or not sync:
        raise RuntimeError("playbook failed: %s" % proc.stdout[-3000:])
    return wall, sync


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--file-mib", type=int, default=256)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--playbook", action="store_true", help="also run the module once through ansible-playbook")
    parser.add_argument("--no-fastcrc", action="store_true", help="hide fastcrc from the children: CRC-64 through crcmod")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    sys.path.insert(0, REPO)
    import oss2  # pylint: disable=import-outside-toplevel
    from sandbox.alicloud.testing import EmulatorProcess  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="oss-sync-bench-")
    try:
        src = os.path.join(work, "model")
        total = args.files * args.file_mib * MIB
        t0 = time.monotonic()
        make_files(src, args.files, args.file_mib * MIB)
        print("generated %d x %d MiB in %.1f s" % (args.files, args.file_mib, time.monotonic() - t0))
        src_sums = sha256_tree(src)
        with EmulatorProcess(state_dir=os.path.join(work, "emu")) as emu:
            ak, sk = emu.static_key
            bucket = oss2.Bucket(oss2.AuthV4(ak, sk), emu.oss_endpoint, "bench", region=emu.region)
            bucket.create_bucket(oss2.BUCKET_ACL_PRIVATE)
            call = oss.retry_call()
            base_cfg = {"ak": ak, "sk": sk, "endpoint": emu.oss_endpoint, "region": emu.region, "bucket": "bench",
                        "part_size": args.part_mib * MIB, "workers": args.workers, "src": src, "work": work, "total": total,
                        "no_fastcrc": args.no_fastcrc}
            rows = []
            for run in range(args.runs):
                for task in ("baseline", "sync", "noop", "stream", "download"):
                    cfg = dict(base_cfg, prefix="%s/" % ("sync-%d" % run if task in ("sync", "noop", "download") else "%s-%d" % (task, run)),
                               dst=os.path.join(work, "back-%d" % run))
                    result = run_child(task, cfg, work, emu.proc.pid)
                    result.update(task=task, run=run + 1)
                    if task == "download":
                        result["identical"] = sha256_tree(cfg["dst"]) == src_sums
                        shutil.rmtree(cfg["dst"])
                    rows.append(result)
                    mbs = result["bytes"] / result["seconds"] / 1e6
                    extra = {k: result[k] for k in ("files_sent", "files_skipped", "peak_pending_parts", "identical") if k in result}
                    values = (run + 1, task, result["seconds"], mbs, mbs * 1e6 / MIB, result["cpu"], result["emulator_cpu"],
                              result["peak_rss_mib"], result["rss_before_mib"], result["crc_backend"], json.dumps(extra))
                    print("run %d %-8s %7.2f s  %7.1f MB/s (%6.1f MiB/s)  client CPU %5.2f s  emulator CPU %5.2f s  peak RSS %6.1f MiB "
                          "(%.1f before work) CRC %s  %s" % values)
                oss.empty_bucket(call, bucket)
            if args.playbook:
                wall, sync = run_playbook(emu, work, src, args)
                print("ansible-playbook oss_sync: wall %.1f s; module: %d files, %d bytes in %.2f s = %.1f MiB/s" % (
                    wall, sync["files_sent"], sync["bytes_sent"], sync["seconds"], sync["throughput_mib_s"]))
                oss.empty_bucket(call, bucket)
        print("machine: %s, %d CPUs, Python %s, load average %s" % (
            platform.platform(), os.cpu_count(), platform.python_version(), " ".join("%.2f" % x for x in os.getloadavg())))
        print(json.dumps(rows))
        return 0 if all(r.get("identical", True) for r in rows) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
