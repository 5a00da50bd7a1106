"""The one code layout: packbits order, unpadded storage, zero padding to 64 bits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from vidhash.index.store.codes import (
    code_nbytes,
    codes_from_arrow,
    codes_from_sign,
    codes_to_arrow,
    hamming,
    pack_bits,
    pad_to_64,
    unpack_bits,
)


def test_big_endian_packbits_order() -> None:
    bits = np.zeros(48, dtype=np.uint8)
    bits[0] = 1  # first bit is the most significant bit of byte 0
    bits[47] = 1
    code = pack_bits(bits)
    assert code.shape == (6,)
    assert code[0] == 0x80 and code[5] == 0x01


def test_unpadded_length_and_roundtrip() -> None:
    rng = np.random.default_rng(0)
    for length in (12, 48, 64, 65):
        bits = rng.integers(0, 2, (7, length), dtype=np.uint8)
        codes = pack_bits(bits)
        assert codes.shape == (7, code_nbytes(length))
        assert np.array_equal(unpack_bits(codes, length), bits)


def test_sigmoid_threshold_is_inclusive() -> None:
    assert np.array_equal(
        codes_from_sign(np.array([0.5, 0.49, 0.9, 0.1, 0, 0, 0, 0])),
        np.array([0b10100000], np.uint8),
    )


def test_padding_keeps_distances() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (50, 6), dtype=np.uint8)
    padded = pad_to_64(codes)
    assert padded.shape == (50, 8) and not padded[:, 6:].any()
    assert np.array_equal(hamming(codes[0], codes), hamming(padded[0], padded))
    assert pad_to_64(padded) is padded or np.array_equal(pad_to_64(padded), padded)


def test_hamming_matches_bit_count() -> None:
    a = np.array([0xFF, 0x00], np.uint8)
    b = np.array([[0x0F, 0x01], [0xFF, 0x00]], np.uint8)
    assert hamming(a, b).tolist() == [5, 0]


def test_arrow_roundtrip_and_offsets() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, (10, 6), dtype=np.uint8)
    column = codes_to_arrow(codes)
    assert column.type == pa.binary(6)
    assert np.array_equal(codes_from_arrow(column), codes)
    assert np.array_equal(codes_from_arrow(column.slice(3, 4)), codes[3:7])
    chunked = pa.chunked_array([column.slice(0, 5), column.slice(5)])
    assert np.array_equal(codes_from_arrow(chunked), codes)


def test_wrong_dtype_rejected() -> None:
    with pytest.raises(ValueError):
        pad_to_64(np.zeros((2, 6), dtype=np.int64))
