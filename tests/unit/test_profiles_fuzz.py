"""Property-based tests: no input makes profile loading or label checking fail badly.

Whatever the input (any text or bytes as a profile file, any YAML-able value
under any profile key, a shipped profile with lines cut, repeated or changed,
any charset and label), the answer is a value or one of the project's own
errors (:class:`solver.errors.SolverError`), within ``DEADLINE``, and the
error's message stays short. The runs are derandomized so CI sees the same
examples every time; ``EXAMPLES`` counts them all.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.charset import Charset, LabelError, is_visible
from solver.dataset import Sample, check_labels
from solver.errors import ProfileError, SolverError
from solver.profiles import (
    MAX_LINE,
    MAX_PROBLEMS,
    SiteProfile,
    load_profile,
    load_profile_text,
    profile_from_data,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "solver" / "shipped" / "profiles" / "example.yaml").read_text(encoding="utf-8")
WHERE = "fuzz/example.yaml"
DEADLINE = timedelta(seconds=2)

#: examples per test, by name; the whole file runs about this many examples
EXAMPLES = {"text": 500, "bytes": 200, "values": 600, "mutations": 600, "charsets": 400,
            "labels": 600}


def fuzz_settings(name: str) -> settings:
    return settings(max_examples=EXAMPLES[name], deadline=DEADLINE, derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow])


def check_message(error: SolverError) -> None:
    """The project's error, short: at most MAX_PROBLEMS lines (and a count) of bounded length."""
    lines = str(error).split("\n")
    assert len(lines) <= MAX_PROBLEMS + 1, lines
    assert all(len(line) <= MAX_LINE for line in lines), max(lines, key=len)
    if isinstance(error, ProfileError):
        assert error.problems == lines


def load_or_refuse(text: str) -> SiteProfile | None:
    """The profile of ``text``, or None after checking the error is the project's own and short."""
    try:
        profile = load_profile_text(text, WHERE)
    except SolverError as error:
        check_message(error)
        return None
    # a profile that loads also writes itself out and loads back the same
    again = load_profile_text(profile.to_yaml(), WHERE)
    assert again.to_dict() == profile.to_dict()
    assert again.fingerprint() == profile.fingerprint()
    return profile


# ---------------------------------------------------------------------------
# any file


YAML_PIECES = st.sampled_from([
    "name:", "url:", "captcha:", "form:", "format:", "charset:", "length:", "synthetic:",
    "variants:", "steps:", "- ", "  ", "\n", ": ", "&a ", "*a", "<<: ", "!!int ", "!!str ",
    "!!timestamp ", "!!binary ", "!!set ", "? ", "[", "]", "{", "}", ",", "'", '"', "#", "|",
    ">", "---", "...", "%YAML 1.1", "\t", "\x00", "\ufeff", "\u200b", "e\u0301", "0x1f", "1e999",
    "2020-02-30", "~", "null", "true", "99999999999999999999", "http://127.0.0.1/",
])


@fuzz_settings("text")
@given(st.one_of(st.text(max_size=200), st.lists(YAML_PIECES | st.text(max_size=5), max_size=40)
                 .map("".join)))
def test_any_text_loads_or_is_refused_cleanly(text: str) -> None:
    profile = load_or_refuse(text)  # fails on any exception that is not the project's own
    assert profile is None or profile.format.charset


@fuzz_settings("bytes")
@given(st.binary(max_size=300) | st.builds(lambda raw, cut: EXAMPLE.encode()[:cut] + raw,
                                           st.binary(max_size=20), st.integers(0, len(EXAMPLE))))
def test_any_bytes_in_a_file_load_or_are_refused_cleanly(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "example.yaml"
        path.write_bytes(raw)
        try:
            load_profile(path)
        except SolverError as error:
            check_message(error)


# ---------------------------------------------------------------------------
# any value under any key


SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=30) | st.sampled_from(["#f0f0f0", "random", "auto", "ctc", "img"]))
VALUES = st.recursive(
    SCALARS,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | st.sampled_from(
                          ["grayscale", "fonts", "noise_dots", "goto", "click", "fill", "env"]),
                          children, max_size=4)),
    max_leaves=16,
)


