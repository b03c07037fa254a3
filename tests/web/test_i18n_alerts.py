"""The workspace's alert page in Chinese: the summary rendered from the evidence, the evidence
labelled, the customer class, segment and tags by their Chinese names; no English word in the
page's text outside ids, units, URLs and the language switch (``_zh_samples.english_words``).
An English reader still sees the detector's words."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from _web_helpers import T0, build_web, event
from _zh_samples import SAMPLES, english_words

from gridwatch._schemas import LoadProfile

#: Not words of the page but data and names: the test registry's customer and cell names
#: (``_web_helpers.REGISTRY``), the user's login name, and the switch to the other language
#: (named in that language).
DATA = ("Beta Foods", "Acme Steel", "Flat", "Cell B", "carol", "English")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:  # what a reader sees of the attributes
            if name in ("placeholder", "title", "alt") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    return "\n".join(p.parts)


@pytest.fixture
def web(tmp_path: Path):
    w = build_web(tmp_path)
    w.router.update_profile(LoadProfile(meter_id="m3", day=T0, customer_id="C2",
                                        segment="long-hours plants",
                                        tags=("night-heavy", "pv-candidate"), daily_kwh=900.0,
                                        peak_kw=120.0, valley_kw=10.0))
    yield w
    w.router.close()
    w.ws.close()


@pytest.mark.parametrize(("type_", "evidence", "summary"),
                         [s for s in SAMPLES if s[0] in ("abnormal_consumption", "tamper",
                                                          "possible_theft", "device_overheating",
                                                          "over_capacity_risk")])
def test_the_alert_page_reads_in_chinese(web, type_, evidence, summary):
    web.seed(event("m3", type_, evidence=evidence, summary=summary))
    c = web.client()
    c.login("carol")
    fp = f"m3/{type_}"
    resp = c.get(f"/alert/{fp}")
    assert resp.status_code == 200, resp.text
    text = page_text(resp.text)
    words = english_words(text, ("m3", "C2", "B", "TX-01", "S1", fp, *DATA))
    assert words == [], words
    assert summary not in text
    assert "工业" in text and "长时段工厂" in text
    # the tag pills by name, the id kept for scripts and links
    assert 'data-tag="night-heavy"' in resp.text and "night-heavy" not in text


def test_an_english_reader_sees_the_detectors_words(web):
    type_, evidence, summary = SAMPLES[0]
    web.seed(event("m3", type_, evidence=evidence, summary=summary))
    c = web.client()
    c.login("bob")  # M2 is cell B's backup: an English manager who may see it
    resp = c.get(f"/alert/m3/{type_}")
    if resp.status_code == 404:  # only the primary sees it: switch carol to English
        c = web.client()
        c.login("carol")
        token = c.csrf("/alerts")
        c.post("/language", data={"csrf": token, "language": "en"})
        resp = c.get(f"/alert/m3/{type_}")
    assert resp.status_code == 200, resp.text
    text = page_text(resp.text)
    assert summary in text and "observed_kw" in text and "industrial" in text
    assert "long-hours plants" in text


def test_the_customer_portal_and_pages_read_in_chinese(web):
    type_, evidence, summary = next(s for s in SAMPLES if s[0] == "over_capacity_risk")
    web.seed(event("m3", type_, evidence=evidence, summary=summary))
    beta = web.client()
    beta.login("beta")  # customer C2, reads Chinese
    portal = beta.get("/portal")
    assert portal.status_code == 200, portal.text
    notice = beta.get(f"/portal/notice/m3/{type_}")
    assert notice.status_code == 200, notice.text
    for resp in (portal, notice):
        text = page_text(resp.text)
        assert "需量预计在 30 分钟内达到 650.5 kVA（合同容量 630 kVA）" in text
        assert english_words(text, ("m3", "C2", "beta", *DATA)) == [], text
    carol = web.client()
    carol.login("carol")
    listing = page_text(carol.get("/alerts").text)
    assert english_words(listing, ("m3", "C2", "B", *DATA)) == [], listing
    for url in ("/customer/C2", "/cell/B"):
        text = page_text(carol.get(url).text)
        assert "工业" in text and "industrial" not in text, url
        assert english_words(text, ("m3", "C2", "B", *DATA)) == [], url


def test_the_audit_trail_words():
    from gridwatch.web._i18n import audit_text

    assert audit_text("zh", "warning score=8") == "警告 分值 8"
    assert audit_text("zh", "firing via mqtt,email #12") == "告警 经 mqtt,email #12"
    assert audit_text("zh", "customer:C2,manager:M3") == "客户 C2,客户经理 M3"
    assert audit_text("en", "warning score=8") == "warning score=8"
