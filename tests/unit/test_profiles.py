"""Site profile validation: every rule with its exact message, round trips, the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from solver.errors import ProfileError, ProfileNotFoundError
from solver.profiles import (
    ProfileRegistry,
    SiteProfile,
    load_profile,
    load_profile_text,
    profile_from_data,
    profile_schema,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "solver" / "shipped" / "profiles").glob("*.yaml"))

GOOD = {
    "name": "shop",
    "url": "https://shop.example/login",
    "captcha": {"selector": "img#captcha"},
    "form": {"input": "#code", "submit": "#go"},
    "format": {"charset": "0123456789", "length": [4, 6]},
}


def variant(**changes: object) -> dict:
    """GOOD with dotted keys changed; a value of DELETE removes the key."""
    data = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return data


DELETE = object()


def problems(data: object, path: str = "p/shop.yaml") -> list[str]:
    with pytest.raises(ProfileError) as caught:
        profile_from_data(data, path)
    return caught.value.problems


def test_good_profile_loads_with_defaults() -> None:
    profile = profile_from_data(GOOD, "p/shop.yaml")
    assert profile.name == "shop"
    assert profile.captcha.capture == "auto"
    assert profile.captcha.frame is None and profile.captcha.refresh is None
    assert profile.format.length == (4, 6)
    assert (profile.format.min_length, profile.format.max_length) == (4, 6)
    assert profile.format.case_sensitive is True
    assert profile.model.pipeline == "ctc" and profile.model.min_confidence == 0.5
    assert (profile.synthetic.width, profile.synthetic.height) == (160, 60)


def test_profile_is_frozen() -> None:
    profile = profile_from_data(GOOD, "p/shop.yaml")
    with pytest.raises(Exception, match="frozen"):
        profile.url = "http://elsewhere/"  # type: ignore[misc]
    with pytest.raises(Exception, match="frozen"):
        profile.format.charset = "01"  # type: ignore[misc]


def test_name_defaults_to_file_name() -> None:
    data = variant(name=DELETE)
    assert profile_from_data(data, "somewhere/my-site.yaml").name == "my-site"


def test_single_length_means_fixed_length() -> None:
    assert profile_from_data(variant(format__length=5), "p/shop.yaml").format.length == (5, 5)


@pytest.mark.parametrize(("data", "expected"), [
    (variant(url=DELETE),
     'p/shop.yaml: url: required key is missing (add it, e.g. url: "http://127.0.0.1:8765/example/")'),
    (variant(captcha__selector=DELETE),
     'p/shop.yaml: captcha.selector: required key is missing (add it, e.g. selector: "img#captcha")'),
    (variant(format__charset=DELETE),
     'p/shop.yaml: format.charset: required key is missing (add it, e.g. charset: '
     '"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")'),
    (variant(form=DELETE), "p/shop.yaml: form: required key is missing (add it)"),
    (variant(captcha__selectr="img"),
     "p/shop.yaml: captcha.selectr: unknown key (did you mean 'selector'?)"),
    (variant(fromat={"charset": "01"}),
     "p/shop.yaml: fromat: unknown key (did you mean 'format'?)"),
    (variant(colour="red"),
     "p/shop.yaml: colour: unknown key (remove it; allowed here: name, url, description, "
     "captcha, form, format, model, synthetic, steps)"),
    (variant(form__input=5),
     'p/shop.yaml: form.input: expected a string, got the number 5 (quote it, e.g. "text")'),
    (variant(format__case_sensitive="no"),
     "p/shop.yaml: format.case_sensitive: expected true or false, got the string 'no' "
     "(write true or false without quotes)"),
    (variant(synthetic={"width": "160"}),
     "p/shop.yaml: synthetic.width: expected a whole number, got the string '160' "
     "(write a number without quotes, e.g. 160)"),
    (variant(captcha="img#captcha"),
     "p/shop.yaml: captcha: expected a mapping of keys, got the string 'img#captcha' "
     "(indent the keys under it, one per line)"),
    (variant(captcha__capture="pixels"),
     "p/shop.yaml: captcha.capture: 'pixels' is not one of auto, src, data-uri, canvas, "
     "background, screenshot (use one of them)"),
    (variant(model={"pipeline": "rnn"}),
     "p/shop.yaml: model.pipeline: 'rnn' is not one of ctc, segment (use one of them)"),
    (variant(model={"min_confidence": 1.5}),
     "p/shop.yaml: model.min_confidence: 1.5 is out of range (use a value at most 1.0)"),
    (variant(model={"min_confidence": "high"}),
     "p/shop.yaml: model.min_confidence: expected a number from 0 to 1, got 'high' (write e.g. 0.5)"),
    (variant(synthetic={"width": 8}),
     "p/shop.yaml: synthetic.width: 8 is out of range (use a value at least 16)"),
    (variant(synthetic={"font_sizes": [40, 1000]}),
     "p/shop.yaml: synthetic.font_sizes[1]: 1000 is out of range (use a value at most 512)"),
    (variant(synthetic={"font_sizes": 40}),
     "p/shop.yaml: synthetic.font_sizes: expected a list, got 40 (write a YAML list such as [42, 50])"),
    (variant(synthetic={"font_sizes": []}),
     "p/shop.yaml: synthetic.font_sizes: is empty (give a value, or remove the key if it is optional)"),
    (variant(format__charset=""),
     'p/shop.yaml: format.charset: is empty (list every character the captcha uses, e.g. "0123456789")'),
    (variant(format__charset="01 23"),
     "p/shop.yaml: format.charset: contains white space (remove spaces, tabs and new lines from it)"),
    (variant(format__charset="0123AB3A"),
     "p/shop.yaml: format.charset: repeats '3', 'A' (list each character once)"),
    (variant(format__length=[0, 4]),
     "p/shop.yaml: format.length: [0, 4] is outside 1..32 (write one number such as 4, "
     "or [min, max] such as [4, 6], within 1..32)"),
    (variant(format__length=40),
     "p/shop.yaml: format.length: [40, 40] is outside 1..32 (write one number such as 4, "
     "or [min, max] such as [4, 6], within 1..32)"),
    (variant(format__length=[6, 4]),
     "p/shop.yaml: format.length: min 6 is greater than max 4 (write [4, 6])"),
    (variant(format__length="4-6"),
     "p/shop.yaml: format.length: expected a number or [min, max], got '4-6' (write one number "
     "such as 4, or [min, max] such as [4, 6], within 1..32)"),
    (variant(format__length=[4, 5, 6]),
     "p/shop.yaml: format.length: expected a number or [min, max], got [4, 5, 6] (write one "
     "number such as 4, or [min, max] such as [4, 6], within 1..32)"),
    (variant(format__length=True),
     "p/shop.yaml: format.length: expected a number or [min, max], got True (write one number "
     "such as 4, or [min, max] such as [4, 6], within 1..32)"),
    (variant(format__charset="abcABC", format__case_sensitive=False),
     "p/shop.yaml: format: charset holds both cases of 'a', 'b', 'c' but case_sensitive is "
     "false (keep one case in the charset, or set case_sensitive: true)"),
    (variant(captcha__selector=""),
     "p/shop.yaml: captcha.selector: is empty (give a CSS selector, or remove the key if it is optional)"),
    (variant(form__success="   "),
     "p/shop.yaml: form.success: is empty (give a CSS selector, or remove the key if it is optional)"),
    (variant(url="ftp://shop.example/"),
     "p/shop.yaml: url: 'ftp://shop.example/' is not an http, https or file URL (write a full "
     "URL such as http://127.0.0.1:8765/example/)"),
    (variant(url="shop.example/login"),
     "p/shop.yaml: url: 'shop.example/login' is not an http, https or file URL (write a full "
     "URL such as http://127.0.0.1:8765/example/)"),
    (variant(name="other"),
     "p/shop.yaml: name: 'other' does not match the file name 'shop.yaml' (rename the file to "
     "other.yaml, or set name: shop)"),
    (variant(synthetic={"fonts": ["nowhere.ttf"]}),
     "p/shop.yaml: synthetic.fonts[0]: font file 'nowhere.ttf' not found (give a .ttf path "
     "relative to p or an absolute one)"),
    (variant(steps=[{"fill": "#user", "value": "alice"}]),
     "p/shop.yaml: steps[0].value: unknown key (remove it; allowed here: goto, click, fill, env, "
     "wait_for)"),
    (variant(steps=[{"fill": "#user"}]),
     "p/shop.yaml: steps[0]: fill needs env (name the environment variable that holds the value, "
     "e.g. env: SITE_USER (values never go in the profile))"),
    (variant(steps=[{"click": "#a", "goto": "http://x/"}]),
     "p/shop.yaml: steps[0]: has goto and click (give exactly one of goto, click, fill or "
     "wait_for per step)"),
    (variant(steps=[{"fill": "#user", "env": "not a name"}]),
     "p/shop.yaml: steps[0]: env 'not a name' is not a variable name (write e.g. SITE_USER)"),
])
def test_each_rule_has_its_exact_message(data: dict, expected: str) -> None:
    assert problems(data) == [expected]


def test_invalid_name_pattern_without_a_file() -> None:
    with pytest.raises(ProfileError) as caught:
        profile_from_data(variant(name="My Site!"))
    assert caught.value.problems == [
        "<string>: name: 'My Site!' is not a valid name (use lower-case letters, digits, '-' "
        "and '_', starting with a letter or digit)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = variant(captcha__capture="x", form__input="", format__length=[9, 2], extra=1)
    assert problems(data) == [
        "p/shop.yaml: captcha.capture: 'x' is not one of auto, src, data-uri, canvas, background, "
        "screenshot (use one of them)",
        "p/shop.yaml: form.input: is empty (give a CSS selector, or remove the key if it is optional)",
        "p/shop.yaml: format.length: min 9 is greater than max 2 (write [2, 9])",
        "p/shop.yaml: extra: unknown key (remove it; allowed here: name, url, description, "
        "captcha, form, format, model, synthetic, steps)",
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert problems(["a", "b"]) == [
        "p/shop.yaml: (top level): not a site profile: its top level is a list, not a mapping of "
        "keys (start the file with keys such as name:, url:, captcha:, form:, format:)"
    ]


def test_broken_yaml_names_line_and_column() -> None:
    text = "url: http://x/\ncaptcha:\n  selector: [img\nform: {}\n"
    with pytest.raises(ProfileError) as caught:
        load_profile_text(text, "p/shop.yaml")
    (line,) = caught.value.problems
    assert line.startswith("p/shop.yaml: line 4, column 5: invalid YAML: ")
    assert line.endswith("(check the indentation, and quote values that contain ': ' "
                         "or start with a symbol)")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileNotFoundError) as caught:
        load_profile(tmp_path / "none.yaml")
    assert str(caught.value) == (f"{tmp_path / 'none.yaml'}: (file): no such file (check the "
                                 "path, or list profiles with `solver profiles list`)")


def test_font_paths_resolve_next_to_the_profile(tmp_path: Path) -> None:
    import captcha

    font = Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf"
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "a.ttf").write_bytes(font.read_bytes())
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(variant(synthetic={"fonts": ["fonts/a.ttf"]})))
    assert load_profile(path).synthetic.fonts == ("fonts/a.ttf",)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_profiles_round_trip(path: Path, tmp_path: Path) -> None:
    profile = load_profile(path)
    again = tmp_path / path.name
    again.write_text(profile.to_yaml())
    reloaded = load_profile(again)
    assert reloaded.to_dict() == profile.to_dict()
    assert reloaded.fingerprint() == profile.fingerprint()


def test_fingerprint_follows_what_a_model_depends_on() -> None:
    base = profile_from_data(GOOD, "p/shop.yaml")
    assert base.fingerprint() == base.with_url("http://other/").fingerprint()
    changed = profile_from_data(variant(format__charset="0123456789X"), "p/shop.yaml")
    assert changed.fingerprint() != base.fingerprint()


def test_format_helpers() -> None:
    fmt = profile_from_data(variant(format__charset="ABC123", format__case_sensitive=False),
                            "p/shop.yaml").format
    assert fmt.normalise("ab12") == "AB12"
    assert fmt.label_problem("ab12") is None
    assert fmt.label_problem("AB1") == "'AB1' has 3 characters, expected 4 to 6"
    assert fmt.label_problem("AB1Z9") == "'AB1Z9' has characters outside the charset: 9Z"


def test_schema_accepts_shipped_profiles_and_rejects_bad_ones() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = profile_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        data = yaml.safe_load(path.read_text())
        assert list(validator.iter_errors(data)) == [], path
    assert list(validator.iter_errors(variant(format__length=3))) == []
    assert list(validator.iter_errors(variant(captcha__captur="x")))
    assert list(validator.iter_errors(variant(format__length=[1, 2, 3])))


class TestRegistry:
    def write(self, folder: Path, name: str, suffix: str = ".yaml") -> Path:
        path = folder / f"{name}{suffix}"
        path.write_text(yaml.safe_dump(variant(name=name)))
        return path

    def test_lists_and_loads_by_name_and_by_path(self, tmp_path: Path) -> None:
        self.write(tmp_path, "alpha")
        beta = self.write(tmp_path, "beta", ".yml")
        (tmp_path / "notes.txt").write_text("not a profile")
        registry = ProfileRegistry(tmp_path, shipped=False)
        assert registry.names() == ["alpha", "beta"]
        assert registry.load("alpha").name == "alpha"
        assert registry.load(str(beta)).name == "beta"

    def test_unknown_name_lists_the_available_ones(self, tmp_path: Path) -> None:
        self.write(tmp_path, "example")
        self.write(tmp_path, "digits")
        with pytest.raises(ProfileNotFoundError) as caught:
            ProfileRegistry(tmp_path, shipped=False).load("exampel")
        assert str(caught.value) == (
            f"{tmp_path}: exampel: no profile of that name (did you mean 'example'? available: "
            "digits, example; or pass a path to a .yaml file, or choose the folder with "
            "--profiles-dir or $SOLVER_PROFILES_DIR)"
        )

    def test_folder_comes_from_the_environment(self, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        self.write(tmp_path, "gamma")
        monkeypatch.setenv("SOLVER_PROFILES_DIR", str(tmp_path))
        assert ProfileRegistry(shipped=False).names() == ["gamma"]
        assert ProfileRegistry(tmp_path / "elsewhere", shipped=False).names() == []

    def test_the_folder_comes_first_then_the_shipped_profiles(self, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
        from solver import shipped

        own = self.write(tmp_path, "example")  # shadows the shipped example
        self.write(tmp_path, "gamma")
        monkeypatch.chdir(tmp_path / "..")  # no ./site_profiles here
        registry = ProfileRegistry(tmp_path)
        paths = registry.paths()
        assert paths["example"] == own and not registry.is_shipped(own)
        assert paths["gamma"].parent == tmp_path
        assert paths["digits"] == shipped.profiles_path() / "digits.yaml"
        assert registry.is_shipped(paths["digits"])
        assert set(ProfileRegistry().names()) == {p.stem for p in SHIPPED}  # from any folder
        assert registry.directories == [tmp_path, shipped.profiles_path()]
        assert ProfileRegistry(shipped.profiles_path()).directories == [shipped.profiles_path()]

    def test_same_name_twice_warns_and_keeps_the_first(self, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
        self.write(tmp_path, "twin")
        self.write(tmp_path, "twin", ".yml")
        assert ProfileRegistry(tmp_path).paths()["twin"].suffix == ".yaml"
        assert "profile 'twin' is defined twice" in caplog.text


def test_shipped_example_is_a_site_profile() -> None:
    profile = load_profile(ROOT / "solver" / "shipped" / "profiles" / "example.yaml")
    assert isinstance(profile, SiteProfile)
    assert profile.source == ROOT / "solver" / "shipped" / "profiles" / "example.yaml"


def test_pre_steps_take_values_from_the_environment_only() -> None:
    from solver.errors import UsageError

    profile = profile_from_data(variant(steps=[{"goto": "http://127.0.0.1/login"},
                                               {"fill": "#user", "env": "SHOP_USER"},
                                               {"click": "button#login"}, {"wait_for": "img"}]),
                                "p/shop.yaml")
    fill = profile.steps[1]
    assert [step.describe() for step in profile.steps] == [
        "goto http://127.0.0.1/login", "fill #user from $SHOP_USER", "click button#login",
        "wait_for img"]
    assert fill.value_from({"SHOP_USER": "alice"}) == "alice"
    with pytest.raises(UsageError, match=r"needs the environment variable SHOP_USER \(export SHOP_USER=...\)"):
        fill.value_from({})


# ---------------------------------------------------------------------------
# bad input: files that are not profiles, bombs, duplicate keys, long values

START_FIX = "(start the file with keys such as name:, url:, captcha:, form:, format:)"
PASSWD = ("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "alice:SECRET-HASH:1000:1000::/home/alice:/bin/bash\n")


def load_problems(text: str, path: str = "p/shop.yaml") -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile_text(text, path)
    return caught.value.problems


@pytest.mark.parametrize(("text", "kind"), [
    (PASSWD, "a string"),
    ("- root\n- alice\n", "a list"),
    ("42\n", "a number"),
    ("true\n", "a boolean"),
    ("", "empty"),
    ("# only a comment\n", "empty"),
])
def test_a_file_that_is_not_a_mapping_is_not_quoted(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.problems == [
        f"{path}: (top level): not a site profile: its top level is {kind}, not a mapping of "
        f"keys {START_FIX}"
    ]


def test_a_mapping_without_any_profile_key_is_not_quoted() -> None:
    assert load_problems("password: SECRET\nuser: alice\n") == [
        f"p/shop.yaml: (top level): not a site profile: none of its keys is a profile key {START_FIX}"
    ]


def test_registry_refuses_a_path_that_is_not_a_yaml_file(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text(PASSWD)
    for site in (str(secret), "../../etc/passwd"):
        with pytest.raises(ProfileError) as caught:
            ProfileRegistry(tmp_path).load(site)
        assert caught.value.problems == [
            f"{site}: (file): not a profile file, its name does not end in .yaml or .yml (give a "
            "profile name, or the path of a .yaml or .yml file; `solver profiles list` shows the names)"
        ]


@pytest.mark.parametrize("command", ["show", "check"])
def test_cli_never_prints_a_file_that_is_not_a_profile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    from solver.cli import main

    for name in ("passwd", "passwd.yaml"):
        secret = tmp_path / name
        secret.write_text(PASSWD)
        argv = (["profiles", "show", "--site", str(secret)] if command == "show"
                else ["profiles", "check", str(secret)])
        assert main(argv) != 0
        captured = capsys.readouterr()
        output = captured.out + captured.err
        assert "SECRET" not in output and "root:x" not in output
        assert "not a profile file" in output or "not a site profile" in output


def test_long_values_are_quoted_short() -> None:
    (line,) = problems(variant(url="x" * 5000))
    assert line == ("p/shop.yaml: url: '" + "x" * 55 + "...' is "
                    "not an http, https or file URL (write a full URL such as "
                    "http://127.0.0.1:8765/example/)")
    (line,) = problems(variant(format__length=list(range(5000))))
    assert len(line) < 300 and line.startswith(
        "p/shop.yaml: format.length: expected a number or [min, max], got [0, 1, 2, 3, 4, 5, ...]")
    (line,) = problems(variant(form__input=10 ** 5000))
    assert line == ("p/shop.yaml: form.input: expected a string, got the number <a number of about "
                    "5001 digits> (quote it, e.g. \"text\")")
    (line,) = problems(variant(**{"captcha__" + "k" * 3000: 1}))
    assert len(line) < 300 and line.startswith("p/shop.yaml: captcha.'kkkkkkkkkk")


def test_many_problems_are_capped() -> None:
    lines = problems(variant(**{f"unknown{i}": i for i in range(100)}))
    assert len(lines) == 21
    assert lines[-1] == "p/shop.yaml: ... and 80 more problems (fix these first)"


def test_files_over_one_megabyte_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("# " + "x" * 1_000_000 + "\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.problems == [
        f"{path}: (file): is 1,000,003 bytes, over the 1 MB limit for a profile (a profile is a "
        "few KB of YAML; check that this is the right file)"
    ]
    assert load_problems("#" * 1_000_001) == [
        "p/shop.yaml: (file): is 1,000,001 bytes, over the 1 MB limit for a profile (a profile "
        "is a few KB of YAML; check that this is the right file)"
    ]


def alias_bomb(levels: int) -> str:
    """Billion laughs: each level repeats the one below nine times; format.length uses the top."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    profile = yaml.safe_dump(variant(format__length=0), sort_keys=False)
    return "\n".join(lines) + "\n" + profile.replace("length: 0", f"length: *a{levels}")


