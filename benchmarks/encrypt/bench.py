"""Benchmark: encrypting a model-sized tree into the gocryptfs format, several ways, interleaved.

    python benchmarks/encrypt/bench.py [--size-mib 2048] [--files 4] [--workers N] [--rounds 2]
                                       [--json results.json] [--keep-going]

Run from the repository root (or the bind-mounted checkout) as root: the FUSE method mounts.
It generates ``--files`` files of random bytes totalling ``--size-mib`` MiB in a temporary
directory, then, round after round with the order rotated each round, measures:

* ``fuse-cp``: the documented method - ``gocryptfs -init``, ``gocryptfs`` mount (run in the
  foreground as a child so its CPU time and peak RSS are counted), ``cp -r src/. mnt/``,
  ``fusermount3 -u``. Its wall time is the copy plus the unmount; init and mount are reported apart;
* ``python-1`` / ``python-N``: ``encrypt_tree`` of this collection with 1 and N worker processes
  (keyed content digests on, the module's default), and ``python-N-nodigest`` without them;
  wall time is the ``encrypt_tree`` call; CPU seconds and peak RSS cover the whole child process
  tree (interpreter start, imports and the scrypt of ``gocryptfs.conf`` included);
* ``cp``: plain ``cp -r`` of the same tree (the floor set by the disk and page cache);
* ``openssl speed -evp aes-256-gcm`` with one process and ``-multi N``: the machine's AES-GCM rate.

CPU seconds and peak RSS come from ``os.wait4`` on each child (user + system time of the child
and its waited-for descendants; peak RSS of the largest process in that tree). After every method
the output is deleted and ``sync`` runs outside the timed region. Results: a table on stdout and,
with ``--json``, the raw numbers.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = 'benchmark-password-not-secret'
MIB = 1048576


def _collection_paths():
    """Where ``ansible_collections`` can be imported from: the checkout itself when it sits at
    .../ansible_collections/confidential_ai/ack, else ANSIBLE_COLLECTIONS_PATH."""
    paths = []
    parts = REPO.rstrip('/').split('/')
    if parts[-3:-1] == ['ansible_collections', 'confidential_ai'] and parts[-1] == 'ack':
        paths.append('/'.join(parts[:-3]))
    paths.extend(p for p in os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':') if p)
    paths.append(os.path.expanduser('~/.cache/cai-ack/src/collections'))
    return paths


def child_python(args):
    """Child process: open a new CIPHERDIR and run encrypt_tree; print timing as JSON."""
    for path in reversed(_collection_paths()):
        sys.path.insert(0, path)
    from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs  # pylint: disable=import-outside-toplevel
    started = time.monotonic()
    key, dummy = gocryptfs.open_cipherdir(args.dst, PASSWORD)
    init = time.monotonic() - started
    started = time.monotonic()
    stats = gocryptfs.encrypt_tree(args.src, args.dst, key, workers=args.workers, digest=bool(args.digest),
                                   manifest_path=args.dst + '.manifest.json')
    seconds = time.monotonic() - started
    print(json.dumps({'seconds': seconds, 'init_seconds': init, 'bytes': stats['bytes_encrypted']}))


def spawn(argv, **kwargs):
    """Start argv; the caller reaps it with os.wait4 to get its rusage."""
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)  # pylint: disable=consider-using-with


def reap(proc):
    """Wait for a child started by spawn and return its rusage."""
    dummy, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError('%s exited %d: %s' % (proc.args[0], proc.returncode, proc.stderr.read().decode(errors='replace')[-2000:]))
    proc.stderr.close()
    return usage


def cpu(usage):
    return usage.ru_utime + usage.ru_stime


def timed(argv):
    started = time.monotonic()
    proc = spawn(argv)
    usage = reap(proc)
    return time.monotonic() - started, usage


def make_tree(root, files, size):
    os.makedirs(root)
    each = size // files
    for i in range(files):
        with open(os.path.join(root, 'model-%05d-of-%05d.safetensors' % (i + 1, files)), 'wb') as handle:
            left = each if i < files - 1 else size - each * (files - 1)
            while left:
                n = min(64 * MIB, left)
                handle.write(os.urandom(n))
                left -= n


def sync():
    subprocess.run(['sync'], check=True)


def method_cp(src, work):
    dst = os.path.join(work, 'cp-out')
    os.mkdir(dst)
    wall, usage = timed(['cp', '-r', src + '/.', dst + '/'])
    return {'seconds': wall, 'cpu_seconds': cpu(usage), 'peak_rss_kib': usage.ru_maxrss}, [dst]


def method_fuse(src, work, passfile):
    cipher = os.path.join(work, 'fuse-cipher')
    mnt = os.path.join(work, 'fuse-mnt')
    os.mkdir(cipher)
    os.mkdir(mnt)
    started = time.monotonic()
    subprocess.run(['gocryptfs', '-init', '-q', '-passfile', passfile, cipher], check=True, capture_output=True)
    daemon = spawn(['gocryptfs', '-fg', '-q', '-passfile', passfile, cipher, mnt])
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError('gocryptfs did not mount')
            time.sleep(0.02)
        setup = time.monotonic() - started
        started = time.monotonic()
        cp_wall, cp_usage = timed(['cp', '-r', src + '/.', mnt + '/'])
        subprocess.run(['fusermount3', '-u', mnt], check=True, capture_output=True)
        fs_usage = reap(daemon)
        wall = time.monotonic() - started
    except BaseException:
        if os.path.ismount(mnt):
            subprocess.run(['fusermount3', '-u', mnt], check=False, capture_output=True)
        raise
    return {
        'seconds': wall, 'cp_seconds': cp_wall, 'setup_seconds': setup,
        'cpu_seconds': cpu(cp_usage) + cpu(fs_usage), 'cpu_seconds_gocryptfs': cpu(fs_usage), 'cpu_seconds_cp': cpu(cp_usage),
        'peak_rss_kib': max(cp_usage.ru_maxrss, fs_usage.ru_maxrss), 'peak_rss_kib_gocryptfs': fs_usage.ru_maxrss,
    }, [cipher, mnt]


def method_python(src, work, workers, digest):
    dst = os.path.join(work, 'py-cipher-%d-%d' % (workers, digest))
    argv = [sys.executable, os.path.abspath(__file__), '--child-python', '--src', src, '--dst', dst,
            '--workers', str(workers), '--digest', str(int(digest))]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # pylint: disable=consider-using-with
    out = proc.stdout.read()
    err = proc.stderr.read()
    dummy, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    total = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError('python writer failed: %s' % err.decode(errors='replace')[-3000:])
    inner = json.loads(out)
    return {'seconds': inner['seconds'], 'total_seconds': total, 'setup_seconds': inner['init_seconds'],
            'cpu_seconds': cpu(usage), 'peak_rss_kib': usage.ru_maxrss}, [dst, dst + '.manifest.json']


def openssl_speed(multi, seconds, block=None):
    argv = ['openssl', 'speed', '-evp', 'aes-256-gcm', '-seconds', str(seconds)]
    if block:
        argv[2:2] = ['-bytes', str(block)]
    if multi > 1:
        argv[2:2] = ['-multi', str(multi)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    sizes = None
    rates = None
    for line in out.splitlines():
        if line.startswith('type') and 'bytes' in line:
            sizes = [int(x) for x in re.findall(r'(\d+) bytes', line)]
        elif '+H:' in line and sizes is None:        # -multi prints the sizes this way
            sizes = [int(x) for x in re.search(r'\+H:([\d:]+)', line).group(1).split(':')]
        elif re.match(r'^(evp|aes-256-gcm|AES-256-GCM)\s', line, re.I) or line.lower().startswith('aes-256-gcm'):
            rates = [float(x) * 1000 for x in re.findall(r'([\d.]+)k', line)]
    if not sizes or not rates:
        raise RuntimeError('cannot parse openssl speed output:\n%s' % out)
    return dict((str(s), r / MIB) for s, r in zip(sizes, rates))


def machine():
    cpu_model = ''
    with open('/proc/cpuinfo') as handle:
        for line in handle:
            if line.startswith('model name'):
                cpu_model = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as handle:
        mem = handle.readline().split()[1]
    versions = {}
    for name, argv in (('gocryptfs', ['gocryptfs', '-version']), ('openssl', ['openssl', 'version'])):
        try:
            versions[name] = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError):
            versions[name] = 'missing'
    try:
        import cryptography  # pylint: disable=import-outside-toplevel
        versions['cryptography'] = cryptography.__version__
    except ImportError:
        versions['cryptography'] = 'missing'
    return {'cpu': cpu_model, 'cpus': len(os.sched_getaffinity(0)), 'mem_kib': int(mem), 'kernel': platform.release(),
            'python': platform.python_version(), 'versions': versions}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--size-mib', type=int, default=2048)
    parser.add_argument('--files', type=int, default=4)
    parser.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--openssl-seconds', type=int, default=3)
    parser.add_argument('--dir', help='parent of the temporary directory (default: $TMPDIR)')
    parser.add_argument('--json', help='write the raw results here')
    parser.add_argument('--child-python', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--src', help=argparse.SUPPRESS)
    parser.add_argument('--dst', help=argparse.SUPPRESS)
    parser.add_argument('--digest', type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_python:
        child_python(args)
        return 0

    size = args.size_mib * MIB
    work = tempfile.mkdtemp(prefix='cai-bench-encrypt-', dir=args.dir)
    results = {'machine': machine(), 'size_mib': args.size_mib, 'files': args.files, 'workers': args.workers,
               'rounds': args.rounds, 'runs': {}}
    n = args.workers
    try:
        src = os.path.join(work, 'src')
        print('generating %d MiB in %d files under %s ...' % (args.size_mib, args.files, work), flush=True)
        make_tree(src, args.files, size)
        sync()
        passfile = os.path.join(work, 'passfile')
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, PASSWORD.encode() + b'\n')
        os.close(fd)

        methods = [
            ('fuse-cp', lambda: method_fuse(src, work, passfile)),
            ('python-1', lambda: method_python(src, work, 1, True)),
            ('python-%d' % n, lambda: method_python(src, work, n, True)),
            ('python-%d-nodigest' % n, lambda: method_python(src, work, n, False)),
            ('cp', lambda: method_cp(src, work)),
            ('openssl-1', None),
            ('openssl-multi-%d' % n, None),
            ('openssl-1-4k', None),
            ('openssl-multi-%d-4k' % n, None),
        ]
        for rnd in range(args.rounds):
            order = methods[rnd % len(methods):] + methods[:rnd % len(methods)]
            for name, func in order:
                if name.startswith('openssl'):
                    block = 4096 if name.endswith('-4k') else None
                    rates = openssl_speed(n if 'multi' in name else 1, args.openssl_seconds, block)
                    results['runs'].setdefault(name, []).append(rates)
                    print('round %d %-22s %s-byte blocks: %.0f MiB/s' % (rnd + 1, name, block or 16384, rates[str(block or 16384)]),
                          flush=True)
                    continue
                load_before = os.getloadavg()[0]
                res, outputs = func()
                res['loadavg_1min_before_after'] = [load_before, os.getloadavg()[0]]
                res['mib_s'] = args.size_mib / res['seconds']
                res['cpu_s_per_gib'] = res['cpu_seconds'] / (args.size_mib / 1024.0)
                results['runs'].setdefault(name, []).append(res)
                print('round %d %-22s %7.2f s %8.1f MiB/s  cpu %6.2f s  peak RSS %7.1f MiB  load %.1f'
                      % (rnd + 1, name, res['seconds'], res['mib_s'], res['cpu_seconds'], res['peak_rss_kib'] / 1024.0,
                         load_before), flush=True)
                for path in outputs:
                    if os.path.isdir(path) and not os.path.ismount(path):
                        shutil.rmtree(path)
                    elif os.path.exists(path):
                        os.remove(path)
                sync()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = summarize(results, n)
    results['summary'] = summary
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
    return 0


def summarize(results, n):
    runs = results['runs']
    table = {}
    print('\n%-22s %9s %10s %12s %14s' % ('method (median)', 'wall s', 'MiB/s', 'CPU-s/GiB', 'peak RSS MiB'))
    for name, items in runs.items():
        if name.startswith('openssl'):
            continue
        row = {
            'seconds': statistics.median(r['seconds'] for r in items),
            'mib_s': statistics.median(r['mib_s'] for r in items),
            'cpu_s_per_gib': statistics.median(r['cpu_s_per_gib'] for r in items),
            'peak_rss_mib': max(r['peak_rss_kib'] for r in items) / 1024.0,
        }
        table[name] = row
        print('%-22s %9.2f %10.1f %12.2f %14.1f' % (name, row['seconds'], row['mib_s'], row['cpu_s_per_gib'], row['peak_rss_mib']))
    for name in ('openssl-1', 'openssl-multi-%d' % n, 'openssl-1-4k', 'openssl-multi-%d-4k' % n):
        if name in runs:
            table[name] = dict((size, statistics.median(r[size] for r in runs[name])) for size in runs[name][0])
            print('%-22s %s' % (name, '  '.join('%s B: %.0f MiB/s' % (s, v) for s, v in sorted(table[name].items(), key=lambda x: int(x[0])))))
    ours = table.get('python-%d' % n)
    fuse = table.get('fuse-cp')
    ossl = table.get('openssl-multi-%d' % n)
    targets = {}
    if ours and fuse:
        targets['speed_vs_fuse'] = ours['mib_s'] / fuse['mib_s']
        targets['cpu_per_gib_vs_fuse'] = ours['cpu_s_per_gib'] / fuse['cpu_s_per_gib']
    if ours and ossl:
        targets['fraction_of_openssl_multi_16k'] = ours['mib_s'] / ossl['16384']
    single = table.get('openssl-1')
    if ours and single:
        # The same comparison against twice the single-process rate (what two idle cores would do),
        # and per CPU-second, which contention on a shared machine distorts less than wall time.
        targets['fraction_of_2x_openssl_1_16k'] = ours['mib_s'] / (2 * single['16384'])
        targets['mib_per_cpu_s'] = 1024.0 / ours['cpu_s_per_gib']
        targets['per_cpu_fraction_of_openssl_1_16k'] = targets['mib_per_cpu_s'] / single['16384']
    if targets:
        print('\ntargets: python-%d vs fuse-cp speed x%.2f (target >= 4), CPU-s/GiB ratio %.2f (target <= 0.5), '
              'fraction of openssl -multi %d (16 KiB blocks) %.2f (target >= 0.25)'
              % (n, targets.get('speed_vs_fuse', 0), targets.get('cpu_per_gib_vs_fuse', 0), n,
                 targets.get('fraction_of_openssl_multi_16k', 0)))
        print('         vs 2 x openssl-1: %.2f; per CPU-second: %.0f MiB, %.2f of openssl-1'
              % (targets.get('fraction_of_2x_openssl_1_16k', 0), targets.get('mib_per_cpu_s', 0),
                 targets.get('per_cpu_fraction_of_openssl_1_16k', 0)))
    return {'table': table, 'targets': targets}


if __name__ == '__main__':
    sys.exit(main())
