"""synth report: a self-contained page with every section; loaded in real headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from synth.cli import main
from synth.config import load_pipeline
from synth.executors.local import LocalExecutor

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("summary", "funnel", "samples", "scores", "diagnostics", "ablation", "config")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    LocalExecutor().run(load_pipeline(ROOT / "tests" / "data" / "resume.yaml", ["steps.slow_text.delay=0", "shards=2"]), out)
    return out


def test_report_has_every_section_and_embeds_everything(run_dir):
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    srcs = re.findall(r'src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs), "everything embedded, nothing fetched"
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert "filter:short" in page and "slow_text" in page  # the funnel names the generator and the reason
    assert page.count('alt="digits-') >= 10  # real digit images shown per label


def test_report_includes_ablation_when_present(run_dir):
    abl = run_dir / "ablation"
    abl.mkdir(exist_ok=True)
    (abl / "results.csv").write_text("ratio,seed,n_real,n_synthetic,metric,value\n0,0,10,0,accuracy,0.5\n1,0,10,10,accuracy,0.625\n")
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    section = page.split('<section id="ablation">')[1].split("</section>")[0]
    assert "0.625" in section and "accuracy" in section


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(
    not (_chromium() and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)",
)
def test_report_loads_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    selenium = pytest.importorskip("selenium", reason="pip install selenium (in the dev extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    assert selenium
    main(["report", str(run_dir)])
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1300,2000",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        driver.get((run_dir / "report.html").resolve().as_uri())
        assert driver.title.startswith("synth report")
        for sid in SECTIONS:
            assert driver.find_element(By.ID, sid).is_displayed(), sid
        images = driver.find_elements(By.TAG_NAME, "img")
        assert images and all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", im) for im in images)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        artefacts = ROOT / "tests" / "artifacts"  # kept out of git (.gitignore)
        artefacts.mkdir(exist_ok=True)
        driver.save_screenshot(str(artefacts / "report.png"))
    finally:
        driver.quit()
