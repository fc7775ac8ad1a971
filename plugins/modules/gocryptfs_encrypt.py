#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gocryptfs_encrypt
short_description: Encrypt a directory into a gocryptfs CIPHERDIR without a FUSE mount, locally or straight into OSS
version_added: 0.1.0
description:
  - Turns the plaintext directory O(src) (for example a downloaded model) into a gocryptfs v2
    CIPHERDIR at O(dest) - a local directory, or objects under an OSS prefix - that gocryptfs 2.3 and
    2.4.0 mount with their default parameters, as
    ACK-CAI expects (AES-256-GCM contents with 4096-byte blocks, EME-encrypted names with a
    C(gocryptfs.diriv) per directory, long names, unpadded base64; C(gocryptfs.conf) with scrypt
    N=65536, r=8, p=1 and the feature flags HKDF, GCMIV128, DirIV, EMENames, LongNames, Raw64).
  - O(method=python) (default) writes the format directly in Python with the C(cryptography)
    library, in O(workers) processes, streaming each file in bounded chunks (memory does not grow
    with file size). No FUSE, no root and no gocryptfs binary are needed.
  - O(method=fuse) lets the real gocryptfs write it, the documented way - C(gocryptfs -init),
    mount, copy the new or changed files through the mount (content, mode and mtime, like
    C(cp -a)), C(fusermount -u) - for users who want the reference tool to produce the
    ciphertext. It needs the C(gocryptfs) binary, FUSE and usually root on the target.
  - An existing CIPHERDIR at O(dest) is reused (same master key) when the password opens its
    C(gocryptfs.conf); a wrong password fails before anything is written. A non-empty O(dest)
    without C(gocryptfs.conf) is refused.
  - "Idempotence: a manifest (O(manifest)) records, for each plaintext file, its size, mtime,
    mode, a keyed content digest and its ciphertext path. A re-run skips files whose size and
    mtime are unchanged; a file whose size is unchanged but mtime differs is re-hashed and only
    re-encrypted when its content changed; a changed file is re-encrypted alone and keeps its
    ciphertext name; entries removed from O(src) are removed from O(dest). Without a usable
    manifest every file is encrypted again."
  - The manifest reveals nothing about the plaintext beyond what the CIPHERDIR shows - paths and
    digests are HMAC-SHA256 under a key derived from the master key (HKDF, info
    C(cai-ack manifest v1)) and the file carries an HMAC, so a foreign or edited manifest is
    ignored. It is kept outside the CIPHERDIR because gocryptfs reports any file it cannot
    decrypt as corruption.
  - "Streaming into OSS (O(dest=oss://bucket/prefix)): the ciphertext goes straight into OSS multipart
    uploads and never touches the local disk. The objects under the prefix are exactly the files of the
    CIPHERDIR (C(gocryptfs.conf), a C(gocryptfs.diriv) per directory, encrypted names, long-name
    C(.name) objects, file contents), so the prefix mounted with ossfs or the OSS CSI driver is a
    CIPHERDIR gocryptfs mounts. O(workers) processes encrypt 4 MiB chunks into a shared-memory ring;
    each object is sent by a streaming multipart writer (O(part_size), O(upload_workers) threads,
    CRC-64 of every part and of the object checked). Memory stays bounded whatever the model size -
    about 2 x O(workers) x 4 MiB plus 3 x (O(upload_workers) + 1) x O(part_size) at most."
  - "With O(dest=oss://bucket/prefix) an existing C(gocryptfs.conf) under the prefix is reused when the password
    opens it; a wrong password fails before anything is written, and a prefix that holds objects but
    no C(gocryptfs.conf), or objects whose names do not decrypt, is refused. Existing directories keep their
    C(gocryptfs.diriv) (read back from OSS), so unchanged files keep their object names. The manifest
    (O(manifest), by default under O(state_dir)) also records each object's ETag: a re-run on an unchanged
    model makes no mutating request, a changed file is re-encrypted and re-sent alone under the same
    object key, objects of entries removed from O(src) are deleted, and multipart uploads left by a
    killed run under the prefix are aborted. Without a usable manifest every file is sent again."
  - The bucket must exist (see M(confidential_ai.ack.oss_bucket)). Cloud credentials and endpoints are
    only needed, and only resolved, when O(dest) is an C(oss://) URL; a local O(dest) needs none of the
    cloud options.
author:
  - confidential_ai.ack contributors (@confidential-ai)
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTION_GROUP
attributes:
  check_mode:
    support: full
    details: Reports what would be encrypted, removed, updated or uploaded; writes nothing (with an C(oss://)
      O(dest), only reading requests are made). When O(dest) exists the password is checked.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
options:
  src:
    description:
      - The plaintext directory on the host where the module runs. Regular files, directories and
        symlinks are encrypted (symlinks are kept as symlinks with an encrypted target);
        devices, FIFOs and sockets are refused. Extended attributes and ownership are not copied.
    type: path
    required: true
  dest:
    description:
      - The CIPHERDIR - a local directory on the same host, created (mode C(0700)) if missing,
      - or V(oss://bucket/prefix) to stream the ciphertext straight into OSS with no local copy (the
        prefix may be empty, for the bucket root). O(src) must then hold no symlinks (object storage
        keeps none), O(method) must be V(python) and O(verify) V(none) or V(reader).
    type: path
    required: true
  password:
    description:
      - The gocryptfs password (the model key later served by Trustee), used exactly as given,
        encoded as UTF-8. It must not contain a newline, since gocryptfs reads a password only up
        to the first newline. Mutually exclusive with O(password_file); one of them is required.
    type: str
  password_file:
    description:
      - A file holding the password, read the way C(gocryptfs -passfile) reads it - the first
        line without its trailing newline (a C(\r) is kept). So a key file written with
        C(cat << EOF) (which adds a newline) and a key served with C(echo -n) (no newline) give
        the same password. A file with more than one line is refused instead of silently cut.
    type: path
  workers:
    description:
      - Number of encryption processes for O(method=python). Defaults to the number of CPUs this
        process may use. Big files are split into 64 MiB segments encrypted in parallel.
    type: int
  method:
    description:
      - V(python) writes the format directly (fast, no FUSE); V(fuse) uses C(gocryptfs -init), a
        FUSE mount and a copy.
    type: str
    choices: [python, fuse]
    default: python
  manifest:
    description:
      - Path of the manifest JSON file (mode C(0600)) used for idempotence.
      - Defaults to C(<dest>.cai-manifest.json), next to the CIPHERDIR (not inside it), for a local O(dest),
        and to C(<state_dir>/manifests/<bucket>/<hash of bucket and prefix>.json) for an C(oss://) O(dest).
    type: path
  state_dir:
    description:
      - Directory on the host where the module runs for state kept between runs; today the default
        manifests of C(oss://) destinations (directories created C(0700), files C(0600)).
      - Defaults to C(~/.cache/cai-ack) of the user the module runs as.
    type: path
  part_size:
    description:
      - With an C(oss://) O(dest), the multipart part size, in bytes or with a unit (V(8MiB), V(64M)); between
        100 KiB and 5 GiB. Objects smaller than a part are sent with one PutObject. For very large files the
        part size is doubled until the object fits in 10000 parts. Ignored for a local O(dest).
    type: raw
    default: 8MiB
  upload_workers:
    description:
      - With an C(oss://) O(dest), the parts of one object sent at the same time (threads); each holds one
        part in memory. Ignored for a local O(dest).
    type: int
    default: 4
  checksum:
    description:
      - Record a keyed digest of each file's content in the manifest, computed while encrypting - a GMAC
        tag (AES-GCM under a key derived from the master key) of every 64 MiB segment, combined with
        HMAC-SHA256 into one digest per file; the data is not hashed with SHA-256. With it, a file whose
        mtime changed but whose content did not (for example a model downloaded again) is not
        re-encrypted. Without it such files are re-encrypted.
    type: bool
    default: true
  verify:
    description:
      - Check the result after writing. V(none) skips the check. V(reader) decrypts every file with
        this collection's reader and compares SHA-256, modes and symlink targets with O(src).
        With an C(oss://) O(dest), V(reader) lists the prefix, decrypts every name, and downloads every
        file object with ranged GETs, decrypting it and comparing its SHA-256 with O(src) (bounded memory);
        this reads back every byte written, so it costs about as much transfer as the upload itself.
        V(gocryptfs) is independent of this code - it mounts O(dest) read-only with the real
        gocryptfs, compares every file the same way and runs C(gocryptfs -fsck); it needs the
        binary and FUSE; it is not available for an C(oss://) O(dest). A mismatch fails the task.
    type: str
    choices: [none, reader, gocryptfs]
    default: none
  gocryptfs_binary:
    description:
      - The gocryptfs executable for O(method=fuse) and O(verify=gocryptfs).
    type: str
    default: gocryptfs
requirements:
  - python >= 3.8
  - cryptography
  - oss2 (only for an C(oss://) O(dest))
notes:
  - Passwords go to gocryptfs through a C(0600) temporary file (C(-passfile)), never on a command line.
  - The format written was checked against gocryptfs 2.3 (Debian 12) by this collection's tests
    (read-only mount, SHA-256 of every file, C(gocryptfs -fsck)); the reference format notes were also
    checked against a v2.4.0 build.
  - Object stores do not keep symlinks; a tree meant for OSS should not contain any (an C(oss://) O(dest)
    refuses them). Modes and mtimes are not stored in OSS.
seealso:
  - name: gocryptfs file format
    description: The upstream description of the on-disk format.
    link: https://github.com/rfjakob/gocryptfs/blob/master/Documentation/file-format.md
"""

EXAMPLES = r"""
- name: Encrypt the downloaded model with the key from the vault
  confidential_ai.ack.gocryptfs_encrypt:
    src: /srv/models/Qwen2.5-3B-Instruct
    dest: /srv/encrypted/qwen2.5-3b-gocryptfs
    password: "{{ vault_model_password }}"
  register: encrypted

- name: Same, with the key in a file, four processes, and an independent check with gocryptfs
  confidential_ai.ack.gocryptfs_encrypt:
    src: /srv/models/Qwen2.5-3B-Instruct
    dest: /srv/encrypted/qwen2.5-3b-gocryptfs
    password_file: /root/cachefs-password
    workers: 4
    verify: gocryptfs

- name: Stream the ciphertext straight into OSS (no local ciphertext), then read it back and compare
  confidential_ai.ack.gocryptfs_encrypt:
    src: /srv/models/Qwen2.5-3B-Instruct
    dest: oss://my-model-bucket/models/qwen2.5-3b-gocryptfs
    password: "{{ vault_model_password }}"
    region: cn-beijing
    endpoints:
      oss: https://oss-cn-beijing-internal.aliyuncs.com
    part_size: 16MiB
    verify: reader
  register: streamed

- name: Let the real gocryptfs write the CIPHERDIR through a FUSE mount (documented method)
  confidential_ai.ack.gocryptfs_encrypt:
    src: /srv/models/Qwen2.5-3B-Instruct
    dest: /srv/encrypted/qwen2.5-3b-gocryptfs
    password: "{{ vault_model_password }}"
    method: fuse
  become: true
"""

RETURN = r"""
dest:
  description: The CIPHERDIR written, a local path or C(oss://bucket/prefix/).
  returned: always
  type: str
  sample: /srv/encrypted/qwen2.5-3b-gocryptfs
bucket:
  description: The bucket written to.
  returned: when O(dest) is an C(oss://) URL
  type: str
  sample: my-model-bucket
prefix:
  description: The prefix the CIPHERDIR lives under (with a trailing C(/), or empty for the bucket root).
  returned: when O(dest) is an C(oss://) URL
  type: str
  sample: models/qwen2.5-3b-gocryptfs/
objects_written:
  description: Objects written (in check mode, that would be written) - file contents, C(gocryptfs.conf),
    C(gocryptfs.diriv) and long-name C(.name) objects.
  returned: when O(dest) is an C(oss://) URL
  type: int
  sample: 16
objects_deleted:
  description: Objects deleted (in check mode, that would be deleted) because their entries are gone from O(src).
  returned: when O(dest) is an C(oss://) URL
  type: int
  sample: 0
bytes_uploaded:
  description: Ciphertext bytes sent for file contents (in check mode, that would be sent).
  returned: when O(dest) is an C(oss://) URL
  type: int
  sample: 6229012738
uploads_aborted:
  description: Unfinished multipart uploads under the prefix (left by an interrupted run) aborted.
  returned: when O(dest) is an C(oss://) URL
  type: int
  sample: 0
method:
  description: The method used.
  returned: always
  type: str
  sample: python
manifest:
  description: Path of the manifest file.
  returned: always
  type: str
  sample: /srv/encrypted/qwen2.5-3b-gocryptfs.cai-manifest.json
created:
  description: Whether a new CIPHERDIR (new C(gocryptfs.conf) and master key) was or would be created.
  returned: always
  type: bool
  sample: false
files_total:
  description: Regular files in O(src).
  returned: always
  type: int
  sample: 12
files_encrypted:
  description: Files encrypted in this run (in check mode, that would be encrypted).
  returned: always
  type: int
  sample: 12
files_skipped:
  description: Files left as they were because they did not change.
  returned: always
  type: int
  sample: 0
files_rehashed:
  description: Files whose mtime changed and that were re-hashed to decide whether to re-encrypt them.
  returned: always
  type: int
  sample: 0
bytes_total:
  description: Plaintext bytes in O(src).
  returned: always
  type: int
  sample: 6178983936
bytes_encrypted:
  description: Plaintext bytes encrypted in this run.
  returned: always
  type: int
  sample: 6178983936
entries_removed:
  description: Ciphertext entries removed because they are gone from O(src) or changed type.
  returned: always
  type: int
  sample: 0
dirs_created:
  description: Directories created in O(dest).
  returned: always
  type: int
  sample: 1
symlinks_written:
  description: Symlinks written or rewritten.
  returned: always
  type: int
  sample: 0
metadata_updated:
  description: Entries whose mode or mtime was updated without re-encryption.
  returned: always
  type: int
  sample: 0
workers:
  description: Encryption processes used.
  returned: always
  type: int
  sample: 4
seconds:
  description: Wall time of the encryption step.
  returned: always
  type: float
  sample: 9.8
throughput_mib_s:
  description: Plaintext MiB encrypted (and, with an C(oss://) O(dest), uploaded) per second of wall time
    (0 when nothing was encrypted).
  returned: always
  type: float
  sample: 601.3
verified:
  description: The verification that ran (V(reader) or V(gocryptfs)), or V(none).
  returned: always
  type: str
  sample: gocryptfs
manifest_ignored:
  description: Why an existing manifest was not used (for example C(written for another master key)), or null.
  returned: always
  type: str
  sample: null
"""

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.gocryptfs import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    GocryptfsError,
    check_source_for_oss,
    default_manifest_path,
    encrypt_tree,
    encrypt_tree_to_oss,
    encrypt_tree_via_mount,
    is_oss_url,
    normalize_password,
    open_cipherdir,
    parse_oss_url,
    read_password_file,
    verify_tree,
    verify_with_gocryptfs,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils.oss import parse_size, part_size_error

RESULT_KEYS = ('files_total', 'files_encrypted', 'files_skipped', 'files_rehashed', 'bytes_total', 'bytes_encrypted',
               'entries_removed', 'dirs_created', 'symlinks_written', 'metadata_updated', 'workers', 'seconds',
               'throughput_mib_s', 'manifest_ignored')
OSS_RESULT_KEYS = RESULT_KEYS + ('objects_written', 'objects_deleted', 'bytes_uploaded', 'uploads_aborted')


def get_password(module):
    if module.params['password_file']:
        try:
            return read_password_file(module.params['password_file'])
        except OSError as exc:
            module.fail_json(msg='Failed to read password_file %s: %s' % (module.params['password_file'], exc.strerror))
    return normalize_password(module.params['password'])


def run(module, password):
    params = module.params
    src = params['src']
    dest = os.path.abspath(params['dest'])
    manifest = params['manifest'] or dest.rstrip('/') + '.cai-manifest.json'
    if not os.path.isdir(src):
        module.fail_json(msg='src %s is not a directory' % src)
    created = not os.path.exists(os.path.join(dest, 'gocryptfs.conf'))

    if params['method'] == 'fuse':
        stats = encrypt_tree_via_mount(src, dest, password, manifest_path=manifest, check_mode=module.check_mode,
                                       digest=params['checksum'], binary=params['gocryptfs_binary'])
    else:
        master_key, created = open_cipherdir(dest, password, check_mode=module.check_mode)
        stats = encrypt_tree(src, dest, master_key, workers=params['workers'], manifest_path=manifest,
                             check_mode=module.check_mode, digest=params['checksum'])

    verified = 'none'
    if params['verify'] != 'none' and not module.check_mode:
        if params['verify'] == 'gocryptfs':
            problems = verify_with_gocryptfs(src, dest, password, binary=params['gocryptfs_binary'])
        else:
            master_key, dummy = open_cipherdir(dest, password, create=False)
            problems = verify_tree(src, dest, master_key, workers=params['workers'])
        if problems:
            module.fail_json(msg='Verification (%s) of %s failed: %s' % (params['verify'], dest, '; '.join(problems[:20])),
                             problems=problems, dest=dest)
        verified = params['verify']

    result = dict((k, stats.get(k)) for k in RESULT_KEYS)
    result.update(changed=bool(stats['changed'] or created), dest=dest, method=params['method'], manifest=manifest,
                  created=created, verified=verified)
    return result


def run_oss(module, password):
    """dest = oss://bucket/prefix: stream the CIPHERDIR into OSS."""
    params = module.params
    src = params['src']
    if not os.path.isdir(src):
        module.fail_json(msg='src %s is not a directory' % src)
    bucket_name, prefix = parse_oss_url(params['dest'])
    if params['method'] != 'python':
        module.fail_json(msg='method=%s writes through a local FUSE mount and cannot stream into OSS; use method=python '
                             'with dest=%s' % (params['method'], params['dest']))
    if params['verify'] == 'gocryptfs':
        module.fail_json(msg='verify=gocryptfs mounts a local CIPHERDIR; with dest=%s use verify=reader (read back from '
                             'OSS and decrypted)' % params['dest'])
    try:
        part_size = parse_size(params['part_size'])
    except ValueError as exc:
        module.fail_json(msg='part_size: %s' % exc)
    if part_size_error(part_size):
        module.fail_json(msg='part_size %s' % part_size_error(part_size))
    if not 1 <= params['upload_workers'] <= 64:
        module.fail_json(msg='upload_workers must be between 1 and 64')
    manifest = params['manifest'] or default_manifest_path(params['state_dir'], bucket_name, prefix)
    check_source_for_oss(src)       # symlinks and unreadable trees fail before credentials are looked up
    bucket = module.client('oss', bucket=bucket_name)
    stats = encrypt_tree_to_oss(src, bucket, prefix, password, module.call, workers=params['workers'],
                                manifest_path=manifest, check_mode=module.check_mode, digest=params['checksum'],
                                part_size=part_size, upload_workers=params['upload_workers'],
                                verify=params['verify'] == 'reader')
    problems = stats.get('problems')
    if problems:
        module.fail_json(msg='Verification (reader) of %s failed: %s' % (stats['dest'], '; '.join(problems[:20])),
                         problems=problems, dest=stats['dest'])
    result = dict((k, stats.get(k)) for k in OSS_RESULT_KEYS)
    result.update(changed=stats['changed'], dest=stats['dest'], bucket=bucket_name, prefix=prefix, method='python',
                  manifest=manifest, created=stats['created'],
                  verified='reader' if (params['verify'] == 'reader' and not module.check_mode) else 'none')
    return result


def main():
    module = AlicloudModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            password=dict(type='str', no_log=True),
            password_file=dict(type='path', no_log=False),
            workers=dict(type='int'),
            method=dict(type='str', choices=['python', 'fuse'], default='python'),
            manifest=dict(type='path'),
            checksum=dict(type='bool', default=True),
            verify=dict(type='str', choices=['none', 'reader', 'gocryptfs'], default='none'),
            gocryptfs_binary=dict(type='str', default='gocryptfs'),
            state_dir=dict(type='path'),
            part_size=dict(type='raw', default='8MiB'),
            upload_workers=dict(type='int', default=4),
        ),
        mutually_exclusive=[('password', 'password_file')],
        required_one_of=[('password', 'password_file')],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    if module.params['workers'] is not None and module.params['workers'] < 1:
        module.fail_json(msg='workers must be >= 1')
    try:
        password = get_password(module)
        if is_oss_url(module.params['dest']):
            result = run_oss(module, password)
        else:
            result = run(module, password)
    except GocryptfsError as exc:
        module.fail_json(msg=str(exc), dest=module.params['dest'])
    except AlicloudError as exc:
        module.fail_alicloud(exc, msg='Failed to stream %s into %s' % (module.params['src'], module.params['dest']),
                             dest=module.params['dest'])
    except OSError as exc:
        module.fail_json(msg='Failed to encrypt %s into %s: %s' % (module.params['src'], module.params['dest'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
