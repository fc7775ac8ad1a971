# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EME wide-block encryption (Halevi-Rogaway 2003) as used by gocryptfs for file names.

Written from the description in the project's gocryptfs format reference (section 7). AES-256 comes
from ``cryptography`` (ECB primitive, one call per pass over all blocks). Names are short (at most
21 blocks for a 255-byte name; EME allows 128), so plain integer arithmetic is fast enough.

Doubling in GF(2^128) follows the EME library gocryptfs uses: the 16 bytes are a little-endian
integer, shifted left by one bit; a carry out of the top bit is reduced by XOR-ing 0x87 into byte 0.
"""

from __future__ import annotations

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - exercised by the sanity import test only
    HAS_CRYPTOGRAPHY = False

BLOCK = 16
MAX_BLOCKS = 128
_MASK128 = (1 << 128) - 1


class EMEError(ValueError):
    """Input that EME cannot process (bad key, tweak or data length)."""


def _dbl(x):
    """Multiply a little-endian GF(2^128) element (as int) by two."""
    x <<= 1
    if x >> 128:
        x = (x & _MASK128) ^ 0x87
    return x


def _le(b):
    return int.from_bytes(b, 'little')


def _split(data):
    return [int.from_bytes(data[i:i + BLOCK], 'little') for i in range(0, len(data), BLOCK)]


def _join(ints):
    return b''.join(v.to_bytes(BLOCK, 'little') for v in ints)


def _transform(key, tweak, data, encrypt):
    if len(key) != 32:
        raise EMEError('EME key must be 32 bytes (AES-256), got %d' % len(key))
    if len(tweak) != BLOCK:
        raise EMEError('EME tweak must be 16 bytes, got %d' % len(tweak))
    if not data or len(data) % BLOCK:
        raise EMEError('EME data length must be a non-zero multiple of 16, got %d' % len(data))
    m = len(data) // BLOCK
    if m > MAX_BLOCKS:
        raise EMEError('EME data is limited to %d blocks, got %d' % (MAX_BLOCKS, m))

    cipher = Cipher(algorithms.AES(bytes(key)), modes.ECB())
    enc = cipher.encryptor()
    # L is always computed with AES encryption, in both directions.
    ell = _dbl(_le(enc.update(bytes(BLOCK))))
    table = []
    for dummy in range(m):
        table.append(ell)
        ell = _dbl(ell)

    if encrypt:
        def pass_(blocks):
            return _split(enc.update(_join(blocks)))
    else:
        dec = cipher.decryptor()

        def pass_(blocks):
            return _split(dec.update(_join(blocks)))

    t = _le(tweak)
    p = _split(bytes(data))
    x = pass_([pj ^ lj for pj, lj in zip(p, table)])
    mp = t
    for xj in x:
        mp ^= xj
    mc = pass_([mp])[0]
    mm = mp ^ mc
    y = [0] * m
    acc = mc ^ t
    for j in range(1, m):
        mm = _dbl(mm)
        y[j] = x[j] ^ mm
        acc ^= y[j]
    y[0] = acc
    c = pass_(y)
    return _join(cj ^ lj for cj, lj in zip(c, table))


def eme_encrypt(key, tweak, data):
    """Encrypt ``data`` (1..128 blocks of 16 bytes) with AES-256 key ``key`` and 16-byte ``tweak``."""
    return _transform(key, tweak, data, True)


def eme_decrypt(key, tweak, data):
    """Inverse of :func:`eme_encrypt`."""
    return _transform(key, tweak, data, False)
