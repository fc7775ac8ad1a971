"""Benchmark: encrypt-then-upload versus streaming the ciphertext straight into OSS (the emulator's, on loopback).

    cd $COLL && python benchmarks/encrypt/stream.py [--size-mib 2048] [--files 4] [--workers N] [--rounds 3]
                                                    [--part-mib 8] [--upload-workers 4] [--json results.json]

Run from the collection root ($COLL) with the collection venv. It writes ``--files`` files of random
bytes totalling ``--size-mib`` MiB (default 4 x 512 MiB = 2 GiB, the data set of issue 5), starts the
emulator (``python -m sandbox.alicloud serve``) as its own process on 127.0.0.1 with its state in a
separate directory, and then, round after round with the order of the two methods rotated, measures:

* ``encrypt-then-upload``: child 1 runs ``open_cipherdir`` + ``encrypt_tree`` (``workers`` processes,
  keyed digests on: what ``gocryptfs_encrypt`` does for a local ``dest``) into a local CIPHERDIR;
  child 2 uploads that CIPHERDIR with ``oss_sync``'s own upload path (``scan_local`` -> ``plan_sync`` ->
  ``oss_sync.upload``: small files in parallel, big files in ``part-mib`` parts with ``upload-workers``
  threads). Its wall time is the sum of the two children's work;
* ``stream``: one child runs ``encrypt_tree_to_oss`` (what ``gocryptfs_encrypt`` does for
  ``dest: oss://bucket/prefix``) with the same ``workers``, part size and upload threads;
* ``stream-noop``: the same call again on the unchanged tree (nothing to send; the emulator's request
  log is checked for mutating requests).

For every child: work wall time (from just before the first call, scrypt of gocryptfs.conf included,
interpreter start and imports excluded), CPU seconds of the child and its waited-for worker processes
(``os.times``), peak RSS of the child itself from ``VmHWM`` in ``/proc/self/status`` (``ru_maxrss`` of
the child is not used: on Linux it keeps the parent's peak across fork + exec) and of its largest worker
process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the workers are forked, not exec'd, so this is
theirs), the peak over time of the summed PSS (proportional set size: shared pages - the interpreter
after fork, the shared-memory ring - counted once) and of the summed RSS of the child's whole process
tree, sampled by the parent every 20 ms from ``/proc/<pid>/smaps_rollup``, and the bytes the child and
its workers caused to be written to storage (``write_bytes`` of
``/proc/self/io``, which includes reaped children). Local disk used by the output is measured with ``du``
semantics (allocated blocks). The emulator's CPU time comes from ``/proc/<pid>/stat``.
After each method the bucket is emptied, the local output deleted and ``sync`` run outside the timed
region. Results: a table on stdout and, with ``--json``, the raw numbers.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MIB = 1 << 20
PASSWORD = 'benchmark-password-not-secret'


def _collection_paths():
    paths = []
    parts = REPO.rstrip('/').split('/')
    if parts[-3:-1] == ['ansible_collections', 'confidential_ai'] and parts[-1] == 'ack':
        paths.append('/'.join(parts[:-3]))
    paths.extend(p for p in os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':') if p)
    paths.append(os.path.expanduser('~/.cache/cai-ack/src/collections'))
    return paths


def vm_status(field):
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def io_write_bytes():
    with open('/proc/self/io', encoding='ascii') as f:
        for line in f:
            if line.startswith('write_bytes:'):
                return int(line.split()[1])
    return 0


def proc_cpu(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def disk_usage(path):
    """Allocated bytes below ``path`` (like du)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total + (os.lstat(path).st_blocks * 512 if os.path.exists(path) else 0)


# -- child side -------------------------------------------------------------------------------------
class Params:
    """What oss_sync's upload helper reads from the module: params and call."""

    def __init__(self, workers, path, call):
        self.params = {'workers': workers, 'path': path}
        self.call = call