@pytest.mark.parametrize("levels", [7, 8])
def test_yaml_alias_bombs_are_refused_at_once(levels: int) -> None:
    import time

    start = time.perf_counter()
    lines = load_problems(alias_bomb(levels))
    assert time.perf_counter() - start < 1.0
    assert lines == [
        "p/shop.yaml: line 5: YAML aliases expand to more than 10,000 values (each alias repeats "
        "everything under its anchor; a profile needs a few hundred values, so write them out or "
        "use fewer aliases)"
    ]
    assert len("\n".join(lines)) < 500


def test_small_aliases_still_work() -> None:
    text = ("zz: &sizes [40, 50]\n" + yaml.safe_dump(variant(synthetic={"noise_dots": 3}))
            ).replace("noise_dots: 3", "font_sizes: *sizes")
    with pytest.raises(ProfileError) as caught:
        load_profile_text(text, "p/shop.yaml")
    assert caught.value.problems == [  # the alias itself is fine; only the extra key is refused
        "p/shop.yaml: zz: unknown key (remove it; allowed here: name, url, description, "
        "captcha, form, format, model, synthetic, steps)"]
    shared = yaml.safe_dump(variant(synthetic={"variants": [{"font_sizes": [1]}, {"noise_dots": 2}]}))
    shared = shared.replace("- font_sizes:\n    - 1", "- font_sizes: &sizes [40, 50]").replace(
        "noise_dots: 2", "font_sizes: *sizes")
    profile = load_profile_text(shared, "p/shop.yaml")
    assert [look.font_sizes for look in profile.synthetic.looks()] == [(40, 50), (40, 50)]


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a [1, *a]\n",
     "p/shop.yaml: line 1: alias *a is used inside its own anchor &a (a profile cannot contain "
     "itself; write the values out)"),
    ("a: " + "[" * 40 + "]" * 40 + "\n",
     "p/shop.yaml: line 1: nested more than 32 levels deep (a profile nests 5 at most; check the "
     "brackets and the indentation)"),
    ("a: [" + ", ".join(["1"] * 10_001) + "]\n",
     "p/shop.yaml: line 1: the file holds more than 10,000 values (a profile needs a few hundred; "
     "check that this is the right file)"),
    ("length: " + "1" * 5000 + "\n",
     "p/shop.yaml: line 1: the number '" + "1" * 55 + "...' "
     "has more than 100 digits (no profile setting needs one; check the value)"),
    ("when: 2020-02-30\n",
     "p/shop.yaml: line 1: '2020-02-30' is not a valid timestamp (fix it, or quote it to keep it "
     "as text)"),
    ("when: !!int nine\n",
     "p/shop.yaml: line 1: 'nine' is not a valid int (fix it, or quote it to keep it as text)"),
    ("a: \x00\n",
     "p/shop.yaml: line 1, column 4: invalid YAML: unacceptable character #x0000: special "
     "characters are not allowed (check the indentation, and quote values that contain ': ' or "
     "start with a symbol)"),
])
def test_hostile_yaml_gets_one_short_line(text: str, expected: str) -> None:
    assert load_problems(text) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("url: http://a/\nname: shop\nurl: http://b/\n",
     "p/shop.yaml: line 3: key 'url' written twice, on lines 1 and 3 (keep one of them)"),
    ("format:\n  charset: '01'\n  length: 4\n  'charset': '0123'\n",
     "p/shop.yaml: line 4: key 'charset' written twice, on lines 2 and 4 (keep one of them)"),
    ("synthetic: {variants: [{grayscale: true, grayscale: false}]}\n",
     "p/shop.yaml: line 1: key 'grayscale' written twice, on lines 1 and 1 (keep one of them)"),
])
def test_duplicate_keys_are_refused(text: str, expected: str) -> None:
    assert load_problems(text) == [expected]


