"""Charset: encode/decode, case folding, the explicit CTC blank, greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.charset import Charset, LabelError, decode_ctc_greedy


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



def greedy_by_hand(steps: np.ndarray, characters: list[str], blank: int) -> tuple[str, float]:
    """The rule, step by step: collapse repeats, drop blanks; the confidence is the
    characters' winning probabilities times the least sure blank's."""
    text, confidence, least_blank, previous = "", 1.0, 1.0, None
    for step in steps:
        best = int(step.argmax())
        if best == blank:
            least_blank = min(least_blank, float(step[best]))
        elif best != previous:
            text += characters[best]
            confidence *= float(step[best])
        previous = best
    return text, (confidence if text else 0.0) * least_blank


def test_one_greedy_decoder_for_a_blank_last_or_first_on_a_real_models_output() -> None:
    from pathlib import Path

    from solver.drawing import CaptchaDrawer
    from solver.recognizers import Recognizer

    model = Recognizer(Path(__file__).resolve().parents[2] / "solver" / "shipped" / "models" / "example")
    drawer = CaptchaDrawer(seed=7)
    batch = np.stack([model.prepare(drawer.png(text)) for text in ("K7QP", "2B9XZ", "MM44A1")])
    probabilities = model.probabilities(batch)
    charset = model.charset
    decoded = charset.decode_ctc_batch(probabilities)
    characters = list(charset.characters)
    by_hand = [greedy_by_hand(steps, characters, charset.blank_index) for steps in probabilities]
    assert [text for text, _ in decoded] == [text for text, _ in by_hand]
    # numpy multiplies in float32, the hand in float64
    assert [sure for _, sure in decoded] == pytest.approx([sure for _, sure in by_hand], rel=1e-6)
    assert any(text for text, _ in decoded)
    # the same output with the blank moved to the front (ddddocr's layout) reads the same
    blank_first = np.concatenate([probabilities[..., -1:], probabilities[..., :-1]], axis=-1)
    assert decode_ctc_greedy(blank_first, [""] + characters, blank_index=0) == decoded

@pytest.mark.parametrize(("characters", "expected"), [
    ("", "the charset is empty (list every character the captcha uses, e.g. \"0123456789\")"),
    ("aba", "the charset 'aba' repeats 'a' (list each character once)"),
    ("ab\u200b", "the charset 'ab\\u200b' holds U+200B ZERO WIDTH SPACE, which does not print "
                 "(remove it; a charset lists only characters a person can see)"),
    ("e\u0301", "the charset 'e\\u0301' holds U+0301 COMBINING ACUTE ACCENT, a combining mark that "
                "joins the character before it (write each accented letter as one character, "
                "e.g. 'é' as U+00E9 rather than e + U+0301, or remove the mark)"),
    ("a b", "the charset 'a b' contains white space (remove spaces, tabs and new lines from it)"),
])
def test_bad_charsets_say_why(characters: str, expected: str) -> None:
    with pytest.raises(LabelError) as caught:
        Charset(characters)
    assert str(caught.value) == expected


def test_labels_are_normalised_to_composed_characters() -> None:
    charset = Charset("éab")
    assert charset.normalise("e\u0301a") == "éa"
    assert charset.encode("e\u0301a") == [0, 1]
    assert Charset("ÉAB", case_sensitive=False).encode("e\u0301a") == [0, 1]


def test_invisible_characters_in_a_label_are_named() -> None:
    with pytest.raises(LabelError) as caught:
        Charset("abc").encode("a\u200bb\u0301")
    assert str(caught.value) == (
        "'a\\u200bb\\u0301' holds characters outside the charset: U+0301 COMBINING ACUTE ACCENT, "
        "U+200B ZERO WIDTH SPACE (the charset is 'abc')")


def test_long_labels_and_charsets_are_quoted_short() -> None:
    charset = Charset("".join(chr(0x4E00 + i) for i in range(3000)))
    with pytest.raises(LabelError) as caught:
        charset.encode("x" * 10_000)
    assert len(str(caught.value)) < 200


def test_a_charset_without_case_holds_only_reachable_characters() -> None:
    with pytest.raises(LabelError) as caught:
        Charset("aÀ", case_sensitive=False)
    assert str(caught.value) == (
        "the charset 'aÀ' holds 'a' but case_sensitive is false: labels are folded to upper "
        "case, so no label can hold it (write the charset in upper case, or set case_sensitive: true)")


def _collapsed_length(path: tuple[int, ...], blank: int) -> int:
    return sum(1 for i, c in enumerate(path) if c != blank and (i == 0 or path[i - 1] != c))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.integers(2, 4), st.integers(0, 3), st.data())
def test_the_length_bound_path_is_the_most_probable_of_its_lengths(
        steps: int, classes: int, blank: int, data: st.DataObject) -> None:
    """Against every path there is: the Viterbi pass finds the most probable path whose
    text has an allowed length, and a row with too few steps keeps its fallback."""
    import itertools

    from solver.charset import best_paths_of_lengths

    blank = blank % classes
    low = data.draw(st.integers(0, 7))
    high = data.draw(st.integers(low, 8))
    raw = np.asarray(data.draw(st.lists(st.floats(0.01, 1.0), min_size=2 * steps * classes,
                                        max_size=2 * steps * classes)))
    probabilities = (raw / raw.reshape(2, steps, classes).sum(-1).repeat(classes)).reshape(
        2, steps, classes)
    fallback = probabilities.argmax(-1)
    paths = best_paths_of_lengths(probabilities, blank, low, high, fallback=fallback)
    log_p = np.log(probabilities)
    for row in range(2):
        scores = {path: sum(log_p[row, t, c] for t, c in enumerate(path))
                  for path in itertools.product(range(classes), repeat=steps)
                  if low <= _collapsed_length(path, blank) <= high}
        found = tuple(int(c) for c in paths[row])
        if not scores:
            assert found == tuple(fallback[row])
        else:
            assert low <= _collapsed_length(found, blank) <= high
            assert scores[found] == pytest.approx(max(scores.values()), rel=1e-9, abs=1e-9)


def test_a_reading_of_a_length_the_format_cannot_have_reads_as_one_it_can() -> None:
    """'aba' where the site shows 2 characters: the doubtful last step gives way ('ab'),
    with its doubt in the confidence; a reading of an allowed length is left as it was."""
    charset = Charset("ab")  # blank last
    doubtful = np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8],
                         [0.4, 0.5, 0.1]])[:, [1, 2, 0]]  # a, blank, b, a (or a gap)
    sure = np.array([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.05, 0.9, 0.05],
                     [0.05, 0.05, 0.9]])  # a, blank, b, blank
    [(greedy, greedy_confidence)] = charset.decode_ctc_batch(doubtful[np.newaxis])
    (bound, bound_confidence), (kept, kept_confidence) = charset.decode_ctc_batch(
        np.stack([doubtful, sure]), lengths=(2, 2))
    assert (greedy, bound, kept) == ("aba", "ab", "ab")
    assert bound_confidence == pytest.approx(0.9 * 0.8 * 0.4)  # the gap read at 0.4
    assert kept_confidence == pytest.approx(charset.decode_ctc_batch(sure[np.newaxis])[0][1])
    assert charset.decode_ctc_batch(doubtful[np.newaxis], lengths=(1, 3)) == [
        (greedy, greedy_confidence)]