def child(task, cfg_path):
    for path in reversed(_collection_paths()):
        sys.path.insert(0, path)
    with open(cfg_path, encoding='utf-8') as f:
        cfg = json.load(f)
    import oss2  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs, oss  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.modules import oss_sync  # pylint: disable=import-outside-toplevel

    call = oss.retry_call()
    bucket = oss2.Bucket(oss2.AuthV4(cfg['ak'], cfg['sk']), cfg['endpoint'], cfg['bucket'], region=cfg['region'])
    rss_before = vm_status('VmRSS')
    io0 = io_write_bytes()
    cpu0 = os.times()
    t0 = time.monotonic()
    out = {}
    if task == 'encrypt':
        key, dummy = gocryptfs.open_cipherdir(cfg['dst'], PASSWORD)
        stats = gocryptfs.encrypt_tree(cfg['src'], cfg['dst'], key, workers=cfg['workers'], manifest_path=cfg['dst'] + '.manifest.json')
        out.update(bytes=stats['bytes_encrypted'])
    elif task == 'upload':
        local, dummy_ignored = oss.scan_local(cfg['dst'])
        params = Params(cfg['upload_workers'], cfg['dst'], call)
        remote = oss_sync.remote_listing(params, bucket, cfg['prefix'])
        plan = oss.plan_sync({n: e['size'] for n, e in local.items()}, remote, lambda n: oss.file_crc64(local[n]['path']),
                             lambda n: oss.head_object(call, bucket, cfg['prefix'] + n)['crc64'])
        sent, dummy_resumed, dummy_names = oss_sync.upload(params, bucket, cfg['prefix'], cfg['part_size'], local, plan)
        out.update(bytes=sent, objects=len(plan['transfer']))
    elif task in ('stream', 'stream-noop'):
        stats = gocryptfs.encrypt_tree_to_oss(cfg['src'], bucket, cfg['prefix'], PASSWORD, call, workers=cfg['workers'],
                                              manifest_path=cfg['manifest'], part_size=cfg['part_size'],
                                              upload_workers=cfg['upload_workers'])
        out.update(bytes=stats['bytes_uploaded'], objects=stats['objects_written'], files_encrypted=stats['files_encrypted'])
    out['seconds'] = time.monotonic() - t0
    cpu1 = os.times()
    out['cpu'] = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system
                  - cpu0.user - cpu0.system - cpu0.children_user - cpu0.children_system)
    out['rss_before_mib'] = rss_before / 1024.0
    out['peak_rss_mib'] = vm_status('VmHWM') / 1024.0
    out['worker_peak_rss_mib'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    out['write_bytes'] = io_write_bytes() - io0
    print(json.dumps(out))


# -- parent side ------------------------------------------------------------------------------------
def make_files(directory, count, size):
    os.makedirs(directory)
    for i in range(count):
        with open(os.path.join(directory, 'model-%05d-of-%05d.safetensors' % (i + 1, count)), 'wb') as f:
            left = size
            while left:
                n = min(left, 64 * MIB)
                f.write(os.urandom(n))
                left -= n


def _tree(pid):
    """pid and all its descendants (from /proc/<pid>/task/<tid>/children)."""
    out = [pid]
    i = 0
    while i < len(out):
        try:
            for tid in os.listdir('/proc/%d/task' % out[i]):
                with open('/proc/%d/task/%s/children' % (out[i], tid), encoding='ascii') as f:
                    out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return out


def _rollup(pid):
    """(Rss, Pss) in KiB of one process from /proc/<pid>/smaps_rollup (0, 0 when it is gone)."""
    rss = pss = 0
    try:
        with open('/proc/%d/smaps_rollup' % pid, encoding='ascii') as f:
            for line in f:
                if line.startswith('Rss:'):
                    rss = int(line.split()[1])
                elif line.startswith('Pss:'):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def run_child(task, cfg, work, emu_pid):
    """Run one measurement in a fresh process; samples the PSS and RSS of its process tree every 20 ms."""
    path = os.path.join(work, 'cfg-%s.json' % task)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(cfg, f)
    emu0 = proc_cpu(emu_pid)
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--child', task, path],  # pylint: disable=consider-using-with
                                stdout=out, stderr=err)
        peak_pss = peak_rss = 0
        while proc.poll() is None:
            sizes = [_rollup(p) for p in _tree(proc.pid)]
            peak_rss = max(peak_rss, sum(s[0] for s in sizes))
            peak_pss = max(peak_pss, sum(s[1] for s in sizes))
            time.sleep(0.02)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors='replace')
    if proc.returncode:
        raise RuntimeError('%s failed:\n%s' % (task, stderr[-3000:]))
    result = json.loads(stdout.strip().splitlines()[-1])
    result['process_wall'] = wall
    result['emulator_cpu'] = proc_cpu(emu_pid) - emu0
    result['tree_peak_pss_mib'] = peak_pss / 1024.0
    result['tree_peak_rss_mib'] = peak_rss / 1024.0
    return result


