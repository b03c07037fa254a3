"""What a Chinese reader's message costs beside an English one.

Every sample event of tests/tags/_zh_samples.py (one per type and kind the detectors raise) is
stored by a real router (shipped registry, routes and templates, in-memory SQLite); then, for
``--rounds`` rounds, each stored alert's message context is built (``alert_context``, which now
holds the Chinese summary, evidence, segment, class and tag names) and rendered with the manager
template in English and in Chinese. Printed: microseconds per message, and the Chinese words
alone (``summary_text`` + ``evidence_items`` + ``segment_label`` + ``class_name`` +
``tag_names``).

Baseline, measured in the same run: the English message (context + render), printed beside the
others as a ratio.

    .venv/bin/python benchmarks/messages_zh.py               # a few seconds
    .venv/bin/python benchmarks/messages_zh.py --rounds 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "tags"))

from _zh_samples import SAMPLES  # noqa: E402

from gridwatch import Event  # noqa: E402
from gridwatch._i18n_terms import (  # noqa: E402
    class_name,
    evidence_items,
    segment_label,
    summary_text,
    tag_names,
)
from gridwatch._schemas import LoadProfile  # noqa: E402
from gridwatch.alerts import AlertSettings, Registry, Router, RouteTree, Templates  # noqa: E402
from gridwatch.alerts._messages import alert_context  # noqa: E402


class _Null:
    def send(self, notification: object) -> object:
        raise AssertionError("nothing is sent")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    from datetime import UTC, datetime

    t0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
    cfg = REPO / "config"
    tree = RouteTree.parse(yaml.safe_load((cfg / "routes.yaml").read_text("utf-8")))
    registry = Registry.model_validate(yaml.safe_load((cfg / "registry.yaml").read_text("utf-8")))
    settings = AlertSettings.model_validate({"tags_catalogue": str(cfg / "tags")})
    templates = Templates(cfg / "templates")
    router = Router(registry, tree, db=":memory:", templates=templates,
                    notifiers={"mqtt": _Null()}, settings=settings, clock=lambda: t0,
                    inhibit_rules=tree.inhibit)
    router.update_profile(LoadProfile(meter_id="MTR-0001", day=t0, customer_id="C0001",
                                      segment="sharp evening-peak plants",
                                      tags=("night-heavy", "pv-candidate"), daily_kwh=900.0,
                                      peak_kw=120.0, valley_kw=10.0))
    for i, (type_, evidence, summary) in enumerate(SAMPLES):
        router.submit(Event(meter_id=f"MTR-{i + 1:04d}", type=type_,
                            severity="warning", score=4.0, onset=t0 - timedelta(minutes=30),
                            raised_at=t0, summary=summary, evidence=evidence,
                            customer_id="C0001", grid_cell="CELL-A"))
    rows = router.db.execute("SELECT * FROM alerts").fetchall()
    labels = [router.labels(r) for r in rows]

    def message(lang: str) -> float:
        start = time.perf_counter()
        for _ in range(args.rounds):
            for row, lab in zip(rows, labels, strict=True):
                a = alert_context(row, "firing", registry=registry, labels=lab,
                                  settings=settings, resolved_at=None)
                templates.render("manager", lang, {
                    "alerts": [a], "top": a, "kind": "firing", "status": "firing",
                    "recipient_name": "王敏", "customer_name": "王敏", "firing": 1})
        return (time.perf_counter() - start) / (args.rounds * len(rows)) * 1e6

    def words() -> float:
        evs = [json.loads(r["evidence"]) for r in rows]
        start = time.perf_counter()
        for _ in range(args.rounds):
            for row, lab, ev in zip(rows, labels, evs, strict=True):
                summary_text("zh", row["type"], row["state"], ev, row["summary"])
                evidence_items("zh", ev)
                segment_label("zh", lab["segment"])
                class_name("zh", lab["customer_class"])
                tag_names("zh", settings.tags_catalogue, list(lab["tags"]))
        return (time.perf_counter() - start) / (args.rounds * len(rows)) * 1e6

    message("en"), message("zh")  # warm: templates compiled, catalogue names cached
    en = min(message("en") for _ in range(3))
    zh = min(message("zh") for _ in range(3))
    w = min(words() for _ in range(3))
    router.close()
    print(f"{len(rows)} alerts x {args.rounds} rounds, best of 3")
    print(f"baseline  English message (context + render): {en:8.1f} µs")
    print(f"Chinese message (context + render):           {zh:8.1f} µs  ({zh / en:.2f}x)")
    print(f"the Chinese words alone (in every context):   {w:8.1f} µs  ({w / en:.2f}x)")


if __name__ == "__main__":
    main()
