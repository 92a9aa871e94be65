"""Every example takes the same command line, and the README's course map names each one.

The examples are imported (not run): their ``main(argv)`` parses the command line and
checks ``--out`` before any work, so these tests cost no training.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.example_runner import EXAMPLES

HELPERS = ("common", "digits")  # modules the examples import, not examples themselves
SCRIPTS = sorted(path.stem for path in EXAMPLES.glob("*.py") if path.stem not in HELPERS)
README = EXAMPLES.parent / "README.md"


def load(name: str):
    """Import ``examples/<name>.py`` as a module (its own imports find common and digits)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def test_every_example_is_in_the_list():
    assert len(SCRIPTS) >= 12
    assert {"xor", "gradient_descent_modes", "regularization", "adding_problem"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_names_the_common_options(name, capsys):
    with pytest.raises(SystemExit) as stop:
        load(name).main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--out OUT", "--seed SEED", "result: {...}"):
        assert option in text, f"{name}: {option!r} missing from --help"


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unknown_option_is_refused_by_name(name, capsys):
    with pytest.raises(SystemExit) as stop:
        load(name).main(["--quick", "--no-such-option"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unwritable_out_is_refused_before_any_work(name, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "pictures"
    with pytest.raises(SystemExit) as stop:
        load(name).main(["--quick", "--out", str(target)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--out {target}: cannot write pictures there" in err
    assert "Not a directory" in err or "File exists" in err


def test_the_readme_course_map_names_every_example():
    text = README.read_text(encoding="utf-8")
    course_map = text[text.index("## The course, example by example") :]
    for name in SCRIPTS:
        assert f"examples/{name}.py" in course_map, f"{name} is missing from the course map"
