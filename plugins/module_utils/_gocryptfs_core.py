# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gocryptfs v2 on-disk format, default parameters: configuration, keys, names, contents, symlinks.

Everything here works on bytes and file descriptors; walking and writing whole trees lives in
``_gocryptfs_tree``. Written from the project's format reference (docs/shared gocryptfs-format.md):

* conf: scrypt (N=65536, r=8, p=1) -> HKDF "AES-GCM file content encryption" -> KEK; the 32-byte
  master key is AES-256-GCM wrapped with a 16-byte nonce and AAD = 8 zero bytes.
* subkeys: HKDF-SHA256(master key, no salt, info) for contents and for names (EME).
* contents: 18-byte header (version 2, 16-byte file ID), then 4096-byte blocks, each
  nonce(16) || AES-GCM ciphertext || tag(16) with AAD = u64be(block number) || file ID;
  an empty file stays empty.
* names: PKCS#7 to 16, EME with the directory IV as tweak, base64url without padding; encoded names
  longer than 255 characters become gocryptfs.longname.<b64url(sha256(encoded))> plus a .name file.
* symlink targets: b64url(nonce(16) || AES-GCM(target, AAD = 8 zero bytes)).

All randomness comes from one callable (``random(n) -> bytes``, default ``os.urandom``) so that tests
can inject the file IDs and nonces of the known-answer vectors.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import struct

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised by the sanity import test only
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = _exc

from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_eme import eme_decrypt, eme_encrypt

# ---------------------------------------------------------------------------------------------
# Constants of the format (defaults of gocryptfs -init, v2.3 / v2.4.0)

CONF_NAME = 'gocryptfs.conf'
DIRIV_NAME = 'gocryptfs.diriv'
LONGNAME_PREFIX = 'gocryptfs.longname.'
LONGNAME_SUFFIX = '.name'
LONGNAME_MAX = 255          # encoded names longer than this are hashed
NAME_MAX = 255              # plaintext name limit (bytes)
LONGNAME_FILE_MAX = 344     # the reader refuses bigger .name files

FORMAT_VERSION = 2
HEADER_LEN = 18
FILE_ID_LEN = 16
DIRIV_LEN = 16
BLOCK_SIZE = 4096
NONCE_LEN = 16
TAG_LEN = 16
BLOCK_OVERHEAD = NONCE_LEN + TAG_LEN
CBLOCK_SIZE = BLOCK_SIZE + BLOCK_OVERHEAD
MASTER_KEY_LEN = 32

FEATURE_FLAGS = ('HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64')
SCRYPT_N = 65536
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_KEYLEN = 32
SCRYPT_SALT_LEN = 32
SCRYPT_MIN_N = 1 << 10
DEFAULT_CREATOR = 'confidential_ai.ack gocryptfs writer'
MAX_PASSWORD_LEN = 2048
CHUNK_BLOCKS = 64           # 256 KiB of plaintext per read/encrypt/write step: stays in the CPU cache

INFO_CONTENT = b'AES-GCM file content encryption'
INFO_NAMES = b'EME filename encryption'

_HEADER_PREFIX = struct.pack('>H', FORMAT_VERSION)
_U64 = struct.Struct('>Q')
_AAD_ZERO = bytes(8)
_ZERO16 = bytes(16)
_ZERO_CBLOCK = bytes(CBLOCK_SIZE)


class GocryptfsError(Exception):
    """Base class of every error raised by this package."""


class WrongPasswordError(GocryptfsError):
    """The password does not open gocryptfs.conf."""


class UnsupportedConfError(GocryptfsError):
    """gocryptfs.conf is not a default-parameter v2 configuration."""


class CorruptDataError(GocryptfsError):
    """Ciphertext, a name or a symlink target failed authentication or is malformed."""


# ---------------------------------------------------------------------------------------------
# Small helpers

def b64url_encode(data):
    """base64url without padding (gocryptfs Raw64), as str."""
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def b64url_decode(text):
    """Inverse of :func:`b64url_encode`; refuses padding and characters outside the alphabet."""
    if isinstance(text, bytes):
        text = text.decode('ascii')
    if not text or '=' in text or len(text) % 4 == 1:
        raise CorruptDataError('not an unpadded base64url string')
    try:
        raw = base64.b64decode(text + '=' * (-len(text) % 4), altchars=b'-_', validate=True)
    except (ValueError, TypeError) as exc:
        raise CorruptDataError('not an unpadded base64url string: %s' % exc)
    if b64url_encode(raw) != text:  # non-canonical trailing bits
        raise CorruptDataError('non-canonical base64url string')
    return raw


def _require_crypto():
    if not HAS_CRYPTOGRAPHY:
        raise GocryptfsError('the Python library "cryptography" is required: %s' % CRYPTOGRAPHY_IMPORT_ERROR)


