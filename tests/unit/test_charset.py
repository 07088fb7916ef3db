"""Charset: encode/decode, case folding, the explicit CTC blank, greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest

from solver.charset import Charset, LabelError


def test_blank_is_the_last_class() -> None:
    charset = Charset("abc")
    assert (charset.blank_index, charset.num_classes, len(charset)) == (3, 4, 3)


def test_encode_decode_round_trip() -> None:
    charset = Charset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", case_sensitive=False)
    assert charset.encode("a1z") == [10, 1, 35]
    assert charset.decode(charset.encode("q7x9")) == "Q7X9"
    assert charset.decode([10, charset.blank_index, 1]) == "A1"


def test_case_sensitive_charset_refuses_the_other_case() -> None:
    with pytest.raises(LabelError) as caught:
        Charset("ABC").encode("Abx")
    assert str(caught.value) == "'Abx' holds characters outside the charset: bx (the charset is 'ABC')"


def test_lower_case_charset_folds_down() -> None:
    assert Charset("abc", case_sensitive=False).encode("CAB") == [2, 0, 1]


@pytest.mark.parametrize("characters", ["", "aba"])
def test_bad_charsets(characters: str) -> None:
    with pytest.raises(LabelError):
        Charset(characters)


def test_ctc_collapses_repeats_and_keeps_doubles_split_by_blank() -> None:
    charset = Charset("ab")
    blank = charset.blank_index
    assert charset.decode_ctc([blank, 0, 0, blank, 0, 1, 1, blank]) == "aab"
    assert charset.decode_ctc([blank, blank]) == ""


def one_hot_path(path: list[int], classes: int, sure: float) -> np.ndarray:
    probabilities = np.full((len(path), classes), (1 - sure) / (classes - 1), np.float32)
    probabilities[np.arange(len(path)), path] = sure
    return probabilities


def test_batch_decoding_matches_the_single_path_and_scores_doubt() -> None:
    charset = Charset("0123456789")
    blank = charset.blank_index
    path = [blank, 4, 4, blank, 0, blank, 7, 7, blank]
    sure = one_hot_path(path, charset.num_classes, 0.99)
    unsure = sure.copy()
    unsure[4] = one_hot_path([0], charset.num_classes, 0.4)[0]
    (text, high), (same, low) = charset.decode_ctc_batch(np.stack([sure, unsure]))
    assert text == same == charset.decode_ctc(path) == "407"
    assert high == pytest.approx(0.99 ** 4, rel=1e-5)  # three characters and the least sure blank
    assert low == pytest.approx(0.99 * 0.4 * 0.99 * 0.99, rel=1e-5)
    assert low < 0.5 < high


def test_batch_decoding_checks_the_shape() -> None:
    with pytest.raises(ValueError, match=r"expected probabilities of shape \(batch, steps, 3\)"):
        Charset("ab").decode_ctc_batch(np.zeros((1, 5, 4), np.float32))