def test_a_merge_key_may_be_overridden() -> None:
    text = yaml.safe_dump(variant(form=DELETE)) + (
        "base: &base {input: '#a', submit: '#b'}\nform:\n  <<: *base\n  input: '#code'\n")
    with pytest.raises(ProfileError) as caught:
        load_profile_text(text, "p/shop.yaml")
    assert [line.split(":")[1] for line in caught.value.problems] == [" base"]
    text = text.replace("base: &base", "form: &base").replace("form:\n  <<", "other:\n  <<")
    assert "written twice" not in str(pytest.raises(ProfileError, load_profile_text, text,
                                                    "p/shop.yaml").value)


@pytest.mark.parametrize(("charset", "expected"), [
    ("0123\u200b", "holds U+200B ZERO WIDTH SPACE, which does not print (remove it; a charset "
                   "lists only characters a person can see)"),
    ("ab\u200dc\u00ad", "holds U+200D ZERO WIDTH JOINER, U+00AD SOFT HYPHEN, which do not print "
                        "(remove them; a charset lists only characters a person can see)"),
    ("abe\u0301", "holds U+0301 COMBINING ACUTE ACCENT, a combining mark that joins the "
                  "character before it (write each accented letter as one character, e.g. 'é' "
                  "as U+00E9 rather than e + U+0301, or remove the mark)"),
    ("ab\x07", "holds U+0007 (a control character), which does not print (remove it; a charset "
               "lists only characters a person can see)"),
    ("A\u212b", "holds U+212B ANGSTROM SIGN, which Unicode normalises (NFC) to U+00C5 LATIN "
                "CAPITAL LETTER A WITH RING ABOVE (write 'Å' instead: labels are compared "
                "after NFC normalisation)"),
])
def test_charset_refuses_characters_that_do_not_print(charset: str, expected: str) -> None:
    assert problems(variant(format__charset=charset)) == [f"p/shop.yaml: format.charset: {expected}"]


