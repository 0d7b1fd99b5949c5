"""CLI options are typed (Annotated + enums): Typer refuses a bad choice itself, with exit code 2."""

from __future__ import annotations

import pytest

from planner.cli import main
from planner.cli_options import RecommendFormat, ReportFormat
from planner.render import FORMATS

BAD = "pdf"


def test_recommend_formats_are_the_renderers():
    assert {f.value for f in RecommendFormat} == set(FORMATS)
    assert {f.value for f in ReportFormat} <= set(FORMATS)


@pytest.mark.parametrize("command", ["recommend", "inspect", "check", "cohort evaluate"])
def test_a_bad_format_is_refused_before_the_command_runs(command, capsys, tmp_path):
    missing = tmp_path / "never-read.json"  # Typer refuses --format first: the file is never opened
    code = main([*command.split(), str(missing), "--format", BAD])
    err = capsys.readouterr().err
    assert code == 2
    assert f"'{BAD}' is not one of" in err and "Traceback" not in err
    assert "never-read.json" not in err


def test_format_choice_is_case_insensitive(capsys, fixtures_dir):
    bundle = sorted((fixtures_dir / "synthea").glob("*.json"))[0]
    assert main(["inspect", str(bundle), "--format", "JSON"]) == 0
    assert capsys.readouterr().out.lstrip().startswith(("{", "["))


def test_every_cli_option_is_annotated():
    """Options are declared as ``name: Annotated[T, typer.Option(...)] = default``, never as a call in a default."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "planner"
    old_style = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                for d in [*node.args.defaults, *node.args.kw_defaults]:
                    if isinstance(d, ast.Call) and ast.unparse(d.func) in ("typer.Option", "typer.Argument"):
                        old_style.append(f"{path.relative_to(root.parent)}:{node.name}")
    assert not old_style, f"options as calls in defaults (use Annotated): {sorted(set(old_style))}"