def hkdf_sha256(ikm, info, length=32):
    """HKDF-SHA256 with an empty salt (RFC 5869 then uses HashLen zero bytes)."""
    _require_crypto()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(bytes(ikm))


def random_bytes_nonzero(random, n, what):
    """Draw n bytes from ``random`` and refuse an all-zero or short result."""
    value = random(n)
    if len(value) != n:
        raise GocryptfsError('random source returned %d bytes for %s, wanted %d' % (len(value), what, n))
    if not any(value):
        raise GocryptfsError('random source returned an all-zero %s' % what)
    return bytes(value)


# ---------------------------------------------------------------------------------------------
# Passwords

def normalize_password(password):
    """Return the password as bytes, refusing what gocryptfs could not take the same way.

    gocryptfs reads a password (from ``-passfile`` or stdin) up to the first newline, so a password
    that contains a newline could never be typed back; empty passwords are refused by gocryptfs.
    """
    if password is None:
        raise GocryptfsError('a password is required')
    if isinstance(password, str):
        password = password.encode('utf-8')
    password = bytes(password)
    if not password:
        raise GocryptfsError('the password is empty')
    if b'\n' in password:
        raise GocryptfsError('the password contains a newline; gocryptfs reads passwords up to the first newline')
    if len(password) > MAX_PASSWORD_LEN:
        raise GocryptfsError('the password is longer than %d bytes (gocryptfs limit)' % MAX_PASSWORD_LEN)
    return password


def password_from_file_content(content):
    """Apply gocryptfs ``-passfile`` semantics to a file's bytes.

    The password is the first line without its ``\\n`` (a ``\\r`` is kept, as gocryptfs does). So a
    file written with ``cat << EOF`` (trailing newline) and a key served with ``echo -n`` (no newline)
    give the same password. Anything after the first line is refused rather than ignored.
    """
    content = bytes(content)
    first, sep, rest = content.partition(b'\n')
    if sep and rest:
        raise GocryptfsError('the password file has more than one line; gocryptfs would only use the first')
    return normalize_password(first)


def read_password_file(path):
    """Read a password file with :func:`password_from_file_content` semantics."""
    with open(path, 'rb') as handle:
        content = handle.read(MAX_PASSWORD_LEN + 2)
        if handle.read(1):
            raise GocryptfsError('the password file is longer than %d bytes' % MAX_PASSWORD_LEN)
    return password_from_file_content(content)


# ---------------------------------------------------------------------------------------------
# gocryptfs.conf and keys

def scrypt_kdf(password, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, length=SCRYPT_KEYLEN):
    """scrypt (RFC 7914) through cryptography (hashlib.scrypt needs maxmem raised for N=2^16)."""
    _require_crypto()
    return Scrypt(salt=bytes(salt), length=length, n=n, r=r, p=p).derive(bytes(password))


def _kek(password, salt, n, r, p, keylen):
    return hkdf_sha256(scrypt_kdf(password, salt, n, r, p, keylen), INFO_CONTENT)


def build_conf(encrypted_key, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, keylen=SCRYPT_KEYLEN, creator=DEFAULT_CREATOR):
    """Serialise a conf exactly like gocryptfs -init does (tab indent, key order, trailing newline)."""
    obj = {
        'Creator': creator,
        'EncryptedKey': base64.b64encode(encrypted_key).decode('ascii'),
        'ScryptObject': {
            'Salt': base64.b64encode(salt).decode('ascii'),
            'N': n,
            'R': r,
            'P': p,
            'KeyLen': keylen,
        },
        'Version': FORMAT_VERSION,
        'FeatureFlags': list(FEATURE_FLAGS),
    }
    return (json.dumps(obj, indent='\t', ensure_ascii=True) + '\n').encode('ascii')


def init_conf(password, master_key=None, scrypt_n=SCRYPT_N, creator=DEFAULT_CREATOR, random=os.urandom):
    """Create a new gocryptfs.conf. Returns ``(conf_bytes, master_key)``.

    ``scrypt_n`` must stay at the default 65536 for real use; tests may lower it (gocryptfs accepts
    N >= 1024).
    """
    password = normalize_password(password)
    if scrypt_n < SCRYPT_MIN_N or scrypt_n & (scrypt_n - 1):
        raise GocryptfsError('scrypt N must be a power of two >= %d' % SCRYPT_MIN_N)
    if master_key is None:
        master_key = random_bytes_nonzero(random, MASTER_KEY_LEN, 'master key')
    if len(master_key) != MASTER_KEY_LEN:
        raise GocryptfsError('the master key must be %d bytes' % MASTER_KEY_LEN)
    salt = random_bytes_nonzero(random, SCRYPT_SALT_LEN, 'scrypt salt')
    nonce = random_bytes_nonzero(random, NONCE_LEN, 'key-wrap nonce')
    kek = _kek(password, salt, scrypt_n, SCRYPT_R, SCRYPT_P, SCRYPT_KEYLEN)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, bytes(master_key), _AAD_ZERO)
    return build_conf(wrapped, salt, scrypt_n, creator=creator), bytes(master_key)


