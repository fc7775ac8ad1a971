#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gocryptfs_encrypt
short_description: Encrypt a directory into a gocryptfs CIPHERDIR without a FUSE mount
version_added: 0.1.0
description:
  - Turns the plaintext directory O(src) (for example a downloaded model) into a gocryptfs v2
    CIPHERDIR at O(dest) that gocryptfs 2.3 and 2.4.0 mount with their default parameters, as
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
author:
  - confidential_ai.ack contributors (@confidential-ai)
extends_documentation_fragment:
  - confidential_ai.ack.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be encrypted, removed or updated; writes nothing. When O(dest) exists
      the password is checked.
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
      - The CIPHERDIR, a local directory on the same host. It is created (mode C(0700)) if missing.
      - Streaming straight into OSS (V(oss://bucket/prefix)) is planned through the collection's
        OSS modules; for now a value starting with C(oss://) fails with a clear message.
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
      - Defaults to C(<dest>.cai-manifest.json), next to the CIPHERDIR (not inside it).
    type: path
  checksum:
    description:
      - Record a keyed digest of each file's content in the manifest (one SHA-256 pass over the
        data while encrypting). With it, a file whose mtime changed but whose content did not (for
        example a model downloaded again) is not re-encrypted. Without it such files are
        re-encrypted.
    type: bool
    default: true
  verify:
    description:
      - Check the result after writing. V(none) skips the check. V(reader) decrypts every file with
        this collection's reader and compares SHA-256, modes and symlink targets with O(src).
        V(gocryptfs) is independent of this code - it mounts O(dest) read-only with the real
        gocryptfs, compares every file the same way and runs C(gocryptfs -fsck); it needs the
        binary and FUSE. A mismatch fails the task.
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
notes:
  - Passwords go to gocryptfs through a C(0600) temporary file (C(-passfile)), never on a command line.
  - The format written was checked against gocryptfs 2.3 (Debian 12) by this collection's tests
    (read-only mount, SHA-256 of every file, C(gocryptfs -fsck)); the reference format notes were also
    checked against a v2.4.0 build.
  - Object stores do not keep symlinks; a tree meant for OSS should not contain any.
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
  description: The CIPHERDIR written.
  returned: always
  type: str
  sample: /srv/encrypted/qwen2.5-3b-gocryptfs
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
  description: Plaintext MiB encrypted per second of wall time (0 when nothing was encrypted).
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils.gocryptfs import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    GocryptfsError,
    encrypt_tree,
    encrypt_tree_via_mount,
    normalize_password,
    open_cipherdir,
    read_password_file,
    verify_tree,
    verify_with_gocryptfs,
)

RESULT_KEYS = ('files_total', 'files_encrypted', 'files_skipped', 'files_rehashed', 'bytes_total', 'bytes_encrypted',
               'entries_removed', 'dirs_created', 'symlinks_written', 'metadata_updated', 'workers', 'seconds',
               'throughput_mib_s', 'manifest_ignored')


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


def main():
    module = AnsibleModule(
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
        ),
        mutually_exclusive=[('password', 'password_file')],
        required_one_of=[('password', 'password_file')],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    if module.params['dest'].startswith('oss://'):
        module.fail_json(msg='dest=%s: streaming the ciphertext into OSS is planned (through the OSS modules) but not '
                             'implemented yet; encrypt to a local directory and upload it' % module.params['dest'])
    if module.params['workers'] is not None and module.params['workers'] < 1:
        module.fail_json(msg='workers must be >= 1')
    try:
        password = get_password(module)
        result = run(module, password)
    except GocryptfsError as exc:
        module.fail_json(msg=str(exc), dest=module.params['dest'])
    except OSError as exc:
        module.fail_json(msg='Failed to encrypt %s into %s: %s' % (module.params['src'], module.params['dest'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
