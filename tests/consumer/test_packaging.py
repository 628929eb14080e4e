"""A plain `pip install .` carries the migrations and templates: the wheel holds them and the
installed package finds them without the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from wfproc import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True)
    [built] = out.glob("wf-*.whl")
    return built


def test_wheel_carries_every_sql_file_and_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in [*REPO.glob("sql/**/*.sql"), *REPO.glob("templates/**/*.json")]:
        assert f"wf/{path.relative_to(REPO)}" in names, path


def test_installed_package_finds_and_reads_its_sql_without_the_checkout(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    found = subprocess.run(
        [sys.executable, "-c", "from wf.resources import sql_dir; from wf.catalog import load; "
                               "load(); print(sql_dir())"],
        env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(found.stdout.strip()).is_relative_to(tmp_path)


def test_wheel_carries_the_dashboard_templates_script_and_built_libraries(wheel):
    """The dashboard loads nothing from the internet: its templates, its own script and style, and the
    libraries scripts/build-dashboard-assets built from npm (ignored by git) are all in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    dashboard = REPO / "consumer/wf/dashboard"
    shipped = [*dashboard.glob("templates/*.html"), *dashboard.glob("static/*.*"), *dashboard.glob("static/vendor/*")]
    assert any(p.name == "dagre.min.js" for p in shipped) and any(p.name == "uPlot.iife.min.js" for p in shipped)
    for path in shipped:
        assert f"wf/{path.relative_to(REPO / 'consumer/wf')}" in names, path