def sync():
    subprocess.run(['sync'], check=False)


def median(values):
    return statistics.median(values) if values else float('nan')


def spread(values):
    return '%.2f [%.2f-%.2f]' % (median(values), min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--size-mib', type=int, default=2048, help='total plaintext (MiB)')
    parser.add_argument('--files', type=int, default=4)
    parser.add_argument('--workers', type=int, default=0, help='encryption processes (default: usable CPUs)')
    parser.add_argument('--stream-workers', type=int, default=0, help='encryption processes when streaming (default: --workers)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--part-mib', type=int, default=8)
    parser.add_argument('--upload-workers', type=int, default=4)
    parser.add_argument('--json', help='write the raw numbers here')
    parser.add_argument('--child', nargs=2, metavar=('TASK', 'CONFIG'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    sys.path.insert(0, REPO)
    for path in reversed(_collection_paths()):
        sys.path.insert(0, path)
    import oss2  # pylint: disable=import-outside-toplevel
    from sandbox.alicloud.testing import EmulatorProcess  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # pylint: disable=import-outside-toplevel
    from ansible_collections.confidential_ai.ack.plugins.module_utils.gocryptfs import ciphertext_size  # pylint: disable=import-outside-toplevel

    workers = args.workers or len(os.sched_getaffinity(0))
    work = tempfile.mkdtemp(prefix='encrypt-stream-bench-')
    emu_dir = tempfile.mkdtemp(prefix='encrypt-stream-bench-emu-')
    rows = []
    try:
        src = os.path.join(work, 'model')
        file_size = args.size_mib * MIB // args.files
        t0 = time.monotonic()
        make_files(src, args.files, file_size)
        expected_cipher = args.files * ciphertext_size(file_size)
        print('generated %d x %d MiB in %.1f s; %d encryption processes, %d MiB parts, %d upload threads per object'
              % (args.files, file_size // MIB, time.monotonic() - t0, workers, args.part_mib, args.upload_workers))
        sync()
        with EmulatorProcess(state_dir=emu_dir) as emu:
            ak, sk = emu.static_key
            bucket = oss2.Bucket(oss2.AuthV4(ak, sk), emu.oss_endpoint, 'bench', region=emu.region)
            bucket.create_bucket(oss2.BUCKET_ACL_PRIVATE)
            call = oss.retry_call()
            base = {'ak': ak, 'sk': sk, 'endpoint': emu.oss_endpoint, 'region': emu.region, 'bucket': 'bench', 'src': src,
                    'workers': workers, 'part_size': args.part_mib * MIB, 'upload_workers': args.upload_workers}
            stream_workers = args.stream_workers or workers
            for rnd in range(args.rounds):
                order = ['encrypt-then-upload', 'stream'] if rnd % 2 == 0 else ['stream', 'encrypt-then-upload']
                for method in order:
                    load = os.getloadavg()[0]
                    if method == 'encrypt-then-upload':
                        dst = os.path.join(work, 'cipher-%d' % rnd)
                        cfg = dict(base, dst=dst, prefix='etu-%d/' % rnd)
                        enc = run_child('encrypt', cfg, work, emu.proc.pid)
                        local_disk = disk_usage(dst)
                        up = run_child('upload', cfg, work, emu.proc.pid)
                        row = {
                            'method': method, 'round': rnd + 1, 'load': load,
                            'seconds': enc['seconds'] + up['seconds'], 'encrypt_seconds': enc['seconds'], 'upload_seconds': up['seconds'],
                            'process_wall': enc['process_wall'] + up['process_wall'],
                            'cpu': enc['cpu'] + up['cpu'], 'emulator_cpu': enc['emulator_cpu'] + up['emulator_cpu'],
                            'peak_rss_mib': max(enc['peak_rss_mib'], up['peak_rss_mib']),
                            'encrypt_peak_rss_mib': enc['peak_rss_mib'], 'upload_peak_rss_mib': up['peak_rss_mib'],
                            'worker_peak_rss_mib': enc['worker_peak_rss_mib'],
                            'tree_peak_pss_mib': max(enc['tree_peak_pss_mib'], up['tree_peak_pss_mib']),
                            'tree_peak_rss_mib': max(enc['tree_peak_rss_mib'], up['tree_peak_rss_mib']),
                            'rss_before_mib': enc['rss_before_mib'],
                            'local_ciphertext_bytes': local_disk, 'write_bytes': enc['write_bytes'] + up['write_bytes'],
                            'uploaded_bytes': up['bytes'], 'objects': up['objects'],
                        }
                        shutil.rmtree(dst)
                        os.unlink(dst + '.manifest.json')
                    else:
                        manifest = os.path.join(work, 'stream-%d.manifest.json' % rnd)
                        cfg = dict(base, prefix='stream-%d/' % rnd, manifest=manifest, workers=stream_workers)
                        before = set(os.listdir(work))
                        res = run_child('stream', cfg, work, emu.proc.pid)
                        new_files = sorted(set(os.listdir(work)) - before)
                        requests_before = len(emu.requests())
                        noop = run_child('stream-noop', cfg, work, emu.proc.pid)
                        mutating = [r for r in emu.requests()[requests_before:] if r['mutating']]
                        row = {
                            'method': method, 'round': rnd + 1, 'load': load,
                            'seconds': res['seconds'], 'process_wall': res['process_wall'], 'cpu': res['cpu'],
                            'emulator_cpu': res['emulator_cpu'], 'peak_rss_mib': res['peak_rss_mib'],
                            'worker_peak_rss_mib': res['worker_peak_rss_mib'], 'rss_before_mib': res['rss_before_mib'],
                            'tree_peak_pss_mib': res['tree_peak_pss_mib'], 'tree_peak_rss_mib': res['tree_peak_rss_mib'],
                            'local_ciphertext_bytes': sum(disk_usage(os.path.join(work, n)) for n in new_files if n != os.path.basename(manifest)),
                            'local_files_created': new_files, 'manifest_bytes': os.path.getsize(manifest),
                            'write_bytes': res['write_bytes'], 'uploaded_bytes': res['bytes'], 'objects': res['objects'],
                            'noop_seconds': noop['seconds'], 'noop_files_encrypted': noop['files_encrypted'],
                            'noop_mutating_requests': len(mutating),
                        }
                        os.unlink(manifest)
                    stored = oss.list_objects(call, bucket, cfg['prefix'])
                    row['stored_bytes'] = sum(v['size'] for v in stored.values())
                    row['stored_objects'] = len(stored)
                    oss.empty_bucket(call, bucket, cfg['prefix'])
                    sync()
                    rows.append(row)
                    print('round %d %-20s %6.2f s  CPU %5.2f s  emulator CPU %5.2f s  peak RSS %6.1f MiB (workers %5.1f, tree PSS %5.1f)  '
                          'local ciphertext %6.1f MiB  write_bytes %6.1f MiB  stored %d objects %.1f MiB  load %.2f'
                          % (rnd + 1, method, row['seconds'], row['cpu'], row['emulator_cpu'], row['peak_rss_mib'],
                             row['worker_peak_rss_mib'], row['tree_peak_pss_mib'], row['local_ciphertext_bytes'] / MIB, row['write_bytes'] / MIB,
                             row['stored_objects'], row['stored_bytes'] / MIB, load))
        summarize(rows, args, workers, expected_cipher)
        if args.json:
            with open(args.json, 'w', encoding='utf-8') as f:
                json.dump({'machine': machine(), 'args': vars(args), 'workers': workers, 'rows': rows}, f, indent=1)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(emu_dir, ignore_errors=True)


def machine():
    info = {'platform': platform.platform(), 'python': platform.python_version(), 'cpus': len(os.sched_getaffinity(0)),
            'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    try:
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as f:
            info['cpu'] = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '?')
    except OSError:
        pass
    info['mem_gib'] = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / float(1 << 30), 1)
    return info


def summarize(rows, args, workers, expected_cipher):
    print('\n%s\n%d x %d MiB, %d encryption processes (%d when streaming), %d rounds; median [min-max]' % (
        json.dumps(machine()), args.files, args.size_mib // args.files, workers, args.stream_workers or workers, args.rounds))
    etu = [r for r in rows if r['method'] == 'encrypt-then-upload']
    stm = [r for r in rows if r['method'] == 'stream']
    for name, group in (('encrypt-then-upload', etu), ('stream', stm)):
        print('%-20s wall %s s  CPU %s s  emulator CPU %s s  peak RSS %s MiB  workers %s MiB  tree PSS %s MiB  tree RSS %s MiB  '
              'local ciphertext %s MiB  write_bytes %s MiB'
              % (name, spread([r['seconds'] for r in group]), spread([r['cpu'] for r in group]),
                 spread([r['emulator_cpu'] for r in group]), spread([r['peak_rss_mib'] for r in group]),
                 spread([r['worker_peak_rss_mib'] for r in group]), spread([r['tree_peak_pss_mib'] for r in group]),
                 spread([r['tree_peak_rss_mib'] for r in group]),
                 spread([r['local_ciphertext_bytes'] / MIB for r in group]), spread([r['write_bytes'] / MIB for r in group])))
    if etu:
        print('  encrypt %s s + upload %s s; encrypt child peak RSS %s MiB, upload child %s MiB' % (
            spread([r['encrypt_seconds'] for r in etu]), spread([r['upload_seconds'] for r in etu]),
            spread([r['encrypt_peak_rss_mib'] for r in etu]), spread([r['upload_peak_rss_mib'] for r in etu])))
    if stm:
        print('  re-run on the unchanged tree: %s s, files encrypted %s, mutating requests %s' % (
            spread([r['noop_seconds'] for r in stm]), sorted(set(r['noop_files_encrypted'] for r in stm)),
            sorted(set(r['noop_mutating_requests'] for r in stm))))
    ok = all(r['stored_bytes'] >= expected_cipher for r in rows)
    print('every run stored the whole ciphertext (%d bytes of file contents): %s' % (expected_cipher, ok))
    if etu and stm:
        ratio = median([r['seconds'] for r in stm]) / median([r['seconds'] for r in etu])
        per_round = [s['seconds'] / e['seconds'] for s, e in zip(stm, etu)]
        print('stream / encrypt-then-upload wall time: %.2f (per round: %s); target <= 0.70' % (
            ratio, ', '.join('%.2f' % x for x in per_round)))


if __name__ == '__main__':
    sys.exit(main())
