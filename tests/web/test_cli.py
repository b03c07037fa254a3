"""``gridwatch users add|passwd|disable|list``, ``gridwatch evaluate --verdicts`` and
``gridwatch digest`` on a real settings file; the demo's one-time login link."""

from __future__ import annotations

from pathlib import Path

import yaml
from _web_helpers import build_web, event, make_settings
from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.web import _accounts as acc
from gridwatch.web import demo_login
from gridwatch.web._store import connect


def config_file(tmp: Path) -> Path:
    s = make_settings(tmp)
    data = {"alerts": {"registry": str(s.alerts.registry), "routes": str(s.alerts.routes),
                       "templates": str(s.alerts.templates), "state_db": str(s.alerts.state_db),
                       "jsonl_out": None},
            "web": {"secret_file": str(tmp / "web.secret")}, "influx": {"enabled": False}}
    path = tmp / "gridwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_users_lifecycle(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    run = CliRunner().invoke
    ok = run(app, ["users", "add", "alice", "--manager", "M1", "--password-stdin", "-c",
                   str(cfg)], input="a long enough password\n")
    assert ok.exit_code == 0, ok.output
    assert run(app, ["users", "add", "alice", "--manager", "M1", "--password-stdin", "-c",
                     str(cfg)], input="a long enough password\n").exit_code == 1
    assert run(app, ["users", "add", "mallory", "--manager", "M9", "--password-stdin", "-c",
                     str(cfg)], input="a long enough password\n").exit_code == 2
    short = run(app, ["users", "add", "eve", "--customer", "C1", "--password-stdin", "-c",
                      str(cfg)], input="short\n")
    assert short.exit_code == 1 and "at least" in short.output
    db = connect(tmp_path / "alerts.sqlite")
    assert acc.login(db, "alice", "a long enough password") is not None
    assert run(app, ["users", "passwd", "alice", "--password-stdin", "-c", str(cfg)],
               input="another long password\n").exit_code == 0
    assert acc.login(db, "alice", "a long enough password") is None
    assert acc.login(db, "alice", "another long password") is not None
    assert run(app, ["users", "disable", "alice", "-c", str(cfg)]).exit_code == 0
    assert acc.login(db, "alice", "another long password") is None
    listing = run(app, ["users", "list", "-c", str(cfg)])
    assert "alice" in listing.output and "disabled" in listing.output
    actions = [r[0] for r in db.execute("SELECT action FROM web_audit ORDER BY id")]
    assert actions == ["user_added", "password_changed", "user_disabled"]


def test_evaluate_verdicts_prints_precision_by_type_and_cell(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    w = build_web(tmp_path)
    try:
        w.seed(event("m1"), event("r1", "outage"), event("m3"))
        c = w.client()
        c.login("bob")
        for fp, verdict in (("m1/abnormal_consumption", "false_alarm"),
                            ("m3/abnormal_consumption", "confirmed"),
                            ("r1/outage", "confirmed")):
            token = c.csrf(f"/alert/{fp}")
            c.post(f"/alert/{fp}/verdict", data={"csrf": token, "verdict": verdict})
        c.close()
    finally:
        w.router.close()
        w.ws.close()
    out = CliRunner().invoke(app, ["evaluate", "--verdicts", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    lines = [" ".join(line.replace("│", " ").split()) for line in out.output.splitlines()]
    assert "abnormal_consumption 1 1 0 0.500" in lines
    assert "outage 1 0 0 1.000" in lines
    assert "A 1 1 0 0.500" in lines and "B 1 0 0 1.000" in lines
    digest = CliRunner().invoke(app, ["digest", "-c", str(cfg)])
    assert digest.exit_code == 0 and "M2" in digest.output


def test_demo_login_link_logs_in_once(tmp_path: Path) -> None:
    w = build_web(tmp_path)
    try:
        link = demo_login(w.settings, "M1", "http://127.0.0.1:8080")
        assert link.startswith("http://127.0.0.1:8080/login/once?token=")
        c = w.client()
        path = link.removeprefix("http://127.0.0.1:8080")
        assert c.get(path).headers["location"] == "/"
        assert c.get("/alerts?format=json").json()["cells"] == ["A"]
        assert w.client().get(path).headers["location"] == "/login"
        # a second demo run reuses the account and hands out a new link
        assert demo_login(w.settings, "M1", "http://x") != link
    finally:
        w.router.close()
        w.ws.close()


def test_serve_runs_the_workspace_as_a_process(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from gridwatch._services import free_port

    cfg = config_file(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gridwatch", "serve", "-c", str(cfg),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    page = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "gridwatch serve did not answer"
                time.sleep(0.2)
        assert 'id="login-form"' in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/htmx.min.js") as r:
            assert r.status == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the signal it caught
    assert "Application shutdown complete" in out and proc.returncode in (0, -15), out
