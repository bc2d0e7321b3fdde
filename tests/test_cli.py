import json
from pathlib import Path

import nbformat
import pytest

from tfpcourse import cli

ROOT = Path(__file__).resolve().parents[1]


def test_data_list_shows_every_file_with_its_cache_state(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TFPCOURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TFPCOURSE_DATA_MIRROR", str(tmp_path / "no-mirror"))
    assert cli.main(["data", "list", "mnist"]) == 0
    out = capsys.readouterr().out
    assert f"Cache folder: {tmp_path}" in out
    assert out.count("missing") == 4 and "train-images-idx3-ubyte.gz" in out
    assert "9.9 MB" in out  # MNIST's training images, 9,912,422 bytes


def test_data_download_of_an_unknown_dataset_is_a_usage_error(capsys):
    assert cli.main(["data", "download", "cifar"]) == 2
    assert "Unknown dataset 'cifar'" in capsys.readouterr().err


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["bake"])
    assert err.value.code == 2


def test_checks_lists_every_chapter(capsys):
    assert cli.main(["checks", "--folder", str(ROOT / "notebooks")]) == 0
    out = capsys.readouterr().out
    assert "01_graphs_logistic_regression.ipynb" in out and "%" in out


@pytest.mark.slow
def test_run_executes_a_notebook_and_writes_a_json_report(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from tfpcourse.config import get_config\nprint(get_config().profile)"
        ),
    ]
    path = tmp_path / "00_probe.ipynb"
    nbformat.write(nb, path)
    report = tmp_path / "report.json"
    code = cli.main(["run", str(path), "--profile", "smoke", "--inplace", "--json", str(report)])
    assert code == 0
    rows = json.loads(report.read_text())
    assert rows[0]["notebook"] == "00_probe.ipynb" and rows[0]["ok"] is True
    assert rows[0]["profile"] == "smoke" and rows[0]["peak_rss_mb"] > 10
    executed = nbformat.read(path, as_version=4)
    assert executed.cells[0].outputs[0].text == "smoke\n"  # the kernel saw the profile
    assert "pass" in capsys.readouterr().out


@pytest.mark.slow
def test_run_reports_a_failing_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('broken chapter')")]
    path = tmp_path / "00_broken.ipynb"
    nbformat.write(nb, path)
    assert cli.main(["run", str(path), "--profile", "smoke"]) == 1


def test_regress_compares_a_chapter_with_itself_and_refuses_a_missing_folder(tmp_path, capsys):
    chapter = ROOT / "notebooks" / "02_distributions.ipynb"
    report = tmp_path / "r.json"
    assert cli.main(["regress", str(chapter), str(chapter), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| 02_distributions.ipynb |" in out and "**PASS**" in out
    assert json.loads(report.read_text())["passed"] is True
    assert cli.main(["regress", str(tmp_path / "nowhere"), str(chapter)]) == 2
    assert "baseline" in capsys.readouterr().err
