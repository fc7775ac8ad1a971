# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gocryptfs v2 writer and reader in Python (default parameters of gocryptfs 2.3 / 2.4.0).

Public API (everything else is private and may change):

Keys and configuration
    ``init_conf(password, ...) -> (conf_bytes, master_key)``, ``load_master_key(conf_bytes, password)``,
    ``parse_conf``, ``Keys(master_key)`` (``.content`` / ``.names`` subkeys),
    ``read_password_file(path)`` (gocryptfs ``-passfile`` semantics), ``open_cipherdir(dir, password)``.
Names and symlinks
    ``encrypt_name`` / ``decrypt_name``, ``cipher_entry_name`` (long names), ``eme_encrypt`` /
    ``eme_decrypt``, ``encrypt_symlink_target`` / ``decrypt_symlink_target``.
Contents (streaming)
    ``iter_encrypt_file(path, content_key)`` yields the ciphertext file in order in bounded chunks
    (for multipart uploads); ``iter_encrypt_range`` encrypts a block range of an open file (parallel
    parts; ``cipher_offset`` gives where it lands); ``StreamEncryptor`` takes a plaintext stream
    of unknown length (``update``/``finalize``); ``ContentCipher`` is the block encryptor;
    ``iter_decrypt_file`` / ``decrypt_file`` read back; ``ciphertext_size`` / ``plaintext_size``.
Trees
    ``encrypt_tree(src, cipherdir, master_key, workers=N, manifest_path=...)`` (multi-process,
    idempotent with a manifest), ``encrypt_tree_via_mount`` (the same through the real gocryptfs),
    ``decrypt_tree``, ``walk_cipherdir``, ``verify_tree`` (our reader), ``verify_with_gocryptfs``
    (real gocryptfs: read-only mount + SHA-256 of every file + ``-fsck``), ``mounted``.
Streaming into OSS (no local ciphertext)
    ``encrypt_tree_to_oss(src, bucket, prefix, password, call, workers=N, manifest_path=...)`` (the objects
    under the prefix are the CIPHERDIR; processes encrypt, a multipart writer per object uploads, bounded
    memory, keyed manifest with ETags for idempotence), ``verify_oss_tree`` (ranged GETs + our reader),
    ``open_oss_cipherdir``, ``scan_oss``, ``parse_oss_url`` / ``is_oss_url``, ``default_manifest_path``.

Example::

    master_key, created = open_cipherdir('/srv/model.enc', password)
    stats = encrypt_tree('/srv/model', '/srv/model.enc', master_key, workers=4,
                         manifest_path='/srv/model.enc.cai-manifest.json')
"""

from __future__ import annotations

from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_eme import (  # noqa: F401 pylint: disable=unused-import
    eme_decrypt,
    eme_encrypt,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_core import (  # noqa: F401 pylint: disable=unused-import
    BLOCK_SIZE,
    CBLOCK_SIZE,
    CONF_NAME,
    CRYPTOGRAPHY_IMPORT_ERROR,
    DIRIV_NAME,
    FEATURE_FLAGS,
    HAS_CRYPTOGRAPHY,
    HEADER_LEN,
    SCRYPT_N,
    ContentCipher,
    SegmentMac,
    StreamEncryptor,
    CorruptDataError,
    GocryptfsError,
    Keys,
    UnsupportedConfError,
    WrongPasswordError,
    block_count,
    cipher_entry_name,
    cipher_offset,
    ciphertext_size,
    decrypt_bytes,
    decrypt_file,
    decrypt_name,
    decrypt_symlink_target,
    encrypt_bytes,
    encrypt_name,
    encrypt_symlink_target,
    init_conf,
    iter_decrypt_file,
    iter_encrypt_file,
    iter_encrypt_range,
    load_master_key,
    long_name_hash,
    make_buffers,
    make_header,
    normalize_password,
    parse_conf,
    password_from_file_content,
    plaintext_size,
    read_password_file,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_tree import (  # noqa: F401 pylint: disable=unused-import
    CHUNK_BLOCKS,
    SEGMENT_BLOCKS,
    Manifest,
    compare_trees,
    decrypt_tree,
    default_workers,
    encrypt_tree,
    encrypt_tree_via_mount,
    gocryptfs_fsck,
    gocryptfs_init,
    mounted,
    open_cipherdir,
    password_file,
    read_diriv,
    scan_cipherdir,
    unmount,
    verify_tree,
    verify_with_gocryptfs,
    walk_cipherdir,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_oss import (  # noqa: F401 pylint: disable=unused-import
    STREAM_BLOCKS,
    OssCipherdir,
    check_source_for_oss,
    default_manifest_path,
    encrypt_tree_to_oss,
    is_oss_url,
    object_plaintext_sha256,
    open_oss_cipherdir,
    parse_oss_url,
    scan_oss,
    verify_oss_tree,
)
