"""The README's command reference is generated from --help; this fails when they drift apart."""

from conftest import ROOT

from planner.docs import render


def test_readme_cli_reference_matches_help():
    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "README is out of date: run `python -m planner.docs`"


def test_readme_starts_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash")[1:3]]
    assert blocks[0] == "pip install -e . && planner solve inputs/example.xlsx"
    assert blocks[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1] in ci