def _b64std(value, what):
    if not isinstance(value, str):
        raise UnsupportedConfError('gocryptfs.conf: %s is not a string' % what)
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise UnsupportedConfError('gocryptfs.conf: %s is not valid base64: %s' % (what, exc))


def parse_conf(conf_bytes):
    """Parse and validate gocryptfs.conf. Returns a dict with the decoded fields.

    Only default-parameter v2 configurations are accepted: any feature flag set other than exactly
    HKDF, GCMIV128, DirIV, EMENames, LongNames, Raw64 (in any order) is refused.
    """
    try:
        obj = json.loads(bytes(conf_bytes).decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedConfError('gocryptfs.conf is not valid JSON: %s' % exc)
    if not isinstance(obj, dict):
        raise UnsupportedConfError('gocryptfs.conf is not a JSON object')
    if obj.get('Version') != FORMAT_VERSION:
        raise UnsupportedConfError('gocryptfs.conf: Version %r is not supported (want 2)' % (obj.get('Version'),))
    flags = obj.get('FeatureFlags')
    if not isinstance(flags, list) or sorted(flags) != sorted(FEATURE_FLAGS):
        raise UnsupportedConfError('gocryptfs.conf: feature flags %r are not the defaults %s (only default parameters are supported)'
                                   % (flags, ', '.join(FEATURE_FLAGS)))
    if obj.get('FIDO2'):
        raise UnsupportedConfError('gocryptfs.conf: FIDO2 configurations are not supported')
    scrypt = obj.get('ScryptObject')
    if not isinstance(scrypt, dict):
        raise UnsupportedConfError('gocryptfs.conf: ScryptObject missing')
    salt = _b64std(scrypt.get('Salt'), 'ScryptObject.Salt')
    params = {}
    for key in ('N', 'R', 'P', 'KeyLen'):
        value = scrypt.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise UnsupportedConfError('gocryptfs.conf: ScryptObject.%s is not an integer' % key)
        params[key] = value
    if (params['N'] < SCRYPT_MIN_N or params['N'] & (params['N'] - 1) or params['R'] < SCRYPT_R or params['P'] < 1
            or params['KeyLen'] < SCRYPT_KEYLEN or len(salt) < SCRYPT_SALT_LEN):
        raise UnsupportedConfError('gocryptfs.conf: scrypt parameters below the gocryptfs minimums')
    encrypted_key = _b64std(obj.get('EncryptedKey'), 'EncryptedKey')
    if len(encrypted_key) != NONCE_LEN + MASTER_KEY_LEN + TAG_LEN:
        raise UnsupportedConfError('gocryptfs.conf: EncryptedKey is %d bytes, want 64' % len(encrypted_key))
    return {
        'creator': obj.get('Creator'),
        'encrypted_key': encrypted_key,
        'salt': salt,
        'n': params['N'],
        'r': params['R'],
        'p': params['P'],
        'keylen': params['KeyLen'],
        'flags': list(flags),
    }


def load_master_key(conf_bytes, password):
    """Unwrap the master key of gocryptfs.conf with ``password``; WrongPasswordError if it does not open."""
    conf = parse_conf(conf_bytes)
    password = normalize_password(password)
    kek = _kek(password, conf['salt'], conf['n'], conf['r'], conf['p'], conf['keylen'])
    nonce, body = conf['encrypted_key'][:NONCE_LEN], conf['encrypted_key'][NONCE_LEN:]
    try:
        return AESGCM(kek).decrypt(nonce, body, _AAD_ZERO)
    except InvalidTag:
        raise WrongPasswordError('the password does not open this gocryptfs.conf (wrong password)')


class Keys:
    """The subkeys of a master key: ``content`` (AES-GCM) and ``names`` (EME)."""

    __slots__ = ('master', 'content', 'names')

    def __init__(self, master_key):
        if len(master_key) != MASTER_KEY_LEN:
            raise GocryptfsError('the master key must be %d bytes' % MASTER_KEY_LEN)
        self.master = bytes(master_key)
        self.content = hkdf_sha256(self.master, INFO_CONTENT)
        self.names = hkdf_sha256(self.master, INFO_NAMES)


# ---------------------------------------------------------------------------------------------
# Names

def check_plain_name(name):
    """Return the name as bytes; refuse what cannot be a directory entry."""
    if isinstance(name, str):
        name = os.fsencode(name)
    if not name or name in (b'.', b'..') or b'/' in name or b'\0' in name:
        raise GocryptfsError('invalid file name %r' % (name,))
    if len(name) > NAME_MAX:
        raise GocryptfsError('file name longer than %d bytes: %r' % (NAME_MAX, name))
    return name


def pkcs7_pad(data):
    k = 16 - len(data) % 16
    return data + bytes([k]) * k


def pkcs7_unpad(data):
    if not data or len(data) % 16:
        raise CorruptDataError('padded name length is not a multiple of 16')
    k = data[-1]
    if k == 0 or k > 16 or data[-k:] != bytes([k]) * k:
        raise CorruptDataError('bad name padding')
    if k == len(data):
        raise CorruptDataError('bad name padding (pad covers the whole name)')
    return data[:-k]


def encrypt_name(name_key, iv, name):
    """Encrypt one plaintext name (bytes or str) in the directory whose diriv is ``iv``.

    Returns the encoded name (str). It may be longer than 255 characters; see :func:`cipher_entry_name`.
    """
    name = check_plain_name(name)
    return b64url_encode(eme_encrypt(name_key, iv, pkcs7_pad(name)))


def decrypt_name(name_key, iv, cname):
    """Decrypt an encoded (not hashed) name back to plaintext bytes."""
    raw = b64url_decode(cname)
    if not raw or len(raw) % 16:
        raise CorruptDataError('encrypted name length %d is not a multiple of 16' % len(raw))
    try:
        name = pkcs7_unpad(eme_decrypt(name_key, iv, raw))
    except ValueError as exc:
        raise CorruptDataError(str(exc))
    try:
        return check_plain_name(name)
    except GocryptfsError as exc:
        raise CorruptDataError('name decrypts to an invalid name: %s' % exc)


def is_long(encoded):
    return len(encoded) > LONGNAME_MAX


def long_name_hash(encoded):
    """The on-disk name for a long encoded name: gocryptfs.longname.<b64url(sha256(encoded text))>."""
    return LONGNAME_PREFIX + b64url_encode(hashlib.sha256(encoded.encode('ascii')).digest())


def cipher_entry_name(encoded):
    """Return ``(on_disk_name, name_file_content_or_None)`` for an encoded name."""
    if is_long(encoded):
        return long_name_hash(encoded), encoded.encode('ascii')
    return encoded, None


def name_type(cname):
    """'conf'/'diriv' for the special files, 'longname_file' for .name files, 'long' or 'short'."""
    if cname == DIRIV_NAME:
        return 'diriv'
    if cname == CONF_NAME:
        return 'conf'
    if cname.startswith(LONGNAME_PREFIX):
        if cname.endswith(LONGNAME_SUFFIX):
            return 'longname_file'
        return 'long'
    return 'short'


# ---------------------------------------------------------------------------------------------
# Contents

def ciphertext_size(plain_size):
    """Size of the ciphertext file for a plaintext of ``plain_size`` bytes."""
    if plain_size == 0:
        return 0
    return HEADER_LEN + plain_size + BLOCK_OVERHEAD * (-(-plain_size // BLOCK_SIZE))


def plaintext_size(cipher_size):
    """Inverse of :func:`ciphertext_size`; CorruptDataError for impossible sizes."""
    if cipher_size in (0, HEADER_LEN):
        return 0
    body = cipher_size - HEADER_LEN
    if body <= 0:
        raise CorruptDataError('ciphertext of %d bytes is shorter than the header' % cipher_size)
    full, rest = divmod(body, CBLOCK_SIZE)
    if rest and rest <= BLOCK_OVERHEAD:
        raise CorruptDataError('ciphertext of %d bytes ends with a truncated block' % cipher_size)
    return full * BLOCK_SIZE + (rest - BLOCK_OVERHEAD if rest else 0)


def block_count(plain_size):
    return -(-plain_size // BLOCK_SIZE)


def cipher_offset(block_number):
    """Offset of ciphertext block ``block_number`` in the file."""
    return HEADER_LEN + block_number * CBLOCK_SIZE


def make_header(file_id):
    if len(file_id) != FILE_ID_LEN or not any(file_id):
        raise GocryptfsError('the file ID must be 16 non-zero bytes')
    return _HEADER_PREFIX + bytes(file_id)


def parse_header(header):
    if len(header) != HEADER_LEN:
        raise CorruptDataError('file header is %d bytes, want 18' % len(header))
    if header[:2] != _HEADER_PREFIX:
        raise CorruptDataError('file header version %r is not 2' % bytes(header[:2]))
    file_id = bytes(header[2:])
    if not any(file_id):
        raise CorruptDataError('file ID is all zero')
    return file_id


class _IntoShim:
    """``encrypt_into``/``decrypt_into`` for cryptography releases that lack them (before 44).

    Distribution packages on the hosts this runs on (Debian 12: 38, Alibaba Cloud Linux 3: older)
    are often older than the controller's; the result is the same, at the cost of one copy per block.
    """

    def __init__(self, aead):
        self._aead = aead

    def encrypt_into(self, nonce, data, aad, out):
        out[:] = self._aead.encrypt(bytes(nonce), bytes(data), bytes(aad))
        return len(out)

    def decrypt_into(self, nonce, data, aad, out):
        out[:] = self._aead.decrypt(bytes(nonce), bytes(data), bytes(aad))
        return len(out)


def _aead_with_into(aead):
    return aead if hasattr(aead, "encrypt_into") and hasattr(aead, "decrypt_into") else _IntoShim(aead)


class ContentCipher:
    """AES-256-GCM block encryption and decryption with the content subkey.

    Works on buffers without per-block allocation of big objects: ``encrypt_blocks`` fills a
    caller-provided output buffer with ``encrypt_into``. One instance per process.
    """

    def __init__(self, content_key, random=os.urandom):
        _require_crypto()
        if len(content_key) != 32:
            raise GocryptfsError('the content key must be 32 bytes')
        self._aead = _aead_with_into(AESGCM(bytes(content_key)))
        self._random = random

    def new_file_id(self):
        return random_bytes_nonzero(self._random, FILE_ID_LEN, 'file ID')

    def _nonces(self, count):
        nonces = self._random(NONCE_LEN * count)
        if len(nonces) != NONCE_LEN * count:
            raise GocryptfsError('random source returned too few bytes for nonces')
        # gocryptfs rejects an all-zero nonce; astronomically unlikely, but never emit one.
        pos = nonces.find(_ZERO16)
        while pos != -1:
            if pos % NONCE_LEN == 0:
                raise GocryptfsError('random source returned an all-zero nonce')
            pos = nonces.find(_ZERO16, pos + 1)
        return nonces

    def encrypt_blocks(self, file_id, first_block, src, dst):
        """Encrypt ``src`` (plaintext starting at block ``first_block``) into ``dst``.

        ``src`` holds whole 4096-byte blocks except possibly a shorter last one; ``dst`` must have
        room for ``len(src) + 32 * blocks`` bytes. Returns the number of bytes written to ``dst``.
        """
        n = len(src)
        if n == 0:
            return 0
        full, rest = divmod(n, BLOCK_SIZE)
        count = full + (1 if rest else 0)
        nonces = memoryview(self._nonces(count))
        enc = self._aead.encrypt_into
        pack = _U64.pack
        s = 0
        d = 0
        k = 0
        block = first_block
        for dummy in range(full):
            nonce = nonces[k:k + NONCE_LEN]
            dst[d:d + NONCE_LEN] = nonce
            enc(nonce, src[s:s + BLOCK_SIZE], pack(block) + file_id, dst[d + NONCE_LEN:d + CBLOCK_SIZE])
            s += BLOCK_SIZE
            d += CBLOCK_SIZE
            k += NONCE_LEN
            block += 1
        if rest:
            nonce = nonces[k:k + NONCE_LEN]
            dst[d:d + NONCE_LEN] = nonce
            end = d + NONCE_LEN + rest + TAG_LEN
            enc(nonce, src[s:n], pack(block) + file_id, dst[d + NONCE_LEN:end])
            d = end
        return d

    def encrypt_chunk(self, file_id, first_block, bufs, nbytes):
        """Fast path of :meth:`encrypt_blocks` for reusable buffers (see :func:`make_buffers`).

        Encrypts ``bufs.plain[:nbytes]`` into ``bufs.cipher`` and returns the ciphertext length.
        Per-block views are precomputed; the nonces and the AADs (u64be(block) || file ID) are
        laid out with a few strided copies per chunk; the blocks are then encrypted by ``map``,
        so the interpreter does no per-block bytecode work besides the ``encrypt_into`` call.
        """
        if nbytes == 0:
            return 0
        full, rest = divmod(nbytes, BLOCK_SIZE)
        count = full + (1 if rest else 0)
        nonces = self._nonces(count)
        raw = bufs.cipher_raw
        end = count * CBLOCK_SIZE
        for k in range(NONCE_LEN):
            raw[k:end:CBLOCK_SIZE] = nonces[k::NONCE_LEN]
        bufs.set_aads(file_id, first_block)
        nonce_views = bufs.nonce_views if full == bufs.chunk_blocks else bufs.nonce_views[:full]
        enc = self._aead.encrypt_into
        collections.deque(map(enc, nonce_views, bufs.plain_views, bufs.aad_views, bufs.cipher_views), maxlen=0)
        if rest:
            d = full * CBLOCK_SIZE
            s = full * BLOCK_SIZE
            end = d + BLOCK_OVERHEAD + rest
            enc(bufs.nonce_views[full], bufs.plain[s:s + rest], bufs.aad_views[full], bufs.cipher[d + NONCE_LEN:end])
        return end

    def decrypt_blocks(self, file_id, first_block, src, dst):
        """Decrypt ciphertext blocks ``src`` (starting at block ``first_block``) into ``dst``.

        Returns the plaintext length. A 4128-byte all-zero block is a file hole (4096 zero bytes),
        as in gocryptfs. Authentication failures raise CorruptDataError naming the block.
        """
        n = len(src)
        dec = self._aead.decrypt_into
        pack = _U64.pack
        s = 0
        d = 0
        block = first_block
        while s < n:
            e = min(s + CBLOCK_SIZE, n)
            ln = e - s - BLOCK_OVERHEAD
            if ln <= 0:
                raise CorruptDataError('truncated ciphertext block #%d' % block)
            chunk = src[s:e]
            if ln == BLOCK_SIZE and chunk == _ZERO_CBLOCK:
                dst[d:d + BLOCK_SIZE] = bytes(BLOCK_SIZE)
            else:
                nonce = chunk[:NONCE_LEN]
                if not any(nonce):
                    raise CorruptDataError('all-zero nonce in block #%d' % block)
                try:
                    dec(nonce, chunk[NONCE_LEN:], pack(block) + file_id, dst[d:d + ln])
                except InvalidTag:
                    raise CorruptDataError('corrupt block #%d (authentication failed)' % block)
            s = e
            d += ln
            block += 1
        return d


def encrypt_bytes(content_key, plaintext, random=os.urandom, file_id=None):
    """Encrypt a whole (small) plaintext in memory; returns the complete ciphertext file content."""
    if not plaintext:
        return b''
    cc = ContentCipher(content_key, random)
    if file_id is None:
        file_id = cc.new_file_id()
    out = bytearray(ciphertext_size(len(plaintext)))
    out[:HEADER_LEN] = make_header(file_id)
    n = cc.encrypt_blocks(file_id, 0, memoryview(plaintext), memoryview(out)[HEADER_LEN:])
    return bytes(out[:HEADER_LEN + n])


def decrypt_bytes(content_key, ciphertext):
    """Decrypt a whole ciphertext file held in memory."""
    if len(ciphertext) in (0, HEADER_LEN):
        if len(ciphertext) == HEADER_LEN:
            parse_header(ciphertext)
        return b''
    size = plaintext_size(len(ciphertext))
    file_id = parse_header(ciphertext[:HEADER_LEN])
    out = bytearray(size)
    ContentCipher(content_key).decrypt_blocks(file_id, 0, memoryview(ciphertext)[HEADER_LEN:], memoryview(out))
    return bytes(out)


def _read_full(fd, buf, offset):
    """pread into ``buf`` until it is full or EOF; returns the number of bytes read."""
    got = 0
    size = len(buf)
    while got < size:
        n = os.preadv(fd, [buf[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _write_full(fd, data, offset):
    done = 0
    size = len(data)
    while done < size:
        done += os.pwrite(fd, data[done:], offset + done)


class _Buffers:
    """Reusable plaintext/ciphertext buffers for ``chunk_blocks`` blocks, with per-block views."""

    def __init__(self, chunk_blocks):
        if chunk_blocks < 1:
            raise GocryptfsError('chunk_blocks must be >= 1')
        self.chunk_blocks = chunk_blocks
        self.cipher_raw = bytearray(chunk_blocks * CBLOCK_SIZE)
        self.plain = memoryview(bytearray(chunk_blocks * BLOCK_SIZE))
        self.cipher = memoryview(self.cipher_raw)
        self.plain_views = [self.plain[j * BLOCK_SIZE:(j + 1) * BLOCK_SIZE] for j in range(chunk_blocks)]
        self.nonce_views = [self.cipher[j * CBLOCK_SIZE:j * CBLOCK_SIZE + NONCE_LEN] for j in range(chunk_blocks)]
        self.cipher_views = [self.cipher[j * CBLOCK_SIZE + NONCE_LEN:(j + 1) * CBLOCK_SIZE] for j in range(chunk_blocks)]
        aad_len = 8 + FILE_ID_LEN
        self.aad_raw = bytearray(chunk_blocks * aad_len)
        aad = memoryview(self.aad_raw)
        self.aad_views = [aad[j * aad_len:(j + 1) * aad_len] for j in range(chunk_blocks)]
        self._aad_file_id = None
        self._counters = struct.Struct('>%dQ' % chunk_blocks)

    def set_aads(self, file_id, first_block):
        """Fill the AAD of block ``first_block + j`` into ``aad_views[j]`` for the whole chunk."""
        raw = self.aad_raw
        if file_id != self._aad_file_id:
            for k in range(FILE_ID_LEN):
                raw[8 + k::8 + FILE_ID_LEN] = file_id[k:k + 1] * self.chunk_blocks
            self._aad_file_id = file_id
        counters = self._counters.pack(*range(first_block, first_block + self.chunk_blocks))
        for k in range(8):
            raw[k::8 + FILE_ID_LEN] = counters[k::8]


def make_buffers(chunk_blocks=CHUNK_BLOCKS):
    """Reusable buffers for :func:`iter_encrypt_range` (two buffers of ``chunk_blocks`` blocks)."""
    return _Buffers(chunk_blocks)


def iter_encrypt_range(cipher, src_fd, file_id, first_block, nblocks, plain_size, chunk_blocks=CHUNK_BLOCKS,
                       include_header=False, hasher=None, buffers=None):
    """Yield the ciphertext of blocks [first_block, first_block + nblocks) of an open plaintext file.

    Memory stays at two buffers of ``chunk_blocks`` blocks. Yields memoryviews into a reused buffer:
    consume (or copy) each one before asking for the next. ``hasher`` (optional) gets the plaintext
    via ``update``. Raises GocryptfsError if the file is shorter than ``plain_size`` says.
    The byte range covered is ``cipher_offset(first_block)`` .. plus the yielded lengths (plus the
    18-byte header first when ``include_header``). ``buffers`` (from :func:`make_buffers`) lets a
    caller reuse its buffers across calls; ``chunk_blocks`` is then taken from them.
    """
    bufs = buffers if buffers is not None else _Buffers(chunk_blocks)
    chunk_blocks = bufs.chunk_blocks
    if include_header:
        yield memoryview(make_header(file_id))
    last = min(first_block + nblocks, block_count(plain_size))
    block = first_block
    while block < last:
        count = min(chunk_blocks, last - block)
        want = min(count * BLOCK_SIZE, plain_size - block * BLOCK_SIZE)
        view = bufs.plain[:want]
        got = _read_full(src_fd, view, block * BLOCK_SIZE)
        if got != want:
            raise GocryptfsError('source file shrank while being encrypted (read %d of %d bytes at block %d)' % (got, want, block))
        if hasher is not None:
            hasher.update(view)
        n = cipher.encrypt_chunk(file_id, block, bufs, want)
        yield bufs.cipher[:n]
        block += count


def iter_encrypt_file(path, content_key, chunk_blocks=CHUNK_BLOCKS, random=os.urandom, file_id=None):
    """Yield the complete ciphertext file for the plaintext file ``path``, in order, in bounded chunks.

    For streaming (for example into multipart uploads): the first chunk is the 18-byte header, each
    following chunk is at most ``chunk_blocks * 4128`` bytes. Chunks are fresh ``bytes`` objects.
    An empty file yields nothing (its ciphertext is empty).
    """
    cipher = ContentCipher(content_key, random)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        if file_id is None:
            file_id = cipher.new_file_id()
        for chunk in iter_encrypt_range(cipher, fd, file_id, 0, block_count(size), size, chunk_blocks, include_header=True):
            yield bytes(chunk)
        if os.fstat(fd).st_size != size:
            raise GocryptfsError('source file %r changed size while being encrypted' % (path,))
    finally:
        os.close(fd)


class StreamEncryptor:
    """Encrypt a plaintext stream of unknown length into one gocryptfs file, in order.

    ``update(data)`` returns the ciphertext of every complete 4096-byte block buffered so far (the
    18-byte header comes first, with the first block); ``finalize()`` returns the rest. Less than
    one block stays buffered, so memory follows the size of the pieces fed in. An empty stream gives
    an empty ciphertext (no header), as gocryptfs stores empty files. The concatenated output is
    byte-for-byte what :func:`iter_encrypt_file` would produce with the same file ID and nonces.
    """

    def __init__(self, content_key, random=os.urandom, file_id=None):
        self._cipher = ContentCipher(content_key, random)
        self._file_id = file_id
        self._pending = bytearray()
        self._block = 0
        self._finalized = False
        self.plain_bytes = 0
        self.cipher_bytes = 0

    @property
    def file_id(self):
        return self._file_id

    def _encrypt(self, view):
        prefix = b''
        if self._block == 0:
            if self._file_id is None:
                self._file_id = self._cipher.new_file_id()
            prefix = make_header(self._file_id)
        count = block_count(len(view))
        out = bytearray(len(prefix) + len(view) + BLOCK_OVERHEAD * count)
        out[:len(prefix)] = prefix
        n = self._cipher.encrypt_blocks(self._file_id, self._block, view, memoryview(out)[len(prefix):])
        self._block += count
        self.cipher_bytes += len(prefix) + n
        return bytes(out)

    def update(self, data):
        if self._finalized:
            raise GocryptfsError('update() after finalize()')
        self.plain_bytes += len(data)
        self._pending += data
        n = len(self._pending) - len(self._pending) % BLOCK_SIZE
        if n == 0:
            return b''
        out = self._encrypt(memoryview(self._pending)[:n])
        del self._pending[:n]
        return out

    def finalize(self):
        if self._finalized:
            raise GocryptfsError('finalize() called twice')
        self._finalized = True
        if not self._pending:
            return b''
        out = self._encrypt(memoryview(bytes(self._pending)))
        self._pending = bytearray()
        return out


def iter_decrypt_fd(content_key, fd, chunk_blocks=CHUNK_BLOCKS):
    """Yield the plaintext of an open ciphertext file, in order, in bounded chunks (fresh bytes)."""
    csize = os.fstat(fd).st_size
    if csize == 0:
        return
    header = bytearray(HEADER_LEN)
    if _read_full(fd, memoryview(header), 0) != HEADER_LEN:
        raise CorruptDataError('file shorter than its header')
    file_id = parse_header(bytes(header))
    size = plaintext_size(csize)
    cipher = ContentCipher(content_key)
    bufs = _Buffers(chunk_blocks)
    total = block_count(size)
    block = 0
    while block < total:
        count = min(chunk_blocks, total - block)
        want = min(count * CBLOCK_SIZE, csize - cipher_offset(block))
        view = bufs.cipher[:want]
        if _read_full(fd, view, cipher_offset(block)) != want:
            raise CorruptDataError('ciphertext file shrank while being read')
        n = cipher.decrypt_blocks(file_id, block, view, bufs.plain)
        yield bytes(bufs.plain[:n])
        block += count


def iter_decrypt_file(path, content_key, chunk_blocks=CHUNK_BLOCKS):
    """Yield the plaintext of the ciphertext file ``path`` in bounded chunks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        yield from iter_decrypt_fd(content_key, fd, chunk_blocks)
    finally:
        os.close(fd)


def decrypt_file(path, content_key):
    """Return the whole plaintext of a ciphertext file (for tests and small files)."""
    return b''.join(iter_decrypt_file(path, content_key))


class SegmentMac:
    """A fast keyed hash of one file segment: GMAC (AES-256-GCM with no plaintext and the data as
    associated data) under ``key``, nonce = 4 zero bytes || u64be(segment index).

    GHASH runs at several GB/s where SHA-256 does about 1.5, which matters when every byte of a
    model is hashed while it is encrypted. The tags are never stored: the manifest keeps only an
    HMAC-SHA256 over them (see ``Manifest.content_digest``), so the fixed nonce leaks nothing, and
    GHASH under a secret key is an almost-universal hash (collision probability for distinct
    inputs of L blocks at most L / 2^128).
    """

    __slots__ = ('_enc',)

    def __init__(self, key, index):
        _require_crypto()
        self._enc = Cipher(algorithms.AES(bytes(key)), modes.GCM(bytes(4) + _U64.pack(index))).encryptor()

    def update(self, data):
        self._enc.authenticate_additional_data(data)

    def digest(self):
        self._enc.finalize()
        return self._enc.tag


# ---------------------------------------------------------------------------------------------
# Symlinks

def encrypt_symlink_target(content_key, target, random=os.urandom):
    """Encrypt a symlink target (bytes or str) -> the string stored as the ciphertext link target."""
    if isinstance(target, str):
        target = os.fsencode(target)
    if not target:
        return ''
    nonce = random_bytes_nonzero(random, NONCE_LEN, 'symlink nonce')
    return b64url_encode(nonce + AESGCM(bytes(content_key)).encrypt(nonce, bytes(target), _AAD_ZERO))


def decrypt_symlink_target(content_key, stored):
    """Inverse of :func:`encrypt_symlink_target`; returns bytes."""
    if isinstance(stored, bytes):
        stored = stored.decode('ascii', 'replace')
    if not stored:
        return b''
    raw = b64url_decode(stored)
    if len(raw) < NONCE_LEN + TAG_LEN:
        raise CorruptDataError('symlink target too short')
    try:
        return AESGCM(bytes(content_key)).decrypt(raw[:NONCE_LEN], raw[NONCE_LEN:], _AAD_ZERO)
    except InvalidTag:
        raise CorruptDataError('symlink target failed authentication')
