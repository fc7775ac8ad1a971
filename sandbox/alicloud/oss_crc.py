"""CRC-64/XZ (the ``x-oss-hash-crc64ecma`` checksum of OSS) for the OSS emulator.

Parameters: polynomial 0x42F0E1EBA9EA3693, reflected in and out, initial value and final XOR
0xFFFFFFFFFFFFFFFF. The header carries the finalized value in decimal. ``crc64(b"123456789")`` is
11051210869376104954.

Two backends, chosen at import time:

* ``fastcrc`` (a Rust extension on PyPI, several GB/s and it releases the GIL) when it is installed;
* otherwise ``crcmod``'s C extension, which ``oss2`` depends on anyway (about 350 MB/s, holds the GIL).

``crc64_combine`` (the CRC of ``A + B`` from the CRCs of ``A`` and ``B`` and the length of ``B``) is
computed here with carry-less multiplication modulo the polynomial, so that a completed multipart
object gets its CRC without reading the parts again.
"""

import functools

_MASK = 0xFFFFFFFFFFFFFFFF
_POLY_REFLECTED = 0xC96C5795D7870F42  # 0x42F0E1EBA9EA3693 with its 64 bits reversed

try:  # pragma: no cover - depends on the environment
    from fastcrc import crc64 as _fastcrc64

    def crc64_update(crc, data):
        """Continue a finalized CRC-64/XZ value ``crc`` over ``data`` (bytes-like)."""
        if crc == 0:
            return _fastcrc64.xz(data)
        return _fastcrc64.xz(data, initial=crc)

    BACKEND = "fastcrc"
except ImportError:  # pragma: no cover - depends on the environment
    import crcmod

    _crcmod_fun = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=_MASK)

    def crc64_update(crc, data):
        """Continue a finalized CRC-64/XZ value ``crc`` over ``data`` (bytes-like)."""
        return _crcmod_fun(data, crc)

    BACKEND = "crcmod"


def crc64(data):
    """CRC-64/XZ of ``data``."""
    return crc64_update(0, data)


def _multmodp(a, b):
    """Product of two polynomials modulo the CRC polynomial, in the reflected bit order."""
    m = 1 << 63
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY_REFLECTED if b & 1 else b >> 1
    return p


def _x2n_table():
    table = [1 << 62]  # x^1
    for dummy_i in range(63):
        table.append(_multmodp(table[-1], table[-1]))
    return table


_X2N = _x2n_table()


@functools.lru_cache(maxsize=256)
def _x8nmodp(length):
    """x^(8 * length) modulo the CRC polynomial."""
    p = 1 << 63  # x^0
    k = 3
    while length:
        if length & 1:
            p = _multmodp(_X2N[k & 63], p)
        length >>= 1
        k += 1
    return p


def crc64_combine(crc1, crc2, len2):
    """CRC-64/XZ of the concatenation ``A + B`` given ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    if len2 == 0:
        return crc1
    return _multmodp(_x8nmodp(len2), crc1) ^ crc2