def test_labels_are_compared_after_normalisation() -> None:
    fmt = profile_from_data(variant(format__charset="0123é"), "p/shop.yaml").format
    assert fmt.label_problem("e\u0301012") is None  # e + combining acute is the one letter é
    assert fmt.normalise("e\u0301012") == "é012"
    assert fmt.label_problem("01\u200b23") == ("'01\\u200b23' has characters outside the charset: "
                                               "U+200B ZERO WIDTH SPACE")
    assert fmt.label_problem("01 23") == "'01 23' has characters outside the charset: U+0020 SPACE"
    assert fmt.label_problem("0" * 5000).startswith("'00000000000000000000000000")
    assert len(fmt.label_problem("0" * 5000)) < 120


@pytest.mark.parametrize(("charset", "expected"), [
    ("AB1b", "p/shop.yaml: format: charset holds both cases of 'b' but case_sensitive is false "
             "(keep one case in the charset, or set case_sensitive: true)"),
    ("AB1c", "p/shop.yaml: format: charset holds 'c' but case_sensitive is false: labels are "
             "folded to upper case, so no label can hold it (write the charset in upper case, or "
             "set case_sensitive: true)"),
    ("ABß", "p/shop.yaml: format: charset holds 'ß' but case_sensitive is false: labels are "
            "folded to upper case, so no label can hold it (write the charset in upper case, or "
            "set case_sensitive: true)"),
    ("abß", None),
])
def test_a_charset_without_case_holds_only_what_folding_reaches(charset: str,
                                                                expected: str | None) -> None:
    data = variant(format__charset=charset, format__case_sensitive=False)
    if expected is None:  # 'ß' folded to lower case is still 'ß'
        assert profile_from_data(data, "p/shop.yaml").format.charset == charset
    else:
        assert problems(data) == [expected]