def key_paths(model: type[Any] = SiteProfile, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the profile format, sections and their keys."""
    paths = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        paths.append(prefix + (name,))
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            paths.extend(key_paths(annotation, prefix + (name,)))
    return paths


KEY_PATHS = key_paths() + [("unknown",), ("captcha", "unknown"), ("synthetic", "variants", "0")]


def with_value(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
    return data


@fuzz_settings("values")
@given(st.lists(st.tuples(st.sampled_from(KEY_PATHS), VALUES), min_size=1, max_size=3),
       st.booleans())
def test_any_value_under_any_key_loads_or_is_refused_cleanly(
        changes: list[tuple[tuple[str, ...], Any]], through_yaml: bool) -> None:
    data = yaml.safe_load(EXAMPLE)
    for path, value in changes:
        data = with_value(data, path, value)
    if through_yaml:
        load_or_refuse(yaml.safe_dump(data, allow_unicode=True))
        return
    try:
        profile_from_data(data, WHERE)
    except SolverError as error:
        check_message(error)


# ---------------------------------------------------------------------------
# a shipped profile, changed


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    lines = EXAMPLE.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(st.sampled_from(["delete", "repeat", "swap", "insert", "edit", "indent"]))
        if action == "delete" and lines:
            del lines[where]
        elif action == "repeat" and lines:
            lines.insert(draw(st.integers(0, len(lines))), lines[where])
        elif action == "swap" and lines:
            other = draw(st.integers(0, len(lines) - 1))
            lines[where], lines[other] = lines[other], lines[where]
        elif action == "insert":
            lines.insert(where, draw(YAML_PIECES | st.text(max_size=20)) + "\n")
        elif action == "edit" and lines:
            line = lines[where]
            at = draw(st.integers(0, len(line)))
            lines[where] = line[:at] + draw(YAML_PIECES | st.text(max_size=5)) + line[at + 1:]
        elif action == "indent" and lines:
            lines[where] = draw(st.sampled_from(["", " ", "  ", "    ", "\t"])) + lines[where].lstrip()
    return "".join(lines)


@fuzz_settings("mutations")
@given(mutated_example())
def test_a_changed_shipped_profile_loads_or_is_refused_cleanly(text: str) -> None:
    profile = load_or_refuse(text)  # fails on any exception that is not the project's own
    assert profile is None or profile.format.charset


# ---------------------------------------------------------------------------
# charsets and labels


CHARACTERS = st.characters() | st.sampled_from(
    ["\u200b", "\u200d", "\u0301", "\u00ad", "\ufeff", "\u212b", "\u0958", "\u1100", "\u1161",
     "é", "e", "ß", "ǰ", "İ", "ﬁ", "A", "a", "0", " ", "\t", "\u3000", "\u2028"])
TEXTS = st.lists(CHARACTERS, max_size=12).map("".join) | st.text(max_size=40)


def checked_charset(characters: str, case_sensitive: bool) -> Charset | None:
    try:
        charset = Charset(characters, case_sensitive)
    except LabelError as error:
        check_message(error)
        assert len(str(error)) <= 400
        return None
    # an accepted charset holds visible, composed characters, each once
    assert all(is_visible(ch) for ch in charset.characters)
    assert len(set(charset.characters)) == len(charset.characters)
    return charset


@fuzz_settings("charsets")
@given(TEXTS, st.booleans())
def test_any_charset_is_accepted_or_refused_cleanly(characters: str, case_sensitive: bool) -> None:
    charset = checked_charset(characters, case_sensitive)
    if charset is not None:
        assert charset.decode(charset.encode(charset.characters)) == charset.normalise(
            charset.characters)


@fuzz_settings("labels")
@given(st.sampled_from(["0123456789", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "éèêabc", "ÅΩ가ab"])
       | TEXTS, st.booleans(), TEXTS)
def test_any_label_is_encoded_or_refused_cleanly(characters: str, case_sensitive: bool,
                                                 label: str) -> None:
    charset = checked_charset(characters, case_sensitive)
    if charset is None:
        return
    normalised = charset.normalise(label)
    try:
        indices = charset.encode(label)
    except LabelError as error:
        check_message(error)
        assert len(str(error)) <= 400
    else:
        assert charset.decode(indices) == normalised
        assert all(is_visible(ch) for ch in normalised)
    report = check_labels([Sample(Path("x.png"), label)], characters, 1, 32, case_sensitive)
    assert len(report.kept) + report.refused_count == 1
    data = yaml.safe_load(EXAMPLE)
    data["format"].update(charset=characters, case_sensitive=case_sensitive, length=[1, 32])
    try:
        fmt = profile_from_data(data, WHERE).format
    except ProfileError as error:
        check_message(error)
        return
    problem = fmt.label_problem(label)
    assert problem is None or len(problem) <= 300
    if problem is None:
        assert all(is_visible(ch) for ch in fmt.normalise(label))
