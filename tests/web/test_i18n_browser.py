"""The Chinese alert page as chromium shows it (headless, Debian's chromium and chromedriver,
``gridwatch serve``'s app under uvicorn): the text a reader sees (``innerText``, after htmx and
the chart script ran) holds no English word outside ids, units and URLs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _web_helpers import PASSWORD, T0, Web, build_web, event, page_wait
from _zh_samples import SAMPLES, english_words

from gridwatch._schemas import LoadProfile
from gridwatch._services import free_port
from gridwatch.web import WebServer

pytestmark = [pytest.mark.slow]

SAMPLE = next(s for s in SAMPLES if s[0] == "abnormal_consumption")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Web, WebServer]]:
    w = build_web(tmp_path)
    type_, evidence, summary = SAMPLE
    w.seed(event("m3", type_, evidence=evidence, summary=summary))
    w.router.update_profile(LoadProfile(meter_id="m3", day=T0, customer_id="C2",
                                        segment="sharp daytime businesses", tags=("night-heavy",),
                                        daily_kwh=900.0, peak_kw=120.0, valley_kw=10.0))
    server = WebServer(w.settings, host="127.0.0.1", port=free_port()).start()
    yield w, server
    server.stop()
    w.router.close()
    w.ws.close()


def test_the_chinese_alert_page_in_chromium(served: tuple[Web, WebServer],
                                            browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    d = browser
    _, server = served
    wait = page_wait(d)
    d.get(f"{server.url}/alerts")
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    d.find_element(By.ID, "username").send_keys("carol")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "alert-list")))
    d.get(f"{server.url}/alert/m3/abnormal_consumption")
    wait.until(ec.presence_of_element_located((By.ID, "audit")))
    text = d.execute_script("return document.body.innerText")
    assert "负荷持续偏高：12.40 kW" in text
    assert "尖峰白天型商户" in text and "工业" in text
    words = english_words(text, ("m3", "C2", "B", "m3/abnormal_consumption",
                                 "Beta Foods", "carol", "English"))
    assert words == [], words