def test_success_url_is_a_path_a_glob_or_a_url() -> None:
    import re

    from solver.profiles import FormSection

    for value, page, matches in [("/shop/welcome", "/shop/welcome?user=ada", True),
                                 ("/shop/welcome", "/shop/welcome2", False),
                                 ("/shop/*/done", "/shop/7/done", True),
                                 ("**/welcome", "https://portal.example/a/b/welcome", True),
                                 ("https://portal.example/home*", "https://portal.example/home/x", False)]:
        regex, _ = FormSection(input="i", submit="b", success_url=value).success_url_pattern()
        assert bool(re.match(regex, page)) is matches, (value, page)
    with pytest.raises(ValueError, match=r"'welcome' is neither a URL nor a path \(write a path such "
                       r"as /account/welcome, a glob such as \*\*/welcome, or a full URL"):
        FormSection(input="i", submit="b", success_url="welcome")


def test_format_version_defaults_to_the_current_one() -> None:
    from solver.profiles import PROFILE_VERSION

    assert profile_from_data(GOOD, "p/shop.yaml").version == PROFILE_VERSION
    written = profile_from_data(variant(version=PROFILE_VERSION), "p/shop.yaml")
    assert written == profile_from_data(GOOD, "p/shop.yaml")
    assert "version" not in written.to_dict()  # files without it keep their shape
    assert problems(variant(verison=1)) == ["p/shop.yaml: verison: unknown key (did you mean 'version'?)"]


def test_a_newer_format_version_is_named_alone() -> None:
    # the keys a newer format adds would be "unknown key" lines; the version explains them all
    assert problems(variant(version=2, captcha__look="new")) == [
        "p/shop.yaml: version: 2 is a newer profile format than version 1, the one this solver "
        "reads (upgrade the solver package, or rewrite the profile in version 1)"]
    assert problems(variant(version=0)) == [
        "p/shop.yaml: version: 0 is not a profile format version (write version: 1, or remove the key)"]
    assert problems(variant(version="1")) == [
        "p/shop.yaml: version: expected a whole number, got the string '1' (write a number "
        "without quotes, e.g. 160)"]


def test_capture_modes_come_from_the_capture_registry() -> None:
    from solver.capture import CAPTURE_MODES, GRAB_STEPS, MODES

    capture = profile_schema()["$defs"]["CaptchaSection"]["properties"]["capture"]
    assert capture["enum"] == list(MODES) == list(CAPTURE_MODES)
    assert all(f"'{name}'" in capture["description"] for name in MODES)
    for mode in CAPTURE_MODES.values():
        for kind in ("img", "canvas", "background"):
            assert set(mode.plan(kind)) <= set(GRAB_STEPS), (mode.name, kind)
